"""Renders the demo park as the text of site.toml (see config/SITE_FORMAT.md)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from config.demo_keys import merchant_key_files
from config.demo_park import DORM_TARIFF, TIERED_TARIFF, TOU_TARIFF
from config.demo_records import DemoPark
from config.demo_toml import TomlDocument, TomlValue

CHINA = timezone(timedelta(hours=8))
TARIFF_EFFECTIVE = datetime(2024, 1, 1, tzinfo=CHINA)

# Jiangsu 1–10 kV industrial time-of-use day tables (DOMAIN.md §6).
SUMMER_PERIODS = (
    ("00:00", "08:00", "valley"),
    ("08:00", "10:00", "peak"),
    ("10:00", "11:00", "sharp"),
    ("11:00", "14:00", "flat"),
    ("14:00", "15:00", "sharp"),
    ("15:00", "17:00", "flat"),
    ("17:00", "21:00", "peak"),
    ("21:00", "24:00", "flat"),
)
OTHER_PERIODS = (
    ("00:00", "08:00", "valley"),
    ("08:00", "11:00", "peak"),
    ("11:00", "17:00", "flat"),
    ("17:00", "21:00", "peak"),
    ("21:00", "24:00", "flat"),
)
TOU_PRICES = {"sharp": "1.1850", "peak": "1.0210", "flat": "0.6970", "valley": "0.3720"}
TOU_PRICE_NOTE = (
    "Example prices of DOMAIN.md §6, kept as given. They do not meet the national ratio rules:\n"
    "peak:valley = 1.0210/0.3720 = 2.74 (rule: at least 3:1) and\n"
    "sharp:peak = 1.1850/1.0210 = 1.16 (rule: at least 1.2). Check the current provincial\n"
    "notice before billing with them."
)
DORM_PRICE = "0.6000"
# Jiangsu residential steps: 2,760 and 4,800 kWh a year, i.e. 230 and 400 kWh a month.
TIERED_STEPS = ((230, "0.5283"), (400, "0.5783"), (None, "0.8283"))

ALARM_DEFAULTS: dict[str, TomlValue] = {
    "undervoltage_ratio": 0.85,
    "undervoltage_delay_s": 60,
    "overvoltage_ratio": 1.10,
    "overvoltage_delay_s": 60,
    "phase_loss_low_ratio": 0.30,
    "phase_loss_high_ratio": 0.70,
    "phase_loss_delay_s": 10,
    "lost_comm_polls": 3,
    "gateway_down_s": 60,
    "off_delay_s": 0,
    "deadband_ratio": 0.02,
}

SERVICES: dict[str, TomlValue] = {
    "db_url": "postgresql://postgres@127.0.0.1:5432/parkgrid",
    "redis_url": "redis://127.0.0.1:6379/0",
    "hmi_listen": "127.0.0.1:8080",
    "opcua_endpoint": "opc.tcp://127.0.0.1:4840/parkgrid",
    "dialin_listen": "0.0.0.0:7700",
    "sim_control": "127.0.0.1:7790",
    "var_dir": "var",
}

ACQUISITION: dict[str, TomlValue] = {
    "realtime_s": 60,
    "energy_s": 1800,  # the meters' default 30-minute upload
    "prepaid_s": 86400,
    "clock_drift_limit_s": 30,
    "request_timeout_ms": 1000,
}

NOTIFY: dict[str, TomlValue] = {
    "smtp_host": "127.0.0.1",
    "smtp_port": 25,
    "smtp_starttls": False,
    "from_address": "parkgrid@park.example",
    "rate_per_recipient_per_hour": 20,
    "flood_window_s": 300,
    "flood_threshold": 5,
    "retry_base_s": 30,
    "retry_max_attempts": 8,
}

LEAD_PHONE = "13800000000"
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")
# Two electricians on the dormitory route by day, one on the night shift (across midnight),
# and the lead's deputy texted at weekends; outside every shift the route's own target is used.
ONCALL: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str, str], ...] = (
    ("maint-dorm", ("13800000001", "13800000002"), WORKDAYS, "08:00", "18:00"),
    ("maint-dorm", ("13800000003",), (*WORKDAYS, "sat", "sun"), "18:00", "08:00"),
    ("maint-lead", ("13800000009",), ("sat", "sun"), "00:00", "24:00"),
    ("ops-mail", ("night-ops@park.example",), (*WORKDAYS, "sat", "sun"), "22:00", "06:00"),
)

FIRE_PUMP_METER = "C07"
TARIFF_IDS = (TOU_TARIFF, DORM_TARIFF, TIERED_TARIFF)


def _periods(table: tuple[tuple[str, str, str], ...]) -> list[TomlValue]:
    return [{"start": start, "end": end, "bucket": bucket} for start, end, bucket in table]


def _head(doc: TomlDocument, park: DemoPark) -> None:
    doc.comment(
        f"The parkgrid reference park, written by `parkgrid gen-site --seed {park.seed}`.\n"
        "Meters are in meters.csv; passwords in secrets/ (not in this file)."
    )
    doc.blank()
    doc.table("park")
    doc.set("name", park.name)
    doc.set("timezone", "Asia/Shanghai")
    doc.set("nominal_voltage", 220.0)
    for name, values in (("services", SERVICES), ("acquisition", ACQUISITION)):
        doc.blank()
        doc.table(name)
        for key, value in values.items():
            doc.set(key, value)


def _areas_and_gateways(doc: TomlDocument, park: DemoPark) -> None:
    for area in park.areas:
        doc.blank()
        doc.array_table("areas")
        doc.set("id", area.id)
        doc.set("name", area.name)
        doc.set("kind", area.kind)
        doc.set("merchant", area.merchant)
        doc.set_lines("buildings", [{"id": b.id, "name": b.name} for b in area.buildings])
    for gateway in park.gateways:
        doc.blank()
        doc.array_table("gateways")
        doc.set("id", gateway.id)
        doc.set("kind", gateway.kind)
        doc.set("area", gateway.area)
        doc.set("protocol", "modbus_rtu")
        if gateway.registration is not None:
            doc.set("registration", gateway.registration)
            doc.set("registration_format", "ascii")
        if gateway.heartbeat is not None:
            doc.set("heartbeat", gateway.heartbeat)
            doc.set("heartbeat_format", "ascii")
        if gateway.host is not None and gateway.port is not None:
            doc.set("host", gateway.host)
            doc.set("port", gateway.port)


def _tariffs(doc: TomlDocument) -> None:
    doc.blank()
    doc.array_table("tariffs")
    doc.set("id", TOU_TARIFF)
    doc.set("name", "江苏工商业分时电价（1-10kV）")
    doc.set("kind", "tou")
    doc.blank()
    doc.array_table("tariffs.versions")
    doc.set("effective", TARIFF_EFFECTIVE)
    doc.comment(TOU_PRICE_NOTE)
    doc.set("prices", TOU_PRICES)
    for name, months, table in (
        ("summer", [7, 8], SUMMER_PERIODS),
        ("other", [1, 2, 3, 4, 5, 6, 9, 10, 11, 12], OTHER_PERIODS),
    ):
        doc.blank()
        doc.array_table("tariffs.versions.seasons")
        doc.set("name", name)
        doc.set("months", list(months))
        doc.set_lines("periods", _periods(table))

    doc.blank()
    doc.array_table("tariffs")
    doc.set("id", DORM_TARIFF)
    doc.set("name", "员工宿舍单一电价")
    doc.set("kind", "flat")
    doc.array_table("tariffs.versions")
    doc.set("effective", TARIFF_EFFECTIVE)
    doc.set("price", DORM_PRICE)

    doc.blank()
    doc.array_table("tariffs")
    doc.set("id", TIERED_TARIFF)
    doc.set("name", "居民阶梯电价")
    doc.set("kind", "tiered")
    doc.array_table("tariffs.versions")
    doc.set("effective", TARIFF_EFFECTIVE)
    steps: list[TomlValue] = [
        {"price": price} if up_to is None else {"up_to_kwh": up_to, "price": price}
        for up_to, price in TIERED_STEPS
    ]
    doc.set_lines("steps", steps)


def _merchants(doc: TomlDocument, park: DemoPark) -> None:
    for merchant in park.merchants:
        files = merchant_key_files(merchant.id)
        doc.blank()
        doc.array_table("merchants")
        doc.set("id", merchant.id)
        doc.set("name", merchant.name)
        doc.table("merchants.wechat")
        doc.set("mchid", merchant.wechat_mchid)
        doc.set("appid", merchant.wechat_appid)
        doc.set("apiv3_key_file", files.apiv3_key)
        doc.set("platform_keys", {merchant.wechat_key_serial: files.wechat_platform_public})
        doc.set("notify_path", f"/pay/wechat/{merchant.id}")
        doc.table("merchants.alipay")
        doc.set("app_id", merchant.alipay_app_id)
        doc.set("seller_id", merchant.alipay_seller_id)
        doc.set("alipay_public_key_file", files.alipay_public)
        doc.set("notify_path", f"/pay/alipay/{merchant.id}")


def _alarms_and_routes(doc: TomlDocument, park: DemoPark) -> None:
    doc.blank()
    doc.table("alarms")
    for key, value in ALARM_DEFAULTS.items():
        doc.set(key, value)
    dorm_areas = [area.id for area in park.areas if area.kind == "dormitory"]
    for area in dorm_areas:
        doc.blank()
        doc.array_table("alarms.overrides")
        doc.set("area", area)
        doc.set("undervoltage_ratio", 0.80, "long low-voltage feeders to the dormitory blocks")
    doc.blank()
    doc.array_table("alarms.overrides")
    doc.set("meter", FIRE_PUMP_METER)
    doc.set("phase_loss_delay_s", 3, "the fire pump must not run on two phases")
    doc.set("lost_comm_polls", 2)

    routes: list[dict[str, TomlValue]] = [
        {"id": "maint-dorm", "channel": "webhook", "target": "http://127.0.0.1:9000/hook",
         "format": "json", "areas": list(dorm_areas), "min_priority": "medium",
         "repeat_min": 30, "escalate_after_min": 15, "escalate_to": "maint-lead"},
        {"id": "maint-lead", "channel": "sms", "target": "http://127.0.0.1:9001/sms",
         "min_priority": "high", "repeat_min": 60, "contacts": [LEAD_PHONE]},
        {"id": "ops-mail", "channel": "email", "target": "ops@park.example",
         "min_priority": "high"},
    ]  # fmt: skip
    for route in routes:
        doc.blank()
        doc.array_table("routes")
        for key, value in route.items():
            doc.set(key, value)
    _notify_and_oncall(doc)


def _notify_and_oncall(doc: TomlDocument) -> None:
    doc.blank()
    doc.table("notify")
    doc.comment("a local relay without AUTH; SITE_FORMAT.md [notify] lists the login keys")
    for key, value in NOTIFY.items():
        doc.set(key, value)
    for route, contacts, days, start, end in ONCALL:
        doc.blank()
        doc.array_table("oncall")
        doc.set("route", route)
        doc.set("contacts", list(contacts))
        doc.set("days", list(days))
        doc.set("start", start)
        doc.set("end", end)


def render_site_toml(park: DemoPark) -> str:
    """The full text of site.toml for `park`."""
    doc = TomlDocument()
    _head(doc, park)
    _areas_and_gateways(doc, park)
    _tariffs(doc)
    _merchants(doc, park)
    _alarms_and_routes(doc, park)
    for user in park.users:
        doc.blank()
        doc.array_table("users")
        doc.set("name", user.name)
        doc.set("role", user.role)
        doc.set("display_name", user.display_name)
    return doc.text()
