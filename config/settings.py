"""The [park], [services] and [acquisition] sections, and PARKGRID_* environment overrides."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.errors import ErrorLog
from config.model import Acquisition, Park, Services
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


def read_acquisition(root: TomlTable) -> Acquisition:
    """The optional [acquisition] table."""
    table = root.table("acquisition")
    if table is None:
        return Acquisition()
    defaults = Acquisition()
    acquisition = Acquisition(
        realtime_s=table.integer("realtime_s", 1, 86400, defaults.realtime_s),
        energy_s=table.integer("energy_s", 1, 86400, defaults.energy_s),
        prepaid_s=table.integer("prepaid_s", 1, 604800, defaults.prepaid_s),
        clock_drift_limit_s=table.integer(
            "clock_drift_limit_s", 1, 3600, defaults.clock_drift_limit_s
        ),
        request_timeout_ms=table.integer(
            "request_timeout_ms", 50, 60000, defaults.request_timeout_ms
        ),
    )
    table.finish()
    return acquisition
