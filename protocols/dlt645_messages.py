"""DL/T 645-2007 messages: typed requests and replies, to and from `Dlt645Frame`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import TypeAlias

from protocols.dlt645 import (
    BROADCAST,
    DIRECTION_BIT,
    ERROR_BIT,
    MORE_BIT,
    WILDCARD,
    Dlt645Frame,
    Function,
    decode_address,
    encode_address,
    error_names,
)
from protocols.dlt645_di import Value, decode_value, encode_value
from protocols.errors import EncodeError, FrameError


class RelayAction(IntEnum):
    """N1 of a relay-control command."""

    TRIP = 0x1A
    ALLOW_CLOSE = 0x1B
    POWER_PROTECT_ON = 0x3A
    POWER_PROTECT_OFF = 0x3B


def _bcd_time(values: tuple[int, ...], what: str) -> bytes:
    """BCD bytes of two-digit numbers, in the order given."""
    if not all(0 <= v <= 99 for v in values):
        raise EncodeError(f"{what}: {values} are not two-digit numbers")
    return bytes(((v // 10) << 4) | (v % 10) for v in values)


def _unbcd(raw: bytes, what: str) -> tuple[int, ...]:
    text = raw.hex()
    if not text.isdigit():
        raise FrameError(f"{what}: non-BCD byte in {raw.hex(' ')}")
    return tuple(int(text[i : i + 2]) for i in range(0, len(text), 2))


def _encode_time(when: datetime, what: str) -> bytes:
    """The six BCD bytes ss mm hh DD MM YY."""
    if not 2000 <= when.year <= 2099:
        raise EncodeError(f"{what}: year {when.year} is outside 2000..2099")
    fields = (when.second, when.minute, when.hour, when.day, when.month, when.year - 2000)
    return _bcd_time(fields, what)


def _decode_time(raw: bytes, what: str) -> datetime:
    second, minute, hour, day, month, year = _unbcd(raw, what)
    try:
        return datetime(2000 + year, month, day, hour, minute, second)  # the meter's local time
    except ValueError as exc:
        raise FrameError(f"{what}: invalid time {raw.hex()} ({exc})") from None


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """Read (11) a data identifier; `extra` carries the block count and time of curve reads."""

    address: str
    di: int
    extra: bytes = b""

    def to_frame(self) -> Dlt645Frame:
        """The frame of this message."""
        return Dlt645Frame(self.address, Function.READ, _di_bytes(self.di) + self.extra)


@dataclass(frozen=True, slots=True)
class ReadFollowUpRequest:
    """Read follow-up (12): the next frame `seq` of a long read."""

    address: str
    di: int
    seq: int

    def to_frame(self) -> Dlt645Frame:
        """The frame of this message."""
        _check_byte("sequence number", self.seq)
        return Dlt645Frame(
            self.address, Function.READ_FOLLOW_UP, _di_bytes(self.di) + bytes((self.seq,))
        )


@dataclass(frozen=True, slots=True)
class ReadReply:
    """A normal read reply: the DI, its data bytes, and the follow-up flag and sequence."""

    address: str
    di: int
    data: bytes
    more: bool = False
    seq: int | None = None

    @classmethod
    def of(cls, address: str, di: int, value: Value) -> ReadReply:
        """The reply carrying `value`, encoded by the DI table."""
        return cls(address, di, encode_value(di, value))

    def value(self) -> Value:
        """The decoded value, from the DI table."""
        return decode_value(self.di, self.data)

    def to_frame(self) -> Dlt645Frame:
        """The frame of this message (function 12's reply when `seq` is set)."""
        function = Function.READ if self.seq is None else Function.READ_FOLLOW_UP
        control = function | DIRECTION_BIT | (MORE_BIT if self.more else 0)
        data = _di_bytes(self.di) + self.data
        if self.seq is not None:
            _check_byte("sequence number", self.seq)
            data += bytes((self.seq,))
        return Dlt645Frame(self.address, control, data)


@dataclass(frozen=True, slots=True)
class ReadAddressRequest:
    """Read address (13), sent to the wildcard address on a point-to-point line."""

    address: str = WILDCARD

    def to_frame(self) -> Dlt645Frame:
        """The frame of this message."""
        return Dlt645Frame(self.address, Function.READ_ADDRESS)


@dataclass(frozen=True, slots=True)
class ReadAddressReply:
    """The meter's own address, in answer to a read-address request."""

    address: str

    def to_frame(self) -> Dlt645Frame:
        """The frame of this message."""
        control = Function.READ_ADDRESS | DIRECTION_BIT
        return Dlt645Frame(self.address, control, encode_address(self.address))


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """Write (14): DI, password (PA P0 P1 P2), operator code (C0..C3) and the data bytes."""

    address: str
    di: int
    password: bytes
    operator: bytes
    data: bytes

    def to_frame(self) -> Dlt645Frame:
        """The frame of this message."""
        head = _di_bytes(self.di) + _four("password", self.password)
        return Dlt645Frame(
            self.address, Function.WRITE, head + _four("operator", self.operator) + self.data
        )


@dataclass(frozen=True, slots=True)
class BroadcastTime:
    """Broadcast time (08) to every meter; it has no reply."""

    when: datetime

    def to_frame(self) -> Dlt645Frame:
        """The frame of this message."""
        return Dlt645Frame(
            BROADCAST, Function.BROADCAST_TIME, _encode_time(self.when, "broadcast time")
        )


@dataclass(frozen=True, slots=True)
class FreezeRequest:
    """Freeze (16) at minute/hour/day/month; None (99 on the wire) means every one."""

    address: str
    minute: int | None = None
    hour: int | None = None
    day: int | None = None
    month: int | None = None

    def to_frame(self) -> Dlt645Frame:
        """The frame of this message."""
        fields = tuple(
            99 if v is None else v for v in (self.minute, self.hour, self.day, self.month)
        )
        return Dlt645Frame(self.address, Function.FREEZE, _bcd_time(fields, "freeze time"))


@dataclass(frozen=True, slots=True)
class RelayRequest:
    """Relay control (1C): password, operator code, N1 action, N2 = 0, expiry N3..N8."""

    address: str
    password: bytes
    operator: bytes
    action: RelayAction
    expiry: datetime

    def to_frame(self) -> Dlt645Frame:
        """The frame of this message."""
        data = _four("password", self.password) + _four("operator", self.operator)
        data += bytes((self.action, 0)) + _encode_time(self.expiry, "relay expiry")
        return Dlt645Frame(self.address, Function.RELAY, data)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """A normal reply without data: to a write (14), a freeze (16) or relay control (1C)."""

    address: str
    function: Function

    def to_frame(self) -> Dlt645Frame:
        """The frame of this message."""
        return Dlt645Frame(self.address, self.function | DIRECTION_BIT)


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A refusal: C | 0xC0 and one error byte."""

    address: str
    function: Function
    error: int

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the error bits that are set."""
        return error_names(self.error)

    def to_frame(self) -> Dlt645Frame:
        """The frame of this message."""
        _check_byte("error byte", self.error)
        control = self.function | DIRECTION_BIT | ERROR_BIT
        return Dlt645Frame(self.address, control, bytes((self.error,)))


Message: TypeAlias = (
    ReadRequest
    | ReadFollowUpRequest
    | ReadReply
    | ReadAddressRequest
    | ReadAddressReply
    | WriteRequest
    | BroadcastTime
    | FreezeRequest
    | RelayRequest
    | Acknowledgement
    | ErrorReply
)


def _check_byte(what: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise EncodeError(f"{what} {value} is not a byte")


def _four(what: str, value: bytes) -> bytes:
    if len(value) != 4:
        raise EncodeError(f"{what} must be 4 bytes, got {len(value)}")
    return value


def _di_bytes(di: int) -> bytes:
    """DI0 first."""
    if not 0 <= di <= 0xFFFFFFFF:
        raise EncodeError(f"data identifier {di} is not 32 bits")
    return di.to_bytes(4, "little")


def _need(frame: Dlt645Frame, sizes: tuple[int, ...], what: str) -> None:
    if len(frame.data) not in sizes:
        expected = " or ".join(str(s) for s in sizes)
        raise FrameError(f"{what} carries {len(frame.data)} data bytes, expected {expected}")


def _parse_request(frame: Dlt645Frame, function: Function) -> Message:
    data = frame.data
    address = frame.address
    if function is Function.READ:
        _need(frame, (4, 5, 10), "read request")
        return ReadRequest(address, int.from_bytes(data[:4], "little"), data[4:])
    if function is Function.READ_FOLLOW_UP:
        _need(frame, (5,), "read follow-up request")
        return ReadFollowUpRequest(address, int.from_bytes(data[:4], "little"), data[4])
    if function is Function.READ_ADDRESS:
        _need(frame, (0,), "read-address request")
        return ReadAddressRequest(address)
    if function is Function.WRITE:
        if len(data) < 12:
            raise FrameError(f"write request carries {len(data)} data bytes, at least 12 needed")
        return WriteRequest(
            address, int.from_bytes(data[:4], "little"), data[4:8], data[8:12], data[12:]
        )
    if function is Function.BROADCAST_TIME:
        _need(frame, (6,), "broadcast time")
        return BroadcastTime(_decode_time(data, "broadcast time"))
    if function is Function.FREEZE:
        _need(frame, (4,), "freeze request")
        minute, hour, day, month = (None if v == 99 else v for v in _unbcd(data, "freeze time"))
        return FreezeRequest(address, minute, hour, day, month)
    _need(frame, (16,), "relay control")
    try:
        action = RelayAction(data[8])
    except ValueError:
        raise FrameError(f"relay control N1 0x{data[8]:02X} is not a known action") from None
    return RelayRequest(
        address, data[:4], data[4:8], action, _decode_time(data[10:], "relay expiry")
    )


def _parse_reply(frame: Dlt645Frame, function: Function) -> Message:
    data = frame.data
    if frame.is_error:
        _need(frame, (1,), "error reply")
        return ErrorReply(frame.address, function, data[0])
    if function is Function.READ:
        if len(data) < 4:
            raise FrameError(f"read reply carries {len(data)} data bytes, at least 4 needed")
        return ReadReply(
            frame.address, int.from_bytes(data[:4], "little"), data[4:], frame.more_follows
        )
    if function is Function.READ_FOLLOW_UP:
        if len(data) < 5:
            raise FrameError(
                f"read follow-up reply carries {len(data)} data bytes, at least 5 needed"
            )
        di = int.from_bytes(data[:4], "little")
        return ReadReply(frame.address, di, data[4:-1], frame.more_follows, data[-1])
    if function is Function.READ_ADDRESS:
        _need(frame, (6,), "read-address reply")
        return ReadAddressReply(decode_address(data))
    if function in (Function.WRITE, Function.FREEZE, Function.RELAY):
        _need(frame, (0,), f"reply to function 0x{function:02X}")
        return Acknowledgement(frame.address, function)
    raise FrameError(f"function 0x{function:02X} has no reply")


def parse_message(frame: Dlt645Frame) -> Message:
    """The typed message a frame carries."""
    try:
        function = Function(frame.function)
    except ValueError:
        raise FrameError(f"unsupported DL/T 645 function 0x{frame.function:02X}") from None
    if frame.is_reply:
        return _parse_reply(frame, function)
    if frame.control & (ERROR_BIT | MORE_BIT):
        raise FrameError(f"request control code 0x{frame.control:02X} has reply-only bits set")
    return _parse_request(frame, function)
