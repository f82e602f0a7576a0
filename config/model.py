"""The site model: immutable records of the park, its devices, accounts and settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from config.tariffs import Tariff
from config.values import Endpoint

METER_MODELS: Final = {"DTSY1352": "three-phase", "DDSY1352": "single-phase"}
BILLING_MODES: Final = ("prepaid", "postpaid", "none")
AREA_KINDS: Final = ("enterprise", "dormitory", "common")
GATEWAY_KINDS: Final = ("dtu", "modbus_tcp")
GATEWAY_PROTOCOLS: Final = ("modbus_rtu", "dlt645")
ROUTE_CHANNELS: Final = ("webhook", "email", "sms")
WEBHOOK_FORMATS: Final = ("json", "wecom", "dingtalk")
PRIORITIES: Final = ("low", "medium", "high", "urgent")
ROLES: Final = ("viewer", "operator", "finance", "admin")


@dataclass(frozen=True, slots=True)
class Park:
    """The park itself."""

    name: str
    timezone: str
    nominal_voltage: float = 220.0


@dataclass(frozen=True, slots=True)
class Services:
    """Where the server's services live (after PARKGRID_* environment overrides)."""

    db_url: str = "postgresql://postgres@127.0.0.1:5432/parkgrid"
    redis_url: str = "redis://127.0.0.1:6379/0"
    hmi_listen: Endpoint = field(default_factory=lambda: Endpoint("127.0.0.1", 8080))
    opcua_endpoint: str = "opc.tcp://127.0.0.1:4840/parkgrid"
    dialin_listen: Endpoint = field(
        default_factory=lambda: Endpoint("0.0.0.0", 7700)  # noqa: S104 - gateways dial in
    )
    sim_control: Endpoint = field(default_factory=lambda: Endpoint("127.0.0.1", 7790))
    var_dir: Path = Path("var")


@dataclass(frozen=True, slots=True)
class Acquisition:
    """Scan-class periods and link timing."""

    realtime_s: int = 60
    energy_s: int = 1800
    prepaid_s: int = 86400
    clock_drift_limit_s: int = 30
    request_timeout_ms: int = 1000
    groups: tuple[ScanGroup, ...] = ()


@dataclass(frozen=True, slots=True)
class Building:
    """A building of an area."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Area:
    """A part of the park, with its buildings and default merchant."""

    id: str
    name: str
    kind: str
    merchant: str | None
    buildings: tuple[Building, ...]


@dataclass(frozen=True, slots=True)
class Gateway:
    """A LoRa/DTU gateway that dials in, or a Modbus TCP gateway the server connects to."""

    id: str
    kind: str
    area: str
    protocol: str
    registration: bytes | None = None
    heartbeat: bytes | None = None
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Meter:
    """One meter row of meters.csv; `line` is its line in the file."""

    id: str
    model: str
    dlt645_address: str
    gateway: str | None
    slave: int | None
    serial: str | None
    area: str
    building: str | None
    room: str
    owner: str
    billing: str
    ct: int
    pt: int
    merchant: str | None
    tariff: str | None
    power_limit_kw: Decimal | None
    alarm1_fen: int | None
    alarm2_fen: int | None
    credit_limit_fen: int
    line: int

    @property
    def three_phase(self) -> bool:
        """Whether the meter is a three-phase model."""
        return self.model == "DTSY1352"


@dataclass(frozen=True, slots=True)
class WechatPay:
    """A merchant's WeChat Pay API v3 account (credential paths are absolute)."""

    mchid: str
    appid: str
    apiv3_key_file: Path
    platform_keys: tuple[tuple[str, Path], ...]
    notify_path: str


@dataclass(frozen=True, slots=True)
class Alipay:
    """A merchant's Alipay account (credential paths are absolute)."""

    app_id: str
    seller_id: str
    alipay_public_key_file: Path
    notify_path: str


@dataclass(frozen=True, slots=True)
class Merchant:
    """A property company that receives the payments of its meters."""

    id: str
    name: str
    wechat: WechatPay | None = None
    alipay: Alipay | None = None


@dataclass(frozen=True, slots=True)
class AlarmLimits:
    """Alarm thresholds and delays (ratios are of the nominal voltage Un)."""

    undervoltage_ratio: float = 0.85
    undervoltage_delay_s: int = 60
    overvoltage_ratio: float = 1.10
    overvoltage_delay_s: int = 60
    phase_loss_low_ratio: float = 0.30
    phase_loss_high_ratio: float = 0.70
    phase_loss_delay_s: int = 10
    lost_comm_polls: int = 3
    gateway_down_s: int = 60
    off_delay_s: int = 0
    deadband_ratio: float = 0.02

    def updated(self, changes: Iterable[tuple[str, float | int]]) -> AlarmLimits:
        """A copy with some limits changed (keys are field names, checked by the loader)."""
        values: dict[str, Any] = dict(changes)
        return replace(self, **values)


@dataclass(frozen=True, slots=True)
class AlarmOverride:
    """Changed limits for one area or one meter (exactly one of the two is set)."""

    area: str | None
    meter: str | None
    changes: tuple[tuple[str, float | int], ...]

    def apply(self, limits: AlarmLimits) -> AlarmLimits:
        """`limits` with this override's changes."""
        return limits.updated(self.changes)


@dataclass(frozen=True, slots=True)
class Alarms:
    """Site-wide alarm limits and their per-area and per-meter overrides."""

    limits: AlarmLimits = field(default_factory=AlarmLimits)
    overrides: tuple[AlarmOverride, ...] = ()

    def limits_for(self, meter: Meter) -> AlarmLimits:
        """The limits of one meter: site-wide, then its area's override, then its own."""
        limits = self.limits
        for override in self.overrides:
            if override.area == meter.area:
                limits = override.apply(limits)
        for override in self.overrides:
            if override.meter == meter.id:
                limits = override.apply(limits)
        return limits


@dataclass(frozen=True, slots=True)
class Route:
    """A notification route: which alarms go where, with repeat and escalation."""

    id: str
    channel: str
    target: str
    format: str | None
    areas: tuple[str, ...]
    min_priority: str
    repeat_min: int | None = None
    escalate_after_min: int | None = None
    escalate_to: str | None = None
    contacts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class User:
    """An HMI user (passwords live in secrets/users.toml, not here)."""

    name: str
    role: str
    display_name: str


def _index(items: tuple[object, ...], key: str) -> MappingProxyType[str, int]:
    return MappingProxyType({getattr(item, key): row for row, item in enumerate(items)})


@dataclass(frozen=True, slots=True)
class Site:
    """A validated site; lookups by id are built once."""

    folder: Path
    park: Park
    services: Services
    acquisition: Acquisition
    areas: tuple[Area, ...]
    gateways: tuple[Gateway, ...]
    meters: tuple[Meter, ...]
    tariffs: tuple[Tariff, ...]
    merchants: tuple[Merchant, ...]
    alarms: Alarms
    routes: tuple[Route, ...]
    users: tuple[User, ...]
    _meter_rows: MappingProxyType[str, int] = field(init=False, repr=False, compare=False)
    _on_gateway: MappingProxyType[str | None, tuple[Meter, ...]] = field(
        init=False, repr=False, compare=False
    )
    _by_id: MappingProxyType[str, MappingProxyType[str, int]] = field(
        init=False, repr=False, compare=False
    )
    notify: SiteNotify = field(default_factory=lambda: SiteNotify())

    def __post_init__(self) -> None:
        """Build the lookups."""
        grouped: dict[str | None, list[Meter]] = {gateway.id: [] for gateway in self.gateways}
        grouped[None] = []
        for meter in self.meters:
            grouped.setdefault(meter.gateway, []).append(meter)
        object.__setattr__(self, "_meter_rows", _index(self.meters, "id"))
        object.__setattr__(
            self, "_on_gateway", MappingProxyType({k: tuple(v) for k, v in grouped.items()})
        )
        by_id = {
            "area": _index(self.areas, "id"),
            "gateway": _index(self.gateways, "id"),
            "tariff": _index(self.tariffs, "id"),
            "merchant": _index(self.merchants, "id"),
            "route": _index(self.routes, "id"),
        }
        object.__setattr__(self, "_by_id", MappingProxyType(by_id))

    def _row(self, kind: str, item_id: str) -> int:
        try:
            return self._by_id[kind][item_id]
        except KeyError:
            raise KeyError(f"no {kind} {item_id!r} in site {self.folder}") from None

    def meter_row(self, meter_id: str) -> int:
        """The row index of a meter (its position in `meters`, the tag-database row)."""
        try:
            return self._meter_rows[meter_id]
        except KeyError:
            raise KeyError(f"no meter {meter_id!r} in site {self.folder}") from None

    def meter(self, meter_id: str) -> Meter:
        """The meter with this id (KeyError if none)."""
        return self.meters[self.meter_row(meter_id)]

    def gateway(self, gateway_id: str) -> Gateway:
        """The gateway with this id (KeyError if none)."""
        return self.gateways[self._row("gateway", gateway_id)]

    def area(self, area_id: str) -> Area:
        """The area with this id (KeyError if none)."""
        return self.areas[self._row("area", area_id)]

    def tariff(self, tariff_id: str) -> Tariff:
        """The tariff with this id (KeyError if none)."""
        return self.tariffs[self._row("tariff", tariff_id)]

    def merchant(self, merchant_id: str) -> Merchant:
        """The merchant with this id (KeyError if none)."""
        return self.merchants[self._row("merchant", merchant_id)]

    def route(self, route_id: str) -> Route:
        """The notification route with this id (KeyError if none)."""
        return self.routes[self._row("route", route_id)]

    def meters_on(self, gateway_id: str) -> tuple[Meter, ...]:
        """The meters behind a gateway, in file order (KeyError for an unknown gateway)."""
        self._row("gateway", gateway_id)
        return self._on_gateway[gateway_id]

    def direct_meters(self) -> tuple[Meter, ...]:
        """The 4G meters that dial in by themselves (no gateway), in file order."""
        return self._on_gateway[None]


WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """How notifications leave the server: SMTP, per-recipient rate and flood folding."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password_file: Path | None = None
    from_address: str = "parkgrid@localhost"
    rate_per_recipient_per_hour: int = 20
    flood_window_s: int = 300
    flood_threshold: int = 5
    retry_base_s: int = 30
    retry_max_attempts: int = 8


@dataclass(frozen=True, slots=True)
class OnCallShift:
    """A weekly on-call shift of a route, in the park's time zone (minutes after midnight).

    `end_min` <= `start_min` means the shift runs across midnight into the next day; `days`
    are the days it starts on (0 is Monday).
    """

    route: str
    contacts: tuple[str, ...]
    days: tuple[int, ...]
    start_min: int
    end_min: int

    def covers(self, weekday: int, minute: int) -> bool:
        """Whether local `weekday` (0 is Monday) at `minute` after midnight is in the shift."""
        if self.start_min < self.end_min:
            return weekday in self.days and self.start_min <= minute < self.end_min
        started_today = weekday in self.days and minute >= self.start_min
        started_yesterday = (weekday - 1) % 7 in self.days and minute < self.end_min
        return started_today or started_yesterday


@dataclass(frozen=True, slots=True)
class SiteNotify:
    """The notification settings and the on-call rota of a site."""

    settings: NotifySettings = field(default_factory=NotifySettings)
    oncall: tuple[OnCallShift, ...] = ()


SCAN_PERIODS: Final = ("realtime_s", "energy_s", "prepaid_s")
SCAN_SELECTORS: Final = ("meters", "gateway", "area")  # the first that sets a period wins


@dataclass(frozen=True, slots=True)
class ScanGroup:
    """An [[acquisition.groups]] entry: scan-class periods for an area, a gateway or meters.

    Exactly one of `area`, `gateway` and `meters` selects; a period left None keeps the
    value of a group further down SCAN_SELECTORS, or the site's.
    """

    area: str | None = None
    gateway: str | None = None
    meters: tuple[str, ...] = ()
    realtime_s: int | None = None
    energy_s: int | None = None
    prepaid_s: int | None = None

    @property
    def selector(self) -> tuple[str, tuple[str, ...]]:
        """(kind, ids) of what the group selects: ("area", (id,)), ("gateway", …) or meters."""
        if self.meters:
            return "meters", self.meters
        if self.gateway is not None:
            return "gateway", (self.gateway,)
        return "area", (self.area or "",)

    def period(self, key: str) -> int | None:
        """The group's value of `key` (one of SCAN_PERIODS), None when it keeps the default."""
        value: int | None = getattr(self, key)
        return value
