"""Deterministic layout of the reference park: 5,407 meters and 224 GSM500-Lora gateways."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from config.demo_names import CompanyNames, person_name
from config.demo_records import (
    SINGLE_PHASE_MODEL,
    THREE_PHASE_MODEL,
    DemoArea,
    DemoBuilding,
    DemoGateway,
    DemoMerchant,
    DemoMeter,
    DemoPark,
    DemoUser,
    PrepaidSettings,
)

PARK_NAME = "苏州示范高新技术产业园"
TOTAL_METERS = 5407
GATEWAY_COUNT = 224
ENTERPRISE_METERS = 1088
DORM_METERS = 4307
MODBUS_TCP_FIRST_PORT = 15020

TOU_TARIFF = "TOU-JS"
DORM_TARIFF = "DORM-FLAT"
TIERED_TARIFF = "RES-TIER"

# (area id, name, building letter, factory buildings, merchant)
ENTERPRISE_ZONES = (
    ("ENT-A", "A区企业园", "A", 12, "M1"),
    ("ENT-B", "B区企业园", "B", 10, "M1"),
    ("ENT-C", "C区企业园", "C", 10, "M2"),
    ("ENT-D", "D区企业园", "D", 8, "M2"),
)
# Buildings run by another property company than their zone's: their meters name it directly.
MERCHANT_OVERRIDES = {"D7": "M3", "D8": "M3"}
ENTERPRISE_FLOORS = 4
MULTI_UNIT_SHARE = 0.06  # chance that a unit belongs to the enterprise next door
POSTPAID_SHARE = 0.10
VACANT_ENTERPRISE_SHARE = 0.02

# (area id, name, first building number, buildings, merchant)
DORM_BLOCKS = (
    ("DORM-N", "北区员工宿舍", 1, 16, "M3"),
    ("DORM-S", "南区员工宿舍", 17, 16, "M3"),
)
DORM_FLOORS = 6
VACANT_DORM_SHARE = 0.03
TIERED_DORM_METERS = 60
TENANT_COMPANY_SHARE = 0.7

COMMON_AREA = "PUB"
COMMON_BUILDINGS = (("P1", "综合服务楼"), ("P2", "水泵房"), ("P3", "员工食堂"))
# (room / use, building, CT ratio) of the shared meters whose cost is allocated to tenants.
COMMON_METERS = (
    ("公共-东区路灯", "", 20),
    ("公共-西区路灯", "", 20),
    ("公共-综合楼照明", "P1", 30),
    ("公共-综合楼空调", "P1", 60),
    ("公共-综合楼电梯", "P1", 40),
    ("公共-生活水泵", "P2", 40),
    ("公共-消防水泵", "P2", 60),
    ("公共-食堂厨房", "P3", 40),
    ("公共-食堂空调", "P3", 60),
    ("公共-地下车库照明", "", 20),
    ("公共-门卫及监控", "", 1),
    ("公共-污水处理站", "", 30),
)

# CT ratios (n for n×5 A / 5 A; 1 = direct connection) with their weights.
GROUND_FLOOR_CT = (
    (1, 10),
    (20, 8),
    (30, 10),
    (40, 12),
    (60, 14),
    (80, 12),
    (100, 12),
    (150, 9),
    (200, 6),
    (300, 4),
    (400, 3),
)
UPPER_FLOOR_CT = ((1, 45), (20, 12), (30, 14), (40, 12), (60, 8), (80, 4), (100, 3), (150, 2))

DORM_PREPAID = PrepaidSettings(
    power_limit_w=4400, alarm1_fen=2000, alarm2_fen=500, credit_limit_fen=1000
)

USERS = (
    DemoUser("admin", "admin", "系统管理员"),
    DemoUser("operator", "operator", "值班运行员"),
    DemoUser("finance", "finance", "财务结算员"),
    DemoUser("viewer", "viewer", "园区访客"),
)


def enterprise_prepaid(ct: int) -> PrepaidSettings:
    """Alarm and credit limits of an enterprise meter, scaled by its CT ratio (its load)."""
    if ct == 1:
        return PrepaidSettings(alarm1_fen=20000, alarm2_fen=5000, credit_limit_fen=10000)
    if ct <= 60:
        return PrepaidSettings(alarm1_fen=100000, alarm2_fen=30000, credit_limit_fen=50000)
    if ct <= 150:
        return PrepaidSettings(alarm1_fen=300000, alarm2_fen=100000, credit_limit_fen=200000)
    return PrepaidSettings(alarm1_fen=800000, alarm2_fen=300000, credit_limit_fen=500000)


def _weighted(rng: random.Random, table: tuple[tuple[int, int], ...]) -> int:
    """One value of a (value, weight) table."""
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _imei(rng_value: int) -> str:
    """A 15-digit IMEI-like 4G module serial with a Luhn check digit."""
    body = f"86930204{rng_value:06d}"
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char) * (2 if index % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return body + str((10 - total % 10) % 10)


@dataclass
class _Identities:
    """Pre-drawn unique DL/T 645 addresses and 4G serials, handed out in meter order."""

    three_phase: list[str]
    single_phase: list[str]
    serials: list[str]

    @classmethod
    def draw(cls, rng: random.Random, three_phase: int, single_phase: int) -> _Identities:
        """Draw unique identities; model prefixes keep the two address ranges apart."""
        return cls(
            three_phase=[f"2203{n:08d}" for n in rng.sample(range(10**8), three_phase)],
            single_phase=[f"2108{n:08d}" for n in rng.sample(range(10**8), single_phase)],
            serials=[_imei(n) for n in rng.sample(range(10**6), three_phase)],
        )


def _merchants(rng: random.Random, names: CompanyNames) -> tuple[DemoMerchant, ...]:
    """The three property companies with their payment accounts."""
    merchants = []
    for number in range(1, 4):
        mchid = f"16{rng.randrange(10**8):08d}"
        merchants.append(
            DemoMerchant(
                id=f"M{number}",
                name=names.new("物业管理"),
                wechat_mchid=mchid,
                wechat_appid=f"wx{rng.randrange(16**16):016x}",
                wechat_key_serial=f"PUB_KEY_ID_01{mchid}2024{rng.randrange(10**8):08d}",
                alipay_app_id=f"2021{rng.randrange(10**12):012d}",
                alipay_seller_id=f"2088{rng.randrange(10**12):012d}",
            )
        )
    return tuple(merchants)


def _enterprise_units(rng: random.Random) -> list[tuple[str, str, int, str]]:
    """(area, building, floor, room) of every enterprise unit, zone by zone."""
    buildings = [
        (area, f"{letter}{n}")
        for area, _, letter, count, _ in ENTERPRISE_ZONES
        for n in range(1, count + 1)
    ]
    per_building, extra = divmod(ENTERPRISE_METERS, len(buildings))
    bigger = set(rng.sample(range(len(buildings)), extra))
    units = []
    for index, (area, building) in enumerate(buildings):
        count = per_building + (1 if index in bigger else 0)
        per_floor = math.ceil(count / ENTERPRISE_FLOORS)
        for unit in range(count):
            floor, number = divmod(unit, per_floor)
            units.append((area, building, floor + 1, f"{building}-{floor + 1}{number + 1:02d}"))
    return units


def _enterprise_meters(
    rng: random.Random, ids: _Identities, names: CompanyNames
) -> tuple[list[DemoMeter], list[str]]:
    """The enterprise meters (three-phase, direct 4G) and the enterprise names in order."""
    units = _enterprise_units(rng)
    vacant = set(rng.sample(range(len(units)), round(len(units) * VACANT_ENTERPRISE_SHARE)))
    meters: list[DemoMeter] = []
    enterprises: list[str] = []
    owner, billing, run, previous_building = "", "", 0, ""
    for index, (area, building, floor, room) in enumerate(units):
        ct = _weighted(rng, GROUND_FLOOR_CT if floor == 1 else UPPER_FLOOR_CT)
        if index in vacant:
            owner, run = "", 0
        elif not (
            owner and building == previous_building and run < 3 and rng.random() < MULTI_UNIT_SHARE
        ):
            owner, run = names.new(), 0
            billing = "postpaid" if rng.random() < POSTPAID_SHARE else "prepaid"
            enterprises.append(owner)
        previous_building = building
        run += 1
        unit_billing = billing if owner else "none"
        meters.append(
            DemoMeter(
                id=f"E{len(meters) + 1:04d}",
                model=THREE_PHASE_MODEL,
                dlt645_address=ids.three_phase.pop(),
                serial=ids.serials.pop(),
                area=area,
                building=building,
                room=room,
                owner=owner,
                billing=unit_billing,
                ct=ct,
                merchant=MERCHANT_OVERRIDES.get(building, "") if owner else "",
                tariff=TOU_TARIFF if owner else "",
                prepaid=enterprise_prepaid(ct) if unit_billing == "prepaid" else PrepaidSettings(),
            )
        )
    return meters, enterprises


def _common_meters(ids: _Identities, owner: str) -> list[DemoMeter]:
    """The shared meters of the public area, billed to the property company after use."""
    return [
        DemoMeter(
            id=f"C{number:02d}",
            model=THREE_PHASE_MODEL,
            dlt645_address=ids.three_phase.pop(),
            serial=ids.serials.pop(),
            area=COMMON_AREA,
            building=building,
            room=room,
            owner=owner,
            billing="postpaid",
            ct=ct,
            tariff=TOU_TARIFF,
        )
        for number, (room, building, ct) in enumerate(COMMON_METERS, start=1)
    ]


def _gateway_loads(rng: random.Random) -> list[int]:
    """How many dormitory meters each gateway carries: 19, and 20 on a seeded few."""
    base, extra = divmod(DORM_METERS, GATEWAY_COUNT)
    heavier = set(rng.sample(range(GATEWAY_COUNT), extra))
    return [base + (1 if index in heavier else 0) for index in range(GATEWAY_COUNT)]


def _gateway(index: int, area: str, first_tcp: int) -> DemoGateway:
    """Gateway number `index` (0-based): dial-in, or Modbus TCP from `first_tcp` on."""
    gateway_id = f"GW{index + 1:03d}"
    if index >= first_tcp:
        port = MODBUS_TCP_FIRST_PORT + index - first_tcp
        return DemoGateway(gateway_id, area, "modbus_tcp", host="127.0.0.1", port=port)
    return DemoGateway(gateway_id, area, "dtu", f"GSM500-{index + 1:04d}", heartbeat="HB")


def _dormitory(
    rng: random.Random, ids: _Identities, tenants: list[str], modbus_tcp: int
) -> tuple[list[DemoGateway], list[DemoMeter]]:
    """The dormitory gateways and the single-phase meters behind them."""
    loads = _gateway_loads(rng)
    vacant = set(rng.sample(range(DORM_METERS), round(DORM_METERS * VACANT_DORM_SHARE)))
    occupied = [index for index in range(DORM_METERS) if index not in vacant]
    tiered = set(rng.sample(occupied, TIERED_DORM_METERS))
    gateways_per_building = GATEWAY_COUNT // sum(block[3] for block in DORM_BLOCKS)
    first_tcp = GATEWAY_COUNT - modbus_tcp
    gateways: list[DemoGateway] = []
    meters: list[DemoMeter] = []
    for area, _, first, count, _ in DORM_BLOCKS:
        for number in range(first, first + count):
            start = len(gateways)
            building_loads = loads[start : start + gateways_per_building]
            per_floor = math.ceil(sum(building_loads) / DORM_FLOORS)
            room_index = 0
            for load in building_loads:
                gateway = _gateway(len(gateways), area, first_tcp)
                gateways.append(gateway)
                for slave in range(1, load + 1):
                    floor, door = divmod(room_index, per_floor)
                    room_index += 1
                    room = _Room(
                        building=f"S{number:02d}",
                        number=f"{number}-{floor + 1}{door + 1:02d}",
                        vacant=len(meters) in vacant,
                        tiered=len(meters) in tiered,
                    )
                    meters.append(_dorm_meter(rng, ids, len(meters), room, tenants, gateway, slave))
    return gateways, meters


@dataclass(frozen=True)
class _Room:
    """A dormitory room: its building, its number (like 12-305), whether vacant or tiered."""

    building: str
    number: str
    vacant: bool
    tiered: bool


def _dorm_meter(
    rng: random.Random,
    ids: _Identities,
    index: int,
    room: _Room,
    tenants: list[str],
    gateway: DemoGateway,
    slave: int,
) -> DemoMeter:
    """The meter of one dormitory room, behind `gateway` at `slave`."""
    owner, billing, tariff, prepaid = "", "none", "", PrepaidSettings()
    if not room.vacant:
        billing, prepaid = "prepaid", DORM_PREPAID
        tariff = TIERED_TARIFF if room.tiered else DORM_TARIFF
        if room.tiered or rng.random() >= TENANT_COMPANY_SHARE:
            owner = person_name(rng)
        else:
            owner = tenants[rng.randrange(len(tenants))]
    return DemoMeter(
        id=f"D{index + 1:04d}",
        model=SINGLE_PHASE_MODEL,
        dlt645_address=ids.single_phase.pop(),
        gateway=gateway.id,
        slave=slave,
        area=gateway.area,
        building=room.building,
        room=room.number,
        owner=owner,
        billing=billing,
        ct=1,
        tariff=tariff,
        prepaid=prepaid,
    )


def build_park(seed: int, modbus_tcp_gateways: int = 8) -> DemoPark:
    """The whole reference park for `seed`; the same seed always gives the same park."""
    if not 0 <= modbus_tcp_gateways <= GATEWAY_COUNT:
        raise ValueError(
            f"modbus_tcp_gateways must be 0..{GATEWAY_COUNT}, got {modbus_tcp_gateways}"
        )
    rng = random.Random(seed)
    names = CompanyNames(rng)
    merchants = _merchants(rng, names)
    ids = _Identities.draw(rng, ENTERPRISE_METERS + len(COMMON_METERS), DORM_METERS)
    enterprise_meters, enterprises = _enterprise_meters(rng, ids, names)
    common_meters = _common_meters(ids, merchants[0].name)
    # Dormitory rooms are leased by the park's larger employers for their staff.
    tenants = enterprises[: max(1, len(enterprises) // 5)]
    gateways, dorm_meters = _dormitory(rng, ids, tenants, modbus_tcp_gateways)
    meters = (*enterprise_meters, *common_meters, *dorm_meters)
    if len(meters) != TOTAL_METERS:
        raise RuntimeError(f"the park layout gives {len(meters)} meters, not {TOTAL_METERS}")
    return DemoPark(
        seed=seed,
        name=PARK_NAME,
        areas=_areas(),
        gateways=tuple(gateways),
        meters=meters,
        merchants=merchants,
        users=USERS,
        enterprises=len(enterprises),
    )


def _areas() -> tuple[DemoArea, ...]:
    """Enterprise zones, dormitory blocks and the public area, each bound to a merchant."""
    areas = []
    for area, name, letter, count, merchant in ENTERPRISE_ZONES:
        factories = [
            DemoBuilding(f"{letter}{n}", f"{letter}{n}号厂房") for n in range(1, count + 1)
        ]
        areas.append(DemoArea(area, name, "enterprise", merchant, tuple(factories)))
    for area, name, first, count, merchant in DORM_BLOCKS:
        blocks = [DemoBuilding(f"S{n:02d}", f"{n}号宿舍楼") for n in range(first, first + count)]
        areas.append(DemoArea(area, name, "dormitory", merchant, tuple(blocks)))
    areas.append(
        DemoArea(
            COMMON_AREA,
            "公共区域",
            "common",
            "M1",
            tuple(DemoBuilding(bid, name) for bid, name in COMMON_BUILDINGS),
        )
    )
    return tuple(areas)
