"""The registered sessions of the dial-in listener: a DTU gateway's socket and a 4G meter's.

Each owns one accepted connection and runs one request at a time over it. A DTU session
writes raw Modbus-RTU (or DL/T 645) frames and finds the reply among the serial traffic that
`DtuSession` separates from heartbeats; a corrupt or foreign reply fails the request at once
and the rest of its bytes are dropped, so the next request starts on a clean line. A 4G
session wraps requests in 0x90 downlinks and hands pushed 0x91 uploads to a callback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from protocols import acrel4g
from protocols.dlt645 import Dlt645Decoder, Dlt645Frame
from protocols.dlt645_link import dlt645_reply_error
from protocols.dtu import Data, Event, Heartbeat
from protocols.errors import EncodeError, FrameError
from protocols.link_errors import BadReply, LinkDown, LinkError, LinkTimeout
from protocols.modbus_rtu import Reply, Request, RtuReplyDecoder
from protocols.modbus_tcp_link import modbus_reply_error

log = logging.getLogger(__name__)

UploadCallback = Callable[[str, tuple[int, ...], float], None]
"""`on_upload(serial, registers, received_at)`: a 4G meter pushed its poll block."""


class _Exchange:
    """The one request in flight on a session: its future and its timer."""

    def __init__(self, link: str, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self.link = link
        self.future: asyncio.Future[object] = loop.create_future()
        self.timer = loop.call_later(timeout, self._expire, timeout)
        self.corruption: str | None = None

    def _expire(self, timeout: float) -> None:
        if self.corruption is not None:
            self.fail(
                BadReply(self.link, f"no valid reply within {timeout:g} s: {self.corruption}")
            )
        else:
            self.fail(LinkTimeout(self.link, f"no reply within {timeout:g} s"))

    @property
    def open(self) -> bool:
        """Whether the request still waits for its reply."""
        return not self.future.done()

    def settle(self, reply: object) -> None:
        """Complete the request with its reply."""
        if not self.future.done():
            self.future.set_result(reply)

    def fail(self, error: LinkError) -> None:
        """Fail the request with `error`."""
        if not self.future.done():
            self.future.set_exception(error)


class DialinSession:
    """What both kinds of session share: the socket, one request in flight, the close."""

    kind = "dialin"

    def __init__(
        self, device_id: str, transport: asyncio.Transport, peer: str, request_timeout: float
    ) -> None:
        self.id = device_id
        self.request_timeout = request_timeout
        self.transport = transport
        self.peer = peer
        self.closed = False
        self.heartbeats = 0
        self.last_heartbeat_at: float | None = None
        self.dropped_bytes = 0
        self._lock = asyncio.Lock()
        self._exchange: _Exchange | None = None

    def close(self, reason: str) -> None:
        """Close the socket and fail the request in flight with LinkDown(reason)."""
        if not self.closed:
            self.closed = True
            log.info("%s %s from %s closed: %s", self.kind, self.id, self.peer, reason)
        if self._exchange is not None:
            self._exchange.fail(LinkDown(self.id, reason))
        self.transport.close()

    async def _run(self, wire: bytes, prepare: Callable[[], None]) -> object:
        """Write `wire` and wait until the receive path settles the exchange.

        `prepare` sets up the reply decoding under the lock, just before the write.
        """
        async with self._lock:
            if self.closed:
                raise LinkDown(self.id, "connection closed")
            prepare()
            exchange = self._exchange = _Exchange(self.id, self.request_timeout)
            try:
                self.transport.write(wire)
                return await exchange.future
            finally:
                exchange.timer.cancel()
                self._exchange = None

    async def _send(self, wire: bytes) -> None:
        """Write a frame that has no reply, between requests."""
        async with self._lock:
            if self.closed:
                raise LinkDown(self.id, "connection closed")
            self.transport.write(wire)

    def _heartbeat(self, at: float) -> None:
        self.heartbeats += 1
        self.last_heartbeat_at = at


class DtuGatewaySession(DialinSession):
    """A DTU gateway's socket: Modbus-RTU or DL/T 645 frames to the meters behind it."""

    kind = "dtu"

    def __init__(
        self,
        device_id: str,
        protocol: str,
        transport: asyncio.Transport,
        peer: str,
        request_timeout: float,
    ) -> None:
        super().__init__(device_id, transport, peer, request_timeout)
        self.protocol = protocol
        self._rtu: RtuReplyDecoder | None = None
        self._dlt645: tuple[Dlt645Frame, Dlt645Decoder] | None = None

    async def request(self, request: Request) -> Reply:
        """Send one Modbus-RTU request and return its checked reply."""
        wire = _encoded(self.id, request.encode)
        self._require("modbus_rtu")
        decoder = RtuReplyDecoder(request)

        def prepare() -> None:
            self._rtu, self._dlt645 = decoder, None

        reply = await self._run(wire, prepare)
        assert isinstance(reply, Reply)
        return reply

    async def request_dlt645(self, frame: Dlt645Frame) -> Dlt645Frame:
        """Send one DL/T 645 frame and return the meter's normal reply frame."""
        wire = _encoded(self.id, frame.encode)
        self._require("dlt645")

        def prepare() -> None:
            self._rtu, self._dlt645 = None, (frame, Dlt645Decoder())

        reply = await self._run(wire, prepare)
        assert isinstance(reply, Dlt645Frame)
        return reply

    async def broadcast_dlt645(self, frame: Dlt645Frame) -> None:
        """Send a DL/T 645 frame that has no reply (broadcast time)."""
        self._require("dlt645")
        await self._send(_encoded(self.id, frame.encode))

    def _require(self, protocol: str) -> None:
        if self.protocol != protocol:
            raise ValueError(f"{self.id}: gateway speaks {self.protocol}, not {protocol}")

    def received(self, events: list[Event], at: float) -> None:
        """Handle what `DtuSession` made of one read."""
        for event in events:
            if isinstance(event, Heartbeat):
                self._heartbeat(at)
            elif isinstance(event, Data):
                self._data(event.payload)

    def _data(self, payload: bytes) -> None:
        exchange = self._exchange
        if exchange is None or not exchange.open:
            self.dropped_bytes += len(payload)  # between requests: late or unsolicited bytes
            return
        if self._rtu is not None:
            self._rtu_data(exchange, self._rtu, payload)
        elif self._dlt645 is not None:
            self._dlt645_data(exchange, *self._dlt645, payload)

    def _rtu_data(self, exchange: _Exchange, decoder: RtuReplyDecoder, payload: bytes) -> None:
        try:
            reply = decoder.feed(payload)
        except FrameError as exc:
            exchange.fail(BadReply(self.id, exc.reason))
            return
        if reply is not None:
            error = modbus_reply_error(self.id, decoder.expect, reply)
            if error is None:
                exchange.settle(reply)
            else:
                exchange.fail(error)

    def _dlt645_data(
        self, exchange: _Exchange, request: Dlt645Frame, decoder: Dlt645Decoder, payload: bytes
    ) -> None:
        try:
            frames = decoder.feed(payload)
        except FrameError as exc:
            exchange.fail(BadReply(self.id, exc.reason))
            return
        for frame in frames:
            if not frame.is_reply:
                continue  # a line that echoes what the DTU sent
            error = dlt645_reply_error(self.id, request, frame)
            if error is None:
                exchange.settle(frame)
            else:
                exchange.fail(error)
            return


class Meter4GSession(DialinSession):
    """An Acrel 4G meter's socket: 0x90 downlinks, 0x93 time sync, pushed 0x91 uploads."""

    kind = "meter4g"

    def __init__(
        self,
        serial: str,
        transport: asyncio.Transport,
        peer: str,
        request_timeout: float,
        on_upload: UploadCallback | None,
    ) -> None:
        super().__init__(serial, transport, peer, request_timeout)
        self.on_upload = on_upload
        self.uploads = 0
        self._request: Request | None = None
        self._warned: set[str] = set()

    async def downlink(self, request: Request) -> Reply:
        """Pass one Modbus-RTU request through to the meter and return its checked reply."""
        wire = _encoded(self.id, acrel4g.Downlink(request).encode)

        def prepare() -> None:
            self._request = request

        reply = await self._run(wire, prepare)
        assert isinstance(reply, Reply)
        return reply

    async def time_sync(self, when: datetime) -> None:
        """Set the meter's clock (0x93); the meter does not answer."""
        await self._send(_encoded(self.id, acrel4g.TimeSync(when).encode))

    def received(self, frames: list[acrel4g.Frame], at: float) -> None:
        """Handle the frames of one read."""
        for frame in frames:
            if isinstance(frame, acrel4g.Heartbeat):
                self._heartbeat(at)
            elif isinstance(frame, acrel4g.DataUpload):
                self._upload(frame, at)
            elif isinstance(frame, acrel4g.DownlinkReply):
                self._downlink_reply(frame.reply)
            elif isinstance(frame, acrel4g.Registration):
                self.transport.write(acrel4g.RegistrationAck().encode())

    def corrupt(self, reason: str) -> None:
        """A corrupt frame came: if no valid reply follows, the request fails with it."""
        if self._exchange is not None:
            self._exchange.corruption = reason
        self._warn_once("corrupt", f"corrupt frame: {reason}")

    def _upload(self, frame: acrel4g.DataUpload, at: float) -> None:
        if frame.serial != self.id:
            self._warn_once(frame.serial, f"upload names serial {frame.serial!r}; dropped")
            return
        self.uploads += 1
        if self.on_upload is not None:
            try:
                self.on_upload(self.id, frame.reply.registers, at)
            except Exception:
                log.exception("on_upload failed for 4G meter %s", self.id)

    def _downlink_reply(self, reply: Reply) -> None:
        exchange = self._exchange
        request = self._request
        if exchange is None or not exchange.open or request is None:
            self._warn_once("late", "downlink reply with no request in flight; dropped")
            return
        error = modbus_reply_error(self.id, request, reply)
        if error is None:
            exchange.settle(reply)
        else:
            exchange.fail(error)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned and len(self._warned) < 16:
            self._warned.add(key)
            log.warning("4G meter %s from %s: %s", self.id, self.peer, message)


def _encoded(link: str, encode: Callable[[], bytes]) -> bytes:
    """The wire bytes of a request, or ValueError naming the link and the problem."""
    try:
        return encode()
    except EncodeError as exc:
        raise ValueError(f"{link}: cannot send: {exc}") from None
