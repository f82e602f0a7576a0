"""The server's real links against the real simulator: reads, relay writes, faults, the park.

`DialinListener` serves the simulator's DTU gateways and 4G meters, `ModbusTcpLink` dials its
Modbus TCP gateway; simulated time is a frozen `ManualClock`. Reads are decoded as a driver
would and compared with the fleet (the same meters' parity across protocols, and the DL/T 645
register image, are `test_sim_parity`'s); writes and faults are checked against the fleet's
relay state and the typed errors every link raises.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config import load_site
from config.model import Site
from protocols.dlt645 import Function
from protocols.dlt645_messages import (
    Acknowledgement,
    ReadReply,
    ReadRequest,
    RelayAction,
    RelayRequest,
)
from protocols.link_errors import BadReply, LinkDown, LinkTimeout
from protocols.modbus_rtu import WriteMultipleRegisters
from protocols.modbus_tcp_link import ModbusTcpLink
from protocols.register_writes import encode_write
from protocols.registers import decode_poll_block
from server.clock import ManualClock
from tests.test_sim_dialin import POLL_BLOCK, Running, running
from tests.test_sim_parity import (
    SH,
    SMALL,
    START,
    assert_matches_fleet,
    dlt645,
    modbus_link,
    read_scan,
    tolerance,
)

Run = Callable[[Awaitable[Any]], Any]
REALTIME = ("u_a", "i_a", "p", "pf", "f")
ENERGY = ("e_total", "e_peak", "e_flat", "e_valley")
PASSWORD, OPERATOR = bytes.fromhex("02000000"), bytes.fromhex("01000000")


@pytest.fixture
def site() -> Site:
    return load_site(SMALL)


@asynccontextmanager
async def with_tcp_link(h: Running) -> AsyncIterator[ModbusTcpLink]:
    """The server's link to GW003, closed afterwards; its state changes go to the recorder."""
    link = modbus_link(h, "GW003", timeout=h.listener.request_timeout, on_state=h.seen.state)
    try:
        yield link
    finally:
        await link.close()


def relay_write(h: Running, meter_id: str, command: str) -> WriteMultipleRegisters:
    """The function-16 write of `relay_open` / `relay_close` for the meter's profile."""
    row = h.site.meter_row(meter_id)
    [(start, values)] = encode_write(h.sim.image.profile(row), command)
    return WriteMultipleRegisters(int(h.site.meter(meter_id).slave or 1), start, tuple(values))


def relay_request(h: Running, address: str, action: RelayAction) -> RelayRequest:
    meter_now = datetime.fromtimestamp(h.clock.time(), SH).replace(tzinfo=None)
    return RelayRequest(address, PASSWORD, OPERATOR, action, meter_now + timedelta(hours=1))


def relay_closed(h: Running, meter_id: str) -> bool:
    """The simulated relay, as the fleet holds it and as its status word reports it."""
    row = h.site.meter_row(meter_id)
    closed = bool(h.sim.fleet.closed[row])
    assert bool(h.sim.fleet.tags([row])["relay"][0]) == closed
    return closed


def test_reads_through_every_link_match_the_fleet(run: Run, site: Site) -> None:
    async def main() -> None:
        clock = ManualClock(START)
        async with running(site, clock, upload_interval_min=15) as h, with_tcp_link(h) as tcp:
            sim = h.sim
            for meter, kw in {"E0002": 300.0, "P0001": 500.0, "G0002": 3.0, "D0002": 1.5}.items():
                sim.commands.set_load(site.meter_row(meter), kw)
            serial = h.serial("G0002")
            await h.listener.downlink(serial, POLL_BLOCK)  # the meter has had its ack
            clock.advance(15 * 60 + 1)  # past the upload interval: every 4G meter uploads
            await sim.tick()

            # RTU through a DTU gateway, and Modbus TCP through the server's link
            def via_dtu(request: Any) -> Awaitable[Any]:
                return h.listener.request("GW001", request)

            for read, meter, slave in ((via_dtu, "E0002", 2), (tcp.request, "P0001", 1)):
                row = site.meter_row(meter)
                for scan, tags in (("realtime", REALTIME), ("energy", ENERGY)):
                    decoded = await read_scan(read, sim, row, scan, slave)
                    assert_matches_fleet(sim, row, decoded, tags)
                assert sim.fleet.tags([row])["e_total"][0] > 0

            # 4G: the pushed upload, and a downlink read of the realtime block
            row = site.meter_row("G0002")
            await h.seen.until(lambda: serial in h.seen.uploads)
            raw = np.array(h.seen.uploads[serial][:1], np.uint16)
            uploaded = decode_poll_block(sim.image.profile(row), raw, SH)
            assert_matches_fleet(sim, row, uploaded, ("u_a", "i_a", "pf", "e_total", "e_peak"))

            def via_4g(request: Any) -> Awaitable[Any]:
                return h.listener.downlink(serial, request)

            assert_matches_fleet(sim, row, await read_scan(via_4g, sim, row, "realtime"), REALTIME)

            # DL/T 645 through a DTU gateway: forward active energy and phase A voltage
            row = site.meter_row("D0002")
            address = site.meter("D0002").dlt645_address
            for di, tag in ((0x00010000, "e_total"), (0x02010100, "u_a")):
                reply = await dlt645(h, "GW002", ReadRequest(address, di))
                assert isinstance(reply, ReadReply) and reply.di == di
                value = reply.value()
                assert isinstance(value, Decimal)
                truth = float(sim.fleet.tags([row])[tag][0])  # PT = CT = 1: primary = secondary
                assert abs(float(value) - truth) <= tolerance(sim, row, tag), tag

            # time sync (0x93) sets the simulated meter's clock
            row = site.meter_row("G0002")
            target = datetime(2024, 6, 3, 12, 0, 0)
            await h.listener.time_sync(serial, target)
            await h.listener.downlink(serial, POLL_BLOCK)  # served after the time sync
            meter_clock = clock.time() + float(sim.fleet.clock_offset[row])
            assert meter_clock == target.replace(tzinfo=SH).timestamp()

    run(main())


def test_relay_writes_through_every_path_move_the_simulated_relay(run: Run, site: Site) -> None:
    async def main() -> None:
        async with running(site, ManualClock(START)) as h, with_tcp_link(h) as tcp:
            serial = h.serial("G0001")
            address = site.meter("D0001").dlt645_address

            async def via_tcp(command: str) -> None:
                await tcp.request(relay_write(h, "P0001", command))

            async def via_dtu(command: str) -> None:
                await h.listener.request("GW001", relay_write(h, "E0001", command))

            async def via_4g(command: str) -> None:
                await h.listener.downlink(serial, relay_write(h, "G0001", command))

            async def via_dlt645(command: str) -> None:
                action = RelayAction.TRIP if command == "relay_open" else RelayAction.ALLOW_CLOSE
                reply = await dlt645(h, "GW002", relay_request(h, address, action))
                assert reply == Acknowledgement(address, Function.RELAY)

            paths = {"P0001": via_tcp, "E0001": via_dtu, "G0001": via_4g, "D0001": via_dlt645}
            for meter, write in paths.items():
                assert relay_closed(h, meter), meter
                await write("relay_open")
                assert not relay_closed(h, meter), meter
                others = [m for m in paths if m != meter]
                assert all(relay_closed(h, m) for m in others)
                await write("relay_close")
                assert relay_closed(h, meter), meter

    run(main())


def fault_paths(
    h: Running, tcp: ModbusTcpLink
) -> Iterator[tuple[str, Callable[[], Awaitable[Any]]]]:
    """(meter, one read through the link that reaches it) for every kind of link."""
    serial = h.serial("G0001")
    address = h.site.meter("D0001").dlt645_address
    yield "E0001", lambda: h.listener.read("GW001", 1, 0x008D, 2)
    yield "P0001", lambda: tcp.read(1, 0x008D, 2)
    yield "G0001", lambda: h.listener.downlink(serial, POLL_BLOCK)
    yield "D0001", lambda: dlt645(h, "GW002", ReadRequest(address, 0x00010000))


def test_silent_and_corrupting_meters_fail_typed_then_recover(run: Run, site: Site) -> None:
    async def main() -> None:
        async with (
            running(site, ManualClock(START), request_timeout=0.25) as h,
            with_tcp_link(h) as tcp,
        ):
            faults = h.sim.fleet.faults
            for meter, read in fault_paths(h, tcp):
                row = site.meter_row(meter)
                assert await read()
                faults.silence(row)
                with pytest.raises(LinkTimeout):
                    await read()
                faults.clear("silent", rows=row)
                assert await read()
                faults.corrupt_frames(row, 1.0)
                with pytest.raises(BadReply):
                    await read()
                faults.clear("corrupt", rows=row)
                assert await read()
            assert h.seen.online >= {"GW001", "GW002", h.serial("G0001")}

    run(main())


def test_gateway_outages_go_offline_and_links_reconnect_with_backoff(run: Run, site: Site) -> None:
    async def main() -> None:
        clock = ManualClock(START)
        async with running(site, clock) as h, with_tcp_link(h) as tcp:
            assert await tcp.read(1, 0x008D, 2) == (10, 200)  # PT, CT of P0001
            assert "GW003" in h.seen.online
            faults = h.sim.fleet.faults
            for gateway in ("GW001", "GW003"):
                faults.gateway_outage(gateway, duration_s=120)
            h.sim.apply_outages()
            await h.seen.until(lambda: not {"GW001", "GW003"} & h.seen.online)
            assert ("dtu", "GW001", False) in h.seen.states
            assert ("modbus_tcp", "GW003", False) in h.seen.states
            with pytest.raises(LinkDown, match="GW001: not connected"):
                await h.listener.read("GW001", 1, 0x008D, 2)
            with pytest.raises(LinkDown, match="GW003"):  # closed or reset by the down gateway
                await tcp.read(1, 0x008D, 2)

            clock.advance(121)  # the outage is over
            await h.sim.tick()
            await h.all_online()
            assert await h.listener.read("GW001", 1, 0x008D, 2) == (1, 50)
            assert await tcp.read(1, 0x008D, 2) == (10, 200)

            # A gateway that refuses connections: LinkDown at once during the backoff
            tcp_gateway = h.sim.modbus["GW003"]
            await tcp_gateway.stop()
            await h.seen.until(lambda: "GW003" not in h.seen.online)
            with pytest.raises(LinkDown, match=re.escape("connect to 127.0.0.1")):
                await tcp.read(1, 0x008D, 2)
            await tcp_gateway.start()  # the same port again
            with pytest.raises(LinkDown, match=re.escape("next attempt in 0.05 s")):
                await tcp.read(1, 0x008D, 2)
            clock.advance(0.05)
            assert await tcp.read(1, 0x008D, 2) == (10, 200)
            assert "GW003" in h.seen.online

    run(main())


@pytest.fixture(scope="module")
def park(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from config.demo import generate_site

    folder = tmp_path_factory.mktemp("park")
    generate_site(folder, seed=1)
    return Path(folder)


def test_full_park_registers_with_the_real_listener(run: Run, park: Path) -> None:
    site = load_site(park)

    async def main() -> float:
        began = time.perf_counter()
        async with running(site, ManualClock(START), connect_rate=1000.0, within=20) as h:
            took = time.perf_counter() - began
            assert len(h.listener.gateways) == len(h.sim.dtus) == 216
            assert len(h.listener.meters) == len(h.sim.meters4g) == 1100
            kinds = [kind for kind, _, online in h.seen.states if online]
            assert (kinds.count("dtu"), kinds.count("meter4g")) == (216, 1100)
        assert not h.listener.gateways and not h.listener.meters
        return took

    took = run(main())
    print(f"full park (216 DTUs, 1,100 4G meters) registered in {took:.2f} s")
