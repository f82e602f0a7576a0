"""The alarm journal on real PostgreSQL: every transition, the audit, replays and outages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

import psycopg2
import pytest
from psycopg2.extensions import connection

from alarms.journal.queries import comment_thread
from alarms.journal.rows import CommentRow, JournalRow
from alarms.journal.store import AlarmJournal
from alarms.kinds import AlarmKind
from alarms.records import AlarmTransition
from alarms.states import AlarmState
from tests.alarms.journal_rig import JournalRig, SwitchableDatabase

UV = AlarmKind.UNDERVOLTAGE
S = AlarmState
LOW = {"u_a": [150.0, 220.0, 220.0], "u_b": [150.0, 220.0, 220.0], "u_c": [150.0, 220.0, 220.0]}


@pytest.fixture
def rig(db_url: str) -> Iterator[JournalRig]:
    made = JournalRig(db_url)
    yield made
    made.close()


def journaled(db: connection, rig: JournalRig) -> list[tuple[object, ...]]:
    db.rollback()
    with db.cursor() as cur:
        cur.execute(
            "SELECT kind, target, event, from_state, to_state, extract(epoch FROM at)::float8,"
            " value, limit_value, actor FROM alarm_transitions"
            " WHERE at >= to_timestamp(%s) AND at < to_timestamp(%s) ORDER BY id",
            rig.window,
        )
        return cur.fetchall()


def expected(records: list[AlarmTransition]) -> list[tuple[object, ...]]:
    return [
        (r.kind.label, r.target, r.event.label, r.from_state.label, r.to_state.label, r.at,
         r.value, r.limit, r.user)
        for r in records
    ]  # fmt: skip


def scenario(rig: JournalRig) -> None:
    """Raise undervoltage on M1, ack it, clear it, shelve it and comment on it."""
    rig.realtime(LOW)
    rig.clock.advance(5)
    rig.ops.ack("undervoltage", "M1", user="alice", channel="hmi")
    rig.clock.advance(5)
    rig.realtime()
    rig.clock.advance(5)
    rig.ops.shelve(UV, "M1", user="bob", channel="opcua", duration_s=600)
    rig.ops.comment(UV, "M1", "feeder checked, contractor on site", user="alice", channel="hmi")


def test_every_transition_of_a_scenario_is_journaled_in_order(
    rig: JournalRig, db: connection
) -> None:
    scenario(rig)
    assert [(r.event.label, r.to_state) for r in rig.log if r.target == "M1"] == [
        ("activate", S.UNACKED), ("ack", S.ACKED), ("clear", S.NORMAL), ("shelve", S.SHELVED),
    ]  # fmt: skip
    written = rig.journal.flush()
    assert written == len(rig.log) + 1 + 3  # transitions, the comment, three audited actions
    rows = journaled(db, rig)
    assert rows == expected(rig.log)
    raised = rows[0]
    assert raised[6] == 150.0 and raised[7] == pytest.approx(0.85 * 220.0)
    assert [r[8] for r in rows] == [None, "alice", None, "bob"]
    [note] = comment_thread(db, "undervoltage", "M1")
    assert (note["user"], note["text"]) == ("alice", "feeder checked, contractor on site")
    assert rig.journal.pending == 0


def test_each_operator_action_is_audited_with_user_and_channel(
    rig: JournalRig, db: connection
) -> None:
    scenario(rig)
    rig.ops.unshelve(UV, "M1", user="carol", channel="opcua")
    rig.ops.set_out_of_service(UV, "M1", user="carol", channel="hmi", reason="meter swap")
    rig.journal.flush()
    with db.cursor() as cur:
        cur.execute(
            "SELECT actor, channel, action, target, detail->>'kind', extract(epoch FROM at)"
            " FROM audit_log WHERE action LIKE 'alarm.%%' AND at >= to_timestamp(%s)"
            " AND at < to_timestamp(%s) ORDER BY id",
            rig.window,
        )
        audit = cur.fetchall()
        cur.execute(
            "SELECT detail FROM alarm_actions WHERE action = 'alarm.out_of_service'"
            " AND at >= to_timestamp(%s) AND at < to_timestamp(%s)",
            rig.window,
        )
        [(detail,)] = cur.fetchall()
    start = rig.start
    assert [a[:5] for a in audit] == [
        ("alice", "hmi", "alarm.ack", "M1", "undervoltage"),
        ("bob", "opcua", "alarm.shelve", "M1", "undervoltage"),
        ("alice", "hmi", "alarm.comment", "M1", "undervoltage"),
        ("carol", "opcua", "alarm.unshelve", "M1", "undervoltage"),
        ("carol", "hmi", "alarm.out_of_service", "M1", "undervoltage"),
    ]
    assert [float(a[5]) for a in audit] == [start + 5, start + 15, start + 15, start + 15,
                                            start + 15]  # fmt: skip
    assert detail == {"reason": "meter swap"}


def test_replaying_the_same_records_adds_nothing(
    rig: JournalRig, db: connection, db_url: str
) -> None:
    scenario(rig)
    rig.realtime(LOW)  # the shelved alarm stays quiet
    rig.journal.flush()
    before = journaled(db, rig)
    # A restarted process that journals the same transitions again (same keys).
    again = AlarmJournal(db_url, clock=rig.clock, site=rig.site)
    try:
        for record in rig.log:
            again.record(record)
        assert again.flush() == len(rig.log)
    finally:
        again.close()
    assert journaled(db, rig) == before
    # An ambiguous commit: the same rows (comment and audit included) written twice.
    rows: list[JournalRow] = [rig.journal.record(r) for r in rig.log[:2]]
    rows.append(rig.journal.audit("alarm.ack", user="dave", channel="hmi", kind=UV, target="M2"))
    rig.journal.flush()
    rig.journal.write(rows)
    rig.journal.flush()
    assert journaled(db, rig) == before
    with db.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM audit_log WHERE actor = 'dave' AND target = 'M2'"
            " AND at >= to_timestamp(%s) AND at < to_timestamp(%s)",
            rig.window,
        )
        assert cur.fetchone() == (1,)


def test_transitions_at_the_same_instant_keep_distinct_keys(
    rig: JournalRig, db: connection
) -> None:
    rig.realtime(LOW)
    rig.ops.ack(UV, "M1", user="alice", channel="hmi")
    rig.realtime()  # activate, ack and clear within one instant: seq 0, 1, 2
    rig.journal.flush()
    rows = journaled(db, rig)
    assert [r[2] for r in rows if r[1] == "M1"] == ["activate", "ack", "clear"]
    with db.cursor() as cur:
        cur.execute("SELECT seq FROM alarm_transitions WHERE target = 'M1'"
                    " AND at = to_timestamp(%s) ORDER BY id", (rig.start,))  # fmt: skip
        assert [s for (s,) in cur.fetchall()] == [0, 1, 2]


def kill_backend(db: connection, pid: int | None) -> None:
    assert pid is not None
    db.rollback()
    with db.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert cur.fetchone() == (True,)
    db.commit()


def test_a_killed_connection_is_replaced_without_losing_anything(
    rig: JournalRig, db: connection
) -> None:
    rig.realtime(LOW)
    rig.journal.flush()
    kill_backend(db, rig.journal.backend_pid)
    rig.clock.advance(1)
    rig.ops.ack(UV, "M1", user="alice", channel="hmi")
    assert rig.journal.flush() == 2  # the ack's transition and its audit row
    assert rig.journal.online
    assert journaled(db, rig) == expected(rig.log)


def test_an_outage_buffers_in_order_and_writes_once_back(
    db_url: str, db: connection, caplog: pytest.LogCaptureFixture
) -> None:
    database = SwitchableDatabase(db_url)
    rig = JournalRig(db_url, connect=database)
    try:
        rig.realtime(LOW)
        rig.journal.flush()
        database.up = False
        kill_backend(db, rig.journal.backend_pid)
        caplog.set_level(logging.INFO, logger="alarms.journal.store")
        for step in range(4):
            rig.clock.advance(2)
            rig.realtime() if step % 2 else rig.realtime(LOW)
            assert rig.journal.flush() == 0
        rig.ops.ack(UV, "M1", user="alice", channel="hmi")
        assert not rig.journal.online and rig.journal.pending > 0
        attempts = database.attempts
        rig.journal.flush()  # within retry_s: not even tried
        assert database.attempts == attempts
        rig.clock.advance(5)
        assert rig.journal.flush() == 0 and database.attempts == attempts + 1
        database.up = True
        rig.clock.advance(5)
        waiting = rig.journal.pending
        assert rig.journal.flush() == waiting
        assert rig.journal.online and rig.journal.pending == 0 and rig.journal.dropped == 0
        assert journaled(db, rig) == expected(rig.log)
        assert len(rig.log) == 5  # four of them made while PostgreSQL was away
        messages = [r.getMessage() for r in caplog.records]
        assert sum("unreachable" in m for m in messages) == 1
        assert sum("PostgreSQL back" in m for m in messages) == 1
    finally:
        rig.close()


def test_past_the_bound_the_oldest_are_dropped_counted_and_recorded(
    db_url: str, db: connection, caplog: pytest.LogCaptureFixture
) -> None:
    database = SwitchableDatabase(db_url)
    database.up = False
    rig = JournalRig(db_url, connect=database, max_pending=3)
    try:
        caplog.set_level(logging.INFO, logger="alarms.journal.store")
        for _ in range(3):
            rig.realtime(LOW)
            rig.clock.advance(1)
            rig.realtime()
            rig.clock.advance(1)
        assert len(rig.log) == 6
        assert rig.journal.pending == 3 and rig.journal.dropped == 3
        assert rig.journal.flush() == 0
        database.up = True
        rig.clock.advance(10)
        assert rig.journal.flush() == 3
        assert journaled(db, rig) == expected(rig.log[3:])
        with db.cursor() as cur:
            cur.execute("SELECT detail->>'count' FROM audit_log WHERE action ="
                        " 'alarm.journal.dropped' AND at >= to_timestamp(%s)"
                        " AND at < to_timestamp(%s)", rig.window)  # fmt: skip
            assert cur.fetchall() == [("3",)]
        dropped_logs = [r for r in caplog.records if "dropped" in r.getMessage()]
        assert [r.levelno for r in dropped_logs] == [logging.ERROR, logging.WARNING]
    finally:
        rig.close()


def test_a_row_postgresql_refuses_is_left_out_and_counted(rig: JournalRig, db: connection) -> None:
    rig.realtime(LOW)
    bad = CommentRow("undervoltage", "M1", "ENT", rig.clock.time(), 7, "alice", "")
    rig.journal.write([bad])
    rig.clock.advance(1)
    rig.realtime()
    assert rig.journal.flush() == 2
    assert rig.journal.rejected == 1
    assert journaled(db, rig) == expected(rig.log)


def test_journal_settings_are_checked(db_url: str) -> None:
    clock = JournalRig.__mro__  # any object: the checks fire before the clock is used
    with pytest.raises(ValueError, match="max_pending"):
        AlarmJournal(db_url, clock=clock, max_pending=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        AlarmJournal(db_url, clock=clock, batch_size=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry_s"):
        AlarmJournal(db_url, clock=clock, retry_s=float("nan"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="database"):
        AlarmJournal(42, clock=clock)  # type: ignore[arg-type]


def test_unreachable_at_start_the_engine_still_runs(db_url: str) -> None:
    rig = JournalRig(db_url, connect=lambda: psycopg2.connect("postgresql://127.0.0.1:1/x",
                                                              connect_timeout=1))  # fmt: skip
    try:
        rig.realtime(LOW)
        assert rig.journal.flush() == 0
        assert not rig.journal.online and rig.journal.pending == len(rig.log) > 0
        assert rig.ops.ack(UV, "M1", user="alice", channel="hmi")[0]["to_state"] == "acked"
    finally:
        rig.close()


def test_run_flushes_until_stopped_and_once_more(
    rig: JournalRig, db: connection, run: Callable[[Awaitable[None]], None]
) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(rig.journal.run(stop, interval_s=0.01))
        rig.realtime(LOW)
        stop.set()
        await task

    run(main())
    assert rig.journal.pending == 0
    assert journaled(db, rig) == expected(rig.log)
