"""Benchmark "bus": one park scan of gateway batches through Redis Streams into the tag table."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid

import numpy as np
import numpy.typing as npt

from bench.runner import Metric, ratio
from bench.tags import GATEWAYS, build_table, random_values
from bench.timing import median_seconds
from config.catalogue import default_catalogue
from server.bus import (
    BusConnection,
    BusKeys,
    MeterBatch,
    ReadingConsumer,
    ReadingPublisher,
    decode_batch,
    encode_batch,
    open_redis,
)
from server.clock import ManualClock
from server.tags import Batch, StatusCode, TagTable

REDIS_URL = os.environ.get("PARKGRID_REDIS_URL", "redis://127.0.0.1:6379/0")
ROUNDS = 15


def scan_batches(
    table: TagTable, rng: np.random.Generator, ts: float
) -> list[tuple[Batch, npt.NDArray[np.str_]]]:
    """One realtime batch per gateway (about 24 meters × 29 tags), all values new."""
    tags = default_catalogue().group_tags("realtime")
    bounds = np.searchsorted(table.meters.gateway_codes, np.arange(GATEWAYS + 1))
    out: list[tuple[Batch, npt.NDArray[np.str_]]] = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        rows = np.arange(lo, hi, dtype=np.int64)
        values = random_values(tags, len(rows), rng)
        batch = Batch("realtime", rows, values, quality=StatusCode.GOOD, source_ts=ts)
        out.append((batch, table.ids[rows]))
    return out


async def _rounds(
    scans: list[list[tuple[Batch, npt.NDArray[np.str_]]]], core: TagTable
) -> list[float]:
    """Seconds from the first publish of each scan until its last batch is applied."""
    keys = BusKeys(park=f"bench{uuid.uuid4().hex[:8]}")
    bus = BusConnection(open_redis(REDIS_URL, client_name="bench-bus"))
    applied = 0
    target = 0
    finished = asyncio.Event()

    def apply(batch: MeterBatch) -> None:
        nonlocal applied
        core.apply(batch.to_batch(core))
        applied += 1
        if applied >= target:
            finished.set()

    clock = ManualClock()
    consumer = ReadingConsumer(
        bus, keys, apply, consumer="bench", clock=clock, block_ms=50, count=256
    )
    publisher = ReadingPublisher(bus, keys, worker="bench")
    stop = asyncio.Event()
    samples: list[float] = []
    try:
        await consumer.ensure_group()
        task = asyncio.create_task(consumer.run(stop))
        for scan in scans:
            target = applied + len(scan)
            finished.clear()
            start = time.perf_counter()
            await publisher.publish_many(scan)
            await finished.wait()
            samples.append(time.perf_counter() - start)
            await consumer.trim()
        stop.set()
        await task
    finally:
        stop.set()
        await bus.client.delete(keys.readings, keys.dead_letters)
        await bus.close()
    return samples


def run() -> dict[str, Metric]:
    """Time encode, decode and the publish → consume → apply round of one park scan."""
    rng = np.random.default_rng(20_240_601)
    clock = ManualClock()
    worker_table = build_table(clock)
    core = build_table(clock)
    scans = [scan_batches(worker_table, rng, 1_700_000_000.0 + i) for i in range(ROUNDS + 2)]
    first = scans[0]
    batch, ids = first[0]
    payload = encode_batch(batch, ids)
    encode_s = median_seconds(lambda: encode_batch(batch, ids), repeat=501)
    decode_s = median_seconds(lambda: decode_batch(payload), repeat=501)
    samples = asyncio.run(_rounds(scans, core))[2:]
    round_s = statistics.median(samples)
    values = sum(len(b) * len(b.values) for b, _ in first)
    return {
        "batches_per_s": Metric(ratio(len(first), round_s), "batches/s", None, "higher"),
        "values_per_s": Metric(ratio(values, round_s), "values/s", None, "higher"),
        "scan_round_ms": Metric(round_s * 1e3, "ms", None, "lower"),
        "batch_bytes": Metric(float(len(payload)), "bytes", None, "lower"),
        "encode_us": Metric(encode_s * 1e6, "us", None, "lower"),
        "decode_us": Metric(decode_s * 1e6, "us", None, "lower"),
    }
