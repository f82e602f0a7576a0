"""The link to DL/T 645-2007 meters behind a TCP serial server that the server dials.

Reads by data identifier (following up long replies with function 12), relay control (1C)
and broadcast time (08), one request in flight, on `DialedLink`'s timeouts and reconnect
backoff. Frames go out with the FE preamble that wakes the meters' line receivers. The reply
check is shared with DL/T 645 over a dial-in DTU socket.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from protocols.dialed_link import DialedLink
from protocols.dlt645 import Dlt645Decoder, Dlt645Frame, Function, error_names
from protocols.dlt645_di import Value, decode_value, lookup
from protocols.dlt645_messages import (
    BroadcastTime,
    ReadFollowUpRequest,
    ReadReply,
    ReadRequest,
    RelayAction,
    RelayRequest,
    parse_message,
)
from protocols.errors import EncodeError, FrameError, UnknownDataIdentifier
from protocols.link_errors import BadReply, Dlt645Refused, LinkError

PREAMBLE = 4
MAX_FOLLOW_UPS = 16
DEFAULT_PASSWORD = bytes(4)
DEFAULT_OPERATOR = bytes(4)


def _di_of(frame: Dlt645Frame) -> int | None:
    if frame.function in (Function.READ, Function.READ_FOLLOW_UP) and len(frame.data) >= 4:
        return int.from_bytes(frame.data[:4], "little")
    return None


def dlt645_reply_error(link: str, request: Dlt645Frame, reply: Dlt645Frame) -> LinkError | None:
    """The typed error for a reply frame that does not answer `request`, or None when it does."""
    if not reply.is_reply:
        return BadReply(link, f"frame with control 0x{reply.control:02X} is not a reply")
    if reply.function != request.function:
        return BadReply(
            link, f"reply to function 0x{reply.function:02X}, expected 0x{request.function:02X}"
        )
    if "A" not in request.address and reply.address != request.address:
        return BadReply(link, f"reply from meter {reply.address}, expected {request.address}")
    if reply.is_error:
        error = reply.data[0] if reply.data else 0
        return Dlt645Refused(link, reply.function, error, error_names(error))
    asked, answered = _di_of(request), _di_of(reply)
    if asked is not None and answered != asked:
        shown = "none" if answered is None else f"{answered:08X}"
        return BadReply(link, f"reply for data identifier {shown}, expected {asked:08X}")
    return None


class Dlt645TcpLink(DialedLink[Dlt645Frame, Dlt645Frame]):
    """DL/T 645 meters on one TCP serial server: read, relay, broadcast time."""

    kind = "dlt645_tcp"

    def __init__(
        self,
        link_id: str,
        host: str,
        port: int,
        *,
        password: bytes = DEFAULT_PASSWORD,
        operator: bytes = DEFAULT_OPERATOR,
        **options: Any,
    ) -> None:
        super().__init__(link_id, host, port, **options)
        self.password = password
        self.operator = operator
        self._decoder = Dlt645Decoder()

    async def read(self, address: str, di: int) -> Value:
        """The value of data identifier `di` of the meter at `address`, decoded by the DI table."""
        try:
            lookup(di)
        except UnknownDataIdentifier as exc:
            raise ValueError(f"{self.id}: {exc}") from None
        reply = self._read_reply(await self.request(ReadRequest(address, di).to_frame()))
        data = reply.data
        seq = 0
        while reply.more:
            seq += 1
            if seq > MAX_FOLLOW_UPS:
                raise BadReply(self.id, f"more than {MAX_FOLLOW_UPS} follow-up frames for {di:08X}")
            follow_up = ReadFollowUpRequest(address, di, seq).to_frame()
            reply = self._read_reply(await self.request(follow_up))
            data += reply.data
        try:
            return decode_value(di, data)
        except FrameError as exc:
            raise BadReply(self.id, f"value of {di:08X}: {exc.reason}") from None

    async def relay(
        self,
        address: str,
        action: RelayAction,
        expiry: datetime,
        *,
        password: bytes | None = None,
        operator: bytes | None = None,
    ) -> None:
        """Relay control (1C): trip, allow close or power protect, valid until `expiry`."""
        message = RelayRequest(
            address,
            self.password if password is None else password,
            self.operator if operator is None else operator,
            action,
            expiry,
        )
        await self.request(message.to_frame())

    async def broadcast_time(self, when: datetime) -> None:
        """Set every meter's clock (08 to the broadcast address); meters do not answer."""
        await self._exchange(self._wire(BroadcastTime(when).to_frame()), None)

    async def request(self, frame: Dlt645Frame) -> Dlt645Frame:
        """Send one frame and return the meter's normal reply (Dlt645Refused for an error)."""
        reply = await self._exchange(self._wire(frame), frame)
        assert reply is not None
        return reply

    def _wire(self, frame: Dlt645Frame) -> bytes:
        try:
            return frame.encode(PREAMBLE)
        except EncodeError as exc:
            raise ValueError(f"{self.id}: cannot send: {exc}") from None

    def _read_reply(self, frame: Dlt645Frame) -> ReadReply:
        try:
            message = parse_message(frame)
        except FrameError as exc:
            raise BadReply(self.id, exc.reason) from None
        if not isinstance(message, ReadReply):
            raise BadReply(self.id, f"{type(message).__name__} to a read")
        return message

    def _stream_started(self) -> None:
        self._decoder = Dlt645Decoder()

    def _sending(self, expect: Dlt645Frame) -> None:
        self._decoder = Dlt645Decoder()  # whatever is left of an earlier reply is dropped

    def _received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            self._fail(BadReply(self.id, f"corrupt frame: {exc.reason}"))
            return
        request = self._expect
        if request is None:
            return  # a late reply, after a timeout
        for frame in frames:
            if not frame.is_reply:
                continue  # a line that echoes the request
            error = dlt645_reply_error(self.id, request, frame)
            if error is None:
                self._settle(frame)
            else:
                self._fail(error)
            return
