"""Tariff rules: version lookup, TOU buckets, and the day-table and month validators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.tariffs import (
    BUCKETS,
    Period,
    Season,
    Tariff,
    TariffVersion,
    TouPrices,
    bucket_in,
    day_table_problems,
    month_problems,
)

CST = timezone(timedelta(hours=8))
DAY = 24 * 60


def periods(*rows: tuple[str, str, str]) -> tuple[Period, ...]:
    def minute(text: str) -> int:
        hours, minutes = text.split(":")
        return int(hours) * 60 + int(minutes)

    return tuple(Period(minute(start), minute(end), bucket) for start, end, bucket in rows)


SUMMER = Season(
    "summer",
    (7, 8),
    periods(
        ("00:00", "08:00", "valley"),
        ("08:00", "10:00", "peak"),
        ("10:00", "11:00", "sharp"),
        ("11:00", "17:00", "flat"),
        ("17:00", "21:00", "peak"),
        ("21:00", "24:00", "flat"),
    ),
)
REST = Season(
    "rest",
    (1, 2, 3, 4, 5, 6, 9, 10, 11, 12),
    periods(("00:00", "08:00", "valley"), ("08:00", "24:00", "peak")),
    weekend_periods=periods(("00:00", "24:00", "valley")),
)
PRICES = TouPrices(11850, 10210, 6970, 3720)
V2024 = TariffVersion(datetime(2024, 1, 1, tzinfo=CST), prices=PRICES, seasons=(SUMMER, REST))
V2025 = TariffVersion(datetime(2025, 7, 1, tzinfo=CST), prices=PRICES, seasons=(REST, SUMMER))
TOU = Tariff("TOU", "tou", "tou", (V2024, V2025))


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (datetime(2024, 1, 1, tzinfo=CST), V2024),
        (datetime(2025, 6, 30, 23, 59, 59, tzinfo=CST), V2024),
        (datetime(2025, 7, 1, tzinfo=CST), V2025),
        (datetime(2025, 6, 30, 16, 0, tzinfo=UTC), V2025),  # the same instant in UTC
        (datetime(2025, 6, 30, 15, 59, tzinfo=UTC), V2024),
        (datetime(2030, 1, 1, tzinfo=UTC), V2025),
    ],
)
def test_version_at(when: datetime, expected: TariffVersion) -> None:
    assert TOU.version_at(when) is expected


def test_version_at_before_the_first_version() -> None:
    with pytest.raises(LookupError, match="no version in force"):
        TOU.version_at(datetime(2023, 12, 31, 15, 59, tzinfo=UTC))


def test_version_at_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        TOU.version_at(datetime(2024, 6, 1))


@pytest.mark.parametrize(
    ("local", "bucket"),
    [
        (datetime(2024, 7, 15, 0, 0), "valley"),  # Monday
        (datetime(2024, 7, 15, 7, 59), "valley"),
        (datetime(2024, 7, 15, 8, 0), "peak"),
        (datetime(2024, 7, 15, 10, 30), "sharp"),
        (datetime(2024, 7, 15, 11, 0), "flat"),
        (datetime(2024, 7, 15, 20, 59), "peak"),
        (datetime(2024, 7, 15, 23, 59), "flat"),
        (datetime(2024, 7, 13, 10, 30), "sharp"),  # Saturday, no weekend table in summer
        (datetime(2024, 3, 15, 9, 0), "peak"),  # Friday, rest of year
        (datetime(2024, 3, 16, 9, 0), "valley"),  # Saturday: weekend table
        (datetime(2024, 3, 17, 23, 0), "valley"),  # Sunday
        (datetime(2024, 3, 18, 0, 0), "valley"),  # Monday 00:00
        (datetime(2024, 3, 18, 8, 0, tzinfo=CST), "peak"),  # aware: its own wall clock
    ],
)
def test_bucket_at(local: datetime, bucket: str) -> None:
    assert V2024.bucket_at(local) == bucket


def test_season_for_an_uncovered_month() -> None:
    with pytest.raises(LookupError, match="month 3"):
        TariffVersion(datetime(2024, 1, 1, tzinfo=CST), seasons=(SUMMER,)).season_for(3)


def test_prices_of() -> None:
    assert [PRICES.of(bucket) for bucket in BUCKETS] == [11850, 10210, 6970, 3720]


@pytest.mark.parametrize(
    ("spans", "problems"),
    [
        ([(0, DAY)], []),
        ([(0, 480), (480, DAY)], []),
        ([], [(None, "", "must have 1..14 periods, got 0")]),
        ([(60, DAY)], [(0, "start", "the day must start at 00:00; 00:00–01:00 is not covered")]),
        ([(0, 600)], [(0, "end", "the day must end at 24:00; 10:00–24:00 is not covered")]),
        ([(0, 480), (420, DAY)], [(1, "start", "overlaps periods[0], which ends at 08:00")]),
        ([(0, 480), (540, DAY)], [(1, "start", "leaves a gap 08:00–09:00 after periods[0]")]),
        ([(0, 480), (480, 480), (480, DAY)], [(1, "end", "must be after start 08:00, got 08:00")]),
        (
            [(h * 60, h * 60 + 60) for h in range(23)] + [(23 * 60, DAY)],
            [(None, "", "must have 1..14 periods, got 24")],
        ),
    ],
)
def test_day_table_problems(
    spans: list[tuple[int, int]], problems: list[tuple[int | None, str, str]]
) -> None:
    assert day_table_problems(spans) == problems


@pytest.mark.parametrize(
    ("months", "problems"),
    [
        ([list(range(1, 13))], []),
        ([[7, 8], [1, 2, 3, 4, 5, 6, 9, 10, 11, 12]], []),
        ([[7, 8], [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]], [(1, "month 8 is already in seasons[0]")]),
        ([[1, 1, *range(2, 13)]], [(0, "month 1 is already in this season")]),
        (
            [[7, 8], [1, 2, 3]],
            [(None, "months 4, 5, 6, 9, 10, 11, 12 are in no season; seasons must cover 1..12")],
        ),
    ],
)
def test_month_problems(months: list[list[int]], problems: list[tuple[int | None, str]]) -> None:
    assert month_problems(months) == problems


@st.composite
def day_partitions(draw: st.DrawFn, max_periods: int = 14) -> list[tuple[int, int]]:
    """A random tiling of 00:00–24:00 into 1..max_periods contiguous periods."""
    cuts = draw(st.sets(st.integers(1, DAY - 1), max_size=max_periods - 1))
    bounds = [0, *sorted(cuts), DAY]
    return list(pairwise(bounds))


@given(spans=day_partitions(), data=st.data())
def test_contiguous_partitions_are_accepted_and_map_every_minute(
    spans: list[tuple[int, int]], data: st.DataObject
) -> None:
    assert day_table_problems(spans) == []
    buckets = data.draw(
        st.lists(st.sampled_from(BUCKETS), min_size=len(spans), max_size=len(spans))
    )
    table = tuple(
        Period(start, end, bucket) for (start, end), bucket in zip(spans, buckets, strict=True)
    )
    for minute in range(DAY):
        owners = [period for period in table if period.start_minute <= minute < period.end_minute]
        assert len(owners) == 1
        assert bucket_in(table, minute) == owners[0].bucket


@given(spans=day_partitions(), data=st.data())
def test_removing_a_period_is_rejected(spans: list[tuple[int, int]], data: st.DataObject) -> None:
    if len(spans) < 2:
        spans = [(0, 720), (720, DAY)]
    index = data.draw(st.integers(0, len(spans) - 1))
    assert day_table_problems(spans[:index] + spans[index + 1 :]) != []


@given(spans=day_partitions(), data=st.data())
def test_shifting_one_side_of_a_boundary_is_rejected(
    spans: list[tuple[int, int]], data: st.DataObject
) -> None:
    if len(spans) < 2:
        spans = [(0, 720), (720, DAY)]
    index = data.draw(st.integers(0, len(spans) - 2))
    shift = data.draw(st.integers(-DAY, DAY).filter(lambda value: value != 0))
    start, end = spans[index]
    moved = list(spans)
    if data.draw(st.booleans()):
        moved[index] = (start, end + shift)  # move the end, leave the next start
    else:
        next_start, next_end = spans[index + 1]
        moved[index + 1] = (next_start + shift, next_end)
    assert day_table_problems(moved) != []


@given(spans=day_partitions(max_periods=40))
def test_more_than_14_periods_are_rejected(spans: list[tuple[int, int]]) -> None:
    assert (day_table_problems(spans) == []) == (len(spans) <= 14)
