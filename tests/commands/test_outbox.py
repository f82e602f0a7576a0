"""The PostgreSQL outbox: enqueue, idempotency, caller transactions, audit, queries."""

from __future__ import annotations

import threading

import psycopg2
import pytest

from config import Site
from server.clock import ManualClock
from server.commands import (
    CommandEvent,
    CommandNotFound,
    CommandOutbox,
    Enqueued,
    IdempotencyConflict,
    Target,
    TransitionRefused,
    derived_key,
)
from tests.commands.fake_meters import POLICY, Connection

PRICES = {"sharp_e4": 15000, "peak_e4": 12000, "flat_e4": 8000, "valley_e4": 4000}


def _count(conn: Connection, table: str, where: str = "TRUE", args: tuple[object, ...] = ()) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table} WHERE {where}", args)
        row = cur.fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def test_enqueue_one_meter(outbox: CommandOutbox, clean_db: Connection, clock: ManualClock) -> None:
    seen: list[CommandEvent] = []
    outbox.events.subscribe(seen.append)
    result = outbox.enqueue("relay_open", {}, "E0001", actor="alice", channel="hmi")
    assert result.created
    (command,) = result.commands
    assert (command.meter, command.kind, command.state) == ("E0001", "relay_open", "pending")
    assert (command.attempts, command.max_attempts) == (0, POLICY.max_attempts)
    assert command.next_attempt_at == command.created_at == clock.time()
    assert (command.actor, command.channel) == ("alice", "hmi")
    assert [(e.event, e.from_state, e.to_state) for e in seen] == [("enqueue", None, "pending")]
    assert outbox.history(command_id=command.id) == seen
    with clean_db.cursor() as cur:
        cur.execute(
            "SELECT actor, channel, action, target, detail->>'request_id',"
            " extract(epoch FROM at) FROM audit_log ORDER BY id DESC LIMIT 1"
        )
        row = cur.fetchone()
    assert row is not None
    assert row[:5] == ("alice", "hmi", "command.relay_open", "E0001", str(result.request_id))
    assert float(row[5]) == clock.time()


@pytest.mark.parametrize(
    ("target", "meters"),
    [
        (Target.in_area("DORM"), ["D0001", "D0002", "G0002"]),
        (Target.meters(["P0001", "E0003"]), ["E0003", "P0001"]),
        (Target.matching(area="ENT", billing="prepaid"), ["E0001", "E0003", "G0001"]),
    ],
)
def test_enqueue_batch_one_row_per_meter(
    outbox: CommandOutbox, clean_db: Connection, target: Target, meters: list[str]
) -> None:
    result = outbox.enqueue("price_set", PRICES, target, actor="bob", channel="api")
    assert [c.meter for c in result.commands] == meters
    assert {c.request_id for c in result.commands} == {result.request_id}
    summary = outbox.request(result.request_id)
    assert summary.meter_count == len(meters)
    assert summary.states == {"pending": len(meters)}
    assert summary.target == target.describe()
    assert _count(clean_db, "command_events", "event = 'enqueue'") == len(meters)
    audited = _count(
        clean_db,
        "audit_log",
        "target = %s AND detail->>'key' = %s",
        (f"batch:{result.request_id}", result.key),
    )
    assert audited == 1


def test_same_key_twice_is_one_request(outbox: CommandOutbox, clean_db: Connection) -> None:
    first = outbox.enqueue(
        "relay_close", {}, Target.in_area("DORM"), actor="a", channel="hmi", key="form-1"
    )
    again = outbox.enqueue(
        "relay_close", {}, Target.in_area("DORM"), actor="a", channel="hmi", key="form-1"
    )
    assert not again.created and again.events == ()
    assert again.request_id == first.request_id
    assert [c.id for c in again.commands] == [c.id for c in first.commands]
    assert _count(clean_db, "commands") == 3
    assert _count(clean_db, "command_requests") == 1


def test_same_key_for_another_command_is_refused(outbox: CommandOutbox) -> None:
    outbox.enqueue("relay_close", {}, "E0001", actor="a", channel="hmi", key="k1")
    with pytest.raises(IdempotencyConflict, match="key 'k1' was already used"):
        outbox.enqueue("relay_open", {}, "E0001", actor="a", channel="hmi", key="k1")


def test_without_a_key_every_call_is_new(outbox: CommandOutbox) -> None:
    one = outbox.enqueue("time_sync", {}, "E0001", actor="a", channel="cli")
    two = outbox.enqueue("time_sync", {}, "E0002", actor="a", channel="cli")
    assert one.key != two.key and one.request_id != two.request_id
    assert derived_key("posting", 17, "E0001") == derived_key("posting", 17, "E0001")
    assert derived_key("posting", 17, "E0001") != derived_key("posting", 18, "E0001")


def test_same_key_from_two_connections_at_once_is_one_request(
    clean_db: Connection, second_conn: Connection, site: Site, clock: ManualClock, db_url: str
) -> None:
    barrier = threading.Barrier(2)
    results: list[Enqueued] = []
    errors: list[Exception] = []

    def enqueue(conn: Connection) -> None:
        box = CommandOutbox(conn, site, clock=clock, policy=POLICY)
        try:
            barrier.wait(timeout=5)
            results.append(
                box.enqueue(
                    "relay_open", {}, Target.in_area("ENT"), actor="x", channel="api", key="dup"
                )
            )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    third = psycopg2.connect(db_url, connect_timeout=5)
    try:
        threads = [threading.Thread(target=enqueue, args=(c,)) for c in (second_conn, third)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        third.close()
    assert not errors
    assert sorted(r.created for r in results) == [False, True]
    assert results[0].request_id == results[1].request_id
    assert _count(clean_db, "commands") == 4
    assert _count(clean_db, "command_requests") == 1


def test_enqueue_in_the_callers_transaction(
    outbox: CommandOutbox, clean_db: Connection, second_conn: Connection
) -> None:
    seen: list[CommandEvent] = []
    outbox.events.subscribe(seen.append)
    with second_conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE postings (meter text)")
        cur.execute("INSERT INTO postings VALUES ('E0001')")
        outbox.enqueue("relay_open", {}, "E0001", actor="prepaid", channel="system", cur=cur)
    second_conn.rollback()
    assert _count(clean_db, "commands") == 0
    assert _count(clean_db, "command_requests") == 0
    with second_conn.cursor() as cur:
        result = outbox.enqueue(
            "relay_open", {}, "E0001", actor="prepaid", channel="system", key="posting-9", cur=cur
        )
        assert _count(clean_db, "commands") == 0  # not visible before the caller commits
    second_conn.commit()
    assert seen == []  # the caller publishes after its commit
    outbox.publish(result.events)
    assert [e.event for e in seen] == ["enqueue"]
    assert outbox.get(result.commands[0].id).state == "pending"


@pytest.mark.parametrize(
    ("kind", "params", "target", "message"),
    [
        ("relay_open", {}, "NOPE", "target.ids: unknown meter.*'NOPE'"),
        ("price_set", {**PRICES, "sharp_e4": -5}, "E0001", "sharp_e4 must not be negative"),
        (
            "forced_mode_on",
            {"relay": "closed", "reason": "x", "expires_at": 1_600_000_000},
            "E0001",
            "expires_at .* is in the past",
        ),
        ("relay_wiggle", {}, "E0001", "kind: unknown command kind"),
        ("power_limit_set", {"kw": "700"}, "E0001", "power_limit_set: .* meters cannot take it"),
    ],
)
def test_bad_requests_name_the_field_and_store_nothing(
    outbox: CommandOutbox,
    clean_db: Connection,
    kind: str,
    params: dict[str, object],
    target: str,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        outbox.enqueue(kind, params, target, actor="a", channel="hmi")
    assert _count(clean_db, "command_requests") == 0


@pytest.mark.parametrize(
    ("actor", "channel", "key", "message"),
    [
        ("", "hmi", None, "actor must be a non-empty name"),
        ("a", "fax", None, "channel must be one of"),
        ("a", "hmi", "", "key must be non-empty text"),
    ],
)
def test_bad_actor_channel_or_key(
    outbox: CommandOutbox, actor: str, channel: str, key: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        outbox.enqueue("relay_open", {}, "E0001", actor=actor, channel=channel, key=key)


def test_newer_command_supersedes_pending_one_of_the_same_slot(outbox: CommandOutbox) -> None:
    opened = outbox.enqueue("relay_open", {}, "E0001", actor="prepaid", channel="system")
    priced = outbox.enqueue("price_set", PRICES, "E0001", actor="a", channel="hmi")
    closed = outbox.enqueue("relay_close", {}, "E0001", actor="prepaid", channel="system")
    assert outbox.get(opened.commands[0].id).state == "superseded"
    assert outbox.get(priced.commands[0].id).state == "pending"
    assert [e.event for e in closed.events] == ["supersede", "enqueue"]


def test_cancel_pending_and_refuse_the_rest(outbox: CommandOutbox, clean_db: Connection) -> None:
    command = outbox.enqueue("time_sync", {}, "E0001", actor="a", channel="hmi").commands[0]
    cancelled = outbox.cancel(command.id, actor="boss", channel="hmi", reason="wrong meter")
    assert cancelled.state == "cancelled" and cancelled.finished_at is not None
    with pytest.raises(TransitionRefused, match=r"cannot cancel command \d+: it is cancelled"):
        outbox.cancel(command.id, actor="boss", channel="hmi")
    with pytest.raises(CommandNotFound, match="no command 999"):
        outbox.cancel(999, actor="boss", channel="hmi")
    with clean_db.cursor() as cur:
        cur.execute(
            "SELECT actor, target, detail->>'command_id', detail->>'reason' FROM audit_log"
            " WHERE action = 'command.cancel' ORDER BY id DESC LIMIT 1"
        )
        assert cur.fetchone() == ("boss", "E0001", str(command.id), "wrong meter")


def test_reissue_of_a_pending_command_is_refused(outbox: CommandOutbox) -> None:
    command = outbox.enqueue("time_sync", {}, "E0001", actor="a", channel="hmi").commands[0]
    with pytest.raises(TransitionRefused, match="only a failed command can be re-issued"):
        outbox.reissue(command.id, actor="a", channel="hmi")


def test_queries_by_meter_state_batch_and_time(outbox: CommandOutbox, clock: ManualClock) -> None:
    early = outbox.enqueue("time_sync", {}, Target.in_area("ENT"), actor="a", channel="hmi")
    clock.advance(60)
    late = outbox.enqueue(
        "alarm1_set", {"fen": 100}, Target.in_area("DORM"), actor="a", channel="hmi"
    )
    outbox.cancel(late.commands[0].id, actor="a", channel="hmi")
    assert outbox.find(meter="E0001").total == 1
    assert [c.meter for c in outbox.find(state="cancelled").items] == ["D0001"]
    assert outbox.find(request_id=early.request_id).total == 4
    assert outbox.find(since=clock.time()).total == 3
    assert outbox.find(until=clock.time()).total == 4
    first = outbox.find(limit=5)
    second = outbox.find(limit=5, offset=5)
    assert (first.total, len(first.items), len(second.items)) == (7, 5, 2)
    ids = [c.id for c in first.items + second.items]
    assert ids == sorted(ids, reverse=True)
    with pytest.raises(ValueError, match=r"limit must be 1\.\.1000"):
        outbox.find(limit=0)
    with pytest.raises(ValueError, match="state must be among"):
        outbox.find(state="lost")


def test_forced_modes_follow_the_latest_command_and_the_clock(
    outbox: CommandOutbox, clock: ManualClock
) -> None:
    until = clock.time() + 3600
    on = {"relay": "closed", "reason": "医院保电", "expires_at": until}
    outbox.enqueue(
        "forced_mode_on", on, Target.meters(["E0001", "E0002"]), actor="boss", channel="hmi"
    )
    modes = outbox.forced_modes()
    assert set(modes) == {"E0001", "E0002"}
    assert (modes["E0001"].relay, modes["E0001"].reason, modes["E0001"].expires_at) == (
        "closed",
        "医院保电",
        until,
    )
    assert set(outbox.forced_modes(["E0002", "E0003"])) == {"E0002"}
    outbox.enqueue("forced_mode_off", {}, "E0002", actor="boss", channel="hmi")
    assert set(outbox.forced_modes()) == {"E0001"}
    clock.advance(3600)
    assert outbox.forced_modes() == {}


def test_a_connection_lost_to_a_restart_is_replaced(
    db_url: str, site: Site, clock: ManualClock, second_conn: Connection
) -> None:
    def connect() -> Connection:
        return psycopg2.connect(db_url, connect_timeout=5)

    outbox = CommandOutbox(connect(), site, clock=clock, reconnect=connect)
    try:
        first = outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi").commands[0]
        with outbox.transaction() as cur:
            cur.execute("SELECT pg_backend_pid()")
            row = cur.fetchone()
        assert row is not None
        pid = row[0]
        with second_conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        second_conn.commit()
        with pytest.raises((psycopg2.OperationalError, psycopg2.InterfaceError)):
            outbox.get(first.id)
        assert outbox.get(first.id).state == "pending"  # the next call reconnected
    finally:
        outbox.close()
