"""Tariffs: dated versions of TOU, flat or tiered prices, and the TOU day-table rules."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from config.values import MINUTES_PER_DAY, format_clock

BUCKETS: Final = ("sharp", "peak", "flat", "valley")
TARIFF_KINDS: Final = ("tou", "flat", "tiered")
MAX_PERIODS: Final = 14
MAX_SEASONS: Final = 4


@dataclass(frozen=True, slots=True)
class Period:
    """One stretch of the day, [start_minute, end_minute), billed in one TOU bucket."""

    start_minute: int
    end_minute: int
    bucket: str


@dataclass(frozen=True, slots=True)
class Season:
    """The months a pair of day tables applies to (weekdays, and optionally weekends)."""

    name: str
    months: tuple[int, ...]
    periods: tuple[Period, ...]
    weekend_periods: tuple[Period, ...] = ()

    def bucket_at(self, local: datetime) -> str:
        """The bucket of a wall-clock time in the park's zone (Saturday, Sunday = weekend)."""
        table = self.weekend_periods if local.weekday() >= 5 and self.weekend_periods else None
        return bucket_in(table or self.periods, local.hour * 60 + local.minute)


@dataclass(frozen=True, slots=True)
class TouPrices:
    """The four TOU prices in yuan/10⁴ per kWh."""

    sharp_e4: int
    peak_e4: int
    flat_e4: int
    valley_e4: int

    def of(self, bucket: str) -> int:
        """The price of one bucket."""
        prices = {
            "sharp": self.sharp_e4,
            "peak": self.peak_e4,
            "flat": self.flat_e4,
            "valley": self.valley_e4,
        }
        return prices[bucket]


@dataclass(frozen=True, slots=True)
class TierStep:
    """One step of a tiered (monthly) tariff: up to `up_to_kwh` (None: the rest)."""

    up_to_kwh: int | None
    price_e4: int


@dataclass(frozen=True, slots=True)
class TariffVersion:
    """The prices in force from `effective` on; which fields are set follows the kind."""

    effective: datetime
    prices: TouPrices | None = None
    seasons: tuple[Season, ...] = ()
    price_e4: int | None = None
    steps: tuple[TierStep, ...] = ()

    def season_for(self, month: int) -> Season:
        """The TOU season that holds `month` (1..12)."""
        for season in self.seasons:
            if month in season.months:
                return season
        raise LookupError(f"no TOU season holds month {month}")

    def bucket_at(self, local: datetime) -> str:
        """The TOU bucket of a wall-clock time in the park's zone."""
        return self.season_for(local.month).bucket_at(local)


@dataclass(frozen=True, slots=True)
class Tariff:
    """A named tariff and its versions, oldest first, effective times strictly increasing."""

    id: str
    name: str
    kind: str
    versions: tuple[TariffVersion, ...]

    def version_at(self, t: datetime) -> TariffVersion:
        """The version in force at aware time `t`; LookupError before the first one."""
        if t.tzinfo is None:
            raise ValueError("version_at needs an aware datetime")
        index = bisect_right([version.effective for version in self.versions], t)
        if index == 0:
            raise LookupError(f"tariff {self.id} has no version in force at {t.isoformat()}")
        return self.versions[index - 1]


def bucket_in(periods: Sequence[Period], minute: int) -> str:
    """The bucket of minute-of-day `minute` in a valid (contiguous, ordered) day table."""
    index = bisect_right([period.start_minute for period in periods], minute) - 1
    return periods[max(index, 0)].bucket


def day_table_problems(spans: Sequence[tuple[int, int]]) -> list[tuple[int | None, str, str]]:
    """Why periods (start, end) in minutes do not tile 00:00–24:00 in order.

    Each problem is (period index or None for the whole table, field, message).
    """
    problems: list[tuple[int | None, str, str]] = []
    if not 1 <= len(spans) <= MAX_PERIODS:
        problems.append((None, "", f"must have 1..{MAX_PERIODS} periods, got {len(spans)}"))
        if not spans:
            return problems
    for index, (start, end) in enumerate(spans):
        if end <= start:
            problems.append(
                (
                    index,
                    "end",
                    f"must be after start {format_clock(start)}, got {format_clock(end)}",
                )
            )
    if any(end <= start for start, end in spans):
        return problems  # tiling checks on a backwards period would only add noise
    first_start = spans[0][0]
    if first_start != 0:
        problems.append(
            (
                0,
                "start",
                f"the day must start at 00:00; 00:00–{format_clock(first_start)} is not covered",
            )
        )
    for index in range(1, len(spans)):
        previous_end, start = spans[index - 1][1], spans[index][0]
        if start < previous_end:
            problems.append(
                (
                    index,
                    "start",
                    f"overlaps periods[{index - 1}], which ends at {format_clock(previous_end)}",
                )
            )
        elif start > previous_end:
            gap = f"{format_clock(previous_end)}–{format_clock(start)}"
            problems.append((index, "start", f"leaves a gap {gap} after periods[{index - 1}]"))
    last_end = spans[-1][1]
    if last_end != MINUTES_PER_DAY:
        problems.append(
            (
                len(spans) - 1,
                "end",
                f"the day must end at 24:00; {format_clock(last_end)}–24:00 is not covered",
            )
        )
    return problems


def month_problems(seasons_months: Sequence[Sequence[int]]) -> list[tuple[int | None, str]]:
    """Why seasons' months do not cover 1..12 exactly once: (season index or None, message)."""
    problems: list[tuple[int | None, str]] = []
    owner: dict[int, int] = {}
    for index, months in enumerate(seasons_months):
        for month in months:
            if month in owner:
                where = "this season" if owner[month] == index else f"seasons[{owner[month]}]"
                problems.append((index, f"month {month} is already in {where}"))
            else:
                owner[month] = index
    missing = [month for month in range(1, 13) if month not in owner]
    if missing:
        listed = ", ".join(str(month) for month in missing)
        problems.append((None, f"months {listed} are in no season; seasons must cover 1..12"))
    return problems
