"""Benchmark "modbus_link": our Modbus TCP link against pymodbus's async client, same server.

A lean asyncio Modbus TCP server (our MBAP codec) runs in a child process, as the simulator
does beside the server; in this process each client reads 48-register blocks as fast as it
can, one request in flight per connection, over 1 and over 10 connections; the two
clients take turns and the best of two rounds counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection

from pymodbus.client import AsyncModbusTcpClient

from bench.runner import Metric, ratio
from protocols.errors import FrameError
from protocols.modbus_rtu import (
    ReadHoldingRegisters,
    RegistersReply,
    WriteReply,
    WriteSingleRegister,
)
from protocols.modbus_tcp import MbapDecoder, Sender, encode_reply
from protocols.modbus_tcp_link import ModbusTcpLink

BLOCK = 48
SECONDS = 1.5
ROUNDS = 2
CONNECTIONS = (1, 10)
SCAN_REQUESTS = 5_407 * 3.5  # a full scan: ~3–4 requests per meter


class RegisterServerProtocol(asyncio.Protocol):
    """Answers every read with registers 0..count-1 and echoes every write, for any unit."""

    def __init__(self) -> None:
        self.decoder = MbapDecoder(Sender.CLIENT)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except FrameError:
            frames = self.decoder.feed(b"")
        assert self.transport is not None
        for frame in frames:
            request = frame.message
            if isinstance(request, ReadHoldingRegisters):
                reply: RegistersReply | WriteReply = RegistersReply(
                    request.slave, 3, tuple(range(request.count))
                )
            elif isinstance(request, WriteSingleRegister):
                reply = WriteReply(request.slave, 6, request.address, request.value)
            else:
                reply = WriteReply(request.slave, 16, request.address, len(request.values))
            self.transport.write(encode_reply(frame.transaction_id, reply))


def serve(pipe: Connection) -> None:
    """The child process: serve on an ephemeral port, tell its number, stop when told."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(RegisterServerProtocol, "127.0.0.1", 0)
        pipe.send(server.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, pipe.recv)
        server.close()
        await server.wait_closed()

    asyncio.run(main())


async def _rate(clients: int, read: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    """Requests per second, and client CPU µs per request, of `clients` back-to-back loops."""
    done = 0
    stop = time.perf_counter() + SECONDS

    async def loop(client: int) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await read(client)
            done += 1

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(loop(i) for i in range(clients)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return done / wall, cpu / done * 1e6


async def own_rate(port: int, clients: int) -> tuple[float, float]:
    """Our link: one ModbusTcpLink per connection."""
    links = [ModbusTcpLink(f"GW{i}", "127.0.0.1", port) for i in range(clients)]
    try:

        async def read(client: int) -> object:
            return await links[client].read(1, 0, BLOCK)

        return await _rate(clients, read)
    finally:
        for link in links:
            await link.close()


async def pymodbus_rate(port: int, clients: int) -> tuple[float, float]:
    """The pymodbus 3.x client: one AsyncModbusTcpClient per connection."""
    links = [AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1) for _ in range(clients)]
    try:
        for client in links:
            await client.connect()

        async def read(client: int) -> object:
            reply = await links[client].read_holding_registers(0, count=BLOCK, device_id=1)
            if reply.isError():
                raise RuntimeError(f"pymodbus read failed: {reply}")
            return reply.registers

        return await _rate(clients, read)
    finally:
        for client in links:
            client.close()
        await asyncio.sleep(0.05)  # let the transports finish closing


def run() -> dict[str, Metric]:
    """Measure both clients over 1 and 10 connections against the same server process."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=serve, args=(theirs,), daemon=True)
    child.start()
    try:
        port = ours.recv()
        metrics: dict[str, Metric] = {}
        for clients in CONNECTIONS:
            own, own_cpu, other, other_cpu = 0.0, math.inf, 0.0, math.inf
            for _ in range(ROUNDS):  # interleaved, best of each: the machine is shared
                rate, cpu = asyncio.run(own_rate(port, clients))
                own, own_cpu = max(own, rate), min(own_cpu, cpu)
                rate, cpu = asyncio.run(pymodbus_rate(port, clients))
                other, other_cpu = max(other, rate), min(other_cpu, cpu)
            metrics[f"own_req_per_s_{clients}conn"] = Metric(own, "req/s", None, "higher")
            metrics[f"pymodbus_req_per_s_{clients}conn"] = Metric(other, "req/s", None, "higher")
            metrics[f"own_vs_pymodbus_{clients}conn"] = Metric(
                ratio(own, other), "x", None, "higher"
            )
            metrics[f"own_cpu_us_per_req_{clients}conn"] = Metric(own_cpu, "µs", None, "lower")
            metrics[f"pymodbus_cpu_us_per_req_{clients}conn"] = Metric(
                other_cpu, "µs", None, "lower"
            )
        cpu_own = metrics[f"own_cpu_us_per_req_{CONNECTIONS[-1]}conn"].value
        cpu_other = metrics[f"pymodbus_cpu_us_per_req_{CONNECTIONS[-1]}conn"].value
        rate = metrics[f"own_req_per_s_{CONNECTIONS[-1]}conn"].value
        metrics["own_full_scan_s"] = Metric(ratio(SCAN_REQUESTS, rate), "s", 1.0, "lower")
        rate = metrics[f"pymodbus_req_per_s_{CONNECTIONS[-1]}conn"].value
        metrics["pymodbus_full_scan_s"] = Metric(ratio(SCAN_REQUESTS, rate), "s", None, "lower")
        # The client's share of a full scan: the CPU the link itself spends, one core.
        metrics["own_full_scan_cpu_s"] = Metric(SCAN_REQUESTS * cpu_own / 1e6, "s", 1.0, "lower")
        metrics["pymodbus_full_scan_cpu_s"] = Metric(
            SCAN_REQUESTS * cpu_other / 1e6, "s", None, "lower"
        )
        return metrics
    finally:
        ours.send("stop")
        child.join(timeout=5)
        with contextlib.suppress(ValueError):
            child.close()
