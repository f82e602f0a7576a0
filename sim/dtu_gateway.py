"""A simulated DTU gateway: dials in, registers, beats, and answers for the meters on its line.

The gateway's `protocol` decides what its serial line speaks: Modbus RTU (meters by slave
address) or DL/T 645 (meters by their 12-digit address). Requests are answered in order, as
on a real half-duplex line: a slow meter holds the line. A silent meter, or a slave address
with no meter, leaves the request unanswered; a corrupt reply has a damaged checksum.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from config.values import Endpoint
from protocols.dlt645 import Dlt645Decoder
from protocols.dlt645_messages import parse_message
from protocols.errors import FrameError
from protocols.modbus_rtu import RtuRequestDecoder
from sim.dialin_client import DialInClient
from sim.dlt645_meter import Dlt645Meters
from sim.faults import FaultTable
from sim.modbus_slave import ModbusSlaves, damage, reply_fault

log = logging.getLogger(__name__)

BROADCAST_SLAVE = 0


class DtuGateway(DialInClient):
    """One `dtu` gateway of the site, with the meters behind it."""

    def __init__(
        self,
        gateway_id: str,
        registration: bytes,
        heartbeat: bytes | None,
        server: Endpoint,
        faults: FaultTable,
        *,
        modbus: tuple[ModbusSlaves, Mapping[int, int]] | None = None,
        dlt645: Dlt645Meters | None = None,
        heartbeat_s: float | None = 60.0,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        start_delay_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        """A Modbus RTU line (`modbus`: slaves and rows by slave address) or a DL/T 645 one."""
        if (modbus is None) == (dlt645 is None):
            raise ValueError(f"{gateway_id}: give exactly one of modbus and dlt645")
        super().__init__(
            gateway_id,
            server,
            heartbeat_s=heartbeat_s if heartbeat else None,
            backoff_s=backoff_s,
            start_delay_s=start_delay_s,
            seed=seed,
        )
        self.gateway_id = gateway_id
        self.registration = registration
        self.heartbeat_bytes = heartbeat
        self.faults = faults
        self.modbus = modbus
        self.dlt645 = dlt645
        self.requests = 0
        self._rtu = RtuRequestDecoder()
        self._645 = Dlt645Decoder()

    async def greet(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Send the registration packet; a DTU expects no answer to it."""
        self._rtu = RtuRequestDecoder()
        self._645 = Dlt645Decoder()
        writer.write(self.registration)
        await writer.drain()

    def heartbeat(self) -> bytes | None:
        """The configured heartbeat payload."""
        return self.heartbeat_bytes

    async def received(self, data: bytes) -> None:
        """Answer every complete request in `data`, in order."""
        if self.modbus is not None:
            await self._modbus(data, *self.modbus)
        else:
            await self._dlt645(data)

    async def _modbus(self, data: bytes, slaves: ModbusSlaves, rows: Mapping[int, int]) -> None:
        try:
            requests = self._rtu.feed(data)
        except FrameError as exc:
            log.debug("%s: skipped bad RTU bytes: %s", self.gateway_id, exc)
            requests = self._rtu.feed(b"")
        for request in requests:
            self.requests += 1
            if request.slave == BROADCAST_SLAVE:
                if request.function != 0x03:
                    for each in rows.values():
                        slaves.answer(each, request, slave=1)  # a broadcast write: no reply
                continue
            row = rows.get(request.slave)
            if row is None:
                continue
            fault = reply_fault(self.faults, row)
            if fault.silent:
                continue
            frame = slaves.answer(row, request).encode()
            await self._reply(frame, fault.delay_s, fault.corrupt)

    async def _dlt645(self, data: bytes) -> None:
        assert self.dlt645 is not None
        try:
            frames = self._645.feed(data)
        except FrameError as exc:
            log.debug("%s: skipped bad DL/T 645 bytes: %s", self.gateway_id, exc)
            frames = self._645.feed(b"")
        for frame in frames:
            self.requests += 1
            try:
                message = parse_message(frame)
            except FrameError as exc:
                log.debug("%s: unparsable DL/T 645 request: %s", self.gateway_id, exc)
                continue
            if frame.is_reply:
                continue
            for row, reply in self.dlt645.answer(message):
                fault = reply_fault(self.faults, row)
                if not fault.silent:
                    await self._reply(reply.encode(), fault.delay_s, fault.corrupt)

    async def _reply(self, frame: bytes, delay_s: float, corrupt: bool) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        await self.send(damage(frame) if corrupt else frame)
