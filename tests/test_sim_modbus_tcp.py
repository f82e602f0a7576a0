"""The simulator's Modbus TCP gateways: reads from the profile, writes as commands, faults."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from config import load_site
from config.values import Endpoint
from protocols.errors import FrameError
from protocols.modbus_rtu import (
    ExceptionReply,
    ReadHoldingRegisters,
    RegistersReply,
    Reply,
    Request,
    WriteMultipleRegisters,
    WriteReply,
)
from protocols.modbus_tcp import MbapDecoder, Sender, encode_request
from protocols.register_writes import encode_write
from protocols.registers import decode_blocks, encode_blocks
from server.clock import ManualClock
from sim.runner import Simulator

Run = Callable[[Awaitable[Any]], Any]
SMALL = Path(__file__).resolve().parent.parent / "config" / "examples" / "small"
SH = ZoneInfo("Asia/Shanghai")
START = datetime(2024, 6, 3, 10, 0, tzinfo=SH).timestamp()
GATEWAY = "GW003"  # Modbus TCP, meter P0001 at slave 1 (DTSY1352, PT 10, CT 200)


class TcpMaster:
    """A minimal Modbus TCP master over the codec: one request in flight."""

    def __init__(self) -> None:
        self.tid = 0
        self.decoder = MbapDecoder(Sender.SERVER)

    async def open(self, port: int) -> TcpMaster:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        return self

    async def request(self, request: Request, within: float = 2.0) -> Reply:
        self.tid += 1
        self.writer.write(encode_request(self.tid, request))
        async with asyncio.timeout(within):
            while True:
                data = await self.reader.read(4096)
                if not data:
                    raise ConnectionError("closed by the gateway")
                frames = self.decoder.feed(data)
                if frames:
                    assert frames[0].transaction_id == self.tid
                    message = frames[0].message
                    assert isinstance(message, RegistersReply | WriteReply | ExceptionReply)
                    return message

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def make_sim(clock: ManualClock | None = None, **options: object) -> Simulator:
    site = load_site(SMALL)
    return Simulator(
        site,
        clock=clock or ManualClock(START),
        dial_in=False,
        serve_control=False,
        modbus_any_port=True,
        **options,  # type: ignore[arg-type]
    )


async def read_plan(master: TcpMaster, sim: Simulator, row: int, scan: str) -> dict[str, Any]:
    profile = sim.image.profile(row)
    blocks: list[int] = []
    for block in profile.plan(scan):
        reply = await master.request(ReadHoldingRegisters(1, block.pdu_start, block.count))
        assert isinstance(reply, RegistersReply)
        blocks.extend(reply.registers)
    raw = np.array([blocks], dtype=np.uint16)
    fleet = sim.fleet
    return decode_blocks(profile, scan, raw, fleet.pt[row], fleet.ct[row], fleet.tz, now=fleet.now)


def expected(sim: Simulator, row: int, scan: str) -> dict[str, Any]:
    """What the profile says the meter's registers hold, decoded the same way."""
    profile = sim.image.profile(row)
    fleet = sim.fleet
    tags = fleet.tags([row])
    pt, ct = fleet.pt[row : row + 1], fleet.ct[row : row + 1]
    raw = encode_blocks(profile, scan, tags, pt, ct, fleet.tz)
    return decode_blocks(profile, scan, raw, pt, ct, fleet.tz, now=fleet.now)


@pytest.mark.parametrize("scan", ["realtime", "energy", "prepaid", "demand"])
def test_reads_match_the_profile_encoding(run: Run, scan: str) -> None:
    async def main() -> None:
        clock = ManualClock(START)
        sim = make_sim(clock)
        await sim.start()
        try:
            row = sim.site.meter_row("P0001")
            sim.commands.set_load(row, 150.0)
            clock.advance(3600)
            await sim.tick()
            master = await TcpMaster().open(sim.modbus_port(GATEWAY))
            got = await read_plan(master, sim, row, scan)
            want = expected(sim, row, scan)
            await master.close()
        finally:
            await sim.stop()
        assert got.keys() == want.keys()
        for tag in want:
            np.testing.assert_array_equal(got[tag], want[tag], err_msg=tag)
        if scan == "energy":
            assert got["e_total"][0] > 100.0  # an hour at 150 kW on the primary side

    run(main())


def test_unmapped_address_and_unknown_slave(run: Run) -> None:
    async def main() -> None:
        sim = make_sim()
        await sim.start()
        try:
            master = await TcpMaster().open(sim.modbus_port(GATEWAY))
            unmapped = await master.request(ReadHoldingRegisters(1, 0x0200, 2))
            straddling = await master.request(ReadHoldingRegisters(1, 0x008E, 4))
            nobody = await master.request(ReadHoldingRegisters(9, 0x0061, 3))
            await master.close()
        finally:
            await sim.stop()
        assert unmapped == ExceptionReply(1, 3, 0x02)
        assert straddling == ExceptionReply(1, 3, 0x02)
        assert nobody == ExceptionReply(9, 3, 0x0B)

    run(main())


def test_relay_write_opens_the_relay_and_the_status_word_shows_it(run: Run) -> None:
    async def main() -> None:
        sim = make_sim()
        await sim.start()
        try:
            row = sim.site.meter_row("P0001")
            profile = sim.image.profile(row)
            master = await TcpMaster().open(sim.modbus_port(GATEWAY))
            before = await read_plan(master, sim, row, "realtime")
            [(address, values)] = encode_write(profile, "relay_open")
            echo = await master.request(WriteMultipleRegisters(1, address, tuple(values)))
            after = await read_plan(master, sim, row, "realtime")
            closed_again = encode_write(profile, "relay_auto")[0]
            await master.request(WriteMultipleRegisters(1, closed_again[0], (0, 0)))
            auto = await read_plan(master, sim, row, "realtime")
            await master.close()
        finally:
            await sim.stop()
        assert echo == WriteReply(1, 16, address, 2)
        assert before["relay"][0] == 1 and after["relay"][0] == 0
        assert after["status_word"][0] & 0xE000 == 0 and before["status_word"][0] & 0xE000
        assert after["p"][0] == 0.0
        assert auto["relay"][0] == 1

    run(main())


def test_write_refusals_carry_the_right_exception_codes(run: Run) -> None:
    async def main() -> list[Reply]:
        sim = make_sim()
        await sim.start()
        try:
            row = sim.site.meter_row("P0001")
            profile = sim.image.profile(row)
            master = await TcpMaster().open(sim.modbus_port(GATEWAY))
            relay = profile.pdu(profile.write("relay_open").address)
            day_table = encode_write(
                profile, "tou_day_table", table=1, periods=[(0, 0, 3), (8, 0, 2)]
            )[0]
            prices = encode_write(
                profile, "prices", sharp_e4=12000, peak_e4=10000, flat_e4=7000, valley_e4=3500
            )[0]
            replies = [
                await master.request(WriteMultipleRegisters(1, relay, (7, 7))),
                await master.request(WriteMultipleRegisters(1, 0x0500, (1,))),
                await master.request(WriteMultipleRegisters(1, day_table[0], tuple(day_table[1]))),
                await master.request(WriteMultipleRegisters(1, prices[0], tuple(prices[1]))),
            ]
            tags = sim.fleet.tags([row])
            await master.close()
        finally:
            await sim.stop()
        assert tags["price_peak_e4"][0] == 10000 and tags["price_valley_e4"][0] == 3500
        return replies

    bad_value, bad_address, unsupported, ok = run(main())
    assert bad_value == ExceptionReply(1, 16, 0x03)
    assert bad_address == ExceptionReply(1, 16, 0x02)
    assert unsupported == ExceptionReply(1, 16, 0x04)
    assert isinstance(ok, WriteReply)


def test_faults_silent_slow_corrupt(run: Run) -> None:
    async def main() -> None:
        sim = make_sim()
        await sim.start()
        faults = sim.fleet.faults
        row = sim.site.meter_row("P0001")
        try:
            master = await TcpMaster().open(sim.modbus_port(GATEWAY))
            faults.silence(row)
            with pytest.raises(TimeoutError):
                await master.request(ReadHoldingRegisters(1, 0x61, 3), within=0.3)
            faults.clear("silent")
            await master.close()

            master = await TcpMaster().open(sim.modbus_port(GATEWAY))
            faults.slow_replies(row, 150.0)
            began = time.perf_counter()
            reply = await master.request(ReadHoldingRegisters(1, 0x61, 3))
            elapsed = time.perf_counter() - began
            faults.clear("slow")
            assert isinstance(reply, RegistersReply) and elapsed >= 0.15

            faults.corrupt_frames(row, 1.0)
            with pytest.raises(FrameError):
                await master.request(ReadHoldingRegisters(1, 0x61, 3))
            await master.close()
        finally:
            await sim.stop()

    run(main())


def test_gateway_down_closes_and_refuses_connections(run: Run) -> None:
    async def main() -> None:
        clock = ManualClock(START)
        sim = make_sim(clock)
        await sim.start()
        try:
            port = sim.modbus_port(GATEWAY)
            master = await TcpMaster().open(port)
            await master.request(ReadHoldingRegisters(1, 0x61, 3))
            sim.fleet.faults.gateway_outage(GATEWAY, duration_s=60)
            sim.apply_outages()
            with pytest.raises(ConnectionError):
                await master.request(ReadHoldingRegisters(1, 0x61, 3))
            await master.close()
            second = await TcpMaster().open(port)
            with pytest.raises(ConnectionError):
                await second.request(ReadHoldingRegisters(1, 0x61, 3))
            await second.close()
            clock.advance(61)
            await sim.tick()
            third = await TcpMaster().open(port)
            reply = await third.request(ReadHoldingRegisters(1, 0x61, 3))
            await third.close()
            assert isinstance(reply, RegistersReply)
        finally:
            await sim.stop()

    run(main())


def test_many_clients_at_once(run: Run) -> None:
    async def main() -> None:
        sim = make_sim()
        await sim.start()
        try:
            port = sim.modbus_port(GATEWAY)
            masters = [await TcpMaster().open(port) for _ in range(8)]
            replies = await asyncio.gather(
                *(m.request(ReadHoldingRegisters(1, 0x0000, 0x16)) for m in masters)
            )
            assert sim.status()["modbus_clients"] == 8
            for m in masters:
                await m.close()
        finally:
            await sim.stop()
        assert len({r.registers for r in replies if isinstance(r, RegistersReply)}) == 1

    run(main())


def test_dial_target_maps_any_address_to_loopback() -> None:
    from sim.runner import dial_target

    assert dial_target(Endpoint("0.0.0.0", 7700)) == Endpoint("127.0.0.1", 7700)
    assert dial_target(Endpoint("10.0.0.5", 7700)) == Endpoint("10.0.0.5", 7700)
