"""A crash between the posting and the relay command: after a restart it is sent once."""

from __future__ import annotations

from server.commands import CommandDispatcher
from tests.commands.fake_meters import FakeMeters

HOUR = 3600.0


def test_close_command_committed_with_the_recharge_is_sent_once_after_a_restart(rig, run):
    meters = FakeMeters()
    conn = rig.connect()
    with conn, conn.cursor() as cur:  # a dispatcher claims every due command: start empty
        cur.execute("TRUNCATE command_events, commands, command_requests RESTART IDENTITY")
    rig.fund("E0003", 100)
    rig.reading("E0003", flat=50.0)
    rig.clock.advance(HOUR)
    rig.reading("E0003", flat=55.0)  # −200 fen: relay_open queued with the deduction
    first = CommandDispatcher(rig.outbox, meters, owner="before-crash", attempt_timeout_s=5.0)
    assert run(first.run_once()).done == 1
    payment = {"provider": "wechat", "provider_event_id": f"pay-{rig.suffix}"}
    with conn, conn.cursor() as cur:
        posted = rig.ledger.post(
            "wechat_recharge",
            meter=rig.id("E0003"),
            amount_fen=500,
            operator="wechat",
            channel="api",
            cur=cur,
            **payment,
        )
        assert rig.engine.on_recharge(rig.id("E0003"), posted, cur=cur) is not None
    # The process dies here, before any dispatcher saw the close command.
    for old in list(rig.conns[1:]):
        old.close()
    rig.build_engine()
    dispatcher = CommandDispatcher(rig.outbox, meters, owner="after-restart", attempt_timeout_s=5.0)
    report = run(dispatcher.run_once())
    assert report.done == 1
    assert run(dispatcher.run_once()).claimed == 0
    commands = sorted(rig.commands("E0003"), key=lambda c: c.id)
    assert [(c.kind, c.state) for c in commands] == [
        ("relay_open", "done"),
        ("relay_close", "done"),
    ]
    assert meters.writes == [c.id for c in commands]  # the close was written exactly once
    # A replayed recharge callback is a duplicate posting and asks for nothing more.
    conn = rig.connect()
    with conn, conn.cursor() as cur:
        replay = rig.ledger.post(
            "wechat_recharge",
            meter=rig.id("E0003"),
            amount_fen=500,
            operator="wechat",
            channel="api",
            cur=cur,
            **payment,
        )
        assert replay.duplicate
        assert rig.engine.on_recharge(rig.id("E0003"), replay, cur=cur) is None
    assert len(rig.commands("E0003")) == 2


def test_a_replayed_energy_batch_after_a_restart_neither_charges_nor_trips_again(rig):
    rig.fund("E0003", 100)
    rig.reading("E0003", flat=50.0)
    rig.clock.advance(HOUR)
    at = rig.clock.time()
    rig.reading("E0003", flat=55.0, at=at)
    for old in list(rig.conns[1:]):
        old.close()
    rig.build_engine()
    report = rig.reading("E0003", flat=55.0, at=at)
    assert (report.stale, report.postings, report.commands) == (1, 0, [])
    assert [c.kind for c in rig.commands("E0003")] == ["relay_open"]
    assert rig.ledger.balance(rig.id("E0003")) == -200
