"""Modbus RTU frames for functions 03, 06 and 16: encoders, and decoders for both ends of a link.

pymodbus's FramerRTU needs a PDU decoder object, builds a PDU instance per frame, throws away
its whole buffer on a CRC failure and cannot check a reply against the request in flight, so
dial-in links use this expect-driven, allocation-light decoder instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from protocols.crc import BytesLike, crc16_modbus, crc_matches
from protocols.errors import EncodeError, FrameError, raise_first

READ_HOLDING_REGISTERS = 0x03
WRITE_SINGLE_REGISTER = 0x06
WRITE_MULTIPLE_REGISTERS = 0x10
EXCEPTION_FLAG = 0x80
MAX_READ_COUNT = 125
MAX_WRITE_COUNT = 123
MAX_FRAME_LENGTH = 256

EXCEPTION_NAMES = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}

_HEADER = struct.Struct(">BBHH")
_REGISTERS = tuple(struct.Struct(f">{n}H") for n in range(MAX_READ_COUNT + 1))


def _check_range(what: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise EncodeError(f"{what} {value} is outside {low}..{high}")


def _with_crc(body: bytes) -> bytes:
    return body + crc16_modbus(body).to_bytes(2, "little")


@dataclass(frozen=True, slots=True)
class ReadHoldingRegisters:
    """Function 03: read `count` holding registers from `address`."""

    slave: int
    address: int
    count: int
    function: ClassVar[int] = READ_HOLDING_REGISTERS

    def encode(self) -> bytes:
        """The request frame, CRC included."""
        _check_range("slave address", self.slave, 1, 247)
        _check_range("register count", self.count, 1, MAX_READ_COUNT)
        _check_range("start address", self.address, 0, 0x10000 - self.count)
        return _with_crc(_HEADER.pack(self.slave, READ_HOLDING_REGISTERS, self.address, self.count))


@dataclass(frozen=True, slots=True)
class WriteSingleRegister:
    """Function 06: write `value` into the register at `address`."""

    slave: int
    address: int
    value: int
    function: ClassVar[int] = WRITE_SINGLE_REGISTER

    def encode(self) -> bytes:
        """The request frame, CRC included."""
        _check_range("slave address", self.slave, 0, 247)
        _check_range("register address", self.address, 0, 0xFFFF)
        _check_range("register value", self.value, 0, 0xFFFF)
        return _with_crc(_HEADER.pack(self.slave, WRITE_SINGLE_REGISTER, self.address, self.value))


@dataclass(frozen=True, slots=True)
class WriteMultipleRegisters:
    """Function 16: write `values` into consecutive registers from `address`."""

    slave: int
    address: int
    values: tuple[int, ...]
    function: ClassVar[int] = WRITE_MULTIPLE_REGISTERS

    def encode(self) -> bytes:
        """The request frame, CRC included."""
        count = len(self.values)
        _check_range("slave address", self.slave, 0, 247)
        _check_range("register count", count, 1, MAX_WRITE_COUNT)
        _check_range("start address", self.address, 0, 0x10000 - count)
        for value in self.values:
            _check_range("register value", value, 0, 0xFFFF)
        head = _HEADER.pack(self.slave, WRITE_MULTIPLE_REGISTERS, self.address, count)
        return _with_crc(head + bytes((2 * count,)) + _REGISTERS[count].pack(*self.values))


Request: TypeAlias = ReadHoldingRegisters | WriteSingleRegister | WriteMultipleRegisters


@dataclass(frozen=True, slots=True)
class RegistersReply:
    """The registers a read (function 03) returned."""

    slave: int
    function: int
    registers: tuple[int, ...]

    def encode(self) -> bytes:
        """The reply frame, CRC included."""
        count = len(self.registers)
        _check_range("slave address", self.slave, 1, 247)
        _check_range("function code", self.function, 1, 0x7F)
        _check_range("register count", count, 1, MAX_READ_COUNT)
        for value in self.registers:
            _check_range("register value", value, 0, 0xFFFF)
        head = bytes((self.slave, self.function, 2 * count))
        return _with_crc(head + _REGISTERS[count].pack(*self.registers))


@dataclass(frozen=True, slots=True)
class WriteReply:
    """A write's echo: the address and the value (06) or the register count (16)."""

    slave: int
    function: int
    address: int
    value: int

    def encode(self) -> bytes:
        """The reply frame, CRC included."""
        _check_range("slave address", self.slave, 1, 247)
        _check_range("function code", self.function, 1, 0x7F)
        _check_range("register address", self.address, 0, 0xFFFF)
        _check_range("echoed value", self.value, 0, 0xFFFF)
        return _with_crc(_HEADER.pack(self.slave, self.function, self.address, self.value))


@dataclass(frozen=True, slots=True)
class ExceptionReply:
    """A refusal: `function` is the request's function code (without 0x80)."""

    slave: int
    function: int
    code: int

    @property
    def name(self) -> str:
        """The exception code's name from the Modbus specification."""
        return EXCEPTION_NAMES.get(self.code, f"exception 0x{self.code:02X}")

    def encode(self) -> bytes:
        """The reply frame, CRC included."""
        _check_range("slave address", self.slave, 1, 247)
        _check_range("function code", self.function, 1, 0x7F)
        _check_range("exception code", self.code, 0, 0xFF)
        return _with_crc(bytes((self.slave, self.function | EXCEPTION_FLAG, self.code)))


Reply: TypeAlias = RegistersReply | WriteReply | ExceptionReply


def reply_length(buf: BytesLike, pos: int = 0) -> int | None:
    """Length of the reply frame at `buf[pos:]`, or None until enough bytes are there to tell."""
    avail = len(buf) - pos
    if avail < 2:
        return None
    function = buf[pos + 1]
    if function & EXCEPTION_FLAG:
        return 5
    if function == READ_HOLDING_REGISTERS:
        return 5 + buf[pos + 2] if avail >= 3 else None
    if function in (WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_REGISTERS):
        return 8
    raise FrameError(f"unsupported Modbus function 0x{function:02X} in reply")


def request_length(buf: BytesLike, pos: int = 0) -> int | None:
    """Length of the request frame at `buf[pos:]`, or None until enough bytes are there to tell."""
    avail = len(buf) - pos
    if avail < 2:
        return None
    function = buf[pos + 1]
    if function in (READ_HOLDING_REGISTERS, WRITE_SINGLE_REGISTER):
        return 8
    if function == WRITE_MULTIPLE_REGISTERS:
        return 9 + buf[pos + 6] if avail >= 7 else None
    raise FrameError(f"unsupported Modbus function 0x{function:02X} in request")


def _parse_reply(buf: BytesLike, pos: int, length: int) -> Reply:
    """Decode a reply whose length and CRC have been checked."""
    slave = buf[pos]
    function = buf[pos + 1]
    if function & EXCEPTION_FLAG:
        return ExceptionReply(slave, function & 0x7F, buf[pos + 2])
    if function == READ_HOLDING_REGISTERS:
        byte_count = buf[pos + 2]
        if byte_count == 0 or byte_count & 1 or byte_count > 2 * MAX_READ_COUNT:
            raise FrameError(
                f"register reply byte count {byte_count} is not even and within 2..250"
            )
        registers = _REGISTERS[byte_count >> 1].unpack_from(buf, pos + 3)
        return RegistersReply(slave, function, registers)
    _, _, address, value = _HEADER.unpack_from(buf, pos)
    return WriteReply(slave, function, address, value)


def _parse_request(buf: BytesLike, pos: int, length: int) -> Request:
    """Decode a request whose length and CRC have been checked."""
    slave, function, address, value = _HEADER.unpack_from(buf, pos)
    if function == READ_HOLDING_REGISTERS:
        return ReadHoldingRegisters(slave, address, value)
    if function == WRITE_SINGLE_REGISTER:
        return WriteSingleRegister(slave, address, value)
    byte_count = buf[pos + 6]
    if byte_count != 2 * value or value == 0 or value > MAX_READ_COUNT:
        raise FrameError(f"write of {value} registers carries {byte_count} data bytes")
    return WriteMultipleRegisters(slave, address, _REGISTERS[value].unpack_from(buf, pos + 7))


def _check_whole(frame: BytesLike, length: int | None, what: str) -> int:
    if length is None or length != len(frame):
        raise FrameError(f"{what} frame of {len(frame)} bytes is not one whole frame")
    if not crc_matches(frame, 0, length - 2):
        raise FrameError(f"bad CRC in {what} from slave {frame[0]}")
    return length


def decode_reply(frame: BytesLike) -> Reply:
    """Decode exactly one reply frame (CRC included)."""
    return _parse_reply(frame, 0, _check_whole(frame, reply_length(frame), "reply"))


def decode_request(frame: BytesLike) -> Request:
    """Decode exactly one request frame (CRC included)."""
    return _parse_request(frame, 0, _check_whole(frame, request_length(frame), "request"))


def _echo_problem(expect: Request, reply: Reply) -> str | None:
    """Why a CRC-valid reply from the right slave does not answer `expect`, or None."""
    if isinstance(reply, ExceptionReply):
        return None
    if isinstance(expect, ReadHoldingRegisters):
        assert isinstance(reply, RegistersReply)
        if len(reply.registers) != expect.count:
            return f"reply carries {len(reply.registers)} registers, expected {expect.count}"
        return None
    assert isinstance(reply, WriteReply)
    echo = expect.value if isinstance(expect, WriteSingleRegister) else len(expect.values)
    if (reply.address, reply.value) != (expect.address, echo):
        return f"write echo {reply.address}/{reply.value} does not match {expect.address}/{echo}"
    return None


class RtuReplyDecoder:
    """Finds the one reply to `expect` in a byte stream; never blocks, never does I/O.

    Bytes that cannot start a reply are skipped. A corrupt frame, a reply from another slave,
    a foreign function code or a reply that does not match the request raises FrameError,
    after which the decoder is still usable: feed it more bytes (or b"") to keep looking.
    """

    def __init__(self, expect: Request) -> None:
        self.expect = expect
        self._slave = expect.slave
        self._function = expect.function
        self._buffer = bytearray()
        self.reply: Reply | None = None
        self.trailing = b""
        self.discarded = 0

    def feed(self, data: BytesLike) -> Reply | None:
        """The reply once it is complete, else None; later bytes go to `trailing` (bounded)."""
        if self.reply is not None:
            self.trailing = (self.trailing + bytes(data))[-MAX_FRAME_LENGTH:]
            return self.reply
        buf = self._buffer
        buf += data
        end = len(buf)
        pos = 0
        pending = -1
        errors: list[str] = []
        while pos < end:
            function = buf[pos + 1] if pos + 1 < end else self._function
            if function == self._function | EXCEPTION_FLAG:
                length: int | None = 5
            elif function == self._function:
                length = reply_length(buf, pos)
            else:
                if buf[pos] == self._slave and pending < 0:
                    errors.append(f"slave {self._slave} answered with function 0x{function:02X}")
                pos += 1
                continue
            if length is None or pos + length > end:
                if pending < 0:
                    pending = pos
                pos += 1
                continue
            if not crc_matches(buf, pos, pos + length - 2):
                if pending < 0:
                    errors.append(f"bad CRC in a reply of {length} bytes")
                pos += 1
                continue
            problem = None
            if buf[pos] != self._slave:
                problem = f"reply from slave {buf[pos]}, expected slave {self._slave}"
            else:
                try:
                    reply = _parse_reply(buf, pos, length)
                except FrameError as exc:
                    problem = exc.reason
                else:
                    problem = _echo_problem(self.expect, reply)
            if problem is None:
                self.reply = reply
                self.discarded += pos
                self.trailing = bytes(buf[pos + length :])
                buf.clear()
                return reply
            if pending < 0:
                errors.append(problem)
                pos += length
            else:
                pos += 1
        keep_from = pending if pending >= 0 else pos
        self.discarded += keep_from
        del buf[:keep_from]
        raise_first(errors)
        return None


class RtuRequestDecoder:
    """Turns a byte stream into Modbus requests (the server side); never does I/O.

    Bytes with an unsupported function code are skipped; a request with a bad CRC raises
    FrameError after all the data has been read, and the requests found in that call come
    back from the next `feed` (feed b"" to collect them).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._ready: list[Request] = []
        self.discarded = 0

    def feed(self, data: BytesLike) -> list[Request]:
        """The complete requests found so far, in order."""
        buf = self._buffer
        buf += data
        end = len(buf)
        pos = 0
        pending = -1
        errors: list[str] = []
        found = self._ready
        while pos < end:
            try:
                length = request_length(buf, pos)
            except FrameError:
                pos += 1
                continue
            if length is None or pos + length > end:
                if pending < 0:
                    pending = pos
                pos += 1
                continue
            if not crc_matches(buf, pos, pos + length - 2):
                if pending < 0:
                    errors.append(f"bad CRC in a request of {length} bytes")
                pos += 1
                continue
            try:
                request = _parse_request(buf, pos, length)
            except FrameError as exc:
                if pending < 0:
                    errors.append(exc.reason)
                pos += 1
                continue
            found.append(request)
            pending = -1
            pos += length
        keep_from = pending if pending >= 0 else pos
        self.discarded += keep_from
        del buf[:keep_from]
        raise_first(errors)
        self._ready = []
        return found
