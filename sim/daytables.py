"""TOU day tables as the meters hold them: a bucket per month, day type and minute of the day."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from config.tariffs import BUCKETS, Period, Season, TariffVersion

BUCKET_CODE: Final[dict[str, int]] = {name: i for i, name in enumerate(BUCKETS)}
MINUTES_PER_DAY: Final = 1440
WEEKDAY: Final = 0
WEEKEND: Final = 1

Grid = npt.NDArray[np.int8]
IntArray = npt.NDArray[np.int64]


class DayTableError(ValueError):
    """A day table or season list is invalid; the message names the offending entry."""


def day_row(periods: Sequence[Period], where: str = "periods") -> npt.NDArray[np.int8]:
    """The 1,440 bucket codes of one day table; the periods must tile 00:00–24:00 in order."""
    if not periods:
        raise DayTableError(f"{where}: at least one period is required")
    row = np.full(MINUTES_PER_DAY, -1, dtype=np.int8)
    cursor = 0
    for i, period in enumerate(periods):
        if period.bucket not in BUCKET_CODE:
            raise DayTableError(
                f"{where}[{i}]: bucket {period.bucket!r} is not one of {', '.join(BUCKETS)}"
            )
        if period.start_minute != cursor or period.end_minute <= period.start_minute:
            raise DayTableError(
                f"{where}[{i}]: must start at minute {cursor} and end after it, "
                f"got {period.start_minute}..{period.end_minute}"
            )
        row[period.start_minute : period.end_minute] = BUCKET_CODE[period.bucket]
        cursor = period.end_minute
    if cursor != MINUTES_PER_DAY:
        raise DayTableError(f"{where}: periods end at minute {cursor}, not at 24:00")
    return row


def season_grid(seasons: Sequence[Season]) -> Grid:
    """A (12 months, 2 day types, 1,440 minutes) grid of bucket codes from a season list."""
    grid = np.full((12, 2, MINUTES_PER_DAY), -1, dtype=np.int8)
    covered: dict[int, int] = {}
    for s, season in enumerate(seasons):
        weekday = day_row(season.periods, f"seasons[{s}].periods")
        weekend = (
            day_row(season.weekend_periods, f"seasons[{s}].weekend_periods")
            if season.weekend_periods
            else weekday
        )
        for month in season.months:
            if not 1 <= month <= 12:
                raise DayTableError(f"seasons[{s}].months: {month} is not a month 1..12")
            if month in covered:
                raise DayTableError(
                    f"seasons[{s}].months: month {month} already in seasons[{covered[month]}]"
                )
            covered[month] = s
            grid[month - 1, WEEKDAY] = weekday
            grid[month - 1, WEEKEND] = weekend
    missing = sorted(set(range(1, 13)) - set(covered))
    if missing:
        raise DayTableError(f"seasons: months {missing} are in no season")
    return grid


def flat_grid(bucket: str = "flat") -> Grid:
    """A grid that puts every minute of the year into one bucket (flat-rate meters)."""
    if bucket not in BUCKET_CODE:
        raise DayTableError(f"bucket {bucket!r} is not one of {', '.join(BUCKETS)}")
    return np.full((12, 2, MINUTES_PER_DAY), BUCKET_CODE[bucket], dtype=np.int8)


def version_grid(version: TariffVersion) -> Grid:
    """The day-table grid a meter is programmed with for a tariff version."""
    return season_grid(version.seasons) if version.seasons else flat_grid()


def version_prices_e4(version: TariffVersion) -> tuple[int, int, int, int]:
    """The four price registers (sharp, peak, flat, valley) for a tariff version.

    A meter has no tiers: a tiered tariff programs its first step's price, and the server's
    ledger settles the steps.
    """
    if version.prices is not None:
        p = version.prices
        return (p.sharp_e4, p.peak_e4, p.flat_e4, p.valley_e4)
    if version.price_e4 is not None:
        return (version.price_e4,) * 4
    if version.steps:
        return (version.steps[0].price_e4,) * 4
    raise DayTableError(f"tariff version effective {version.effective} has no price")


class DayTables:
    """The distinct day-table grids of a fleet, and which grid each meter uses."""

    def __init__(self, grids: Sequence[Grid], index: npt.ArrayLike) -> None:
        """Stack `grids` (each 12×2×1440 bucket codes) and bind meters to them by `index`."""
        if not grids:
            raise DayTableError("at least one day-table grid is required")
        stacked = np.stack([np.asarray(g, dtype=np.int8) for g in grids])
        if stacked.shape[1:] != (12, 2, MINUTES_PER_DAY):
            raise DayTableError(f"grid shape must be (12, 2, 1440), got {stacked.shape[1:]}")
        if stacked.min() < 0 or stacked.max() >= len(BUCKETS):
            raise DayTableError("a grid holds a code that is not a bucket")
        idx = np.asarray(index, dtype=np.int64)
        if idx.ndim != 1:
            raise DayTableError("index must be one grid number per meter")
        if idx.size and (idx.min() < 0 or idx.max() >= len(stacked)):
            raise DayTableError(f"index refers to a grid outside 0..{len(stacked) - 1}")
        self.grids = stacked
        self.index = idx

    @classmethod
    def shared(cls, grid: Grid, n_meters: int) -> DayTables:
        """Every one of `n_meters` meters on the same grid."""
        return cls([grid], np.zeros(n_meters, dtype=np.int64))

    @classmethod
    def from_keys(cls, keys: Iterable[object], grid_of: dict[object, Grid]) -> DayTables:
        """One grid per distinct key; `keys` names each meter's key in `grid_of`."""
        order: dict[object, int] = {}
        index = [order.setdefault(key, len(order)) for key in keys]
        if not order:
            return cls([flat_grid()], np.zeros(0, dtype=np.int64))
        return cls([grid_of[key] for key in order], index)

    def __len__(self) -> int:
        return int(self.index.size)

    def buckets(self, month: IntArray, daytype: IntArray, minute_of_day: IntArray) -> Grid:
        """Bucket codes (segments × meters) for per-segment local month, day type and minute."""
        per_grid = self.grids[:, month - 1, daytype, minute_of_day]
        return np.ascontiguousarray(per_grid.T[:, self.index])
