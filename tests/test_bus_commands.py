"""Meter commands over Redis: routing to the owner, outcomes, stale routes and rerouting."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from server.bus import (
    Assignment,
    Backoff,
    BusConnection,
    BusKeys,
    Command,
    CommandError,
    CommandFailed,
    CommandReceiver,
    CommandSender,
    Outcome,
    OutcomeConsumer,
    open_redis,
)
from server.clock import ManualClock
from tests.conftest import TEST_REDIS_URL

ASSIGNMENT = Assignment(7, ("w1", "w2"), {"G1": "w1", "G2": "w2"})


def make_bus() -> BusConnection:
    return BusConnection(
        open_redis(TEST_REDIS_URL, client_name="bus-commands"),
        backoff=Backoff(initial=0.005, maximum=0.05),
    )


def fresh_keys() -> BusKeys:
    return BusKeys(park=f"t{uuid.uuid4().hex[:12]}")


def relay(command_id: str, gateway: str = "G1", action: str = "relay_open") -> Command:
    return Command(command_id, gateway, "M001", action, {"reason": "arrears", "fen": -120})


def test_command_fields_round_trip_and_errors() -> None:
    command = relay("c1")
    assert Command.from_fields(command.fields()) == command
    outcome = Outcome("c1", "w1", "failed", "no answer", 3)
    assert Outcome.from_fields(outcome.fields()) == outcome
    for fields, message in [
        ({}, "no 'c' field"),
        ({b"c": b"{"}, "not JSON"),
        ({b"c": b"[1]"}, "JSON object"),
        ({b"c": b'{"id": "c1"}'}, "'gateway'"),
        ({b"c": b'{"id":"c1","gateway":"G","meter":"M","action":"Bad"}'}, "action"),
        ({b"c": b'{"id":"c1","gateway":"G","meter":"M","action":"a","args":{"x":[1]}}'}, "args"),
        ({b"c": b'{"id":"c1","gateway":"G","meter":"M","action":"a","generation":-1}'}, "gen"),
    ]:
        with pytest.raises(CommandError, match=message):
            Command.from_fields(fields)
    with pytest.raises(CommandError, match="status"):
        Outcome.from_fields({b"c": b'{"id":"c1","worker":"w","status":"maybe"}'})


def test_commands_reach_the_owner_and_outcomes_come_back(redis_client: Any, run: Any) -> None:
    clock = ManualClock()
    keys = fresh_keys()
    done: list[Command] = []
    outcomes: list[Outcome] = []

    async def carry_out(command: Command) -> str:
        if command.action == "relay_close":
            raise CommandFailed("meter did not answer")
        done.append(command)
        return "relay open"

    async def main() -> None:
        bus = make_bus()
        try:
            sender = CommandSender(bus, keys)
            receiver = CommandReceiver(
                bus,
                keys,
                "w1",
                carry_out,
                owns=lambda g: ASSIGNMENT.owner(g) == "w1",
                clock=clock,
                generation=lambda: ASSIGNMENT.generation,
                block_ms=20,
            )
            results = OutcomeConsumer(
                bus, keys, outcomes.append, consumer="core", clock=clock, block_ms=20
            )
            await receiver.start()
            await results.start()
            assert await sender.send_to_owner(ASSIGNMENT, relay("c1")) == "w1"
            await sender.send_to_owner(ASSIGNMENT, relay("c2", action="relay_close"))
            await sender.send("w1", relay("c3", gateway="G2"))  # a stale route
            with pytest.raises(LookupError, match="G9"):
                await sender.send_to_owner(ASSIGNMENT, relay("c4", gateway="G9"))
            redis_client.xadd(keys.commands("w1"), {"c": b"not json"})
            assert await receiver.poll() == 4
            assert await results.poll() == 3
        finally:
            await bus.close()

    run(main())
    assert [c.command_id for c in done] == ["c1"]
    assert done[0].generation == 7 and done[0].args["fen"] == -120
    assert [(o.command_id, o.status) for o in outcomes] == [
        ("c1", "done"),
        ("c2", "failed"),
        ("c3", "not_owner"),
    ]
    assert outcomes[1].detail == "meter did not answer" and outcomes[0].generation == 7
    assert redis_client.xpending(keys.commands("w1"), "worker")["pending"] == 0
    [(_, dead)] = redis_client.xrange(keys.dead_letters)
    assert b"not JSON" in dead[b"reason"]


def test_unfinished_commands_of_a_dead_worker_move_to_the_new_owner(
    redis_client: Any, run: Any
) -> None:
    clock = ManualClock()
    keys = fresh_keys()
    before = Assignment(1, ("w1", "w2"), {"G1": "w1", "G2": "w2"})
    after = Assignment(2, ("w2",), {"G1": "w2", "G2": "w2"})
    executed: list[str] = []

    def record(command: Command) -> str:
        executed.append(command.command_id)
        return "ok"

    async def main() -> None:
        bus = make_bus()
        try:
            sender = CommandSender(bus, keys)
            assert await sender.reroute("w1", after) == 0
            dying = CommandReceiver(
                bus, keys, "w1", lambda c: "ok", owns=lambda g: True, clock=clock, block_ms=20
            )
            await dying.start()
            await sender.send_to_owner(before, relay("acked"))
            assert await dying.poll() == 1
            await sender.send_to_owner(before, relay("in-flight"))
            redis_client.xreadgroup("worker", "w1", {keys.commands("w1"): ">"}, count=1)
            await sender.send_to_owner(before, relay("queued"))
            redis_client.xadd(keys.commands("w1"), {"c": b"garbage"})
            assert await sender.reroute("w1", after) == 3
            assert not redis_client.exists(keys.commands("w1"))
            heir = CommandReceiver(
                bus,
                keys,
                "w2",
                record,
                owns=lambda g: True,
                clock=clock,
                block_ms=20,
            )
            await heir.start()
            assert await heir.poll() == 2
        finally:
            await bus.close()

    run(main())
    assert executed == ["in-flight", "queued"]
    [(_, dead)] = redis_client.xrange(keys.dead_letters)
    assert b"not JSON" in dead[b"reason"]


def test_commands_for_unowned_gateways_stay_put(redis_client: Any, run: Any) -> None:
    keys = fresh_keys()
    nobody = Assignment(3, (), {})

    async def main() -> None:
        bus = make_bus()
        try:
            sender = CommandSender(bus, keys)
            await sender.send("w1", relay("c1"))
            assert await sender.reroute("w1", nobody) == 0
        finally:
            await bus.close()

    run(main())
    assert redis_client.xlen(keys.commands("w1")) == 1
