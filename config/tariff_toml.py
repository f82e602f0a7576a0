"""Reads the [[tariffs]] of site.toml into Tariff records, checking every tariff rule."""

from __future__ import annotations

from datetime import datetime

from config.money import parse_price_e4
from config.tariffs import (
    BUCKETS,
    MAX_SEASONS,
    TARIFF_KINDS,
    Period,
    Season,
    Tariff,
    TariffVersion,
    TierStep,
    TouPrices,
    day_table_problems,
    month_problems,
)
from config.toml_table import TomlTable
from config.values import parse_clock


def read_tariffs(root: TomlTable) -> tuple[Tariff, ...]:
    """Every [[tariffs]] entry; ids must be unique."""
    tariffs: list[Tariff] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(root.tables("tariffs")):
        tariff_id = table.ident("id")
        if tariff_id in seen:
            table.error(
                "id", f"tariff {tariff_id} is already defined by tariffs[{seen[tariff_id]}]"
            )
        elif tariff_id:
            seen[tariff_id] = index
        name = table.text("name")
        kind = table.choice("kind", TARIFF_KINDS)
        versions = _read_versions(table, kind)
        table.finish()
        tariffs.append(Tariff(id=tariff_id, name=name, kind=kind, versions=versions))
    return tuple(tariffs)


def _read_versions(tariff: TomlTable, kind: str) -> tuple[TariffVersion, ...]:
    tables = tariff.tables("versions")
    if not tables:
        tariff.error("versions", "needs at least one [[tariffs.versions]]")
    versions: list[TariffVersion] = []
    previous: datetime | None = None
    for table in tables:
        effective = table.datetime_with_offset("effective")
        if effective is not None and previous is not None and effective <= previous:
            table.error(
                "effective",
                f"must be later than the previous version's {previous.isoformat()}",
            )
        previous = effective or previous
        version = _read_version(table, kind, effective)
        table.finish()
        if version is not None:
            versions.append(version)
    return tuple(versions)


def _read_version(table: TomlTable, kind: str, effective: datetime | None) -> TariffVersion | None:
    prices: TouPrices | None = None
    seasons: tuple[Season, ...] = ()
    price: int | None = None
    steps: tuple[TierStep, ...] = ()
    if kind == "tou":
        prices = _read_tou_prices(table)
        seasons = _read_seasons(table)
    elif kind == "flat":
        price = table.parsed("price", parse_price_e4, required=True)
    elif kind == "tiered":
        steps = _read_steps(table)
    else:  # a bad kind is reported already; its prices cannot be judged
        for key in ("prices", "seasons", "price", "steps"):
            table.raw(key)
    if effective is None:
        return None
    return TariffVersion(effective, prices=prices, seasons=seasons, price_e4=price, steps=steps)


def _read_tou_prices(version: TomlTable) -> TouPrices:
    table = version.table("prices")
    if table is None:
        version.error("prices", "is required for a tou tariff (sharp, peak, flat, valley)")
        return TouPrices(0, 0, 0, 0)
    found = {bucket: table.parsed(bucket, parse_price_e4, required=True) or 0 for bucket in BUCKETS}
    table.finish()
    return TouPrices(found["sharp"], found["peak"], found["flat"], found["valley"])


def _read_seasons(version: TomlTable) -> tuple[Season, ...]:
    tables = version.tables("seasons")
    if not 1 <= len(tables) <= MAX_SEASONS:
        version.error("seasons", f"a tou tariff needs 1..{MAX_SEASONS} seasons, got {len(tables)}")
    seasons: list[Season] = []
    months_of: list[list[int]] = []
    for table in tables:
        name = table.text("name")
        months = _read_months(table)
        months_of.append(months)
        periods = _read_day_table(table, "periods", required=True)
        weekend = _read_day_table(table, "weekend_periods", required=False)
        table.finish()
        seasons.append(Season(name, tuple(months), periods, weekend))
    for index, message in month_problems(months_of):
        if index is None:
            version.error("seasons", message)
        else:
            version.log.toml((*version.path, "seasons", index, "months"), message)
    return tuple(seasons)


def _read_months(season: TomlTable) -> list[int]:
    if not season.has("months"):
        season.error("months", "is required")
    months: list[int] = []
    for index, month in enumerate(season.array("months")):
        if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12:
            season.log.toml(
                (*season.path, "months", index), f"must be a month 1..12, got {month!r}"
            )
        else:
            months.append(month)
    return months


def _read_day_table(season: TomlTable, key: str, *, required: bool) -> tuple[Period, ...]:
    if required and not season.has(key):
        season.error(key, "is required: 1..14 periods covering 00:00–24:00")
    tables = season.tables(key)
    if not tables and not required:
        return ()  # no weekend table: the weekday table applies every day
    periods: list[Period] = []
    for table in tables:
        start = table.text_as("start", lambda text: parse_clock(text, end=False))
        end = table.text_as("end", lambda text: parse_clock(text, end=True))
        bucket = table.choice("bucket", BUCKETS)
        table.finish()
        if start is not None and end is not None:
            periods.append(Period(start, end, bucket))
    if len(periods) < len(tables):
        return ()  # a bad time is reported already; tiling checks would only add noise
    spans = [(period.start_minute, period.end_minute) for period in periods]
    for index, field, message in day_table_problems(spans):
        if index is None:
            season.error(key, message)
        else:
            season.log.toml((*season.path, key, index, field), message)
    return tuple(periods)


def _read_steps(version: TomlTable) -> tuple[TierStep, ...]:
    tables = version.tables("steps")
    if not tables:
        version.error("steps", "a tiered tariff needs at least one step")
    steps: list[TierStep] = []
    previous = 0
    for index, table in enumerate(tables):
        last = index == len(tables) - 1
        up_to = table.optional_integer("up_to_kwh", 1, 10**9)
        if last and table.has("up_to_kwh"):
            table.error("up_to_kwh", "the last step must not have up_to_kwh (it takes the rest)")
        elif not last and not table.has("up_to_kwh"):
            table.error("up_to_kwh", "is required on every step but the last")
        elif up_to is not None and up_to <= previous:
            table.error("up_to_kwh", f"must be more than the previous step's {previous}")
        previous = up_to or previous
        price = table.parsed("price", parse_price_e4, required=True)
        table.finish()
        steps.append(TierStep(None if last else up_to, price or 0))
    return tuple(steps)
