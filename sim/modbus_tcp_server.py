"""A simulated Modbus TCP gateway: one asyncio server per gateway, many clients, its meters.

The unit id is the meter's slave address behind the gateway. Requests on one connection are
answered in order, as a gateway's serial line would; connections are served side by side.

Faults: while the gateway is down, new connections are closed at once and open ones are
closed. A silent meter does not answer (the master times out; the gateway sends no 0x0B,
so that every transport shows a silent meter the same way). A unit id with no meter gets
exception 0x0B (gateway target failed to respond). A slow meter answers late. A corrupt
reply has its function code inverted, which no master can take for a valid reply (MBAP
carries no checksum to break).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from protocols.errors import FrameError
from protocols.modbus_rtu import (
    ExceptionReply,
    ReadHoldingRegisters,
    Request,
    WriteMultipleRegisters,
    WriteSingleRegister,
)
from protocols.modbus_tcp import MbapDecoder, Sender, encode_reply
from sim.faults import FaultTable
from sim.modbus_slave import ModbusSlaves, damage, reply_fault

log = logging.getLogger(__name__)

TARGET_FAILED = 0x0B
FUNCTION_AT = 7  # the function code's offset in an MBAP frame
READ_SIZE = 4096
_REQUESTS = (ReadHoldingRegisters, WriteSingleRegister, WriteMultipleRegisters)


class ModbusTcpGateway:
    """A Modbus TCP gateway of the site, serving the meters behind it on `host:port`."""

    def __init__(
        self,
        gateway_id: str,
        rows_by_slave: Mapping[int, int],
        slaves: ModbusSlaves,
        faults: FaultTable,
        host: str,
        port: int,
    ) -> None:
        """Meters by slave address; port 0 picks a free port (see `port` after `start`)."""
        self.gateway_id = gateway_id
        self.rows_by_slave = dict(rows_by_slave)
        self.slaves = slaves
        self.faults = faults
        self.host = host
        self.port = port
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen; the bound port is in `port` afterwards."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.debug("gateway %s: Modbus TCP on %s:%d", self.gateway_id, self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        self.drop_connections()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    @property
    def connections(self) -> int:
        """How many clients are connected."""
        return len(self._connections)

    def drop_connections(self) -> None:
        """Close every client connection (the gateway went down)."""
        for writer in list(self._connections):
            writer.close()

    def is_down(self) -> bool:
        """Whether the fault table has the gateway down now."""
        return self.faults.gateway_down(self.gateway_id)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._connections.add(writer)
        try:
            if not self.is_down():
                await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = MbapDecoder(Sender.CLIENT)
        while True:
            data = await reader.read(READ_SIZE)
            if not data or self.is_down():
                return
            try:
                frames = decoder.feed(data)
            except FrameError as exc:
                log.debug("gateway %s: skipped a bad request: %s", self.gateway_id, exc)
                frames = decoder.feed(b"")
            for frame in frames:
                if not isinstance(frame.message, _REQUESTS):
                    continue
                reply = await self._answer(frame.transaction_id, frame.message)
                if reply is None:
                    continue
                if self.is_down():
                    return
                writer.write(reply)
            await writer.drain()

    async def _answer(self, transaction_id: int, request: Request) -> bytes | None:
        """The MBAP reply bytes, or None for a silent meter."""
        self.requests += 1
        row = self.rows_by_slave.get(request.slave)
        if row is None:
            failed = ExceptionReply(request.slave, request.function, TARGET_FAILED)
            return encode_reply(transaction_id, failed)
        fault = reply_fault(self.faults, row)
        if fault.silent:
            return None
        reply = self.slaves.answer(row, request)
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        frame = encode_reply(transaction_id, reply)
        return damage(frame, FUNCTION_AT) if fault.corrupt else frame
