"""Alarm history from the journal: every filter, the time window, paging and bad filters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg2.extensions import connection

from alarms.journal.queries import actions, comment_thread, history
from tests.alarms.journal_rig import JournalRig

LOW_M1_D1 = {"u_a": [150.0, 220.0, 150.0], "u_b": [150.0, 220.0, 220.0],
             "u_c": [150.0, 220.0, 220.0]}  # fmt: skip


@pytest.fixture
def rig(db_url: str) -> Iterator[JournalRig]:
    """Undervoltage on M1 (ENT, GW1) and D1 (DORM, GW2), arrears on M2; ack; all clear."""
    made = JournalRig(db_url)
    made.realtime(LOW_M1_D1)  # t0
    made.clock.advance(10)
    made.balance([500, -100, 500])  # t0+10
    made.clock.advance(10)
    made.ops.ack("undervoltage", "M1", user="alice", channel="hmi")  # t0+20
    made.ops.comment("undervoltage", "M1", "first", user="alice", channel="hmi")
    made.clock.advance(10)
    made.realtime()  # t0+30
    made.balance([500, 500, 500])
    made.ops.comment("undervoltage", "M1", "second", user="bob", channel="opcua")
    made.journal.flush()
    yield made
    made.close()


def page(db: connection, rig: JournalRig, **filters: object) -> list[tuple[str, str, str]]:
    since, until = rig.window
    found = history(db, since=since, until=until, newest_first=False, **filters)  # type: ignore[arg-type]
    return [(i["kind"], i["target"], i["event"]) for i in found.items]


def test_the_whole_window_in_time_order(rig: JournalRig, db: connection) -> None:
    assert page(db, rig) == [
        ("undervoltage", "M1", "activate"),
        ("undervoltage", "D1", "activate"),
        ("arrears", "M2", "activate"),
        ("undervoltage", "M1", "ack"),
        ("undervoltage", "M1", "clear"),
        ("undervoltage", "D1", "clear"),
        ("arrears", "M2", "clear"),
    ]
    first = history(db, since=rig.start, until=rig.start + 1, newest_first=False).items[0]
    assert first["at"] == rig.start and first["area"] == "ENT" and first["gateway"] == "GW1"
    assert (first["priority"], first["value"], first["user"]) == ("high", 150.0, None)


def test_filters(rig: JournalRig, db: connection) -> None:
    assert page(db, rig, area="DORM") == [
        ("undervoltage", "D1", "activate"), ("undervoltage", "D1", "clear"),
    ]  # fmt: skip
    assert page(db, rig, priority="medium") == [
        ("arrears", "M2", "activate"), ("arrears", "M2", "clear"),
    ]  # fmt: skip
    assert page(db, rig, state="acked") == [("undervoltage", "M1", "ack")]
    assert page(db, rig, state=["rtn_unacked"]) == [
        ("undervoltage", "D1", "clear"), ("arrears", "M2", "clear"),
    ]  # fmt: skip
    assert page(db, rig, kind="arrears", event="activate") == [("arrears", "M2", "activate")]
    assert page(db, rig, target="M1", area="ENT") == [
        ("undervoltage", "M1", "activate"), ("undervoltage", "M1", "ack"),
        ("undervoltage", "M1", "clear"),
    ]  # fmt: skip
    assert {t for _, t, _ in page(db, rig, gateway="GW1")} == {"M1", "M2"}
    assert page(db, rig, area="ENT", kind="undervoltage", state="unacked") == [
        ("undervoltage", "M1", "activate"),
    ]
    assert page(db, rig, area="NOWHERE") == []


def test_time_window_is_inclusive_then_exclusive(rig: JournalRig, db: connection) -> None:
    found = history(db, since=rig.start + 10, until=rig.start + 30, newest_first=False)
    assert [(i["kind"], i["event"], i["at"] - rig.start) for i in found.items] == [
        ("arrears", "activate", 10.0), ("undervoltage", "ack", 20.0),
    ]  # fmt: skip


def test_paging_and_sorting(rig: JournalRig, db: connection) -> None:
    since, until = rig.window
    everything = page(db, rig)
    newest = history(db, since=since, until=until, limit=3)
    assert newest.total == 7 and len(newest.items) == 3
    assert [(i["kind"], i["target"], i["event"]) for i in newest.items] == everything[::-1][:3]
    pages = [history(db, since=since, until=until, limit=3, offset=o, newest_first=False)
             for o in (0, 3, 6)]  # fmt: skip
    joined = [(i["kind"], i["target"], i["event"]) for p in pages for i in p.items]
    assert joined == everything
    assert pages[2].as_dict()["total"] == 7 and len(pages[2].items) == 1


def test_comment_thread_and_actions(rig: JournalRig, db: connection) -> None:
    since, until = rig.window
    # The session database holds other tests' threads on M1 too: keep this rig's window.
    thread = [c for c in comment_thread(db, "undervoltage", "M1") if since <= c["at"] < until]
    assert [(c["user"], c["text"], c["at"] - rig.start) for c in thread] == [
        ("alice", "first", 20.0), ("bob", "second", 30.0),
    ]  # fmt: skip
    done = actions(db, target="M1", since=since, until=until)
    assert [(a["action"], a["user"], a["channel"]) for a in done] == [
        ("alarm.comment", "bob", "opcua"), ("alarm.comment", "alice", "hmi"),
        ("alarm.ack", "alice", "hmi"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"limit": 0}, "limit must be 1..1000"),
        ({"limit": 5000}, "limit must be 1..1000"),
        ({"offset": -1}, "offset must be 0 or more"),
        ({"priority": "extreme"}, "priority: unknown 'extreme'"),
        ({"state": "bogus"}, "state: unknown 'bogus'"),
        ({"event": "explode"}, "event: unknown 'explode'"),
        ({"kind": "nope"}, "unknown alarm kind 'nope'"),
        ({"area": ""}, "area: give one or more non-empty names"),
        ({"since": 20.0, "until": 10.0}, "since .* must be earlier than until"),
        ({"since": float("nan")}, "since must be Unix seconds"),
    ],
)
def test_bad_filters_are_named(db: connection, filters: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        history(db, **filters)  # type: ignore[arg-type]
