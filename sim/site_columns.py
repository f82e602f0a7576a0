"""The site model flattened into the per-meter columns the simulated fleet is built from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from config.model import Site
from config.tariffs import Tariff, TariffVersion
from sim.daytables import DayTables, Grid, flat_grid, version_grid, version_prices_e4

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SiteColumns:
    """One entry per meter, in site order (the tag-database row order)."""

    ids: tuple[str, ...]
    three_phase: npt.NDArray[np.bool_]
    kind: npt.NDArray[np.str_]
    ct: IntArray
    pt: IntArray
    power_limit_kw: npt.NDArray[np.float64]
    day_tables: DayTables
    prices_e4: IntArray
    prepaid: npt.NDArray[np.bool_]
    alarm1_fen: IntArray
    alarm2_fen: IntArray
    credit_limit_fen: IntArray
    gateway_ids: tuple[str, ...]
    nominal_voltage: float
    timezone: str


def _version(tariff: Tariff, at: datetime) -> tuple[int, TariffVersion]:
    """The version in force at `at`, or the first one if `at` is before all of them."""
    try:
        version = tariff.version_at(at)
    except LookupError:
        version = tariff.versions[0]
    return tariff.versions.index(version), version


def site_columns(site: Site, at: float) -> SiteColumns:
    """Columns for every meter of `site`, programmed with the tariffs in force at `at`."""
    tz = ZoneInfo(site.park.timezone)
    local = datetime.fromtimestamp(at, tz)
    kind_of = {area.id: area.kind for area in site.areas}
    grids: dict[object, Grid] = {None: flat_grid()}
    keys: list[object] = []
    prices: list[tuple[int, int, int, int]] = []
    for meter in site.meters:
        if meter.tariff is None:
            keys.append(None)
            prices.append((0, 0, 0, 0))
            continue
        index, version = _version(site.tariff(meter.tariff), local)
        key = (meter.tariff, index)
        if key not in grids:
            grids[key] = version_grid(version)
        keys.append(key)
        prices.append(version_prices_e4(version))
    meters = site.meters
    return SiteColumns(
        ids=tuple(m.id for m in meters),
        three_phase=np.array([m.three_phase for m in meters], dtype=bool),
        kind=np.array([kind_of[m.area] for m in meters], dtype=np.str_),
        ct=np.array([m.ct for m in meters], dtype=np.int64),
        pt=np.array([m.pt for m in meters], dtype=np.int64),
        power_limit_kw=np.array(
            [np.nan if m.power_limit_kw is None else float(m.power_limit_kw) for m in meters]
        ),
        day_tables=DayTables.from_keys(keys, grids),
        prices_e4=np.array(prices, dtype=np.int64).reshape(len(meters), 4),
        prepaid=np.array([m.billing == "prepaid" for m in meters], dtype=bool),
        alarm1_fen=np.array([m.alarm1_fen or 0 for m in meters], dtype=np.int64),
        alarm2_fen=np.array([m.alarm2_fen or 0 for m in meters], dtype=np.int64),
        credit_limit_fen=np.array([m.credit_limit_fen for m in meters], dtype=np.int64),
        gateway_ids=tuple(g.id for g in site.gateways),
        nominal_voltage=float(site.park.nominal_voltage),
        timezone=site.park.timezone,
    )
