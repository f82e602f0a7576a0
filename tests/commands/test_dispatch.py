"""The dispatcher over the real outbox: confirm, retry, fail, re-issue, crash recovery."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg2
import pytest

from config import Site
from server.clock import ManualClock
from server.commands import (
    Command,
    CommandDispatcher,
    CommandEvent,
    CommandOutbox,
    DispatchReport,
    LeaseLost,
    Target,
    Worklist,
    derived_key,
)
from tests.commands.fake_meters import POLICY, Connection, FakeMeters, Run

TIMEOUT = 0.05  # seconds of real time a hanging meter costs; the clock is a ManualClock


def _dispatcher(
    outbox: CommandOutbox, meters: FakeMeters, owner: str = "d1", **options: Any
) -> CommandDispatcher:
    return CommandDispatcher(outbox, meters, owner=owner, attempt_timeout_s=TIMEOUT, **options)


def _events(outbox: CommandOutbox, command_id: int) -> list[str]:
    return [e.event for e in outbox.history(command_id=command_id)]


def test_a_command_is_written_read_back_and_done(
    run: Run, outbox: CommandOutbox, meters: FakeMeters
) -> None:
    command = outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi").commands[0]
    report = run(_dispatcher(outbox, meters).run_once())
    assert (report.claimed, report.done) == (1, 1)
    done = outbox.get(command.id)
    assert (done.state, done.attempts, done.lease_owner) == ("done", 1, None)
    assert meters.writes == [command.id] and meters.reads == [command.id]
    assert _events(outbox, command.id) == ["enqueue", "claim", "sent", "confirm"]
    assert run(_dispatcher(outbox, meters).run_once()).claimed == 0


def test_retries_back_off_by_the_clock_then_succeed(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock
) -> None:
    command = outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi").commands[0]
    meters.execute_plan["E0001"] = ["refuse", "hang"]
    dispatcher = _dispatcher(outbox, meters)
    assert run(dispatcher.run_once()).retried == 1
    waiting = outbox.get(command.id)
    assert (waiting.state, waiting.attempts, waiting.last_error) == ("pending", 1, "meter busy")
    assert waiting.next_attempt_at == clock.time() + 10.0
    clock.advance(9.9)
    assert run(dispatcher.run_once()).claimed == 0
    clock.advance(0.1)
    assert run(dispatcher.run_once()).retried == 1  # attempt 2 hangs: the timeout
    second = outbox.get(command.id)
    assert second.last_error == f"no answer within {TIMEOUT:g} s"
    assert second.next_attempt_at == clock.time() + 20.0
    clock.advance(20.0)
    assert run(dispatcher.run_once()).done == 1
    assert outbox.get(command.id).attempts == 3
    # Attempts 2 and 3 read back first (an earlier write may have landed), then wrote.
    assert meters.reads == [command.id] * 3
    assert meters.writes == [command.id] * 3


def test_a_retry_that_already_landed_is_not_written_again(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock
) -> None:
    command = outbox.enqueue("relay_close", {}, "E0001", actor="op", channel="hmi").commands[0]
    meters.confirm_plan["E0001"] = ["error"]  # the write lands but the read-back fails
    dispatcher = _dispatcher(outbox, meters)
    assert run(dispatcher.run_once()).retried == 1
    clock.advance(10.0)
    assert run(dispatcher.run_once()).done == 1
    assert meters.writes == [command.id]
    assert _events(outbox, command.id)[-1] == "confirm"
    assert outbox.history(command_id=command.id)[-1].detail == {"how": "read back before re-send"}


def test_a_command_that_can_never_be_read_back_fails_at_once(
    run: Run, outbox: CommandOutbox, meters: FakeMeters
) -> None:
    command = outbox.enqueue("relay_close", {}, "E0001", actor="op", channel="hmi").commands[0]
    meters.confirm_plan["E0001"] = ["never"]
    assert run(_dispatcher(outbox, meters).run_once()).failed == 1
    failed = outbox.get(command.id)
    assert failed.state == "failed"
    assert failed.last_error == "read-back: register reads as another quantity"
    assert meters.writes == [command.id]


def test_failure_after_max_attempts_keeps_the_reason(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock
) -> None:
    command = outbox.enqueue("price_set", _PRICES, "E0001", actor="op", channel="hmi").commands[0]
    meters.execute_plan["E0001"] = ["drop"] * 3  # acknowledged, never applied
    dispatcher = _dispatcher(outbox, meters)
    for _ in range(POLICY.max_attempts):
        run(dispatcher.run_once())
        clock.advance(POLICY.cap_s)
    failed = outbox.get(command.id)
    assert (failed.state, failed.attempts) == ("failed", 3)
    assert failed.last_error == "gave up after 3 attempt(s): read-back does not show the new value"
    assert run(dispatcher.run_once()).claimed == 0


def test_a_non_retryable_error_fails_at_once(
    run: Run, outbox: CommandOutbox, meters: FakeMeters
) -> None:
    command = outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi").commands[0]
    meters.execute_plan["E0001"] = ["reject"]
    assert run(_dispatcher(outbox, meters).run_once()).failed == 1
    assert outbox.get(command.id).last_error == "illegal data value"


def test_an_executor_crash_is_a_retry_not_a_dead_loop(
    run: Run, outbox: CommandOutbox, meters: FakeMeters
) -> None:
    command = outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi").commands[0]
    meters.execute_plan["E0001"] = ["raise"]
    assert run(_dispatcher(outbox, meters).run_once()).retried == 1
    assert "RuntimeError('link closed')" in str(outbox.get(command.id).last_error)


def _fail(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock, command_id: int
) -> None:
    meters.execute_plan[outbox.get(command_id).meter] = ["reject"]
    run(_dispatcher(outbox, meters).run_once())
    assert outbox.get(command_id).state == "failed"


def test_reissue_once_and_twice_is_one_new_effect(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock, clean_db: Connection
) -> None:
    seen: list[CommandEvent] = []
    outbox.events.subscribe(seen.append)
    command = outbox.enqueue("relay_open", {}, "E0003", actor="op", channel="hmi").commands[0]
    _fail(run, outbox, meters, clock, command.id)
    first = outbox.reissue(command.id, actor="finance", channel="hmi")
    again = outbox.reissue(command.id, actor="finance", channel="hmi")
    assert first.created and not again.created
    assert first.command.id == again.command.id != command.id
    assert (first.command.reissue_of, first.command.actor) == (command.id, "finance")
    assert first.original.state == "reissued"
    assert outbox.find(meter="E0003").total == 2
    assert [e.event for e in seen[-2:]] == ["reissue", "enqueue"]
    assert run(_dispatcher(outbox, meters).run_once()).done == 1
    assert meters.writes.count(first.command.id) == 1
    with pytest.raises(ValueError, match="only a failed command can be re-issued"):
        outbox.reissue(first.command.id, actor="finance", channel="hmi")
    with clean_db.cursor() as cur:
        cur.execute(
            "SELECT actor, channel, detail->>'new_command_id' FROM audit_log"
            " WHERE action = 'command.reissue' ORDER BY id DESC LIMIT 1"
        )
        assert cur.fetchone() == ("finance", "hmi", str(first.command.id))


def test_reissue_is_refused_when_a_newer_command_sets_the_same(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock
) -> None:
    old = outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi").commands[0]
    _fail(run, outbox, meters, clock, old.id)
    outbox.enqueue("relay_close", {}, "E0001", actor="op", channel="hmi")
    with pytest.raises(ValueError, match=r"command \d+ \(relay_close, pending\) .* is newer"):
        outbox.reissue(old.id, actor="op", channel="hmi")


def test_reissue_of_an_expired_forced_mode_is_refused(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock
) -> None:
    on = {"relay": "closed", "reason": "r", "expires_at": clock.time() + 60}
    forced = outbox.enqueue("forced_mode_on", on, "E0001", actor="op", channel="hmi").commands[0]
    _fail(run, outbox, meters, clock, forced.id)
    clock.advance(61)
    with pytest.raises(ValueError, match=r"expires_at \d+ is in the past"):
        outbox.reissue(forced.id, actor="op", channel="hmi")


def _crash_after_send(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock, *, landed: bool
) -> Command:
    """A dispatcher that claimed, wrote and recorded `sent`, then died."""
    command = outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi").commands[0]
    work = Worklist(outbox)
    assert len(work.claim("dead", lease_s=30.0)) == 1
    work.mark_sent(command.id, "dead")
    if landed:
        meters.apply(command)
    clock.advance(31.0)
    return command


def test_a_crashed_send_that_landed_is_confirmed_not_resent(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock
) -> None:
    command = _crash_after_send(run, outbox, meters, clock, landed=True)
    report = run(_dispatcher(outbox, meters, owner="heir").run_once())
    assert (report.claimed, report.done) == (1, 1)
    assert meters.writes == []
    assert _events(outbox, command.id) == ["enqueue", "claim", "sent", "resume", "confirm"]
    assert outbox.get(command.id).attempts == 1


def test_a_crashed_send_that_did_not_land_is_sent_once_more(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock
) -> None:
    command = _crash_after_send(run, outbox, meters, clock, landed=False)
    assert run(_dispatcher(outbox, meters, owner="heir").run_once()).done == 1
    assert meters.writes == [command.id]
    assert meters.reads == [command.id, command.id]  # read back first, then after the write
    assert _events(outbox, command.id)[3:] == ["resume", "resend", "sent", "confirm"]
    assert outbox.get(command.id).attempts == 2
    with pytest.raises(LeaseLost):
        Worklist(outbox).mark_sent(command.id, "dead")  # the dead owner's late word is refused


def test_prepaid_posting_then_crash_before_recording_the_send_is_sent_exactly_once(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock, second_conn: Connection
) -> None:
    # The prepaid engine's transaction: a ledger posting and its relay command together.
    with second_conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE ledger (meter text, fen bigint)")
        cur.execute("INSERT INTO ledger VALUES ('E0003', -1250)")
        key = derived_key("arrears", "posting-77")
        enqueued = outbox.enqueue(
            "relay_open", {}, "E0003", actor="prepaid", channel="system", key=key, cur=cur
        )
    second_conn.commit()
    command = enqueued.commands[0]
    # A dispatcher claims it, the write reaches the meter, and the process dies before
    # it can record "sent": the row is left "sending" under a dead lease.
    assert len(Worklist(outbox).claim("dead", lease_s=30.0)) == 1
    run(meters.execute(command))
    clock.advance(31.0)
    assert run(_dispatcher(outbox, meters, owner="restarted").run_once()).done == 1
    assert run(_dispatcher(outbox, meters, owner="restarted").run_once()).claimed == 0
    assert meters.writes == [command.id]  # exactly once, counting the dead process's write
    assert _events(outbox, command.id) == ["enqueue", "claim", "resume", "confirm"]


def test_a_live_lease_is_not_taken_over(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock
) -> None:
    outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi")
    Worklist(outbox).claim("alive", lease_s=30.0)
    clock.advance(29.0)
    assert run(_dispatcher(outbox, meters, owner="other").run_once()).claimed == 0


def test_an_unanswered_read_back_after_a_crash_does_not_write_blind(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock
) -> None:
    command = _crash_after_send(run, outbox, meters, clock, landed=False)
    meters.confirm_plan["E0001"] = ["hang"]
    assert run(_dispatcher(outbox, meters, owner="heir").run_once()).retried == 1
    assert meters.writes == []
    assert outbox.get(command.id).state == "pending"


def test_two_dispatchers_never_run_the_same_command(
    run: Run,
    outbox: CommandOutbox,
    meters: FakeMeters,
    clean_db: Connection,
    second_conn: Connection,
    site: Site,
    clock: ManualClock,
) -> None:
    batch = outbox.enqueue("time_sync", {}, Target.in_area("ENT"), actor="op", channel="hmi")
    batch2 = outbox.enqueue(
        "alarm1_set", {"fen": 5}, Target.in_area("DORM"), actor="op", channel="hmi"
    )
    other = CommandOutbox(second_conn, site, clock=clock, policy=POLICY)
    one = _dispatcher(outbox, meters, owner="one", batch_size=3)
    two = _dispatcher(other, meters, owner="two", batch_size=3)

    async def both() -> list[DispatchReport]:
        rounds = (one.run_once(), two.run_once(), one.run_once(), two.run_once())
        return list(await asyncio.gather(*rounds))

    reports = run(both())
    assert sum(r.claimed for r in reports) == 7
    ids = [c.id for c in batch.commands + batch2.commands]
    assert sorted(meters.writes) == sorted(ids)  # each command written exactly once
    owners = {e.command_id: e.actor for e in outbox.history(limit=100) if e.event == "claim"}
    assert set(owners) == set(ids) and set(owners.values()) == {"one", "two"}


def test_what_sets_one_register_goes_in_order(
    run: Run, outbox: CommandOutbox, meters: FakeMeters
) -> None:
    work = Worklist(outbox)
    opened = outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi").commands[0]
    work.claim("slow", lease_s=30.0)  # in flight elsewhere: a newer relay command waits
    closed = outbox.enqueue("relay_close", {}, "E0001", actor="op", channel="hmi").commands[0]
    prices = outbox.enqueue("price_set", _PRICES, "E0001", actor="op", channel="hmi").commands[0]
    assert run(_dispatcher(outbox, meters).run_once()).claimed == 1  # the prices only
    assert meters.writes == [prices.id]
    work.mark_sent(opened.id, "slow")
    work.mark_done(opened.id, "slow")
    assert run(_dispatcher(outbox, meters).run_once()).done == 1
    assert meters.writes == [prices.id, closed.id]


def test_an_unconfirmed_command_gives_way_to_a_newer_one(
    run: Run, outbox: CommandOutbox, meters: FakeMeters
) -> None:
    work = Worklist(outbox)
    opened = outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi").commands[0]
    work.claim("d0", lease_s=30.0)
    closed = outbox.enqueue("relay_close", {}, "E0001", actor="op", channel="hmi").commands[0]
    given_way = work.retry_or_fail(opened.id, "d0", "no answer")
    assert (given_way.state, given_way.last_error) == ("superseded", "no answer")
    assert outbox.history(command_id=opened.id)[-1].detail == {
        "by": closed.id,
        "reason": "no answer",
    }
    assert run(_dispatcher(outbox, meters).run_once()).done == 1
    assert meters.writes == [closed.id]


def test_a_resumed_command_gives_way_to_a_newer_one(
    run: Run, outbox: CommandOutbox, meters: FakeMeters, clock: ManualClock
) -> None:
    command = _crash_after_send(run, outbox, meters, clock, landed=False)
    newer = outbox.enqueue("relay_close", {}, "E0001", actor="op", channel="hmi").commands[0]
    report = run(_dispatcher(outbox, meters, owner="heir").run_once())
    assert report.superseded == 1
    assert outbox.get(command.id).state == "superseded"
    assert meters.writes == []
    assert run(_dispatcher(outbox, meters, owner="heir").run_once()).done == 1
    assert meters.writes == [newer.id]


def test_run_stops_when_told(run: Run, outbox: CommandOutbox, meters: FakeMeters) -> None:
    outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi")
    dispatcher = _dispatcher(outbox, meters)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop, confirmed = asyncio.Event(), asyncio.Event()

        def on_event(
            event: CommandEvent,
        ) -> None:  # called in the worker thread that wrote the event
            if event.event == "confirm":
                loop.call_soon_threadsafe(confirmed.set)

        outbox.events.subscribe(on_event)
        task = asyncio.create_task(dispatcher.run(stop, idle_s=5.0))
        await asyncio.wait_for(confirmed.wait(), 5.0)
        stop.set()
        await asyncio.wait_for(task, 1.0)

    run(main())
    assert meters.writes and outbox.find(state="done").total == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch_size must be"),
        ({"attempt_timeout_s": 0.0}, "attempt_timeout_s must be positive"),
        ({"attempt_timeout_s": 10.0, "lease_s": 15.0}, "lease_s must exceed"),
    ],
)
def test_bad_dispatcher_settings(
    outbox: CommandOutbox, meters: FakeMeters, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CommandDispatcher(outbox, meters, **options)


_PRICES = {"sharp_e4": 15000, "peak_e4": 12000, "flat_e4": 8000, "valley_e4": 4000}


def test_losing_the_database_mid_attempt_is_resumed_later(
    run: Run,
    outbox: CommandOutbox,
    meters: FakeMeters,
    clock: ManualClock,
    site: Site,
    db_url: str,
) -> None:
    lost = psycopg2.connect(db_url, connect_timeout=5)
    doomed = CommandOutbox(lost, site, clock=clock, policy=POLICY)
    command = doomed.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi").commands[0]
    meters.after_write = lambda written: lost.close()
    report = run(_dispatcher(doomed, meters, owner="doomed").run_once())
    assert (report.claimed, report.errors) == (1, 1)
    assert outbox.get(command.id).state == "sending"
    meters.after_write = None
    clock.advance(60.0)
    assert run(_dispatcher(outbox, meters, owner="heir").run_once()).done == 1
    assert meters.writes == [command.id]  # read back, not written twice


def test_attempts_run_side_by_side_up_to_the_concurrency(
    run: Run, outbox: CommandOutbox, meters: FakeMeters
) -> None:
    everyone = Target.matching(billing="prepaid")
    batch = outbox.enqueue("time_sync", {}, everyone, actor="op", channel="hmi")
    report = run(_dispatcher(outbox, meters, concurrency=2).run_once())
    assert report.done == report.claimed == len(batch.commands) == 6
    assert meters.most_in_flight == 2
