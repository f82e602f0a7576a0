"""The simulator's dial-in side: DTU gateways and 4G meters against the server's `DialinListener`.

`running()` is the harness the link tests share: a real listener on 127.0.0.1:0, the
simulator dialling into it on a frozen `ManualClock`, and a recorder of the listener's
state, upload and receive callbacks that tests await instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from config import load_site
from config.model import Site
from config.values import Endpoint
from protocols.dialin import DialinListener
from protocols.link_errors import BadReply, LinkDown, LinkTimeout
from protocols.modbus_rtu import ReadHoldingRegisters, RegistersReply
from protocols.registers import decode_poll_block
from server.clock import ManualClock
from sim.runner import Simulator

Run = Callable[[Awaitable[Any]], Any]
SMALL = Path(__file__).resolve().parent.parent / "config" / "examples" / "small"
SH = ZoneInfo("Asia/Shanghai")
START = datetime(2024, 6, 3, 10, 0, tzinfo=SH).timestamp()
POLL_BLOCK = ReadHoldingRegisters(1, 0x0800, 48)


class Recorder:
    """The listener's clock and callbacks: every read, state change and upload wakes waiters."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.online: set[str] = set()
        self.states: list[tuple[str, str, bool]] = []
        self.uploads: dict[str, list[tuple[int, ...]]] = {}
        self.changed = asyncio.Event()

    def time(self) -> float:
        """The listener asks for the time on every read from a peer: a cue to look again."""
        self.changed.set()
        return self.clock.time()

    def state(self, kind: str, device: str, online: bool, at: float) -> None:
        self.states.append((kind, device, online))
        if online:
            self.online.add(device)
        else:
            self.online.discard(device)
        self.changed.set()

    def upload(self, serial: str, registers: tuple[int, ...], at: float) -> None:
        self.uploads.setdefault(serial, []).append(registers)
        self.changed.set()

    async def until(self, condition: Callable[[], bool], within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Running:
    """A started simulator dialled into a started listener."""

    site: Site
    clock: ManualClock
    sim: Simulator
    listener: DialinListener
    seen: Recorder

    def serial(self, meter_id: str) -> str:
        serial = self.site.meter(meter_id).serial
        assert serial is not None
        return serial

    async def all_online(self, within: float = 5.0) -> None:
        expected = set(self.sim.dtus) | {m.serial for m in self.sim.meters4g}
        await self.seen.until(lambda: expected <= self.seen.online, within)


@asynccontextmanager
async def running(
    site: Site,
    clock: ManualClock,
    *,
    request_timeout: float = 0.5,
    within: float = 5.0,
    **options: Any,
) -> AsyncIterator[Running]:
    """Listener and simulator started, every dial-in device registered; both closed after."""
    seen = Recorder(clock)
    listener = DialinListener.for_site(
        site,
        request_timeout=request_timeout,
        on_state=seen.state,
        on_upload=seen.upload,
        clock=seen,
    )
    port = await listener.start("127.0.0.1", 0)
    options = {"backoff_s": (0.05, 0.2), "modbus_any_port": True, **options}
    sim = Simulator(
        site, clock=clock, dialin=Endpoint("127.0.0.1", port), serve_control=False, **options
    )
    harness = Running(site, clock, sim, listener, seen)
    try:
        await sim.start()
        await harness.all_online(within)
        yield harness
    finally:
        await sim.stop()
        await listener.close()


def test_devices_register_and_answer(run: Run) -> None:
    site = load_site(SMALL)

    async def main() -> None:
        async with running(site, ManualClock(START), request_timeout=0.3) as h:
            row = site.meter_row("E0001")
            assert await h.listener.read("GW001", 1, 0x008D, 2) == (1, 50)  # PT, CT of E0001
            assert await h.listener.read("GW001", 3, 0x8D, 2)
            h.sim.fleet.faults.silence(row)
            with pytest.raises(LinkTimeout):
                await h.listener.read("GW001", 1, 0x008D, 2)
            h.sim.fleet.faults.clear("silent")
            h.sim.fleet.faults.corrupt_frames(row, 1.0)
            with pytest.raises(BadReply, match="bad CRC"):
                await h.listener.read("GW001", 1, 0x008D, 2)
            h.sim.fleet.faults.clear("corrupt")
            h.sim.fleet.faults.slow_replies(row, 120.0)
            began = time.perf_counter()
            await h.listener.read("GW001", 1, 0x008D, 2)
            assert time.perf_counter() - began >= 0.12

    run(main())


def test_4g_upload_follows_simulated_time_and_time_sync_sets_the_clock(run: Run) -> None:
    site = load_site(SMALL)

    async def main() -> None:
        clock = ManualClock(START)
        async with running(site, clock, upload_interval_min=30) as h:
            serial = h.serial("G0001")
            row = site.meter_row("G0001")
            # A downlink round trip: the meter has its registration ack before the reply.
            await h.listener.downlink(serial, POLL_BLOCK)
            await h.sim.tick()  # no simulated time has passed: nothing is due
            assert serial not in h.seen.uploads
            clock.advance(30 * 60)
            await h.sim.tick()
            await h.seen.until(lambda: serial in h.seen.uploads)
            assert h.listener.meters[serial].uploads == 1
            raw = np.array(h.seen.uploads[serial][:1], dtype=np.uint16)
            tags = decode_poll_block(h.sim.image.profile(row), raw, SH, now=clock.time())
            assert tags["ct"][0] == 20 and tags["e_total"][0] >= 0
            assert tags["meter_clock"][0] == pytest.approx(
                clock.time() + h.sim.fleet.clock_offset[row], abs=1.0
            )
            # the time sync moves the meter's clock to the synced wall time
            target = datetime(2024, 6, 3, 10, 31, 0)
            await h.listener.time_sync(serial, target)
            reply = await h.listener.downlink(serial, POLL_BLOCK)
            assert isinstance(reply, RegistersReply)
            synced = decode_poll_block(
                h.sim.image.profile(row), np.array([reply.registers], np.uint16), SH
            )
            assert synced["meter_clock"][0] == target.replace(tzinfo=SH).timestamp()

    run(main())


def test_gateway_outage_hangs_up_and_the_dtu_redials(run: Run) -> None:
    site = load_site(SMALL)

    async def main() -> None:
        clock = ManualClock(START)
        async with running(site, clock) as h:
            first = h.listener.gateways["GW001"]
            h.sim.fleet.faults.gateway_outage("GW001", duration_s=120)
            h.sim.apply_outages()
            await h.seen.until(lambda: "GW001" not in h.seen.online)
            assert ("dtu", "GW001", False) in h.seen.states
            assert not h.sim.dtus["GW001"].connected
            with pytest.raises(LinkDown, match="GW001: not connected"):
                await h.listener.read("GW001", 1, 0x008D, 2)
            clock.advance(121)
            await h.sim.tick()
            await h.all_online()
            assert h.listener.gateways["GW001"] is not first
            assert h.sim.dtus["GW001"].sessions == 2
            assert await h.listener.read("GW001", 1, 0x008D, 2) == (1, 50)

    run(main())


def test_heartbeats_when_idle(run: Run) -> None:
    site = load_site(SMALL)

    async def main() -> None:
        async with running(site, ManualClock(START), heartbeat_s=0.05) as h:
            listener = h.listener
            await h.seen.until(
                lambda: (
                    listener.gateways["GW001"].heartbeats >= 2
                    and min(m.heartbeats for m in listener.meters.values()) >= 2
                ),
                within=3,
            )
            assert listener.gateways["GW002"].heartbeats == 0  # GW002 has no heartbeat
            assert listener.gateways["GW002"].dropped_bytes == 0  # and sends nothing else

    run(main())
