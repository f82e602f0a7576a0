"""Simulated direct 4G meters: the Acrel frame over a dial-in link, and their upload schedule.

A meter registers (0x84) and waits for the server's ack, beats (0x94) while idle, uploads its
48-register poll block (0x91) every upload interval of *simulated* time, answers downlink
passthrough requests (0x90) and sets its clock from a time sync (0x93). A silent meter keeps
its link (the modem lives) but neither uploads nor answers; a corrupt frame has a bad CRC.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from config.values import Endpoint
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
from protocols.modbus_rtu import READ_HOLDING_REGISTERS, RegistersReply
from sim.dialin_client import READ_SIZE, DialInClient
from sim.faults import FaultTable
from sim.meter_commands import MeterCommands
from sim.modbus_slave import ModbusSlaves, damage, reply_fault

log = logging.getLogger(__name__)

UPLOAD_SLAVE: Final = 1
ACK_TIMEOUT_S: Final = 10.0
FIRMWARE: Final = (1, 0, 3)


def iccid_of(serial: str) -> str:
    """A 20-digit ICCID for the meter's SIM, derived from its serial (China Mobile's 8986)."""
    digits = "".join(c for c in serial if c.isdigit()).rjust(16, "0")[-16:]
    return f"8986{digits}"


class Meter4G(DialInClient):
    """One direct 4G meter of the site."""

    def __init__(
        self,
        meter_id: str,
        row: int,
        serial: str,
        server: Endpoint,
        slaves: ModbusSlaves,
        commands: MeterCommands,
        *,
        upload_interval_min: int = 30,
        heartbeat_s: float | None = 60.0,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        start_delay_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        """The meter at fleet `row`, registering as `serial`."""
        super().__init__(
            meter_id,
            server,
            heartbeat_s=heartbeat_s,
            backoff_s=backoff_s,
            start_delay_s=start_delay_s,
            seed=seed,
        )
        self.meter_id = meter_id
        self.row = row
        self.serial = serial
        self.slaves = slaves
        self.commands = commands
        self.faults: FaultTable = commands.fleet.faults
        self.upload_interval_min = upload_interval_min
        self.registered = False
        self.uploads = 0
        self.rssi = 18 + sum(serial.encode()) % 12
        self._decoder = Acrel4GDecoder(Sender.SERVER)

    async def greet(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Register (0x84) and wait for the server's ack; frames after it are served."""
        self.registered = False
        self._decoder = Acrel4GDecoder(Sender.SERVER)
        registration = Registration(
            serial=self.serial,
            iccid=iccid_of(self.serial),
            rssi=self.rssi,
            firmware=FIRMWARE,
            upload_interval_min=self.upload_interval_min,
        )
        writer.write(registration.encode())
        await writer.drain()
        async with asyncio.timeout(ACK_TIMEOUT_S):
            while not self.registered:
                data = await reader.read(READ_SIZE)
                if not data:
                    raise ConnectionError("closed before the registration ack")
                for frame in self._frames(data):
                    if isinstance(frame, RegistrationAck) and not self.registered:
                        self.registered = True
                    elif self.registered:
                        await self._serve(frame)

    def heartbeat(self) -> bytes | None:
        """An empty 0x94 frame."""
        return Heartbeat().encode() if self.registered else None

    async def received(self, data: bytes) -> None:
        """Serve the server's frames: downlinks and time syncs."""
        for frame in self._frames(data):
            await self._serve(frame)

    def _frames(self, data: bytes) -> list[object]:
        try:
            return list(self._decoder.feed(data))
        except FrameError as exc:
            log.debug("%s: skipped a bad frame: %s", self.meter_id, exc)
            return list(self._decoder.feed(b""))

    async def _serve(self, frame: object) -> None:
        if isinstance(frame, TimeSync):
            if not self.faults.is_silent(self.row):
                self.commands.set_clock(self.row, frame.when)
        elif isinstance(frame, Downlink):
            fault = reply_fault(self.faults, self.row)
            if fault.silent:
                return
            reply = self.slaves.answer(self.row, frame.request)
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            out = DownlinkReply(reply).encode()
            await self.send(damage(out, -3) if fault.corrupt else out)

    async def upload(self, registers: Sequence[int]) -> bool:
        """Send a 0x91 upload of the poll block; whether it went out."""
        if not self.registered:
            return False
        fault = reply_fault(self.faults, self.row)
        if fault.silent:
            return False
        reply = RegistersReply(UPLOAD_SLAVE, READ_HOLDING_REGISTERS, tuple(registers))
        out = DataUpload(self.serial, reply).encode()
        sent = await self.send(damage(out, -3) if fault.corrupt else out)
        self.uploads += sent
        return sent


class UploadSchedule:
    """When each 4G meter uploads next (simulated Unix time), spread evenly over an interval."""

    def __init__(self, count: int, interval_s: float, start: float) -> None:
        """`count` meters, the k-th first due at start + (k + 0.5) / count × interval."""
        if not math.isfinite(interval_s) or interval_s <= 0:
            raise ValueError(f"interval_s: must be positive, got {interval_s}")
        self.interval_s = interval_s
        self.next: npt.NDArray[np.float64] = (
            start + (np.arange(count) + 0.5) / max(count, 1) * interval_s
        )

    def due(self, now: float) -> npt.NDArray[np.int64]:
        """The meters due at `now`; each moves on to its next slot after `now` (none is doubled)."""
        due = np.flatnonzero(self.next <= now)
        if due.size:
            missed = np.floor((now - self.next[due]) / self.interval_s) + 1
            self.next[due] += missed * self.interval_s
        return due
