"""Per-meter price columns at each reading's time: tariffs, dated versions and overrides.

TOU prices apply to the meter's own sharp/peak/flat/valley registers (the meter sorts
its energy into buckets by its day tables), so settlement only needs the four prices in
force when the reading was taken. A flat tariff prices every bucket alike; a tiered one
leaves the bucket prices at zero and gives monthly steps instead.

Precedence for one meter at time t: the latest dated batch price change that covers it
and is in force at t, then its standing override, then its tariff's version at t.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from config.model import Site
from config.tariffs import BUCKETS, Tariff, TariffVersion, TouPrices
from server.prepaid.settlement import MAX_PRICE_E4, UNBOUNDED, step_table

Int64s = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Prices = TouPrices | int


@dataclass(frozen=True, slots=True)
class PriceChange:
    """A batch price change: these meters pay `prices` from `effective` (Unix seconds) on."""

    meters: frozenset[str]
    prices: TouPrices
    effective: float
    reason: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class TariffColumns:
    """Price columns for n rows: bucket prices (n, 4) and monthly steps (n, K).

    `priced` is False where no price is in force (no tariff, or a reading from before its
    first version): settlement leaves those rows alone.
    """

    prices_e4: Int64s
    step_bounds: Int64s
    step_prices_e4: Int64s
    tiered: Bools
    priced: Bools


def as_tou(prices: Prices) -> TouPrices:
    """A price set from four TOU prices or one flat price (yuan/10⁴ per kWh), checked."""
    tou = TouPrices(prices, prices, prices, prices) if isinstance(prices, int) else prices
    for bucket in BUCKETS:
        value = tou.of(bucket)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRICE_E4:
            raise ValueError(f"price {bucket} must be 0..{MAX_PRICE_E4} yuan/10⁴ per kWh")
    return tou


def _row(prices: TouPrices) -> list[int]:
    return [prices.of(bucket) for bucket in BUCKETS]


class TariffBook:
    """The site's tariffs with standing per-meter overrides and dated batch changes."""

    def __init__(
        self,
        site: Site,
        overrides: Mapping[str, Prices] | None = None,
        changes: Sequence[PriceChange] = (),
    ) -> None:
        self.site = site
        for meter in list(overrides or ()) + [m for c in changes for m in c.meters]:
            site.meter(meter)  # a KeyError names an unknown meter
        self.overrides = {meter: as_tou(p) for meter, p in (overrides or {}).items()}
        self.changes = tuple(sorted(changes, key=lambda change: change.effective))
        tiered = [t for t in site.tariffs if t.kind == "tiered"]
        self._width = max((len(v.steps) for t in tiered for v in t.versions), default=1)

    def with_override(self, meter: str, prices: Prices) -> TariffBook:
        """A book where `meter` pays `prices` from now on, whatever its tariff says."""
        return TariffBook(self.site, {**self.overrides, meter: prices}, self.changes)

    def with_change(
        self, meters: Iterable[str], prices: Prices, effective: float, reason: str = ""
    ) -> TariffBook:
        """A book with a batch price change for `meters` from `effective` (Unix seconds) on."""
        change = PriceChange(frozenset(meters), as_tou(prices), float(effective), reason)
        if not change.meters:
            raise ValueError("a batch price change needs at least one meter")
        return TariffBook(self.site, self.overrides, (*self.changes, change))

    def columns(self, meter_ids: Sequence[str], at: npt.ArrayLike) -> TariffColumns:
        """The prices in force for each meter at each row's time `at` (Unix seconds)."""
        count = len(meter_ids)
        times = np.broadcast_to(np.asarray(at, dtype=np.float64), (count,))
        ids = np.asarray(meter_ids, dtype=object)
        prices = np.zeros((count, len(BUCKETS)), dtype=np.int64)
        bounds = np.full((count, self._width), UNBOUNDED, dtype=np.int64)
        steps = np.zeros((count, self._width), dtype=np.int64)
        tiered = np.zeros(count, dtype=np.bool_)
        priced = np.zeros(count, dtype=np.bool_)
        tariff_of = np.asarray(
            [self.site.meter(m).tariff or "" for m in meter_ids], dtype=object
        ).reshape(count)
        for tariff_id in set(tariff_of.tolist()) - {""}:
            rows = np.flatnonzero(tariff_of == tariff_id)
            tariff = self.site.tariff(tariff_id)
            self._fill(tariff, rows, times[rows], prices, bounds, steps, tiered, priced)
        for meter, override in self.overrides.items():
            self._set_flat(ids == meter, _row(override), prices, steps, tiered, priced)
        for change in self.changes:
            wanted = np.isin(ids, list(change.meters)) & (times >= change.effective)
            self._set_flat(wanted, _row(change.prices), prices, steps, tiered, priced)
        return TariffColumns(prices, bounds, steps, tiered, priced)

    def _fill(
        self,
        tariff: Tariff,
        rows: Int64s,
        times: npt.NDArray[np.float64],
        prices: Int64s,
        bounds: Int64s,
        steps: Int64s,
        tiered: Bools,
        priced: Bools,
    ) -> None:
        effective = np.asarray([v.effective.timestamp() for v in tariff.versions])
        chosen = np.searchsorted(effective, times, side="right") - 1
        for index in np.unique(chosen[chosen >= 0]).tolist():
            target = rows[chosen == index]
            version = tariff.versions[index]
            priced[target] = True
            if tariff.kind == "tiered":
                step_bounds, step_prices = self._steps(version)
                bounds[target] = step_bounds
                steps[target] = step_prices
                tiered[target] = True
            else:
                prices[target] = _row(_version_prices(tariff, version))

    def _steps(self, version: TariffVersion) -> tuple[list[int], list[int]]:
        return step_table([(s.up_to_kwh, s.price_e4) for s in version.steps], self._width)

    @staticmethod
    def _set_flat(
        mask: Bools,
        row: list[int],
        prices: Int64s,
        steps: Int64s,
        tiered: Bools,
        priced: Bools,
    ) -> None:
        if not mask.any():
            return
        prices[mask] = row
        steps[mask] = 0
        tiered[mask] = False
        priced[mask] = True


def _version_prices(tariff: Tariff, version: TariffVersion) -> TouPrices:
    """The four bucket prices of a TOU or flat version."""
    if tariff.kind == "tou" and version.prices is not None:
        return version.prices
    if tariff.kind == "flat" and version.price_e4 is not None:
        return as_tou(version.price_e4)
    raise ValueError(f"tariff {tariff.id}: the version of {_iso(version.effective)} has no prices")


def _iso(moment: datetime) -> str:
    return moment.isoformat()
