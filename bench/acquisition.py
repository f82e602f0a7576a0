"""Benchmark "acquisition": full scans of the park against the simulator, end to end.

The simulator runs in a child process (so the 2 cores are shared as in the field); this
process runs the server's acquisition: links, poll groups, decode, pipeline, tag table.
Two parks are generated: one whose 224 gateways are all Modbus TCP, and the reference
park whose gateways are mostly DTUs dialling in. Both have 1,100 direct 4G meters, which
push their data rather than being scanned, so a "full scan" is every gateway meter (4,307).

- `full_scan_s`: median wall time of a realtime scan of every gateway meter, Modbus TCP.
- `full_scan_dialin_s`: the same over the dial-in DTU links (+ 8 Modbus TCP gateways).
- `tag_updates_per_s`: tag values written into the table per second, scanning back to
  back for `SUSTAIN_S` seconds (all scan classes' batches go through the pipeline).
- `cpu_s_per_1000_meters`: this process's CPU per realtime scan per 1,000 meters.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from bench.runner import Metric, ratio
from config import load_site
from config.demo import generate_site
from config.values import Endpoint
from server.acquisition.service import Acquisition
from server.clock import SystemClock
from server.process import build_tag_table

SCANS = 5
SUSTAIN_S = 10.0
IDLE = {"realtime": 1e9, "energy": 1e9, "demand": 1e9, "prepaid": 1e9}


def _simulate(folder: str, dialin_port: int, pipe: Connection) -> None:
    """Child process: serve the park, send the Modbus ports, run until told to stop."""
    from sim.runner import Simulator

    async def main() -> None:
        site = load_site(Path(folder))
        sim = Simulator(
            site,
            dialin=Endpoint("127.0.0.1", dialin_port),
            modbus_any_port=True,
            serve_control=False,
            connect_rate=2000.0,
        )
        await sim.start()
        pipe.send({g: sim.modbus_port(g) for g in sim.modbus})
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, pipe.recv)
        await sim.stop()

    asyncio.run(main())


async def _measure(folder: Path, sustain: bool) -> dict[str, float]:
    site = load_site(folder)
    clock = SystemClock()
    table = build_tag_table(site, clock)
    acq = Acquisition(
        site,
        table,
        clock=clock,
        dialin_listen=Endpoint("127.0.0.1", 0),
        intervals=IDLE,
        request_timeout=2.0,
    )
    port = await acq.listen() or 0
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_simulate, args=(str(folder), port, child), daemon=True)
    process.start()
    try:
        loop = asyncio.get_running_loop()
        ports = await loop.run_in_executor(None, parent.recv)
        endpoints = {g: Endpoint("127.0.0.1", p) for g, p in ports.items()}
        await acq.start(run_loops=False, gateway_endpoints=endpoints)
        dtus = [g.id for g in site.gateways if g.kind == "dtu"]
        listener = acq.listener
        for _ in range(1200):  # up to 60 s for the DTUs to dial in
            if listener is None or all(listener.online(d) for d in dtus):
                break
            await asyncio.sleep(0.05)
        await acq.full_scan("realtime")  # connect and warm up
        meters = sum(
            len(g.members) for g in acq.groups.values() if "realtime" in g.schedule.intervals
        )
        walls, cpus = [], []
        for _ in range(SCANS):
            wall, cpu = time.perf_counter(), time.process_time()
            reports = await acq.full_scan("realtime")
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            bad = sum(r.bad for r in reports)
            if bad:
                raise RuntimeError(f"{bad} meter(s) failed a full scan")
        result = {
            "full_scan_s": statistics.median(walls),
            "cpu_s_per_1000_meters": statistics.median(cpus) / (meters / 1000),
            "meters": float(meters),
        }
        if sustain:
            values = acq.pipeline.stats.values
            began = time.perf_counter()
            while time.perf_counter() - began < SUSTAIN_S:
                await acq.full_scan("realtime")
            elapsed = time.perf_counter() - began
            result["tag_updates_per_s"] = (acq.pipeline.stats.values - values) / elapsed
        return result
    finally:
        await acq.stop()
        parent.send("stop")
        process.join(timeout=20)
        if process.is_alive():
            process.kill()
            process.join()


def run() -> dict[str, Metric]:
    """Scan both parks against the simulator in a child process; report the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        modbus_park, dialin_park = Path(tmp) / "modbus", Path(tmp) / "dialin"
        generate_site(modbus_park, seed=1, modbus_tcp_gateways=224)
        generate_site(dialin_park, seed=1)
        tcp = asyncio.run(_measure(modbus_park, sustain=True))
        dialin = asyncio.run(_measure(dialin_park, sustain=False))
    return {
        "full_scan_s": Metric(tcp["full_scan_s"], "s", 1.0, "lower"),
        "full_scan_meters": Metric(tcp["meters"], "meters", None, "higher"),
        "full_scan_dialin_s": Metric(dialin["full_scan_s"], "s", None, "lower"),
        "tag_updates_per_s": Metric(tcp["tag_updates_per_s"], "values/s", 150_000, "higher"),
        "cpu_s_per_1000_meters": Metric(tcp["cpu_s_per_1000_meters"], "s", None, "lower"),
        "meters_per_s": Metric(
            ratio(tcp["meters"], tcp["full_scan_s"]), "meters/s", None, "higher"
        ),
    }
