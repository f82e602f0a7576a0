"""Benchmark "sim": Modbus TCP requests per second the simulator serves for the demo park.

The simulator runs the generated 5,407-meter park in this process, its 8 Modbus TCP gateways
on free ports. A child process runs the masters: `CLIENTS_PER_GATEWAY` connections per
gateway, one request in flight each (as pymodbus masters do), reading the first realtime
block (47 registers) of the gateway's meters in turn. The target is what a full realtime
scan of the park in one second would take: two blocks for each of the 5,407 meters.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.runner import Metric, ratio
from bench.timing import median_seconds
from config import load_site
from config.demo import generate_site
from protocols.modbus_rtu import ReadHoldingRegisters, RegistersReply, Reply
from protocols.modbus_tcp import MbapDecoder, MbapFrame, Sender, encode_request
from sim.register_image import RegisterImage
from sim.runner import Simulator

CLIENTS_PER_GATEWAY = 4
WARMUP_S = 0.5
MEASURE_S = 3.0
REALTIME_BLOCK = (0x0061, 0x2F)
FULL_SCAN_REQUESTS_PER_S = 2 * 5_407


async def _master(port: int, slaves: list[int], stop_at: float, start_at: float) -> int:
    """Read realtime blocks until `stop_at`; count the replies after `start_at`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    decoder = MbapDecoder(Sender.SERVER)
    done = 0
    tid = 0
    address, count = REALTIME_BLOCK
    try:
        while (now := time.perf_counter()) < stop_at:
            tid = (tid + 1) & 0xFFFF
            slave = slaves[tid % len(slaves)]
            writer.write(encode_request(tid, ReadHoldingRegisters(slave, address, count)))
            frames: list[MbapFrame[Reply]] = []
            while not frames:
                data = await reader.read(4096)
                if not data:
                    raise ConnectionError("the simulator closed the connection")
                frames = decoder.feed(data)
            if not isinstance(frames[0].message, RegistersReply):
                raise RuntimeError(f"unexpected reply {frames[0].message}")
            done += now >= start_at
    finally:
        writer.close()
        await writer.wait_closed()
    return done


async def _masters(gateways: list[tuple[int, list[int]]]) -> int:
    start_at = time.perf_counter() + WARMUP_S
    stop_at = start_at + MEASURE_S
    counts = await asyncio.gather(
        *(
            _master(port, slaves, stop_at, start_at)
            for port, slaves in gateways
            for _ in range(CLIENTS_PER_GATEWAY)
        )
    )
    return sum(counts)


def _client_process(
    gateways: list[tuple[int, list[int]]], results: multiprocessing.Queue[int]
) -> None:
    results.put(asyncio.run(_masters(gateways)))


async def _serve_and_measure(folder: Path) -> tuple[int, dict[str, int]]:
    site = load_site(folder)
    sim = Simulator(site, dial_in=False, serve_control=False, modbus_any_port=True)
    await sim.start()
    try:
        gateways = [(sim.modbus_port(g), sorted(sim.modbus[g].rows_by_slave)) for g in sim.modbus]
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        child = context.Process(target=_client_process, args=(gateways, results))
        child.start()
        loop = asyncio.get_running_loop()
        served = await loop.run_in_executor(None, results.get)
        await loop.run_in_executor(None, child.join)
        requests = {g: gw.requests for g, gw in sim.modbus.items()}
    finally:
        await sim.stop()
    return served, requests


def run() -> dict[str, Metric]:
    """Serve the park over Modbus TCP to a child process's masters; time the image encode."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "park"
        generate_site(folder, seed=1)
        served, _ = asyncio.run(_serve_and_measure(folder))
        site = load_site(folder)
    sim = Simulator(site, dial_in=False, serve_control=False)
    image = RegisterImage(sim.fleet, [m.model for m in site.meters])
    rows = np.arange(len(site.meters))

    def encode() -> None:
        image.invalidate()
        image.read(0, *REALTIME_BLOCK)

    encode_s = median_seconds(encode, repeat=11, warmup=1)
    upload_s = median_seconds(lambda: image.poll_blocks(rows), repeat=11, warmup=1)
    per_s = served / MEASURE_S
    return {
        "modbus_tcp_requests_per_s": Metric(per_s, "req/s", FULL_SCAN_REQUESTS_PER_S, "higher"),
        "modbus_tcp_registers_per_s": Metric(
            per_s * REALTIME_BLOCK[1], "registers/s", None, "higher"
        ),
        "clients": Metric(float(CLIENTS_PER_GATEWAY * 8), "connections", None, "higher"),
        "image_encode_ms": Metric(encode_s * 1e3, "ms", None, "lower"),
        "poll_blocks_all_meters_ms": Metric(upload_s * 1e3, "ms", None, "lower"),
        "full_scan_s_at_this_rate": Metric(
            ratio(FULL_SCAN_REQUESTS_PER_S, per_s), "s", 1.0, "lower"
        ),
    }
