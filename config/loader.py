"""Loads a site folder (site.toml + meters.csv) into a validated Site, or raises SiteInvalid."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Protocol, TypeVar

from config.alarm_limits import read_alarms
from config.errors import METERS_CSV, SITE_TOML, ConfigError, ErrorLog, SiteInvalid
from config.merchants import read_merchants
from config.meters_csv import SiteRefs, read_meters
from config.model import Meter, Site
from config.settings import check_group_meters, read_acquisition, read_park, read_services
from config.site_toml import read_areas, read_gateways, read_notify, read_routes, read_users
from config.tariff_toml import read_tariffs
from config.toml_lines import TomlLines
from config.toml_table import TomlTable


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_HasId)

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)$|\s*\(at end of document\)$")


def load_site(folder: Path, env: Mapping[str, str] | None = None) -> Site:
    """Read and validate the site in `folder`; `env` (default os.environ) may override services.

    Raises SiteInvalid holding every error found, each naming file, line and field.
    """
    folder = Path(folder).absolute()
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise SiteInvalid([ConfigError(str(folder), None, "", f"site folder {problem}")])
    log = ErrorLog()
    toml_bytes = _read(folder, SITE_TOML, log)
    csv_bytes = _read(folder, METERS_CSV, log)
    parsed = _parse_toml(toml_bytes, log) if toml_bytes is not None else None
    if parsed is None:  # unreadable or bad syntax, already logged: nothing more to check
        raise SiteInvalid(log.errors)
    site = _build(folder, parsed, csv_bytes, os.environ if env is None else env, log)
    log.raise_if_any()
    return site


def _read(folder: Path, name: str, log: ErrorLog) -> bytes | None:
    path = folder / name
    try:
        return path.read_bytes()
    except FileNotFoundError:
        log.file(name, None, f"missing: the site needs {path}")
    except OSError as problem:
        log.file(name, None, f"cannot be read: {problem.strerror or problem}")
    return None


def _parse_toml(raw: bytes, log: ErrorLog) -> tuple[str, dict[str, object]] | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as problem:
        bad_line = raw.count(b"\n", 0, problem.start) + 1
        log.file(SITE_TOML, bad_line, f"not valid UTF-8 (byte {raw[problem.start]:#04x})")
        return None
    try:
        return text, tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as problem:
        message = str(problem)
        match = _TOML_POSITION.search(message)
        line: int | None = None
        if match is not None:
            line = int(match.group(1)) if match.group(1) else text.rstrip().count("\n") + 1
            message = message[: match.start()]
        log.file(SITE_TOML, line, f"TOML syntax error: {message}")
        return None


def _first_by_id(items: tuple[T, ...]) -> dict[str, T]:
    """Items by id; a duplicate id (reported in site.toml) keeps the first definition."""
    found: dict[str, T] = {}
    for item in items:
        found.setdefault(item.id, item)
    return found


def _build(
    folder: Path,
    parsed: tuple[str, dict[str, object]],
    csv_bytes: bytes | None,
    env: Mapping[str, str],
    log: ErrorLog,
) -> Site:
    text, data = parsed
    log.use_locator(TomlLines(text))
    root = TomlTable(data, (), log)
    park = read_park(root)
    services = read_services(root, env, log)
    merchants = read_merchants(root, folder)
    merchant_ids = {merchant.id for merchant in merchants}
    areas = read_areas(root, merchant_ids)
    area_ids = {area.id for area in areas}
    gateways = read_gateways(root, area_ids)
    gateway_ids = {gateway.id for gateway in gateways}
    acquisition, group_meters = read_acquisition(root, area_ids, gateway_ids)
    tariffs = read_tariffs(root)
    alarms, meter_overrides = read_alarms(root, area_ids)
    routes = read_routes(root, area_ids)
    notify = read_notify(root, folder, routes)
    users = read_users(root)
    root.finish()
    meters: tuple[Meter, ...] = ()
    if csv_bytes is not None:
        refs = SiteRefs(
            gateways=_first_by_id(gateways),
            areas=_first_by_id(areas),
            merchants=merchant_ids,
            tariffs={tariff.id for tariff in tariffs},
        )
        csv_errors_before = sum(error.file == METERS_CSV for error in log.errors)
        meters = read_meters(csv_bytes, refs, log)
        csv_clean = sum(error.file == METERS_CSV for error in log.errors) == csv_errors_before
        # A meter left out for a bad row is reported there; naming it unknown here is noise.
        if csv_clean:
            meter_ids = {meter.id for meter in meters}
            for table, meter_id in meter_overrides:
                if meter_id not in meter_ids:
                    table.error("meter", f"unknown meter {meter_id}")
            check_group_meters(log, group_meters, meter_ids)
    return Site(
        folder=folder,
        park=park,
        services=services,
        acquisition=acquisition,
        areas=areas,
        gateways=gateways,
        meters=meters,
        tariffs=tariffs,
        merchants=merchants,
        alarms=alarms,
        routes=routes,
        users=users,
        notify=notify,
    )
