"""Readings over Redis Streams: publish, consume, acknowledge, reclaim, dead-letter, trim."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
import redis

from server.bus import (
    Backoff,
    BusConnection,
    BusKeys,
    MeterBatch,
    ReadingConsumer,
    ReadingPublisher,
    StreamSizing,
    open_redis,
)
from server.clock import ManualClock
from server.tags import Batch, TagTable
from tests.conftest import TEST_REDIS_URL

METERS = 48
GATEWAYS = 2


def make_table(clock: ManualClock) -> TagTable:
    return TagTable(
        [f"M{i:03d}" for i in range(METERS)],
        areas=["A"] * METERS,
        gateways=[f"G{i * GATEWAYS // METERS}" for i in range(METERS)],
        three_phase=[True] * METERS,
        clock=clock,
    )


def gateway_batches(table: TagTable, scans: int, seed: int = 1) -> list[tuple[Batch, Any]]:
    """`scans` rounds of one realtime batch per gateway, values changing every round."""
    rng = np.random.default_rng(seed)
    out = []
    for scan in range(scans):
        for gateway in table.meters.gateway_names:
            rows = table.select(gateway=gateway)
            values = {
                "u_a": rng.uniform(200, 240, len(rows)),
                "p": np.where(rng.random(len(rows)) < 0.1, np.nan, rng.random(len(rows))),
                "pt": rng.integers(1, 100, len(rows)),
                "relay": rng.integers(0, 2, len(rows), dtype=np.uint8),
            }
            batch = Batch("realtime", rows, values, source_ts=1000.0 + scan)
            out.append((batch, table.ids[rows]))
    return out


def make_bus(name: str = "bus-test") -> BusConnection:
    client = open_redis(TEST_REDIS_URL, client_name=name)
    return BusConnection(client, backoff=Backoff(initial=0.005, maximum=0.05))


def fresh_keys() -> BusKeys:
    return BusKeys(park=f"t{uuid.uuid4().hex[:12]}")


def applier(table: TagTable, seen: list[MeterBatch]) -> Any:
    def apply(batch: MeterBatch) -> None:
        table.apply(batch.to_batch(table))
        seen.append(batch)

    return apply


def same_values(a: TagTable, b: TagTable) -> bool:
    left, right = a.snapshot(), b.snapshot()
    return all(
        np.array_equal(left.values[n], right.values[n], equal_nan=left.values[n].dtype.kind == "f")
        for n in left.values
    ) and all(np.array_equal(left.quality[g], right.quality[g]) for g in left.quality)


def test_published_batches_are_applied_in_order_and_acknowledged(
    redis_client: Any, run: Any
) -> None:
    clock = ManualClock(2000.0)
    source, core = make_table(clock), make_table(clock)
    batches = gateway_batches(source, scans=5)
    keys = fresh_keys()
    seen: list[MeterBatch] = []

    async def main() -> None:
        bus = make_bus()
        try:
            publisher = ReadingPublisher(bus, keys, worker="w1")
            consumer = ReadingConsumer(
                bus, keys, applier(core, seen), consumer="core-1", clock=clock, block_ms=20
            )
            await consumer.start()
            ids = [await publisher.publish(b, ids, generation=3) for b, ids in batches[:4]]
            ids += await publisher.publish_many(batches[4:], generation=3)
            assert len(ids) == len(batches)
            while await consumer.poll():
                pass
        finally:
            await bus.close()

    run(main())
    for batch, _ in batches:
        source.apply(batch)
    assert [b.source_ts[0] for b in seen] == [b.source_ts[0] for b, _ in batches]
    assert same_values(source, core)
    assert redis_client.xpending(keys.readings, "core")["pending"] == 0
    entry = redis_client.xrange(keys.readings, count=1)[0][1]
    assert entry[b"w"] == b"w1" and entry[b"g"] == b"3"


def test_entries_of_a_dead_consumer_are_reclaimed_and_nothing_is_lost(
    redis_client: Any, run: Any
) -> None:
    clock = ManualClock(2000.0)
    source, core = make_table(clock), make_table(clock)
    batches = gateway_batches(source, scans=3)
    keys = fresh_keys()
    changed: list[int] = []

    def apply(batch: MeterBatch) -> None:
        changed.append(len(core.apply(batch.to_batch(core)).rows))

    async def main() -> None:
        bus = make_bus()
        try:
            publisher = ReadingPublisher(bus, keys, worker="w1")
            consumer = ReadingConsumer(
                bus, keys, apply, consumer="core-new", clock=clock, block_ms=20
            )
            await consumer.ensure_group()
            await publisher.publish_many(batches)
            # The old core read everything, applied the first two, and died before acking.
            taken = redis_client.xreadgroup("core", "core-old", {keys.readings: ">"}, count=100)
            assert len(taken[0][1]) == len(batches)
            for batch, _ in batches[:2]:
                core.apply(batch)
            assert await consumer.poll() == 0
            assert await consumer.reclaim(min_idle_ms=0) == len(batches)
            assert consumer.reclaimed == len(batches)
        finally:
            await bus.close()

    run(main())
    # Re-applying the two batches already applied changed no row; every later one did.
    assert changed[:2] == [0, 0]
    assert all(changed[2:])
    for batch, _ in batches:
        source.apply(batch)
    assert same_values(source, core)
    assert redis_client.xpending(keys.readings, "core")["pending"] == 0


def test_a_restarted_consumer_first_finishes_its_own_pending_entries(
    redis_client: Any, run: Any
) -> None:
    clock = ManualClock(2000.0)
    source, core = make_table(clock), make_table(clock)
    batches = gateway_batches(source, scans=2)
    keys = fresh_keys()

    async def main() -> None:
        bus = make_bus()
        try:
            await ReadingPublisher(bus, keys, worker="w1").publish_many(batches)
            consumer = ReadingConsumer(
                bus, keys, applier(core, []), consumer="core", clock=clock, block_ms=20
            )
            await consumer.ensure_group()
            redis_client.xreadgroup("core", "core", {keys.readings: ">"}, count=100)
            assert await consumer.start() == len(batches)
        finally:
            await bus.close()

    run(main())
    for batch, _ in batches:
        source.apply(batch)
    assert same_values(source, core)


def test_poison_entries_go_to_dead_letters_and_the_stream_continues(
    redis_client: Any, run: Any
) -> None:
    clock = ManualClock(2000.0)
    source, core = make_table(clock), make_table(clock)
    good = gateway_batches(source, scans=1)
    keys = fresh_keys()
    seen: list[MeterBatch] = []
    foreign = Batch("realtime", [0], {"u_a": [1.0]}, source_ts=1.0)

    async def main() -> ReadingConsumer:
        bus = make_bus()
        try:
            publisher = ReadingPublisher(bus, keys, worker="w1")
            consumer = ReadingConsumer(
                bus, keys, applier(core, seen), consumer="core", clock=clock, block_ms=20
            )
            await consumer.start()
            await publisher.publish(*good[0])
            redis_client.xadd(keys.readings, {"b": b"PGRB\x01garbage"})
            redis_client.xadd(keys.readings, {"x": b"no payload"})
            await publisher.publish(foreign, ["NOT-A-METER"])
            await publisher.publish(*good[1])
            while await consumer.poll():
                pass
            return consumer
        finally:
            await bus.close()

    consumer = run(main())
    assert len(seen) == 2
    assert consumer.dead == 3
    dead = redis_client.xrange(keys.dead_letters)
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert "checksum mismatch" in reasons[0]
    assert "no 'b' field" in reasons[1]
    assert "NOT-A-METER" in reasons[2]
    assert dead[1][1][b"field:x"] == b"no payload"
    assert redis_client.xpending(keys.readings, "core")["pending"] == 0


def test_a_failing_handler_retries_then_dead_letters(redis_client: Any, run: Any) -> None:
    clock = ManualClock(2000.0)
    source = make_table(clock)
    batches = gateway_batches(source, scans=1)[:1]
    keys = fresh_keys()
    calls: list[int] = []

    def broken(batch: MeterBatch) -> None:
        calls.append(1)
        raise RuntimeError("historian is full")

    async def main() -> None:
        bus = make_bus()
        try:
            await ReadingPublisher(bus, keys, worker="w1").publish_many(batches)
            consumer = ReadingConsumer(
                bus, keys, broken, consumer="core", clock=clock, block_ms=20, max_deliveries=3
            )
            await consumer.start()
            await consumer.poll()
            assert redis_client.xpending(keys.readings, "core")["pending"] == 1
            await consumer.reclaim(min_idle_ms=0)
            assert redis_client.xpending(keys.readings, "core")["pending"] == 1
            await consumer.reclaim(min_idle_ms=0)
            assert redis_client.xpending(keys.readings, "core")["pending"] == 0
        finally:
            await bus.close()

    run(main())
    assert len(calls) == 3
    [(_, dead)] = redis_client.xrange(keys.dead_letters)
    assert dead[b"reason"].startswith(b"failed 3 times, last: RuntimeError: historian is full")


def test_trim_drops_only_what_every_group_acknowledged(redis_client: Any, run: Any) -> None:
    clock = ManualClock(2000.0)
    source = make_table(clock)
    batches = gateway_batches(source, scans=5)
    keys = fresh_keys()

    async def main() -> None:
        bus = make_bus()
        try:
            publisher = ReadingPublisher(bus, keys, worker="w1")
            consumer = ReadingConsumer(
                bus, keys, lambda b: None, consumer="core", clock=clock, block_ms=20, count=4
            )
            await consumer.start()
            ids = await publisher.publish_many(batches)
            await consumer.poll()
            # Four handled; one more delivered to another consumer and not acked.
            redis_client.xreadgroup("core", "other", {keys.readings: ">"}, count=1)
            assert await consumer.trim(approximate=False) == 4
            assert redis_client.xrange(keys.readings)[0][0] == ids[4]
            assert await consumer.reclaim(min_idle_ms=0) == 1
            while await consumer.poll():
                pass
            assert await consumer.trim(approximate=False) == len(batches) - 4
        finally:
            await bus.close()

    run(main())
    assert redis_client.xlen(keys.readings) == 0


def test_a_consumer_recreates_its_group_when_redis_lost_the_stream(
    redis_client: Any, run: Any
) -> None:
    clock = ManualClock(2000.0)
    source, core = make_table(clock), make_table(clock)
    batches = gateway_batches(source, scans=1)
    keys = fresh_keys()

    async def main() -> None:
        bus = make_bus()
        try:
            consumer = ReadingConsumer(
                bus, keys, applier(core, []), consumer="core", clock=clock, block_ms=20
            )
            await consumer.start()
            redis_client.delete(keys.readings)
            assert await consumer.poll() == 0
            await ReadingPublisher(bus, keys, worker="w1").publish_many(batches)
            assert await consumer.poll() == len(batches)
        finally:
            await bus.close()

    run(main())
    for batch, _ in batches:
        source.apply(batch)
    assert same_values(source, core)


def test_stream_sizing_covers_the_outage_budget() -> None:
    assert StreamSizing(entries_per_s=300, outage_s=120).maxlen == 36_000
    assert StreamSizing(entries_per_s=0.1, outage_s=1).maxlen == 1


def test_publisher_caps_the_stream_length(redis_client: Any, run: Any) -> None:
    clock = ManualClock(2000.0)
    batches = gateway_batches(make_table(clock), scans=400)
    keys = fresh_keys()

    async def main() -> None:
        bus = make_bus()
        try:
            publisher = ReadingPublisher(
                bus, keys, worker="w1", sizing=StreamSizing(entries_per_s=100, outage_s=1)
            )
            await publisher.publish_many(batches)
        finally:
            await bus.close()

    run(main())
    assert 100 <= redis_client.xlen(keys.readings) < 300


def test_consumer_names_are_checked() -> None:
    bus = BusConnection(redis.asyncio.Redis())
    with pytest.raises(ValueError, match="consumer name"):
        ReadingConsumer(bus, BusKeys(), lambda b: None, consumer="a b", clock=ManualClock())
