"""Modbus RTU frames for functions 03, 06 and 16: encoders, and decoders for both ends of a link.

The PDU layer (each message's `pdu()`, `parse_request_pdu`, `parse_reply_pdu` and
`reply_mismatch`) is shared with the Modbus TCP (MBAP) framing in `modbus_tcp`.
pymodbus's FramerRTU needs a PDU decoder object, builds a PDU instance per frame, throws away
its whole buffer on a CRC failure and cannot check a reply against the request in flight, so
dial-in links use this expect-driven, allocation-light decoder instead.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
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

_PDU_HEAD = struct.Struct(">BHH")  # function, address, count or value
_REGISTERS = tuple(struct.Struct(f">{n}H") for n in range(MAX_READ_COUNT + 1))


def _check_range(what: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise EncodeError(f"{what} {value} is outside {low}..{high}")


class _RtuFramed(ABC):
    """A message that RTU frames as its slave address, its PDU and a CRC."""

    __slots__ = ()
    slave: int
    lowest_slave: ClassVar[int] = 1  # 0 is the broadcast address, for writes only

    @abstractmethod
    def pdu(self) -> bytes:
        """The PDU (function code first): no slave address, no CRC; MBAP frames this too."""

    def encode(self) -> bytes:
        """The RTU frame, CRC included."""
        _check_range("slave address", self.slave, self.lowest_slave, 247)
        body = bytes((self.slave,)) + self.pdu()
        return body + crc16_modbus(body).to_bytes(2, "little")


@dataclass(frozen=True, slots=True)
class ReadHoldingRegisters(_RtuFramed):
    """Function 03: read `count` holding registers from `address`."""

    slave: int
    address: int
    count: int
    function: ClassVar[int] = READ_HOLDING_REGISTERS

    def pdu(self) -> bytes:
        """The PDU, function code first."""
        _check_range("register count", self.count, 1, MAX_READ_COUNT)
        _check_range("start address", self.address, 0, 0x10000 - self.count)
        return _PDU_HEAD.pack(READ_HOLDING_REGISTERS, self.address, self.count)


@dataclass(frozen=True, slots=True)
class WriteSingleRegister(_RtuFramed):
    """Function 06: write `value` into the register at `address`."""

    slave: int
    address: int
    value: int
    function: ClassVar[int] = WRITE_SINGLE_REGISTER
    lowest_slave: ClassVar[int] = 0

    def pdu(self) -> bytes:
        """The PDU, function code first."""
        _check_range("register address", self.address, 0, 0xFFFF)
        _check_range("register value", self.value, 0, 0xFFFF)
        return _PDU_HEAD.pack(WRITE_SINGLE_REGISTER, self.address, self.value)


@dataclass(frozen=True, slots=True)
class WriteMultipleRegisters(_RtuFramed):
    """Function 16: write `values` into consecutive registers from `address`."""

    slave: int
    address: int
    values: tuple[int, ...]
    function: ClassVar[int] = WRITE_MULTIPLE_REGISTERS
    lowest_slave: ClassVar[int] = 0

    def pdu(self) -> bytes:
        """The PDU, function code first."""
        count = len(self.values)
        _check_range("register count", count, 1, MAX_WRITE_COUNT)
        _check_range("start address", self.address, 0, 0x10000 - count)
        for value in self.values:
            _check_range("register value", value, 0, 0xFFFF)
        head = _PDU_HEAD.pack(WRITE_MULTIPLE_REGISTERS, self.address, count)
        return head + bytes((2 * count,)) + _REGISTERS[count].pack(*self.values)


Request: TypeAlias = ReadHoldingRegisters | WriteSingleRegister | WriteMultipleRegisters


@dataclass(frozen=True, slots=True)
class RegistersReply(_RtuFramed):
    """The registers a read (function 03) returned."""

    slave: int
    function: int
    registers: tuple[int, ...]

    def pdu(self) -> bytes:
        """The PDU, function code first."""
        count = len(self.registers)
        _check_range("function code", self.function, 1, 0x7F)
        _check_range("register count", count, 1, MAX_READ_COUNT)
        for value in self.registers:
            _check_range("register value", value, 0, 0xFFFF)
        return bytes((self.function, 2 * count)) + _REGISTERS[count].pack(*self.registers)


@dataclass(frozen=True, slots=True)
class WriteReply(_RtuFramed):
    """A write's echo: the address and the value (06) or the register count (16)."""

    slave: int
    function: int
    address: int
    value: int

    def pdu(self) -> bytes:
        """The PDU, function code first."""
        _check_range("function code", self.function, 1, 0x7F)
        _check_range("register address", self.address, 0, 0xFFFF)
        _check_range("echoed value", self.value, 0, 0xFFFF)
        return _PDU_HEAD.pack(self.function, self.address, self.value)


@dataclass(frozen=True, slots=True)
class ExceptionReply(_RtuFramed):
    """A refusal: `function` is the request's function code (without 0x80)."""

    slave: int
    function: int
    code: int

    @property
    def name(self) -> str:
        """The exception code's name from the Modbus specification."""
        return EXCEPTION_NAMES.get(self.code, f"exception 0x{self.code:02X}")

    def pdu(self) -> bytes:
        """The PDU, function code first."""
        _check_range("function code", self.function, 1, 0x7F)
        _check_range("exception code", self.code, 0, 0xFF)
        return bytes((self.function | EXCEPTION_FLAG, self.code))


Reply: TypeAlias = RegistersReply | WriteReply | ExceptionReply


def parse_reply_pdu(unit: int, buf: BytesLike, start: int, stop: int) -> Reply:
    """The reply from `unit` that the PDU at `buf[start:stop]` (function code first) carries."""
    size = stop - start
    if size < 1:
        raise FrameError("empty PDU")
    function = buf[start]
    if function & EXCEPTION_FLAG:
        if size != 2:
            raise FrameError(f"exception reply PDU of {size} bytes, expected 2")
        return ExceptionReply(unit, function & 0x7F, buf[start + 1])
    if function == READ_HOLDING_REGISTERS:
        byte_count = buf[start + 1] if size > 1 else -1
        if byte_count != size - 2 or byte_count & 1 or not 0 < byte_count <= 2 * MAX_READ_COUNT:
            raise FrameError(f"register reply of {size - 1} bytes declares {byte_count} data bytes")
        registers = _REGISTERS[byte_count >> 1].unpack_from(buf, start + 2)
        return RegistersReply(unit, function, registers)
    if function in (WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_REGISTERS):
        if size != 5:
            raise FrameError(f"write reply PDU of {size} bytes, expected 5")
        _, address, value = _PDU_HEAD.unpack_from(buf, start)
        return WriteReply(unit, function, address, value)
    raise FrameError(f"unsupported Modbus function 0x{function:02X} in reply")


def parse_request_pdu(unit: int, buf: BytesLike, start: int, stop: int) -> Request:
    """The request to `unit` in the PDU at `buf[start:stop]`; value ranges are the server's."""
    size = stop - start
    if size < 1:
        raise FrameError("empty PDU")
    function = buf[start]
    if function in (READ_HOLDING_REGISTERS, WRITE_SINGLE_REGISTER):
        if size != 5:
            raise FrameError(f"function 0x{function:02X} request PDU of {size} bytes, expected 5")
        _, address, value = _PDU_HEAD.unpack_from(buf, start)
        if function == READ_HOLDING_REGISTERS:
            return ReadHoldingRegisters(unit, address, value)
        return WriteSingleRegister(unit, address, value)
    if function == WRITE_MULTIPLE_REGISTERS:
        if size < 6:
            raise FrameError(f"write request PDU of {size} bytes, at least 6 needed")
        _, address, count = _PDU_HEAD.unpack_from(buf, start)
        byte_count = buf[start + 5]
        if byte_count != 2 * count or size != 6 + byte_count or count > MAX_READ_COUNT:
            raise FrameError(
                f"write of {count} registers carries {byte_count} of {size - 6} data bytes"
            )
        return WriteMultipleRegisters(unit, address, _REGISTERS[count].unpack_from(buf, start + 6))
    raise FrameError(f"unsupported Modbus function 0x{function:02X} in request")


def reply_mismatch(expect: Request, reply: Reply) -> str | None:
    """Why `reply` does not answer `expect`, or None (an exception of the right unit does)."""
    if reply.slave != expect.slave:
        return f"reply from unit {reply.slave}, expected unit {expect.slave}"
    if reply.function != expect.function:
        return f"reply to function 0x{reply.function:02X}, expected 0x{expect.function:02X}"
    if isinstance(reply, ExceptionReply):
        return None
    if isinstance(expect, ReadHoldingRegisters):
        if not isinstance(reply, RegistersReply):
            return f"{type(reply).__name__} to a register read"
        if len(reply.registers) != expect.count:
            return f"reply carries {len(reply.registers)} registers, expected {expect.count}"
        return None
    if not isinstance(reply, WriteReply):
        return f"{type(reply).__name__} to a write"
    echo = expect.value if isinstance(expect, WriteSingleRegister) else len(expect.values)
    if (reply.address, reply.value) != (expect.address, echo):
        return f"write echo {reply.address}/{reply.value} does not match {expect.address}/{echo}"
    return None


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


def _check_whole(frame: BytesLike, length: int | None, what: str) -> int:
    if length is None or length != len(frame):
        raise FrameError(f"{what} frame of {len(frame)} bytes is not one whole frame")
    if not crc_matches(frame, 0, length - 2):
        raise FrameError(f"bad CRC in {what} from slave {frame[0]}")
    return length


def decode_reply(frame: BytesLike) -> Reply:
    """Decode exactly one reply frame (CRC included)."""
    length = _check_whole(frame, reply_length(frame), "reply")
    return parse_reply_pdu(frame[0], frame, 1, length - 2)


def decode_request(frame: BytesLike) -> Request:
    """Decode exactly one request frame (CRC included)."""
    length = _check_whole(frame, request_length(frame), "request")
    return parse_request_pdu(frame[0], frame, 1, length - 2)


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
                    reply = parse_reply_pdu(buf[pos], buf, pos + 1, pos + length - 2)
                except FrameError as exc:
                    problem = exc.reason
                else:
                    problem = reply_mismatch(self.expect, reply)
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
                request = parse_request_pdu(buf[pos], buf, pos + 1, pos + length - 2)
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
