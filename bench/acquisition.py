"""Benchmark "acquisition": full scans of the park against the simulator, end to end.

The simulator runs in a child process (so the 2 cores are shared as in the field); this
process runs the server's acquisition: links, poll groups, decode, pipeline, tag table.
Two parks are generated. For DESIGN's target (5,407 meters over Modbus TCP, 224
gateways) the first has all 224 gateways on Modbus TCP and its 1,100 enterprise meters
moved behind them as well (slaves after the dormitory ones), so every meter is scanned.
The second is the reference park itself, gateways mostly DTUs dialling in, whose 1,100
direct 4G meters push their data rather than being scanned (4,307 scanned meters).

- `full_scan_s`: median wall time of a realtime scan of all 5,407 meters, Modbus TCP.
- `full_scan_dialin_s`: the reference park's gateway meters over the dial-in DTU links.
- `tag_updates_per_s`: tag values written into the table per second, scanning back to
  back for `SUSTAIN_S` seconds, each batch through the pipeline with the alarm engine.
- `cpu_s_per_1000_meters`: this process's CPU per realtime scan per 1,000 meters.
- `full_scan_failed_meters`: the most meters that failed (timed out) in one timed scan.
"""

from __future__ import annotations

import asyncio
import csv
import multiprocessing
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from alarms.engine import AlarmEngine
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
    # The alarm engine evaluates every batch, as in the server (historian and prepaid
    # need a database and are measured by their own benchmarks).
    acq.pipeline.subscribe("alarms", AlarmEngine(site, table, clock=clock), name="alarms")
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
        walls, cpus, failed = [], [], 0
        for _ in range(SCANS):
            wall, cpu = time.perf_counter(), time.process_time()
            reports = await acq.full_scan("realtime")
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            failed = max(failed, sum(r.bad for r in reports))
        result = {
            "full_scan_s": statistics.median(walls),
            "cpu_s_per_1000_meters": statistics.median(cpus) / (meters / 1000),
            "meters": float(meters),
            "failed": float(failed),
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


def _all_behind_gateways(folder: Path) -> None:
    """Move the park's direct 4G meters behind its gateways, round robin, after their slaves."""
    path = folder / "meters.csv"
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    gw, slave, serial = (header.index(c) for c in ("gateway", "slave", "serial"))
    gateways = sorted({r[gw] for r in body if r[gw]})
    used = {g: max(int(r[slave]) for r in body if r[gw] == g) for g in gateways}
    direct = [r for r in body if not r[gw]]
    for i, row in enumerate(direct):
        gateway = gateways[i % len(gateways)]
        used[gateway] += 1
        row[gw], row[slave], row[serial] = gateway, str(used[gateway]), ""
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def run() -> dict[str, Metric]:
    """Scan both parks against the simulator in a child process; report the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        modbus_park, dialin_park = Path(tmp) / "modbus", Path(tmp) / "dialin"
        generate_site(modbus_park, seed=1, modbus_tcp_gateways=224)
        _all_behind_gateways(modbus_park)
        generate_site(dialin_park, seed=1)
        tcp = asyncio.run(_measure(modbus_park, sustain=True))
        dialin = asyncio.run(_measure(dialin_park, sustain=False))
    return {
        "full_scan_s": Metric(tcp["full_scan_s"], "s", 1.0, "lower"),
        "full_scan_meters": Metric(tcp["meters"], "meters", None, "higher"),
        "full_scan_failed_meters": Metric(tcp["failed"], "meters", 0, "lower"),
        "full_scan_dialin_s": Metric(dialin["full_scan_s"], "s", None, "lower"),
        "tag_updates_per_s": Metric(tcp["tag_updates_per_s"], "values/s", 150_000, "higher"),
        "cpu_s_per_1000_meters": Metric(tcp["cpu_s_per_1000_meters"], "s", None, "lower"),
        "meters_per_s": Metric(
            ratio(tcp["meters"], tcp["full_scan_s"]), "meters/s", None, "higher"
        ),
    }
