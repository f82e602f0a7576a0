"""Redis going away mid-run: dropped connections and a restart behind a proxy lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import numpy as np
import pytest

from server.bus import (
    Backoff,
    BusConnection,
    BusKeys,
    MeterBatch,
    ReadingConsumer,
    ReadingPublisher,
    open_redis,
)
from server.clock import ManualClock
from server.tags import TagTable
from tests.conftest import TEST_REDIS_URL
from tests.test_bus_streams import gateway_batches, make_table, same_values


def kill_named(redis_client: Any, name: str) -> int:
    """Drop every connection of this test's clients (by name), not anyone else's."""
    killed = 0
    for client in redis_client.client_list():
        if client.get("name") == name:
            killed += redis_client.client_kill_filter(_id=client["id"])
    return killed


def test_dropped_connections_reconnect_and_nothing_acknowledged_is_lost(
    redis_client: Any, run: Any
) -> None:
    clock = ManualClock(2000.0)
    source, core = make_table(clock), make_table(clock)
    batches = gateway_batches(source, scans=60)
    keys = BusKeys(park=f"t{uuid.uuid4().hex[:12]}")
    name = f"bus-restart-{uuid.uuid4().hex[:8]}"
    applied: list[float] = []

    def apply(batch: MeterBatch) -> None:
        core.apply(batch.to_batch(core))
        applied.append(float(batch.source_ts[0]))

    async def main() -> int:
        publisher_bus = BusConnection(
            open_redis(TEST_REDIS_URL, client_name=name), backoff=Backoff(0.005, 0.05)
        )
        consumer_bus = BusConnection(
            open_redis(TEST_REDIS_URL, client_name=name), backoff=Backoff(0.005, 0.05)
        )
        stop = asyncio.Event()
        try:
            publisher = ReadingPublisher(publisher_bus, keys, worker="w1")
            consumer = ReadingConsumer(
                consumer_bus, keys, apply, consumer="core", clock=clock, block_ms=20, count=8
            )
            await consumer.ensure_group()
            consuming = asyncio.create_task(consumer.run(stop))
            kills = 0
            for i, (batch, ids) in enumerate(batches):
                await publisher.publish(batch, ids)
                if i % 15 == 7:
                    await asyncio.sleep(0.01)
                    kills += kill_named(redis_client, name)
            for _ in range(500):
                if len(applied) >= len(batches):
                    break
                await asyncio.sleep(0.01)
            stop.set()
            await consuming
            return kills
        finally:
            stop.set()
            await publisher_bus.close()
            await consumer_bus.close()

    kills = run(main())
    assert kills >= 4
    for batch, _ in batches:
        source.apply(batch)
    assert same_values(source, core)
    assert redis_client.xpending(keys.readings, "core")["pending"] == 0
    # Every entry was applied at least once, in stream order apart from redeliveries.
    assert sorted(set(applied)) == sorted({float(b.source_ts[0]) for b, _ in batches})


class Proxy:
    """A TCP relay in front of Redis that can be stopped and started: a Redis restart."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()
        for task in self.pipes:
            task.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)
        self.writers.clear()
        self.pipes.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}
        for a, b in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(a, b))
            self.pipes.add(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


def test_a_redis_restart_stalls_then_resumes_with_one_log_line_each_way(
    redis_client: Any, run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.bus.connection")
    clock = ManualClock(2000.0)
    source, core = make_table(clock), make_table(clock)
    batches = gateway_batches(source, scans=4)
    keys = BusKeys(park=f"t{uuid.uuid4().hex[:12]}")
    db = TEST_REDIS_URL.rsplit("/", 1)[1]

    async def main() -> None:
        proxy = Proxy("127.0.0.1", int(TEST_REDIS_URL.split(":")[2].split("/")[0]))
        await proxy.start()
        bus = BusConnection(
            open_redis(f"redis://127.0.0.1:{proxy.port}/{db}"),
            name="proxied-redis",
            backoff=Backoff(0.005, 0.02),
        )
        try:
            publisher = ReadingPublisher(bus, keys, worker="w1")
            consumer = ReadingConsumer(
                bus,
                keys,
                lambda b: core.apply(b.to_batch(core)),
                consumer="core",
                clock=clock,
                block_ms=20,
            )
            await consumer.start()
            await publisher.publish_many(batches[:4])
            assert await consumer.poll() == 4
            await proxy.stop()
            late = asyncio.create_task(publisher.publish_many(batches[4:]))
            for _ in range(100):
                if not bus.healthy:
                    break
                await asyncio.sleep(0.005)
            assert not bus.healthy and not late.done()
            await asyncio.sleep(0.05)
            await proxy.start()
            await late
            while await consumer.poll():
                pass
            assert bus.healthy and bus.outages == 1
        finally:
            await bus.close()
            await proxy.stop()

    run(main())
    for batch, _ in batches:
        source.apply(batch)
    assert same_values(source, core)
    messages = [r.message for r in caplog.records if r.name == "server.bus.connection"]
    assert sum("unreachable" in m for m in messages) == 1
    assert sum("reachable again" in m for m in messages) == 1
    assert isinstance(core, TagTable) and np.isfinite(core.source_ts("realtime")).all()
