"""The [park], [services] and [acquisition] (and [[acquisition.groups]]) tables; env overrides."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.errors import ErrorLog, KeyPath
from config.model import SCAN_PERIODS, SCAN_SELECTORS, Acquisition, Park, ScanGroup, Services
from config.toml_table import TomlTable
from config.values import Endpoint, parse_endpoint, parse_url

ENV_PREFIX: Final = "PARKGRID_"

T = TypeVar("T")


def _var_dir(text: str) -> Path:
    if not text.strip() or "\0" in text:
        raise ValueError(f"must be a directory path, got {text!r}")
    return Path(text)


def _listen(text: str) -> Endpoint:
    return parse_endpoint(text, listen=True)


def _db_url(text: str) -> str:
    return parse_url(text, ("postgresql", "postgres"))


def _redis_url(text: str) -> str:
    return parse_url(text, ("redis", "rediss"))


def _opcua_url(text: str) -> str:
    return parse_url(text, ("opc.tcp",))


def read_park(root: TomlTable) -> Park:
    """The required [park] table."""
    table = root.table("park")
    if table is None:
        if not root.has("park"):
            root.error("park", "the [park] table is required")
        return Park(name="", timezone="UTC")
    name = table.text("name")
    timezone = table.text_as("timezone", _zone) or "UTC"
    voltage = table.real("nominal_voltage", 50.0, 1000.0, 220.0)
    table.finish()
    return Park(name=name, timezone=timezone, nominal_voltage=voltage)


def _zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"must be an IANA time zone like Asia/Shanghai, got {text!r}") from None
    return text


def read_services(root: TomlTable, env: Mapping[str, str], log: ErrorLog) -> Services:
    """The optional [services] table, then any PARKGRID_* overrides from `env`."""
    table = root.table("services")

    def pick(key: str, parse: Callable[[str], T], default: T) -> T:
        value = default
        if table is not None:
            found = table.text_as(key, parse, required=False)
            value = default if found is None else found
        variable = ENV_PREFIX + key.upper()
        text = env.get(variable)
        if text is not None:
            try:
                value = parse(text)
            except ValueError as problem:
                log.env(variable, str(problem))
        return value

    defaults = Services()
    services = Services(
        db_url=pick("db_url", _db_url, defaults.db_url),
        redis_url=pick("redis_url", _redis_url, defaults.redis_url),
        hmi_listen=pick("hmi_listen", _listen, defaults.hmi_listen),
        opcua_endpoint=pick("opcua_endpoint", _opcua_url, defaults.opcua_endpoint),
        dialin_listen=pick("dialin_listen", _listen, defaults.dialin_listen),
        sim_control=pick("sim_control", _listen, defaults.sim_control),
        var_dir=pick("var_dir", _var_dir, defaults.var_dir),
    )
    if table is not None:
        table.finish()
    return services


PERIOD_RANGES: Final = {"realtime_s": 86400, "energy_s": 86400, "prepaid_s": 604800}

MeterRefs = list[tuple[KeyPath, str]]


def read_acquisition(
    root: TomlTable, areas: Collection[str], gateways: Collection[str]
) -> tuple[Acquisition, MeterRefs]:
    """The optional [acquisition] table; also the (key path, meter id) pairs to check later."""
    table = root.table("acquisition")
    if table is None:
        return Acquisition(), []
    defaults = Acquisition()
    groups, meter_refs = _read_groups(table, areas, gateways)
    acquisition = Acquisition(
        realtime_s=table.integer("realtime_s", 1, PERIOD_RANGES["realtime_s"], defaults.realtime_s),
        energy_s=table.integer("energy_s", 1, PERIOD_RANGES["energy_s"], defaults.energy_s),
        prepaid_s=table.integer("prepaid_s", 1, PERIOD_RANGES["prepaid_s"], defaults.prepaid_s),
        clock_drift_limit_s=table.integer(
            "clock_drift_limit_s", 1, 3600, defaults.clock_drift_limit_s
        ),
        request_timeout_ms=table.integer(
            "request_timeout_ms", 50, 60000, defaults.request_timeout_ms
        ),
        groups=groups,
    )
    table.finish()
    return acquisition, meter_refs


def _read_groups(
    table: TomlTable, areas: Collection[str], gateways: Collection[str]
) -> tuple[tuple[ScanGroup, ...], MeterRefs]:
    """Every [[acquisition.groups]]: one selector each, no target selected twice by a kind."""
    groups: list[ScanGroup] = []
    meter_refs: MeterRefs = []
    taken: dict[tuple[str, str], int] = {}
    for index, group in enumerate(table.tables("groups")):
        present = [kind for kind in SCAN_SELECTORS if group.has(kind)]
        area = group.optional_ident("area")
        gateway = group.optional_ident("gateway")
        meters = group.idents("meters")
        if len(present) != 1:
            group.error(
                present[-1] if present else None, "needs exactly one of area, gateway or meters"
            )
        if area is not None and area not in areas:
            group.error("area", f"unknown area {area}")
        if gateway is not None and gateway not in gateways:
            group.error("gateway", f"unknown gateway {gateway}")
        if group.has("meters") and isinstance(group.data["meters"], list) and not meters:
            group.error("meters", "must list at least one meter")
        for kind, target in (("area", area), ("gateway", gateway)):
            if target is None:
                continue
            if (kind, target) in taken:
                group.error(kind, f"{kind} {target} already has groups[{taken[kind, target]}]")
            else:
                taken[kind, target] = index
        for position, meter in enumerate(meters):
            where = (*group.path, "meters", position)
            if ("meters", meter) in taken:
                group.log.toml(
                    where, f"meter {meter} is already in groups[{taken['meters', meter]}]"
                )
            else:
                taken["meters", meter] = index
                meter_refs.append((where, meter))
        periods = {key: group.optional_integer(key, 1, PERIOD_RANGES[key]) for key in SCAN_PERIODS}
        if not any(group.has(key) for key in SCAN_PERIODS):
            group.error(None, "sets no scan period (realtime_s, energy_s or prepaid_s)")
        group.finish()
        groups.append(
            ScanGroup(
                area,
                gateway,
                meters,
                realtime_s=periods["realtime_s"],
                energy_s=periods["energy_s"],
                prepaid_s=periods["prepaid_s"],
            )
        )
    return tuple(groups), meter_refs


def check_group_meters(log: ErrorLog, refs: MeterRefs, meters: Collection[str]) -> None:
    """Log every meter that an [[acquisition.groups]] entry names but meters.csv lacks."""
    for path, meter in refs:
        if meter not in meters:
            log.toml(path, f"unknown meter {meter}")
