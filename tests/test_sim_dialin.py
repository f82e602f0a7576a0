"""The simulator's dial-in side: DTU gateways and 4G meters against a test-side acceptor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from config import load_site
from config.model import Site
from config.values import Endpoint
from protocols import dtu
from protocols.acrel4g import (
    Acrel4GDecoder,
    DataUpload,
    Downlink,
    DownlinkReply,
    Heartbeat,
    Registration,
    RegistrationAck,
    Sender,
    TimeSync,
)
from protocols.errors import FrameError
from protocols.modbus_rtu import (
    ReadHoldingRegisters,
    RegistersReply,
    Reply,
    Request,
    RtuReplyDecoder,
)
from protocols.registers import decode_poll_block
from server.clock import ManualClock
from sim.runner import Simulator

Run = Callable[[Awaitable[Any]], Any]
SMALL = Path(__file__).resolve().parent.parent / "config" / "examples" / "small"
SH = ZoneInfo("Asia/Shanghai")
START = datetime(2024, 6, 3, 10, 0, tzinfo=SH).timestamp()


@dataclass
class Link:
    """One accepted device: what it sent, queued, and the writer to answer it."""

    writer: asyncio.StreamWriter
    incoming: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    heartbeats: int = 0


class DialInAcceptor:
    """A minimal server-side dial-in listener built from the codecs (DTU sessions, Acrel 4G)."""

    def __init__(self, dtus: list[dtu.DtuIdentity]) -> None:
        self.identities = dtus
        self.dtus: dict[str, Link] = {}
        self.meters: dict[str, Link] = {}
        self.changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Endpoint:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=2048)
        return Endpoint("127.0.0.1", self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.close()
        for link in [*self.dtus.values(), *self.meters.values()]:
            link.writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def wait_for(self, dtus: int, meters: int, within: float) -> None:
        async with asyncio.timeout(within):
            while len(self.dtus) < dtus or len(self.meters) < meters:
                self.changed.clear()
                await self.changed.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            first = await reader.read(4096)
            if first.startswith(b"\x7b\x7b"):
                await self._meter(first, reader, writer)
            else:
                await self._dtu(first, reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _meter(
        self, data: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        decoder = Acrel4GDecoder(Sender.METER)
        link: Link | None = None
        serial = None
        while data:
            try:
                frames = decoder.feed(data)
            except FrameError:
                frames = decoder.feed(b"")
            for frame in frames:
                if isinstance(frame, Registration):
                    serial = frame.serial
                    link = Link(writer)
                    writer.write(RegistrationAck().encode())
                    self.meters[serial] = link
                    self.changed.set()
                elif isinstance(frame, Heartbeat) and link is not None:
                    link.heartbeats += 1
                    self.changed.set()
                elif link is not None:
                    link.incoming.put_nowait(frame)
            data = await reader.read(4096)
        if serial is not None and self.meters.get(serial) is link:
            del self.meters[serial]
            self.changed.set()

    async def _dtu(
        self, data: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        session = dtu.DtuSession(self.identities)
        link = Link(writer)
        name = None
        while data:
            for event in session.feed(data):
                if isinstance(event, dtu.Registered):
                    name = event.id
                    self.dtus[name] = link
                    self.changed.set()
                elif isinstance(event, dtu.Heartbeat):
                    link.heartbeats += 1
                    self.changed.set()
                elif isinstance(event, dtu.Data):
                    link.incoming.put_nowait(event.payload)
            if session.refused:
                return
            data = await reader.read(4096)
        if name is not None and self.dtus.get(name) is link:
            del self.dtus[name]
            self.changed.set()

    async def rtu(self, gateway: str, request: Request, within: float = 2.0) -> Reply:
        """Send an RTU request through a DTU and wait for the reply (FrameError if corrupt)."""
        link = self.dtus[gateway]
        decoder = RtuReplyDecoder(request)
        link.writer.write(request.encode())
        async with asyncio.timeout(within):
            while True:
                reply = decoder.feed(await link.incoming.get())
                if reply is not None:
                    return reply

    async def raw(self, gateway: str, frame: bytes, within: float = 2.0) -> bytes:
        """Send bytes through a DTU and return the next bytes it sends back."""
        link = self.dtus[gateway]
        link.writer.write(frame)
        async with asyncio.timeout(within):
            data: bytes = await link.incoming.get()
            return data

    async def downlink(self, serial: str, request: Request, within: float = 2.0) -> Reply:
        link = self.meters[serial]
        link.writer.write(Downlink(request).encode())
        async with asyncio.timeout(within):
            while True:
                frame = await link.incoming.get()
                if isinstance(frame, DownlinkReply):
                    return frame.reply

    async def upload(self, serial: str, within: float = 2.0) -> DataUpload:
        link = self.meters[serial]
        async with asyncio.timeout(within):
            while True:
                frame = await link.incoming.get()
                if isinstance(frame, DataUpload):
                    return frame


def identities(site: Site) -> list[dtu.DtuIdentity]:
    return [
        dtu.DtuIdentity(g.id, g.registration or b"", g.heartbeat or b"\x00HB-NONE\x00")
        for g in site.gateways
        if g.kind == "dtu"
    ]


async def started(
    site: Site, clock: ManualClock, **options: Any
) -> tuple[Simulator, DialInAcceptor]:
    acceptor = DialInAcceptor(identities(site))
    endpoint = await acceptor.start()
    sim = Simulator(
        site,
        clock=clock,
        dialin=endpoint,
        serve_control=False,
        modbus_any_port=True,
        backoff_s=(0.05, 0.2),
        **options,
    )
    await sim.start()
    return sim, acceptor


async def stopped(sim: Simulator, acceptor: DialInAcceptor) -> None:
    await sim.stop()
    await acceptor.stop()


def test_devices_register_and_answer(run: Run) -> None:
    site = load_site(SMALL)

    async def main() -> None:
        clock = ManualClock(START)
        sim, acceptor = await started(site, clock)
        try:
            await acceptor.wait_for(2, 2, within=5)
            row = site.meter_row("E0001")
            reply = await acceptor.rtu("GW001", ReadHoldingRegisters(1, 0x008D, 2))
            assert isinstance(reply, RegistersReply) and reply.registers == (
                1,
                50,
            )  # PT, CT of E0001
            assert await acceptor.rtu("GW001", ReadHoldingRegisters(3, 0x8D, 2))
            sim.fleet.faults.silence(row)
            with pytest.raises(TimeoutError):
                await acceptor.rtu("GW001", ReadHoldingRegisters(1, 0x008D, 2), within=0.3)
            sim.fleet.faults.clear("silent")
            sim.fleet.faults.corrupt_frames(row, 1.0)
            with pytest.raises(FrameError):
                await acceptor.rtu("GW001", ReadHoldingRegisters(1, 0x008D, 2))
            sim.fleet.faults.clear("corrupt")
            sim.fleet.faults.slow_replies(row, 120.0)
            began = time.perf_counter()
            await acceptor.rtu("GW001", ReadHoldingRegisters(1, 0x008D, 2))
            assert time.perf_counter() - began >= 0.12
        finally:
            await stopped(sim, acceptor)

    run(main())


def test_4g_upload_follows_simulated_time_and_time_sync_sets_the_clock(run: Run) -> None:
    site = load_site(SMALL)

    async def main() -> None:
        clock = ManualClock(START)
        sim, acceptor = await started(site, clock, upload_interval_min=30)
        try:
            await acceptor.wait_for(2, 2, within=5)
            serial = site.meter("G0001").serial
            assert serial is not None
            row = site.meter_row("G0001")
            await sim.tick()  # no simulated time has passed: nothing is due
            assert acceptor.meters[serial].incoming.empty()
            clock.advance(30 * 60)
            await sim.tick()
            upload = await acceptor.upload(serial)
            assert upload.serial == serial
            raw = np.array([upload.reply.registers], dtype=np.uint16)
            tags = decode_poll_block(sim.image.profile(row), raw, SH, now=clock.time())
            assert tags["ct"][0] == 20 and tags["e_total"][0] >= 0
            assert tags["meter_clock"][0] == pytest.approx(
                clock.time() + sim.fleet.clock_offset[row], abs=1.0
            )
            # the time sync moves the meter's clock to the synced wall time
            target = datetime(2024, 6, 3, 10, 31, 0)
            acceptor.meters[serial].writer.write(TimeSync(target).encode())
            reply = await acceptor.downlink(serial, ReadHoldingRegisters(1, 0x0800, 48))
            assert isinstance(reply, RegistersReply)
            synced = decode_poll_block(
                sim.image.profile(row), np.array([reply.registers], np.uint16), SH
            )
            assert synced["meter_clock"][0] == target.replace(tzinfo=SH).timestamp()
        finally:
            await stopped(sim, acceptor)

    run(main())


def test_gateway_outage_hangs_up_and_the_dtu_redials(run: Run) -> None:
    site = load_site(SMALL)

    async def main() -> None:
        clock = ManualClock(START)
        sim, acceptor = await started(site, clock)
        try:
            await acceptor.wait_for(2, 2, within=5)
            link = acceptor.dtus["GW001"]
            sim.fleet.faults.gateway_outage("GW001", duration_s=120)
            sim.apply_outages()
            async with asyncio.timeout(2):
                while "GW001" in acceptor.dtus:
                    acceptor.changed.clear()
                    await acceptor.changed.wait()
            assert not sim.dtus["GW001"].connected
            clock.advance(121)
            await sim.tick()
            await acceptor.wait_for(2, 2, within=5)
            assert acceptor.dtus["GW001"] is not link
            assert sim.dtus["GW001"].sessions == 2
        finally:
            await stopped(sim, acceptor)

    run(main())


def test_heartbeats_when_idle(run: Run) -> None:
    site = load_site(SMALL)

    async def main() -> None:
        sim, acceptor = await started(site, ManualClock(START), heartbeat_s=0.05)
        try:
            await acceptor.wait_for(2, 2, within=5)
            async with asyncio.timeout(3):
                while (
                    acceptor.dtus["GW001"].heartbeats < 2
                    or min(m.heartbeats for m in acceptor.meters.values()) < 2
                ):
                    acceptor.changed.clear()
                    await acceptor.changed.wait()
            assert acceptor.dtus["GW002"].heartbeats == 0  # GW002 has no heartbeat configured
        finally:
            await stopped(sim, acceptor)

    run(main())


@pytest.fixture(scope="module")
def park(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from config.demo import generate_site

    folder = tmp_path_factory.mktemp("park")
    generate_site(folder, seed=1)
    return Path(folder)


def test_full_park_connects(run: Run, park: Path) -> None:
    site = load_site(park)

    async def main() -> float:
        began = time.perf_counter()
        sim, acceptor = await started(site, ManualClock(START), connect_rate=1000.0)
        try:
            await acceptor.wait_for(216, 1100, within=20)
            async with asyncio.timeout(5):  # the last acks are still on their way
                # The meters raise no event on their ack, so look again shortly.
                while sim.status()["meters4g_registered"] < 1100:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            took = time.perf_counter() - began
            status = sim.status()
            assert status["dtu_connected"] == 216
            assert status["meters4g_registered"] == 1100
        finally:
            await stopped(sim, acceptor)
        return took

    took = run(main())
    print(f"full park connected in {took:.2f} s")
