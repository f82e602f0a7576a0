"""Every site.toml rule of SITE_FORMAT.md: each bad edit of the example gives its error."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from config import AlarmLimits, ConfigError, SiteInvalid, load_site
from config.alarm_limits import RANGES

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "examples" / "small"


@dataclass(frozen=True)
class Case:
    """Replace `old` (which must occur once) by `new` in site.toml; expect one error at `field`.

    The expected line is that of `at` (default: `new`) in the edited text; `also` lists the
    (file, field) of follow-on errors the edit is expected to cause as well.
    """

    id: str
    old: str
    new: str
    field: str
    message: str
    at: str | None = None
    also: tuple[tuple[str, str], ...] = ()


def copy_example(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    return folder


def edit(folder: Path, name: str, old: str, new: str) -> str:
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {name}"
    text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return text


def line_of(text: str, snippet: str) -> int:
    index = text.index(snippet)
    while text[index] == "\n":
        index += 1
    return text.count("\n", 0, index) + 1


def load_errors(folder: Path, env: dict[str, str] | None = None) -> list[ConfigError]:
    with pytest.raises(SiteInvalid) as caught:
        load_site(folder, env={} if env is None else env)
    return caught.value.errors


GW3 = 'host = "127.0.0.1"\nport = 1502\n'
WEEKEND_END = (
    '{ start = "08:00", end = "24:00", bucket = "flat" },\n    ]\n\n  [[tariffs.versions]]'
)
FIFTEEN = (
    "".join(
        f'{{ start = "{h:02d}:00", end = "{h + 1:02d}:00", bucket = "flat" }},\n      '
        for h in range(8, 21)
    )
    + '{ start = "21:00", end = "24:00", bucket = "flat" },\n    ]\n\n  [[tariffs.versions]]'
)
ALL_YEAR_END = '{ start = "08:00", end = "24:00", bucket = "flat" },\n    ]\n\n[[tariffs]]'
EXTRA_SEASONS = "".join(
    f'\n    [[tariffs.versions.seasons]]\n    name = "s{n}"\n    months = []\n'
    '    periods = [ { start = "00:00", end = "24:00", bucket = "flat" } ]\n'
    for n in range(4)
)
FOURTH_GATEWAY = (
    '\n[[gateways]]\nid = "GW004"\nkind = "modbus_tcp"\narea = "PUB"\n'
    'protocol = "modbus_rtu"\nhost = "127.0.0.1"\nport = 1_502\n'
)

CASES = [
    Case(
        "unknown key",
        'timezone = "Asia/Shanghai"\n',
        'timezone = "Asia/Shanghai"\ncolour = 1\n',
        "park.colour",
        "unknown key",
        at="colour",
    ),
    Case(
        "unknown section",
        '[[users]]\nname = "op1"',
        '[[user]]\nname = "op1"',
        "user",
        "unknown key",
    ),
    Case(
        "park name empty",
        'name = "示范工业园 (small example)"',
        'name = ""',
        "park.name",
        "must not be empty",
    ),
    Case(
        "bad timezone",
        '"Asia/Shanghai"',
        '"Asia/Shang"',
        "park.timezone",
        "IANA time zone",
        at="timezone",
    ),
    Case(
        "nominal voltage range",
        "nominal_voltage = 220.0",
        "nominal_voltage = 20",
        "park.nominal_voltage",
        "must be a number 50.0..1000.0",
    ),
    Case(
        "service bad listen",
        'hmi_listen = "127.0.0.1:8080"',
        'hmi_listen = "nonsense"',
        "services.hmi_listen",
        "must be host:port",
    ),
    Case(
        "service bad db url",
        'db_url = "postgresql://',
        'db_url = "mysql://',
        "services.db_url",
        "postgresql://",
        at="db_url",
    ),
    Case(
        "acquisition range",
        "realtime_s = 60",
        "realtime_s = 0",
        "acquisition.realtime_s",
        "must be an integer 1..86400, got 0",
    ),
    Case(
        "acquisition not an integer",
        "energy_s = 1800",
        'energy_s = "1800"',
        "acquisition.energy_s",
        "must be an integer",
    ),
    Case(
        "scan group unknown gateway",
        'gateway = "GW002"',
        'gateway = "GW009"',
        "acquisition.groups[0].gateway",
        "unknown gateway GW009",
    ),
    Case(
        "scan group unknown area",
        'gateway = "GW002"',
        'area = "NOPE"',
        "acquisition.groups[0].area",
        "unknown area NOPE",
    ),
    Case(
        "scan group unknown meter",
        'gateway = "GW002"',
        'meters = ["E0001", "X0009"]',
        "acquisition.groups[0].meters[1]",
        "unknown meter X0009",
    ),
    Case(
        "scan group two selectors",
        'gateway = "GW002"',
        'gateway = "GW002"\n  area = "DORM"',
        "acquisition.groups[0].area",
        "needs exactly one of area, gateway or meters",
        at='area = "DORM"\n  realtime_s = 300',
    ),
    Case(
        "scan group no selector",
        '  gateway = "GW002"\n',
        "",
        "acquisition.groups[0]",
        "needs exactly one of area, gateway or meters",
        at="[[acquisition.groups]]",
    ),
    Case(
        "scan group empty meters",
        'gateway = "GW002"',
        "meters = []",
        "acquisition.groups[0].meters",
        "must list at least one meter",
    ),
    Case(
        "scan group meters not an array",
        'gateway = "GW002"',
        'meters = "E0001"',
        "acquisition.groups[0].meters",
        "must be an array, got a string",
    ),
    Case(
        "scan group bad meter id",
        'gateway = "GW002"',
        'meters = ["E0001", 7]',
        "acquisition.groups[0].meters[1]",
        "must be a string",
    ),
    Case(
        "scan group gateway twice",
        "realtime_s = 300\n",
        'realtime_s = 300\n\n  [[acquisition.groups]]\n  gateway = "GW002"\n  energy_s = 900\n',
        "acquisition.groups[1].gateway",
        "gateway GW002 already has groups[0]",
        at='gateway = "GW002"\n  energy_s',
    ),
    Case(
        "scan group area twice",
        'gateway = "GW002"\n  realtime_s = 300\n',
        'area = "ENT"\n  realtime_s = 300\n\n  [[acquisition.groups]]\n  area = "ENT"\n'
        "  prepaid_s = 3600\n",
        "acquisition.groups[1].area",
        "area ENT already has groups[0]",
        at='area = "ENT"\n  prepaid_s',
    ),
    Case(
        "scan group meter twice",
        'gateway = "GW002"\n  realtime_s = 300\n',
        'meters = ["E0001", "E0002"]\n  realtime_s = 300\n\n  [[acquisition.groups]]\n'
        '  meters = ["P0001", "E0002"]\n  energy_s = 600\n',
        "acquisition.groups[1].meters[1]",
        "meter E0002 is already in groups[0]",
        at='meters = ["P0001"',
    ),
    Case(
        "scan group meter listed twice in one group",
        'gateway = "GW002"',
        'meters = ["E0001", "E0001"]',
        "acquisition.groups[0].meters[1]",
        "meter E0001 is already in groups[0]",
    ),
    Case(
        "scan group period range",
        "realtime_s = 300",
        "realtime_s = 0",
        "acquisition.groups[0].realtime_s",
        "must be an integer 1..86400, got 0",
        at="realtime_s = 0",
    ),
    Case(
        "scan group prepaid range",
        "realtime_s = 300",
        "prepaid_s = 604801",
        "acquisition.groups[0].prepaid_s",
        "must be an integer 1..604800, got 604801",
    ),
    Case(
        "scan group sets no period",
        "  realtime_s = 300\n",
        "",
        "acquisition.groups[0]",
        "sets no scan period",
        at="[[acquisition.groups]]",
    ),
    Case(
        "scan group site-only key",
        "realtime_s = 300",
        "realtime_s = 300\n  request_timeout_ms = 500",
        "acquisition.groups[0].request_timeout_ms",
        "unknown key",
        at="request_timeout_ms = 500",
    ),
    Case(
        "scan groups not tables",
        '  [[acquisition.groups]]\n  gateway = "GW002"\n  realtime_s = 300\n',
        "  groups = [1]\n",
        "acquisition.groups[0]",
        "must be a table, got an integer",
    ),
    Case(
        "bad area kind",
        'kind = "common"',
        'kind = "public"',
        "areas[2].kind",
        "must be one of enterprise | dormitory | common",
    ),
    Case(
        "bad identifier",
        'id = "PUB"',
        'id = "P U B"',
        "areas[2].id",
        "identifier",
        also=(("site.toml", "gateways[2].area"), ("meters.csv", "area")),
    ),
    Case(
        "area unknown merchant",
        'merchant = "M2"',
        'merchant = "M9"',
        "areas[1].merchant",
        "unknown merchant M9",
    ),
    Case(
        "duplicate building",
        '{ id = "DORM-A", name = "A栋" } ]',
        '{ id = "DORM-A", name = "A栋" }, { id = "ENT-01", name = "x" } ]',
        "areas[1].buildings[1].id",
        "building ENT-01 is already defined in area ENT",
    ),
    Case(
        "duplicate area",
        'id = "PUB"\nname',
        'id = "ENT"\nname',
        "areas[2].id",
        "area ENT is already used by areas[0]",
        at='id = "ENT"\nname = "公共区"',
        also=(("site.toml", "gateways[2].area"), ("meters.csv", "area")),
    ),
    Case(
        "bad gateway kind",
        'kind = "modbus_tcp"',
        'kind = "modbus"',
        "gateways[2].kind",
        "must be one of dtu | modbus_tcp",
    ),
    Case(
        "bad gateway protocol",
        'protocol = "dlt645"',
        'protocol = "iec104"',
        "gateways[1].protocol",
        "must be one of modbus_rtu | dlt645",
    ),
    Case(
        "gateway unknown area",
        'area = "PUB"\nprotocol',
        'area = "NOPE"\nprotocol',
        "gateways[2].area",
        "unknown area NOPE",
    ),
    Case(
        "modbus_tcp without host",
        GW3,
        "port = 1502\n",
        "gateways[2].host",
        "is required",
        at='[[gateways]]\nid = "GW003"',
    ),
    Case(
        "modbus_tcp without port",
        GW3,
        'host = "127.0.0.1"\n',
        "gateways[2].port",
        "is required",
        at='[[gateways]]\nid = "GW003"',
    ),
    Case(
        "port out of range",
        "port = 1502",
        "port = 70000",
        "gateways[2].port",
        "must be an integer 1..65535, got 70000",
    ),
    Case(
        "dtu with host",
        'heartbeat_format = "ascii"\n',
        'heartbeat_format = "ascii"\nhost = "10.0.0.1"\n',
        "gateways[0].host",
        "is not allowed on a dtu gateway",
        at="host =",
    ),
    Case(
        "modbus_tcp with registration",
        'host = "127.0.0.1"',
        'host = "127.0.0.1"\nregistration = "X"',
        "gateways[2].registration",
        "is not allowed on a modbus_tcp gateway",
        at='registration = "X"',
    ),
    Case(
        "dtu without registration",
        'registration = "A1B2C3D4"\n',
        "",
        "gateways[1].registration",
        "is required",
        at='[[gateways]]\nid = "GW002"',
    ),
    Case(
        "bad hex registration",
        '"A1B2C3D4"',
        '"A1B2C3D"',
        "gateways[1].registration",
        "even number of hex digits",
        at="A1B2C3D",
    ),
    Case(
        "non-hex registration",
        '"A1B2C3D4"',
        '"A1B2C3G4"',
        "gateways[1].registration",
        "even number of hex digits",
        at="A1B2C3G4",
    ),
    Case(
        "duplicate registration (same bytes as GW001)",
        '"A1B2C3D4"',
        '"4757303031"',
        "gateways[1].registration",
        "already used by gateways[0]",
        at="4757303031",
    ),
    Case(
        "duplicate host and port",
        "port = 1502\n",
        "port = 1502\n" + FOURTH_GATEWAY,
        "gateways[3].port",
        "127.0.0.1:1502 is already used by gateways[2]",
        at="port = 1_502",
    ),
    Case(
        "duplicate gateway id",
        'id = "GW003"',
        'id = "GW001"',
        "gateways[2].id",
        "gateway GW001 is already used by gateways[0]",
        at='id = "GW001"\nkind = "modbus_tcp"',
        also=(("meters.csv", "gateway"),),
    ),
    Case(
        "bad tariff kind",
        'kind = "flat"',
        'kind = "fixed"',
        "tariffs[1].kind",
        "must be one of tou | flat | tiered",
    ),
    Case(
        "duplicate tariff id",
        'id = "TIER"',
        'id = "FLAT"',
        "tariffs[2].id",
        "already defined by tariffs[1]",
        at='id = "FLAT"\nname = "居民阶梯"',
        also=(("meters.csv", "tariff"),),
    ),
    Case(
        "overlapping periods",
        '{ start = "10:00", end = "11:00", bucket = "sharp" }',
        '{ start = "09:30", end = "11:00", bucket = "sharp" }',
        "tariffs[0].versions[0].seasons[0].periods[2].start",
        "overlaps periods[1], which ends at 10:00",
    ),
    Case(
        "gapped periods",
        '{ start = "14:00", end = "15:00", bucket = "sharp" }',
        '{ start = "14:30", end = "15:00", bucket = "sharp" }',
        "tariffs[0].versions[0].seasons[0].periods[4].start",
        "leaves a gap 14:00–14:30 after periods[3]",
    ),
    Case(
        "day not ending at 24:00",
        '{ start = "08:00", end = "24:00", bucket = "flat" },\n    ]\n\n[[tariffs]]',
        '{ start = "08:00", end = "23:00", bucket = "flat" },\n    ]\n\n[[tariffs]]',
        "tariffs[0].versions[1].seasons[0].periods[1].end",
        "23:00–24:00 is not covered",
    ),
    Case(
        "period ends before it starts",
        '{ start = "11:00", end = "14:00", bucket = "flat" }',
        '{ start = "11:00", end = "10:00", bucket = "flat" }',
        "tariffs[0].versions[0].seasons[0].periods[3].end",
        "must be after start 11:00, got 10:00",
    ),
    Case(
        "bad time",
        '{ start = "15:00", end = "17:00"',
        '{ start = "15:00", end = "17:60"',
        "tariffs[0].versions[0].seasons[0].periods[5].end",
        "HH:MM",
    ),
    Case(
        "24:00 as a start",
        '{ start = "21:00", end = "24:00", bucket = "flat" },\n    ]\n\n',
        '{ start = "21:00", end = "24:00", bucket = "flat" },\n      '
        '{ start = "24:00", end = "24:00", bucket = "flat" },\n    ]\n\n',
        "tariffs[0].versions[0].seasons[0].periods[8].start",
        "00:00..23:59",
        at='{ start = "24:00"',
    ),
    Case(
        "bad bucket",
        'end = "10:00", bucket = "peak"',
        'end = "10:00", bucket = "high"',
        "tariffs[0].versions[0].seasons[0].periods[1].bucket",
        "must be one of sharp | peak | flat | valley",
    ),
    Case(
        "more than 14 periods",
        WEEKEND_END,
        FIFTEEN,
        "tariffs[0].versions[0].seasons[1].weekend_periods",
        "must have 1..14 periods, got 15",
        at="weekend_periods",
    ),
    Case(
        "month repeated",
        "months = [7, 8]",
        "months = [7, 8, 9]",
        "tariffs[0].versions[0].seasons[1].months",
        "month 9 is already in seasons[0]",
        at="months = [1, 2, 3, 4, 5, 6, 9",
    ),
    Case(
        "months not covering 1..12",
        "months = [7, 8]",
        "months = [7]",
        "tariffs[0].versions[0].seasons",
        "months 8 are in no season",
        at="[[tariffs.versions.seasons]]",
    ),
    Case(
        "month out of range",
        "months = [7, 8]",
        "months = [7, 8, 13]",
        "tariffs[0].versions[0].seasons[0].months[2]",
        "must be a month 1..12, got 13",
    ),
    Case(
        "too many seasons",
        ALL_YEAR_END,
        ALL_YEAR_END.replace("[[tariffs]]", EXTRA_SEASONS.lstrip("\n") + "\n[[tariffs]]"),
        "tariffs[0].versions[1].seasons",
        "needs 1..4 seasons, got 5",
        at='[[tariffs.versions.seasons]]\n    name = "all year"',
    ),
    Case(
        "non-increasing version dates",
        "effective = 2025-07-01T00:00:00+08:00",
        "effective = 2023-07-01T00:00:00+08:00",
        "tariffs[0].versions[1].effective",
        "must be later than the previous version's 2024-01-01T00:00:00+08:00",
    ),
    Case(
        "effective without offset",
        "effective = 2025-07-01T00:00:00+08:00",
        "effective = 2025-07-01T00:00:00",
        "tariffs[0].versions[1].effective",
        "needs a UTC offset",
    ),
    Case(
        "effective as a string",
        "effective = 2025-07-01T00:00:00+08:00",
        'effective = "2025-07-01"',
        "tariffs[0].versions[1].effective",
        "must be a TOML offset datetime",
    ),
    Case(
        "price with 5 decimals",
        'valley = "0.3720"',
        'valley = "0.37201"',
        "tariffs[0].versions[0].prices.valley",
        "at most 4 decimals",
    ),
    Case(
        "tou price missing",
        'flat = "0.6970", ',
        "",
        "tariffs[0].versions[0].prices.flat",
        "is required",
        at='prices = { sharp = "1.1850"',
    ),
    Case(
        "flat tariff with steps",
        'price = "0.6000"',
        'price = "0.6000"\n  steps = [ { price = "1" } ]',
        "tariffs[1].versions[0].steps",
        "unknown key",
        at="steps = [ {",
    ),
    Case(
        "tier last step with up_to",
        '{ price = "0.8283" }',
        '{ up_to_kwh = 900, price = "0.8283" }',
        "tariffs[2].versions[0].steps[2].up_to_kwh",
        "the last step must not have up_to_kwh",
    ),
    Case(
        "tier steps not increasing",
        "{ up_to_kwh = 400,",
        "{ up_to_kwh = 150,",
        "tariffs[2].versions[0].steps[1].up_to_kwh",
        "must be more than the previous step's 200",
    ),
    Case(
        "missing credential file",
        '"keys/M2/apiv3.key"',
        '"keys/M2/missing.key"',
        "merchants[1].wechat.apiv3_key_file",
        "credential file keys/M2/missing.key does not exist",
        at="missing.key",
    ),
    Case(
        "platform key not a PEM key",
        '"keys/M2/wechatpay_pub.pem"',
        '"keys/M2/apiv3.key"',
        "merchants[1].wechat.platform_keys.PUB_KEY_ID_0002",
        "is not a PEM public key",
        at='{ "PUB_KEY_ID_0002"',
    ),
    Case(
        "apiv3 key of the wrong length",
        '"keys/M2/apiv3.key"',
        '"keys/M2/wechatpay_pub.pem"',
        "merchants[1].wechat.apiv3_key_file",
        "must hold the 32-character APIv3 key",
        at='apiv3_key_file = "keys/M2/wechatpay_pub.pem"',
    ),
    Case(
        "missing alipay key file",
        '"keys/M1/alipay_pub.pem"',
        '"keys/M1/nope.pem"',
        "merchants[0].alipay.alipay_public_key_file",
        "does not exist",
        at="nope.pem",
    ),
    Case(
        "duplicate notify_path",
        'notify_path = "/pay/wechat/M2"',
        'notify_path = "/pay/alipay/M1"',
        "merchants[1].wechat.notify_path",
        "this path is already used by merchants[0]",
        at='notify_path = "/pay/alipay/M1"\n\n[alarms]',
    ),
    Case(
        "notify_path without slash",
        'notify_path = "/pay/wechat/M2"',
        'notify_path = "pay/wechat/M2"',
        "merchants[1].wechat.notify_path",
        "starting with /",
    ),
    Case(
        "bad mchid",
        'mchid = "1900000002"',
        'mchid = "19x"',
        "merchants[1].wechat.mchid",
        "decimal digits",
    ),
    Case(
        "alarm ratio out of range",
        "undervoltage_ratio = 0.85",
        "undervoltage_ratio = 1.5",
        "alarms.undervoltage_ratio",
        "must be a number 0.05..1.0, got 1.5",
    ),
    Case(
        "phase loss low above high",
        "phase_loss_low_ratio = 0.30",
        "phase_loss_low_ratio = 0.8",
        "alarms.phase_loss_low_ratio",
        "must be below phase_loss_high_ratio (0.7)",
    ),
    Case(
        "alarm unknown key", "off_delay_s = 0", "off_delay = 0", "alarms.off_delay", "unknown key"
    ),
    Case(
        "override with area and meter",
        'meter = "E0001"',
        'meter = "E0001"\n  area = "ENT"',
        "alarms.overrides[1].meter",
        "needs exactly one of area or meter",
    ),
    Case(
        "override unknown area",
        'area = "DORM"\n  under',
        'area = "DORX"\n  under',
        "alarms.overrides[0].area",
        "unknown area DORX",
    ),
    Case(
        "override unknown meter",
        'meter = "E0001"',
        'meter = "E9999"',
        "alarms.overrides[1].meter",
        "unknown meter E9999",
    ),
    Case(
        "override without limits",
        "lost_comm_polls = 5\n",
        "",
        "alarms.overrides[1]",
        "changes no limit",
        at="[[alarms.overrides]]\n  meter",
    ),
    Case(
        "route escalate_to unknown",
        'escalate_to = "maint-lead"',
        'escalate_to = "nobody"',
        "routes[0].escalate_to",
        "unknown route nobody",
    ),
    Case(
        "route escalates to itself",
        'escalate_to = "maint-lead"',
        'escalate_to = "maint-dorm"',
        "routes[0].escalate_to",
        "cannot escalate to itself",
    ),
    Case(
        "escalation loop",
        'min_priority = "high"',
        'min_priority = "high"\nescalate_after_min = 5\nescalate_to = "maint-dorm"',
        "routes[0].escalate_to",
        "loops back",
        at='escalate_to = "maint-lead"',
        also=(("site.toml", "routes[1].escalate_to"),),
    ),
    Case(
        "escalation without delay",
        "escalate_after_min = 15\n",
        "",
        "routes[0].escalate_after_min",
        "go together",
        at='[[routes]]\nid = "maint-dorm"',
    ),
    Case(
        "route unknown area",
        'areas = ["DORM"]',
        'areas = ["DORM", "MARS"]',
        "routes[0].areas[1]",
        "unknown area MARS",
    ),
    Case(
        "route bad channel",
        'channel = "email"',
        'channel = "pigeon"',
        "routes[1].channel",
        "must be one of webhook | email | sms",
    ),
    Case(
        "route bad email",
        '"lead@example.com"',
        '"lead at example"',
        "routes[1].target",
        "e-mail address",
        at="lead at example",
    ),
    Case(
        "route bad priority",
        'min_priority = "medium"',
        'min_priority = "critical"',
        "routes[0].min_priority",
        "must be one of low | medium | high | urgent",
    ),
    Case(
        "format on an email route",
        'min_priority = "high"',
        'min_priority = "high"\nformat = "json"',
        "routes[1].format",
        "is only for webhook routes",
        at='format = "json"\n\n[[users]]',
    ),
    Case(
        "notify bad port",
        "smtp_port = 2525",
        "smtp_port = 0",
        "notify.smtp_port",
        "must be an integer 1..65535, got 0",
    ),
    Case(
        "notify starttls not a boolean",
        "smtp_starttls = false",
        'smtp_starttls = "yes"',
        "notify.smtp_starttls",
        "must be true or false",
    ),
    Case(
        "notify user without password file",
        "smtp_starttls = false",
        'smtp_starttls = false\nsmtp_user = "parkgrid"',
        "notify",
        "smtp_password_file is missing",
        at="[notify]",
    ),
    Case(
        "notify password file missing",
        "smtp_starttls = false",
        'smtp_starttls = false\nsmtp_user = "u"\nsmtp_password_file = "keys/none"',
        "notify.smtp_password_file",
        "file keys/none does not exist",
        at='smtp_password_file = "keys/none"',
    ),
    Case(
        "notify bad from address",
        '"parkgrid@park.example"',
        '"parkgrid"',
        "notify.from_address",
        "e-mail address",
        at='from_address = "parkgrid"',
    ),
    Case(
        "oncall unknown route",
        'route = "maint-lead"',
        'route = "maint-boss"',
        "oncall[0].route",
        "unknown route maint-boss",
    ),
    Case(
        "oncall email contact not an address",
        '["night@example.com"]',
        '["night"]',
        "oncall[0].contacts[0]",
        "must be an e-mail address",
        at='contacts = ["night"]',
    ),
    Case(
        "oncall phone contact on a webhook route",
        '["13800000001"]',
        '["ops@example.com"]',
        "oncall[1].contacts[0]",
        "must be a phone number",
        at='contacts = ["ops@example.com"]',
    ),
    Case(
        "oncall bad day",
        '["sat", "sun"]',
        '["sat", "sunday"]',
        "oncall[1].days[1]",
        "must be one of mon | tue | wed | thu | fri | sat | sun, got 'sunday'",
        at='days = ["sat", "sunday"]',
    ),
    Case(
        "oncall start after midnight end",
        'start = "18:00"',
        'start = "08:00"',
        "oncall[0].end",
        "cannot end when it starts",
        at='end = "08:00"\n\n[[oncall]]',
    ),
    Case(
        "oncall start of 24:00",
        'start = "00:00"\nend = "24:00"',
        'start = "24:00"\nend = "24:00"',
        "oncall[1].start",
        "must be a time HH:MM in 00:00..23:59",
    ),
    Case(
        "contacts on an email route",
        'target = "lead@example.com"',
        'target = "lead@example.com"\ncontacts = ["13800000000"]',
        "routes[1].contacts",
        "is only for sms routes",
        at='contacts = ["13800000000"]',
    ),
    Case(
        "sms route without phones",
        'channel = "email"\ntarget = "lead@example.com"',
        'channel = "sms"\ntarget = "http://127.0.0.1:9001/sms"',
        "routes[1].contacts",
        "an sms route needs its phone numbers",
        at='[[routes]]\nid = "maint-lead"',
        also=(("site.toml", "oncall[0].contacts[0]"),),
    ),
    Case(
        "bad role",
        'role = "operator"',
        'role = "boss"',
        "users[1].role",
        "must be one of viewer | operator | finance | admin",
    ),
    Case(
        "duplicate user",
        'name = "op1"',
        'name = "admin"',
        "users[1].name",
        "user admin is already used by users[0]",
        at='name = "admin"\nrole = "operator"',
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_site_toml_error(tmp_path: Path, case: Case) -> None:
    folder = copy_example(tmp_path)
    text = edit(folder, "site.toml", case.old, case.new)
    errors = load_errors(folder)
    line = line_of(text, case.at if case.at is not None else case.new)
    matching = [e for e in errors if (e.file, e.line, e.field) == ("site.toml", line, case.field)]
    assert matching, f"no error at site.toml:{line}: {case.field}; got:\n" + "\n".join(
        map(str, errors)
    )
    assert case.message in matching[0].message
    expected = {("site.toml", case.field), *case.also}
    assert {(e.file, e.field) for e in errors} == expected, "\n".join(map(str, errors))


@pytest.mark.parametrize(
    ("old", "new", "at"),
    [
        ("port = 1502", "port = = 1502", "port = = 1502"),
        ('[[users]]\nname = "op1"', '[park]\nname = "op1"', '[park]\nname = "op1"'),
        ("timezone =", 'name = "twice"\ntimezone =', 'name = "twice"'),
    ],
)
def test_toml_syntax_error_names_its_line(tmp_path: Path, old: str, new: str, at: str) -> None:
    folder = copy_example(tmp_path)
    text = edit(folder, "site.toml", old, new)
    [error] = load_errors(folder)
    assert (error.file, error.line, error.field) == ("site.toml", line_of(text, at), "")
    assert error.message.startswith("TOML syntax error: ")
    assert str(error).startswith(f"site.toml:{line_of(text, at)}: TOML syntax error")


def test_site_toml_not_utf8(tmp_path: Path) -> None:
    folder = copy_example(tmp_path)
    raw = (folder / "site.toml").read_bytes().replace(b"GW002", b"GW\xff02", 1)
    (folder / "site.toml").write_bytes(raw)
    [error] = load_errors(folder)
    assert error.file == "site.toml" and "not valid UTF-8" in error.message
    assert error.line == raw[: raw.index(b"\xff")].count(b"\n") + 1


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PARKGRID_HMI_LISTEN", "nonsense", "must be host:port"),
        ("PARKGRID_DIALIN_LISTEN", "0.0.0.0:99999", "1..65535"),
        ("PARKGRID_DB_URL", "mysql://db/parkgrid", "postgresql://"),
        ("PARKGRID_REDIS_URL", "redis://", "with a host"),
        ("PARKGRID_OPCUA_ENDPOINT", "http://127.0.0.1:4840", "opc.tcp://"),
        ("PARKGRID_SIM_CONTROL", "", "must be host:port"),
        ("PARKGRID_VAR_DIR", " ", "directory path"),
    ],
)
def test_bad_environment_override(tmp_path: Path, variable: str, value: str, message: str) -> None:
    errors = load_errors(copy_example(tmp_path), env={variable: value})
    assert [(e.file, e.line, e.field) for e in errors] == [("environment", None, variable)]
    assert message in errors[0].message
    assert str(errors[0]).startswith(f"environment: {variable}: ")


def test_all_errors_are_collected_and_sorted(tmp_path: Path) -> None:
    folder = copy_example(tmp_path)
    edit(folder, "site.toml", "port = 1502", "port = 0")
    edit(folder, "site.toml", "realtime_s = 60", "realtime_s = -1")
    edit(folder, "meters.csv", "GW003,1,", "GW003,300,")
    edit(folder, "meters.csv", "prepaid,50,1,", "prepaid,-50,1,")
    errors = load_errors(folder, env={"PARKGRID_HMI_LISTEN": "x"})
    assert [(e.file, e.field) for e in errors] == [
        ("environment", "PARKGRID_HMI_LISTEN"),
        ("meters.csv", "ct"),
        ("meters.csv", "slave"),
        ("site.toml", "acquisition.realtime_s"),
        ("site.toml", "gateways[2].port"),
    ]
    with pytest.raises(SiteInvalid) as caught:
        load_site(folder, env={"PARKGRID_HMI_LISTEN": "x"})
    assert str(caught.value).splitlines() == [str(e) for e in errors]


def test_password_file_must_be_owner_only(tmp_path: Path) -> None:
    folder = copy_example(tmp_path)
    secret = folder / "smtp.password"
    secret.write_text("s3cret\n", encoding="utf-8")
    secret.chmod(0o640)
    text = edit(
        folder,
        "site.toml",
        "smtp_starttls = false",
        'smtp_starttls = false\nsmtp_user = "u"\nsmtp_password_file = "smtp.password"',
    )
    [error] = load_errors(folder)
    line = line_of(text, "smtp_password_file")
    assert (error.file, error.line, error.field) == ("site.toml", line, "notify.smtp_password_file")
    assert "has mode 0640: it must be 0600" in error.message
    secret.chmod(0o600)
    site = load_site(folder, env={})
    assert site.notify.settings.smtp_password_file == secret
    assert [shift.route for shift in site.notify.oncall] == ["maint-lead", "maint-dorm"]


def test_every_alarm_limit_has_a_range_holding_its_default() -> None:
    defaults = AlarmLimits()
    assert set(RANGES) == {f.name for f in dataclasses.fields(AlarmLimits)}
    for key, (low, high) in RANGES.items():
        assert low <= getattr(defaults, key) <= high, key
