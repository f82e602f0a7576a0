"""One meter state, every protocol: Modbus TCP, DTU Modbus RTU, 4G upload and downlink, DL/T 645.

Each path is read through the server's own links (`ModbusTcpLink`, `DialinListener`), decoded
the way a driver would and compared with the fleet's tag columns at the same frozen simulated
time, within the resolution of the path's encoding. The DL/T 645 meter is also read over its
register image, so two protocols are compared directly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from config import load_site
from config.model import Site
from protocols.dialed_link import Backoff
from protocols.dlt645 import Function
from protocols.dlt645_messages import (
    Acknowledgement,
    ReadReply,
    ReadRequest,
    RelayAction,
    RelayRequest,
    parse_message,
)
from protocols.link_errors import Dlt645Refused
from protocols.modbus_rtu import ReadHoldingRegisters, RegistersReply, WriteMultipleRegisters
from protocols.modbus_tcp_link import ModbusTcpLink
from protocols.register_writes import encode_write
from protocols.registers import decode_blocks, decode_poll_block
from server.clock import ManualClock
from sim.runner import Simulator
from tests.test_sim_dialin import Running, running

Run = Callable[[Awaitable[Any]], Any]
SMALL = Path(__file__).resolve().parent.parent / "config" / "examples" / "small"
SH = ZoneInfo("Asia/Shanghai")
START = datetime(2024, 6, 3, 9, 0, tzinfo=SH).timestamp()
# Register resolution per tag, before the PT/CT ratio the profile applies.
LSB = {
    "u_a": (0.1, "pt"),
    "i_a": (0.01, "ct"),
    "p": (0.001, "ptct"),
    "q": (0.001, "ptct"),
    "pf": (0.001, ""),
    "f": (0.01, ""),
    "e_total": (0.01, "ptct"),
    "e_peak": (0.01, "ptct"),
    "e_flat": (0.01, "ptct"),
    "e_valley": (0.01, "ptct"),
}


def tolerance(sim: Simulator, row: int, tag: str) -> float:
    lsb, ratio = LSB[tag]
    factor = {"": 1, "pt": sim.fleet.pt[row], "ct": sim.fleet.ct[row], "ptct": sim.fleet.ratio[row]}
    return lsb * float(factor[ratio]) * 0.5 + 1e-9


def assert_matches_fleet(
    sim: Simulator, row: int, got: dict[str, Any], tags: tuple[str, ...]
) -> None:
    truth = sim.fleet.tags([row])
    for tag in tags:
        assert abs(float(got[tag][0]) - float(truth[tag][0])) <= tolerance(sim, row, tag), tag


def decode_rtu(sim: Simulator, row: int, scan: str, registers: list[int]) -> dict[str, Any]:
    fleet = sim.fleet
    raw = np.array([registers], dtype=np.uint16)
    return decode_blocks(sim.image.profile(row), scan, raw, fleet.pt[row], fleet.ct[row], SH)


async def dlt645(h: Running, gateway: str, message: Any) -> object:
    """The meter's reply to a DL/T 645 request through a DTU gateway of the listener."""
    return parse_message(await h.listener.request_dlt645(gateway, message.to_frame()))


def modbus_link(h: Running, gateway_id: str, **options: Any) -> ModbusTcpLink:
    """The server's link to a simulated Modbus TCP gateway (on the port the simulator took)."""
    gateway = dataclasses.replace(h.site.gateway(gateway_id), port=h.sim.modbus_port(gateway_id))
    options.setdefault("backoff", Backoff(0.05, 0.2))
    return ModbusTcpLink.for_gateway(gateway, clock=h.clock, **options)


async def read_scan(
    read: Callable[[Any], Awaitable[Any]], sim: Simulator, row: int, scan: str, slave: int = 1
) -> dict[str, Any]:
    registers: list[int] = []
    for block in sim.image.profile(row).plan(scan):
        reply = await read(ReadHoldingRegisters(slave, block.pdu_start, block.count))
        assert isinstance(reply, RegistersReply)
        registers.extend(reply.registers)
    return decode_rtu(sim, row, scan, registers)


@pytest.fixture
def site() -> Site:
    return load_site(SMALL)


def test_every_protocol_reports_the_same_state(run: Run, site: Site) -> None:
    async def main() -> None:
        clock = ManualClock(START)
        async with running(site, clock) as h:
            sim = h.sim
            loads = {"P0001": 400.0, "E0001": 30.0, "G0001": 12.0, "D0001": 2.0}
            for meter, kw in loads.items():
                sim.commands.set_load(site.meter_row(meter), kw)
            clock.advance(2 * 3600)  # 09:00 → 11:00 on a weekday: peak energy
            await sim.tick()
            realtime = ("u_a", "i_a", "p", "pf", "f")
            energy = ("e_total", "e_peak", "e_flat", "e_valley")

            # Modbus TCP gateway
            row = site.meter_row("P0001")
            link = modbus_link(h, "GW003")
            try:
                for scan, tags in (("realtime", realtime), ("energy", energy)):
                    decoded = await read_scan(link.request, sim, row, scan)
                    assert_matches_fleet(sim, row, decoded, tags)
            finally:
                await link.close()
            assert sim.fleet.tags([row])["e_total"][0] > 700.0  # 2 h at 400 kW

            # DTU dial-in, Modbus RTU
            row = site.meter_row("E0001")

            def via_dtu(request: Any) -> Awaitable[Any]:
                return h.listener.request("GW001", request)

            for scan, tags in (("realtime", realtime), ("energy", energy)):
                assert_matches_fleet(sim, row, await read_scan(via_dtu, sim, row, scan), tags)

            # 4G meter: the upload of the poll block, and downlink passthrough reads
            row = site.meter_row("G0001")
            serial = h.serial("G0001")
            await h.listener.downlink(serial, ReadHoldingRegisters(1, 0x0800, 48))  # acked
            sim.uploads.next[:] = clock.time()  # due now, at the same frozen time
            await sim.tick()
            await h.seen.until(lambda: serial in h.seen.uploads)
            uploaded = decode_poll_block(
                sim.image.profile(row), np.array(h.seen.uploads[serial][:1], np.uint16), SH
            )
            assert_matches_fleet(sim, row, uploaded, ("u_a", "i_a", "pf", "e_total", "e_peak"))

            def via_4g(request: Any) -> Awaitable[Any]:
                return h.listener.downlink(serial, request)

            for scan, tags in (("realtime", realtime), ("energy", energy)):
                assert_matches_fleet(sim, row, await read_scan(via_4g, sim, row, scan), tags)

            # DL/T 645 on GW002: values are secondary; × ratio gives the primary tags
            row = site.meter_row("D0001")
            address = site.meter("D0001").dlt645_address
            ratio = {"u_a": "pt", "i_a": "ct", "p": "ptct", "pf": "", "f": ""}
            image = decode_rtu(
                sim,
                row,
                "realtime",
                [*sim.image.read(row, 0x61, 0x2F), *sim.image.read(row, 0x164, 0x1C)],
            )
            dis = {
                "u_a": 0x02010100,
                "i_a": 0x02020100,
                "p": 0x02030000,
                "pf": 0x02060000,
                "f": 0x02800002,
                "e_total": 0x00000000,
                "e_peak": 0x00000200,
                "e_flat": 0x00000300,
                "e_valley": 0x00000400,
            }
            image.update(decode_rtu(sim, row, "energy", sim.image.read(row, 0x0000, 0x16)))
            fleet = sim.fleet
            factor = {"": 1, "pt": fleet.pt[row], "ct": fleet.ct[row], "ptct": fleet.ratio[row]}
            for tag, di in dis.items():
                reply = await dlt645(h, "GW002", ReadRequest(address, di))
                assert isinstance(reply, ReadReply), tag
                value = reply.value()
                assert isinstance(value, Decimal)
                primary = float(value) * float(factor[ratio.get(tag, "ptct")])
                assert abs(primary - float(fleet.tags([row])[tag][0])) <= tolerance(sim, row, tag)
                assert abs(primary - float(image[tag][0])) <= 2 * tolerance(sim, row, tag), tag
            with pytest.raises(Dlt645Refused, match="no requested data"):  # single phase
                await dlt645(h, "GW002", ReadRequest(address, 0x02010200))

    run(main())


def test_relay_writes_through_dlt645_and_the_4g_downlink(run: Run, site: Site) -> None:
    async def main() -> None:
        clock = ManualClock(START)
        async with running(site, clock) as h:
            sim = h.sim
            fleet = sim.fleet
            d_row = site.meter_row("D0001")
            address = site.meter("D0001").dlt645_address
            meter_now = datetime.fromtimestamp(clock.time(), SH).replace(tzinfo=None)
            password, operator = bytes.fromhex("02000000"), bytes.fromhex("01000000")
            trip = RelayRequest(
                address, password, operator, RelayAction.TRIP, meter_now + timedelta(hours=1)
            )
            assert await dlt645(h, "GW002", trip) == Acknowledgement(address, Function.RELAY)
            assert not fleet.closed[d_row]
            status = decode_rtu(
                sim,
                d_row,
                "realtime",
                [*sim.image.read(d_row, 0x61, 0x2F), *sim.image.read(d_row, 0x164, 0x1C)],
            )
            assert status["relay"][0] == 0
            expired = RelayRequest(
                address, password, operator, RelayAction.ALLOW_CLOSE, meter_now - timedelta(days=1)
            )
            with pytest.raises(Dlt645Refused, match="other error"):
                await dlt645(h, "GW002", expired)
            assert not fleet.closed[d_row]

            g_row = site.meter_row("G0001")
            serial = h.serial("G0001")
            [(start, values)] = encode_write(sim.image.profile(g_row), "relay_open")
            write = WriteMultipleRegisters(1, start, tuple(values))
            echo = await h.listener.downlink(serial, write)
            assert echo.function == 16 and not fleet.closed[g_row]
            sim.uploads.next[:] = clock.time()
            await sim.tick()
            await h.seen.until(lambda: serial in h.seen.uploads)
            tags = decode_poll_block(
                sim.image.profile(g_row), np.array(h.seen.uploads[serial][:1], np.uint16), SH
            )
            assert tags["relay"][0] == 0 and tags["p"][0] == 0.0
            assert not math.isnan(tags["e_total"][0])

    run(main())
