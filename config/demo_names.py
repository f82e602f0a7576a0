"""Word lists and seeded name builders for the demo park's enterprises, tenants and staff."""

from __future__ import annotations

import random

CITIES = ("苏州", "苏州", "苏州", "苏州", "昆山", "吴江", "常熟", "太仓", "张家港")

# Characters that Chinese firms commonly combine into a two-character trade name.
BRAND_CHARS = (
    "恒瑞泰信达华宏盛鑫博创嘉凯联隆美明鹏启荣赛顺天通伟欣亚益裕正中卓科锐昊源晟翔航德"
    "诚丰光海和辉汇佳金精骏力灵迈诺普奇睿尚升拓维新旭耀毅远展智东方奥邦宝昌晨程富广"
)

INDUSTRIES = (
    "精密机械",
    "电子科技",
    "新材料",
    "光电科技",
    "智能装备",
    "汽车零部件",
    "医疗器械",
    "生物科技",
    "塑胶制品",
    "五金制品",
    "包装材料",
    "纺织科技",
    "模具",
    "自动化设备",
    "半导体",
    "检测技术",
    "环保科技",
    "食品",
    "印刷",
    "电气",
    "金属制品",
    "精工",
    "新能源科技",
    "信息技术",
    "供应链管理",
    "化工科技",
    "机电设备",
    "线缆",
    "传感技术",
    "工业设计",
)

COMPANY_SUFFIXES = ("有限公司", "有限公司", "有限公司", "有限公司", "股份有限公司")

SURNAMES = (
    "王李张刘陈杨黄赵周吴徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余"
    "于杜叶程魏苏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方邹熊白孟秦邱侯江尹薛闫段雷"
)

GIVEN_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红建文辉力兰鹏飞斌宇浩凯健"
    "俊帆帅旭宁婷雪琳晨阳欣怡佳雨思源子涵博文轩梓晓东海波峰亮志国庆春燕云龙"
)


def _pick(rng: random.Random, chars: str) -> str:
    """One character of `chars`."""
    return chars[rng.randrange(len(chars))]


def company_name(rng: random.Random, industry: str | None = None) -> str:
    """A plausible company name such as 苏州恒瑞精密机械有限公司."""
    brand = _pick(rng, BRAND_CHARS) + _pick(rng, BRAND_CHARS)
    trade = industry if industry is not None else INDUSTRIES[rng.randrange(len(INDUSTRIES))]
    suffix = COMPANY_SUFFIXES[rng.randrange(len(COMPANY_SUFFIXES))]
    return f"{CITIES[rng.randrange(len(CITIES))]}{brand}{trade}{suffix}"


def person_name(rng: random.Random) -> str:
    """A plausible two- or three-character personal name."""
    given = _pick(rng, GIVEN_CHARS)
    if rng.random() < 0.7:
        given += _pick(rng, GIVEN_CHARS)
    return _pick(rng, SURNAMES) + given


class CompanyNames:
    """Hands out company names that are unique within one park."""

    def __init__(self, rng: random.Random) -> None:
        """Draw names from `rng`."""
        self._rng = rng
        self._used: set[str] = set()

    def new(self, industry: str | None = None) -> str:
        """A company name not handed out before."""
        while True:
            name = company_name(self._rng, industry)
            if name not in self._used:
                self._used.add(name)
                return name
