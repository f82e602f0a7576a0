"""Plain records of the generated demo park, before they are written as site files."""

from __future__ import annotations

from dataclasses import dataclass

from config.meters_csv import COLUMNS

METER_COLUMNS = COLUMNS

THREE_PHASE_MODEL = "DTSY1352"
SINGLE_PHASE_MODEL = "DDSY1352"


def format_fen(fen: int | None) -> str:
    """Money in fen as a yuan string with two decimals, or empty for none."""
    if fen is None:
        return ""
    if fen < 0:
        raise ValueError(f"money must not be negative, got {fen} fen")
    return f"{fen // 100}.{fen % 100:02d}"


def format_watts_as_kw(watts: int | None) -> str:
    """Power in W as a kW string with three decimals, or empty for none."""
    if watts is None:
        return ""
    if watts < 0:
        raise ValueError(f"power must not be negative, got {watts} W")
    return f"{watts // 1000}.{watts % 1000:03d}"


@dataclass(frozen=True)
class DemoBuilding:
    """A building of an area; its id is unique across the site."""

    id: str
    name: str


@dataclass(frozen=True)
class DemoArea:
    """An area of the park with its buildings and default merchant."""

    id: str
    name: str
    kind: str
    merchant: str
    buildings: tuple[DemoBuilding, ...]


@dataclass(frozen=True)
class DemoGateway:
    """A GSM500-Lora gateway: dial-in (dtu) or reached by the server over Modbus TCP."""

    id: str
    area: str
    kind: str
    registration: str | None = None
    heartbeat: str | None = None
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class PrepaidSettings:
    """A meter's prepaid limits: money in fen, power in W; None means not set."""

    power_limit_w: int | None = None
    alarm1_fen: int | None = None
    alarm2_fen: int | None = None
    credit_limit_fen: int | None = None


NO_PREPAID_SETTINGS = PrepaidSettings()


@dataclass(frozen=True)
class DemoMeter:
    """One row of meters.csv."""

    id: str
    model: str
    dlt645_address: str
    area: str
    building: str
    room: str
    owner: str
    billing: str
    ct: int
    tariff: str
    gateway: str = ""
    slave: int | None = None
    serial: str = ""
    pt: int = 1
    merchant: str = ""
    prepaid: PrepaidSettings = NO_PREPAID_SETTINGS

    def row(self) -> tuple[str, ...]:
        """The CSV cells in `METER_COLUMNS` order."""
        return (
            self.id,
            self.model,
            self.dlt645_address,
            self.gateway,
            "" if self.slave is None else str(self.slave),
            self.serial,
            self.area,
            self.building,
            self.room,
            self.owner,
            self.billing,
            str(self.ct),
            str(self.pt),
            self.merchant,
            self.tariff,
            format_watts_as_kw(self.prepaid.power_limit_w),
            format_fen(self.prepaid.alarm1_fen),
            format_fen(self.prepaid.alarm2_fen),
            format_fen(self.prepaid.credit_limit_fen),
        )


@dataclass(frozen=True)
class DemoMerchant:
    """A property company that collects payments for its areas."""

    id: str
    name: str
    wechat_mchid: str
    wechat_appid: str
    wechat_key_serial: str
    alipay_app_id: str
    alipay_seller_id: str


@dataclass(frozen=True)
class DemoUser:
    """An HMI user; the password lives only in the secrets folder."""

    name: str
    role: str
    display_name: str


@dataclass(frozen=True)
class DemoPark:
    """Everything of the demo park that goes into site.toml and meters.csv."""

    seed: int
    name: str
    areas: tuple[DemoArea, ...]
    gateways: tuple[DemoGateway, ...]
    meters: tuple[DemoMeter, ...]
    merchants: tuple[DemoMerchant, ...]
    users: tuple[DemoUser, ...]
    enterprises: int
