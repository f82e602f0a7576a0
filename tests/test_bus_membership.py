"""Worker membership: rendezvous assignment, heartbeats, reassignment and stale generations."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.bus import (
    Assignment,
    Backoff,
    BusConnection,
    BusKeys,
    Coordinator,
    WorkerHeartbeat,
    assign,
    open_redis,
)
from server.clock import ManualClock
from tests.conftest import TEST_REDIS_URL

GATEWAYS = [f"GW{i:03d}" for i in range(1, 225)]
names = st.text("abcdefgh0123456789", min_size=1, max_size=6)


@given(st.lists(names, min_size=2, max_size=8, unique=True), st.data())
def test_removing_a_worker_moves_only_its_gateways(workers: list[str], data: st.DataObject) -> None:
    gone = data.draw(st.sampled_from(workers))
    before = assign(GATEWAYS, workers)
    after = assign(GATEWAYS, [w for w in workers if w != gone])
    for gateway in GATEWAYS:
        if before[gateway] != gone:
            assert after[gateway] == before[gateway]
        else:
            assert after[gateway] != gone


@given(st.lists(names, min_size=1, max_size=8, unique=True), names)
def test_adding_a_worker_only_gives_it_gateways(workers: list[str], new: str) -> None:
    before = assign(GATEWAYS, workers)
    after = assign(GATEWAYS, [*workers, new])
    for gateway in GATEWAYS:
        assert after[gateway] in (before[gateway], new)


def test_gateways_spread_over_workers_and_order_does_not_matter() -> None:
    owners = assign(GATEWAYS, ["w1", "w2", "w3"])
    counts = [list(owners.values()).count(w) for w in ("w1", "w2", "w3")]
    assert sum(counts) == 224 and min(counts) >= 50
    assert assign(GATEWAYS, ["w3", "w1", "w2"]) == owners
    assert assign(GATEWAYS, []) == {}


def test_assignment_json_round_trip_and_errors() -> None:
    original = Assignment(4, ("a", "b"), {"G1": "a", "G2": "b"})
    parsed = Assignment.from_json(original.to_json())
    assert parsed.generation == 4 and dict(parsed.owners) == {"G1": "a", "G2": "b"}
    assert parsed.gateways_of("a") == {"G1"} and parsed.owner("G9") is None
    for raw, message in [
        ("{", "not JSON"),
        ("[]", "JSON object"),
        ('{"generation": 0, "workers": [], "owners": {}}', "generation"),
        ('{"generation": 1, "workers": "a", "owners": {}}', "workers"),
        ('{"generation": 1, "workers": ["a"], "owners": {"G1": "z"}}', "owners"),
    ]:
        with pytest.raises(ValueError, match=message):
            Assignment.from_json(raw)


def make_bus() -> BusConnection:
    return BusConnection(
        open_redis(TEST_REDIS_URL, client_name="bus-membership"),
        backoff=Backoff(initial=0.005, maximum=0.05),
    )


def test_a_dead_workers_gateways_move_after_the_ttl_and_no_others(
    redis_client: Any, run: Any
) -> None:
    clock = ManualClock(10_000.0)
    keys = BusKeys(park=f"t{uuid.uuid4().hex[:12]}")
    ttl, check = 9.0, 2.0

    async def main() -> None:
        bus = make_bus()
        try:
            coordinator = Coordinator(bus, keys, GATEWAYS, clock=clock, check_interval=check)
            workers = {
                name: WorkerHeartbeat(bus, keys, name, clock=clock, ttl=ttl) for name in "abc"
            }
            for heartbeat in workers.values():
                await heartbeat.beat()
            first = await coordinator.check()
            assert first.generation == 1 and first.workers == ("a", "b", "c")
            for heartbeat in workers.values():
                assert heartbeat.owned() == frozenset()  # read before the first assignment
                assert await heartbeat.beat() is True
            owned = {n: h.owned() for n, h in workers.items()}
            assert set().union(*owned.values()) == set(GATEWAYS)
            assert all(len(o) >= 50 for o in owned.values())

            # c stops heartbeating; a and b keep going; the coordinator checks every 2 s.
            died_at = clock.time()
            moved_at = None
            while moved_at is None:
                clock.advance(1.0)
                await workers["a"].beat()
                await workers["b"].beat()
                if (clock.time() - died_at) % check == 0:
                    latest = await coordinator.check()
                    if latest.generation == 2:
                        moved_at = clock.time()
            assert ttl <= moved_at - died_at <= ttl + check
            assert latest.workers == ("a", "b")
            await workers["a"].beat()
            await workers["b"].beat()
            for name in "ab":
                now = workers[name].owned()
                assert owned[name] <= now
                assert now - owned[name] <= owned["c"]
            assert workers["a"].owned() | workers["b"].owned() == set(GATEWAYS)

            # c's lease ran out at the same deadline: it polls nothing, even before it
            # learns the new generation.
            stale = workers["c"]
            assert stale.owned() == frozenset()
            assert stale.generation == 1 and stale.is_stale(latest.generation)
            assert await stale.beat() is False
            assert stale.generation == 2 and stale.owned() == frozenset()
            rejoined = await coordinator.check()
            assert rejoined.generation == 3 and "c" in rejoined.workers
            await stale.beat()
            assert stale.owned() == owned["c"]

            await stale.leave()
            assert (await coordinator.check()).workers == ("a", "b")
        finally:
            await bus.close()

    run(main())


def test_an_unchanged_pool_keeps_its_generation(redis_client: Any, run: Any) -> None:
    clock = ManualClock(10_000.0)
    keys = BusKeys(park=f"t{uuid.uuid4().hex[:12]}")

    async def main() -> None:
        bus = make_bus()
        try:
            coordinator = Coordinator(bus, keys, GATEWAYS, clock=clock)
            await WorkerHeartbeat(bus, keys, "a", clock=clock).beat()
            assert (await coordinator.check()).generation == 1
            assert (await coordinator.check()).generation == 1
            redis_client.set(keys.assignment, b"{broken")
            assert (await coordinator.check()).generation == 1
            assert (await coordinator.check()).generation == 1
        finally:
            await bus.close()

    run(main())


def test_a_heartbeat_without_redis_lets_the_lease_run_down(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(10_000.0)

    async def main() -> None:
        bus = BusConnection(open_redis("redis://127.0.0.1:1/0"), name="redis-down")
        try:
            heartbeat = WorkerHeartbeat(bus, BusKeys(), "a", clock=clock, ttl=3.0)
            heartbeat.assignment = Assignment(1, ("a",), {"G1": "a"})
            heartbeat.lease_until = clock.time() + 3.0
            assert heartbeat.owned() == {"G1"}
            assert await heartbeat.beat() is False
            assert await heartbeat.beat() is False
            clock.advance(3.0)
            assert heartbeat.owned() == frozenset()
            assert not bus.healthy and bus.outages == 1
        finally:
            await bus.close()

    run(main())
    assert sum("redis-down unreachable" in r.message for r in caplog.records) == 1


def test_heartbeat_settings_are_checked() -> None:
    bus = BusConnection(open_redis(TEST_REDIS_URL))
    with pytest.raises(ValueError, match="ttl must be positive"):
        WorkerHeartbeat(bus, BusKeys(), "a", clock=ManualClock(), ttl=0)
    with pytest.raises(ValueError, match="interval"):
        WorkerHeartbeat(bus, BusKeys(), "a", clock=ManualClock(), ttl=3, interval=5)
    with pytest.raises(ValueError, match="worker name"):
        WorkerHeartbeat(bus, BusKeys(), "a/b", clock=ManualClock())
