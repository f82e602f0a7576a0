"""Routing by area and priority, and the on-call rota at a local time (across midnight too)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alarms.notify.routing import Router
from config.model import OnCallShift, Route

from .conftest import event, site_with

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


DORM = Route("dorm", "webhook", "http://h/dorm", "json", ("DORM",), "medium")
ALL_HIGH = Route("all-high", "email", "lead@example.com", None, (), "high")
SMS = Route("sms", "sms", "http://h/sms", None, ("ENT",), "low", contacts=("13900000000",))
ROUTES = (DORM, ALL_HIGH, SMS)


@pytest.mark.parametrize(
    ("area", "priority", "expected"),
    [
        ("DORM", "low", ()),
        ("DORM", "medium", ("dorm",)),
        ("DORM", "high", ("dorm", "all-high")),
        ("ENT", "low", ("sms",)),
        ("ENT", "urgent", ("all-high", "sms")),
        ("PUB", "medium", ()),
        ("PUB", "high", ("all-high",)),
    ],
)
def test_routes_by_area_and_priority(area: str, priority: str, expected: tuple[str, ...]) -> None:
    router = Router(site_with(ROUTES))
    found = router.routes_for(event(area=area, priority=priority))
    assert tuple(route.id for route in found) == expected


NIGHT = OnCallShift("all-high", ("night@example.com",), (0, 1, 2, 3, 4), 18 * 60, 8 * 60)
DAY = OnCallShift("sms", ("13800000001", "13800000002"), (0, 1, 2, 3, 4), 8 * 60, 18 * 60)
WEEKEND = OnCallShift("sms", ("13800000009",), (5, 6), 0, 24 * 60)


@pytest.mark.parametrize(
    ("moment", "route", "expected"),
    [
        ("2024-03-04 07:59", "all-high", ("lead@example.com",)),  # Monday before any shift
        ("2024-03-04 18:00", "all-high", ("night@example.com",)),  # Monday night starts
        ("2024-03-05 02:30", "all-high", ("night@example.com",)),  # Tuesday, Monday's night
        ("2024-03-05 08:00", "all-high", ("lead@example.com",)),  # the night shift ended
        ("2024-03-09 02:30", "all-high", ("night@example.com",)),  # Saturday: Friday's night
        ("2024-03-10 02:30", "all-high", ("lead@example.com",)),  # Sunday: no Saturday shift
        ("2024-03-04 03:00", "all-high", ("lead@example.com",)),  # Monday: Sunday had none
        ("2024-03-06 12:00", "sms", ("13800000001", "13800000002")),
        ("2024-03-06 19:00", "sms", ("13900000000",)),  # outside: the route's own phones
        ("2024-03-09 23:59", "sms", ("13800000009",)),
        ("2024-03-11 00:00", "sms", ("13900000000",)),  # Monday 00:00, weekend shift over
    ],
)
def test_on_call_at_a_local_time(moment: str, route: str, expected: tuple[str, ...]) -> None:
    router = Router(site_with(ROUTES, (NIGHT, DAY, WEEKEND)))
    recipients = router.recipients(router.route(route), at(moment))
    assert tuple(r.address for r in recipients) == expected


def test_webhook_mentions_the_on_call_phones() -> None:
    shift = OnCallShift("dorm", ("13800000005",), (2,), 0, 24 * 60)
    router = Router(site_with(ROUTES, (shift,)))
    [wednesday] = router.recipients(DORM, at("2024-03-06 10:00"))
    [thursday] = router.recipients(DORM, at("2024-03-07 10:00"))
    assert (wednesday.address, wednesday.mentions) == ("http://h/dorm", ("13800000005",))
    assert (thursday.address, thursday.mentions) == ("http://h/dorm", ())


@given(
    days=st.sets(st.integers(0, 6), min_size=1).map(lambda s: tuple(sorted(s))),
    start=st.integers(0, 1439),
    length=st.integers(1, 1439),
    weekday=st.integers(0, 6),
    minute=st.integers(0, 1439),
)
def test_a_shift_covers_exactly_its_minutes(
    days: tuple[int, ...], start: int, length: int, weekday: int, minute: int
) -> None:
    end = start + length if start + length <= 1440 else (start + length) % 1440
    shift = OnCallShift("r", ("1",), days, start, end)
    week_minute = weekday * 1440 + minute
    covered = any(0 <= (week_minute - (day * 1440 + start)) % (7 * 1440) < length for day in days)
    assert shift.covers(weekday, minute) == covered
