"""Benchmark "scaleout": sustained end-to-end tag updates per second with 1 and 2 workers.

The generated park with 224 Modbus TCP gateways is simulated in a child process. This
process runs the core of a `WorkerPool`: N worker processes scan their gateways back to
back (realtime class), publish every batch to Redis Streams, and the core applies them
through its pipeline into the tag table. A tag update is one good tag value written
into the core's table; the figure is their rate over `SUSTAIN_S` seconds once every
gateway has delivered. Redis is `PARKGRID_REDIS_URL` (keys under the park `bench-scaleout`,
deleted before and after).

- `tag_updates_per_s_1_worker`, `tag_updates_per_s_2_workers`: the sustained rates.
- `scaleout_ratio_2_to_1`: the second over the first.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import redis

from bench.runner import Metric, ratio
from config import load_site
from config.demo import generate_site
from config.values import Endpoint
from server.acquisition.pipeline import BatchPipeline
from server.bus import BusKeys
from server.clock import SystemClock
from server.process import build_tag_table
from server.scaleout import WorkerPool, worker_gateways
from server.tags import StatusCode

REDIS_URL = os.environ.get("PARKGRID_REDIS_URL", "redis://127.0.0.1:6379/0")
PARK = "bench-scaleout"
SUSTAIN_S = 10.0
READY_S = 120.0
IDLE = {"realtime": 1e9, "energy": 1e9, "demand": 1e9, "prepaid": 1e9}


def _simulate(folder: str, pipe: Connection) -> None:
    """Child process: serve the park's Modbus TCP gateways until told to stop."""
    from sim.runner import Simulator

    async def main() -> None:
        site = load_site(Path(folder))
        sim = Simulator(site, modbus_any_port=True, serve_control=False, dial_in=False)
        await sim.start()
        pipe.send({g: sim.modbus_port(g) for g in sim.modbus})
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, pipe.recv)
        await sim.stop()

    asyncio.run(main())


def _clear_keys() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = BusKeys(park=PARK)
        names = [keys.readings, keys.dead_letters, keys.outcomes, keys.workers, keys.assignment]
        client.delete(*names, *(keys.commands(f"w{i}") for i in range(8)))
    finally:
        client.close()


async def _measure(folder: Path, endpoints: dict[str, Endpoint], workers: int) -> float:
    site = load_site(folder)
    clock = SystemClock()
    table = build_tag_table(site, clock)
    pipeline = BatchPipeline(table)
    rows = [site.meter_row(m.id) for g in worker_gateways(site) for m in site.meters_on(g)]
    _clear_keys()
    pool = WorkerPool(
        site,
        table,
        pipeline,
        workers=workers,
        redis_url=REDIS_URL,
        clock=clock,
        park=PARK,
        gateway_endpoints=endpoints,
        intervals=IDLE,
        request_timeout=2.0,
        drive="continuous",
        heartbeat_ttl=10.0,
        check_interval=0.5,
    )
    await pool.start()
    try:
        began = time.perf_counter()
        while not (table.quality("realtime")[rows] == StatusCode.GOOD).all():
            if time.perf_counter() - began > READY_S:
                raise RuntimeError(f"{workers} worker(s): not every gateway delivered in time")
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # past the reshuffle of the first assignments
        values, began = pipeline.stats.values, time.perf_counter()
        await asyncio.sleep(SUSTAIN_S)
        return (pipeline.stats.values - values) / (time.perf_counter() - began)
    finally:
        await pool.stop()
        _clear_keys()


def run() -> dict[str, Metric]:
    """Scan the Modbus TCP park with 1 and with 2 workers; report the sustained rates."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "modbus"
        generate_site(folder, seed=1, modbus_tcp_gateways=224)
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_simulate, args=(str(folder), child), daemon=True)
        process.start()
        try:
            ports = parent.recv()
            endpoints = {g: Endpoint("127.0.0.1", p) for g, p in ports.items()}
            one = asyncio.run(_measure(folder, endpoints, 1))
            two = asyncio.run(_measure(folder, endpoints, 2))
        finally:
            parent.send("stop")
            process.join(timeout=20)
            if process.is_alive():
                process.kill()
                process.join()
    return {
        "tag_updates_per_s_1_worker": Metric(one, "values/s", 150_000, "higher"),
        "tag_updates_per_s_2_workers": Metric(two, "values/s", 150_000, "higher"),
        "scaleout_ratio_2_to_1": Metric(ratio(two, one), "x", None, "higher"),
    }


if __name__ == "__main__":
    for name, metric in run().items():
        print(f"{name}: {metric.value:.1f} {metric.unit}")
