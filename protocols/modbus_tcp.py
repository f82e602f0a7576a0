"""Modbus TCP (MBAP) framing for functions 03, 06 and 16: encoders and a stream decoder.

The PDU part reuses `modbus_rtu`'s request and reply classes, with the MBAP unit id in their
`slave` field. Their `encode()` appends a CRC that MBAP does not carry, and their PDU parser is
private, so this module packs and parses the PDU itself with `struct` (the hot path of the
Modbus TCP link): candidates for sharing with `modbus_rtu` later.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Literal, TypeVar, overload

from protocols.crc import BytesLike
from protocols.errors import EncodeError, FrameError, raise_first
from protocols.modbus_rtu import (
    EXCEPTION_FLAG,
    MAX_READ_COUNT,
    MAX_WRITE_COUNT,
    READ_HOLDING_REGISTERS,
    WRITE_MULTIPLE_REGISTERS,
    WRITE_SINGLE_REGISTER,
    ExceptionReply,
    ReadHoldingRegisters,
    RegistersReply,
    Reply,
    Request,
    WriteMultipleRegisters,
    WriteReply,
    WriteSingleRegister,
)

PROTOCOL_ID = 0
HEADER_LENGTH = 7  # transaction id, protocol id, length, unit id
MAX_PDU_LENGTH = 253
MAX_ADU_LENGTH = HEADER_LENGTH - 1 + 1 + MAX_PDU_LENGTH  # 260
MAX_TRANSACTION_ID = 0xFFFF

_MBAP = struct.Struct(">HHHB")
_READ = struct.Struct(">HHHBBHH")  # MBAP + function, address, count (also 06 and echoes)
_WRITE_HEAD = struct.Struct(">HHHBBHHB")  # MBAP + function 16, address, count, byte count
_ADDRESS_VALUE = struct.Struct(">HH")
_REGISTERS = tuple(struct.Struct(f">{n}H") for n in range(MAX_READ_COUNT + 1))


class Sender(Enum):
    """Which end wrote the stream a decoder reads: clients send requests, servers replies."""

    CLIENT = "client"
    SERVER = "server"


MessageT = TypeVar("MessageT", bound=Request | Reply)


@dataclass(frozen=True, slots=True)
class MbapFrame(Generic[MessageT]):
    """One Modbus TCP frame: its transaction id and its message (unit id in `slave`)."""

    transaction_id: int
    message: MessageT


def _check(what: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise EncodeError(f"{what} {value} is outside {low}..{high}")


def encode_request(transaction_id: int, request: Request) -> bytes:
    """The MBAP frame of `request`, addressed to unit `request.slave`."""
    _check("transaction id", transaction_id, 0, MAX_TRANSACTION_ID)
    _check("unit id", request.slave, 0, 0xFF)
    if isinstance(request, ReadHoldingRegisters):
        _check("register count", request.count, 1, MAX_READ_COUNT)
        _check("start address", request.address, 0, 0x10000 - request.count)
        return _READ.pack(
            transaction_id,
            PROTOCOL_ID,
            6,
            request.slave,
            READ_HOLDING_REGISTERS,
            request.address,
            request.count,
        )
    if isinstance(request, WriteSingleRegister):
        _check("register address", request.address, 0, 0xFFFF)
        _check("register value", request.value, 0, 0xFFFF)
        return _READ.pack(
            transaction_id,
            PROTOCOL_ID,
            6,
            request.slave,
            WRITE_SINGLE_REGISTER,
            request.address,
            request.value,
        )
    count = len(request.values)
    _check("register count", count, 1, MAX_WRITE_COUNT)
    _check("start address", request.address, 0, 0x10000 - count)
    for value in request.values:
        _check("register value", value, 0, 0xFFFF)
    head = _WRITE_HEAD.pack(
        transaction_id,
        PROTOCOL_ID,
        7 + 2 * count,
        request.slave,
        WRITE_MULTIPLE_REGISTERS,
        request.address,
        count,
        2 * count,
    )
    return head + _REGISTERS[count].pack(*request.values)


def encode_reply(transaction_id: int, reply: Reply) -> bytes:
    """The MBAP frame of `reply`, from unit `reply.slave`."""
    _check("transaction id", transaction_id, 0, MAX_TRANSACTION_ID)
    _check("unit id", reply.slave, 0, 0xFF)
    _check("function code", reply.function, 1, 0x7F)
    if isinstance(reply, ExceptionReply):
        _check("exception code", reply.code, 0, 0xFF)
        pdu = bytes((reply.function | EXCEPTION_FLAG, reply.code))
    elif isinstance(reply, RegistersReply):
        count = len(reply.registers)
        _check("register count", count, 1, MAX_READ_COUNT)
        for value in reply.registers:
            _check("register value", value, 0, 0xFFFF)
        pdu = bytes((reply.function, 2 * count)) + _REGISTERS[count].pack(*reply.registers)
    else:
        _check("register address", reply.address, 0, 0xFFFF)
        _check("echoed value", reply.value, 0, 0xFFFF)
        pdu = bytes((reply.function,)) + _ADDRESS_VALUE.pack(reply.address, reply.value)
    return _MBAP.pack(transaction_id, PROTOCOL_ID, 1 + len(pdu), reply.slave) + pdu


def _parse_reply(unit: int, pdu: bytes) -> Reply:
    """The reply a PDU (function code first) carries."""
    function = pdu[0]
    size = len(pdu)
    if function & EXCEPTION_FLAG:
        if size != 2:
            raise FrameError(f"exception reply PDU of {size} bytes, expected 2")
        return ExceptionReply(unit, function & 0x7F, pdu[1])
    if function == READ_HOLDING_REGISTERS:
        byte_count = pdu[1] if size > 1 else -1
        if byte_count != size - 2 or byte_count == 0 or byte_count & 1:
            raise FrameError(f"register reply of {size - 1} bytes declares {byte_count} data bytes")
        return RegistersReply(unit, function, _REGISTERS[byte_count >> 1].unpack_from(pdu, 2))
    if function in (WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_REGISTERS):
        if size != 5:
            raise FrameError(f"write reply PDU of {size} bytes, expected 5")
        address, value = _ADDRESS_VALUE.unpack_from(pdu, 1)
        return WriteReply(unit, function, address, value)
    raise FrameError(f"unsupported Modbus function 0x{function:02X} in reply")


def _parse_request(unit: int, pdu: bytes) -> Request:
    """The request a PDU (function code first) carries; ranges are the server's to judge."""
    function = pdu[0]
    size = len(pdu)
    if function in (READ_HOLDING_REGISTERS, WRITE_SINGLE_REGISTER):
        if size != 5:
            raise FrameError(f"function 0x{function:02X} request PDU of {size} bytes, expected 5")
        address, value = _ADDRESS_VALUE.unpack_from(pdu, 1)
        if function == READ_HOLDING_REGISTERS:
            return ReadHoldingRegisters(unit, address, value)
        return WriteSingleRegister(unit, address, value)
    if function == WRITE_MULTIPLE_REGISTERS:
        if size < 6:
            raise FrameError(f"write request PDU of {size} bytes, at least 6 needed")
        address, count = _ADDRESS_VALUE.unpack_from(pdu, 1)
        byte_count = pdu[5]
        if byte_count != 2 * count or size != 6 + byte_count:
            raise FrameError(
                f"write of {count} registers carries {byte_count} of {size - 6} data bytes"
            )
        return WriteMultipleRegisters(unit, address, _REGISTERS[count].unpack_from(pdu, 6))
    raise FrameError(f"unsupported Modbus function 0x{function:02X} in request")


class MbapDecoder(Generic[MessageT]):
    """Turns a Modbus TCP byte stream into frames; never blocks, never does I/O.

    The MBAP length field cuts the stream, so a frame with a bad PDU is skipped whole. A header
    with a foreign protocol id or an impossible length makes the decoder slide one byte and
    look for the next plausible header. Either raises FrameError once all the data has been
    read; the frames found in that call come back from the next `feed` (feed b"" for them).
    The buffer never holds more than one frame.
    """

    @overload
    def __init__(self: MbapDecoder[Request], sender: Literal[Sender.CLIENT]) -> None: ...
    @overload
    def __init__(self: MbapDecoder[Reply], sender: Literal[Sender.SERVER]) -> None: ...
    @overload
    def __init__(self: MbapDecoder[Request | Reply], sender: Sender) -> None: ...
    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        parse = _parse_reply if sender is Sender.SERVER else _parse_request
        self._parse: Callable[[int, bytes], MessageT] = parse  # type: ignore[assignment]
        self._buffer = bytearray()
        self._ready: list[MbapFrame[MessageT]] = []
        self.discarded = 0

    def feed(self, data: BytesLike) -> list[MbapFrame[MessageT]]:
        """The complete frames found so far, in order."""
        buf = self._buffer
        if not buf and not self._ready and len(data) >= HEADER_LENGTH:
            # The common case, one whole frame per read, without copying into the buffer.
            transaction_id, protocol, length, unit = _MBAP.unpack_from(data, 0)
            if (
                protocol == PROTOCOL_ID
                and 2 <= length <= MAX_PDU_LENGTH + 1
                and length == len(data) - HEADER_LENGTH + 1
            ):
                try:
                    return [
                        MbapFrame(transaction_id, self._parse(unit, bytes(data[HEADER_LENGTH:])))
                    ]
                except FrameError:
                    pass  # the general path below reports it
        buf += data
        end = len(buf)
        pos = 0
        errors: list[str] = []
        found = self._ready
        parse = self._parse
        sliding = False
        while end - pos >= HEADER_LENGTH:
            transaction_id, protocol, length, unit = _MBAP.unpack_from(buf, pos)
            if protocol != PROTOCOL_ID or not 2 <= length <= MAX_PDU_LENGTH + 1:
                if not sliding:
                    errors.append(f"MBAP header with protocol id {protocol} and length {length}")
                sliding = True
                pos += 1
                self.discarded += 1
                continue
            sliding = False
            stop = pos + HEADER_LENGTH - 1 + length
            if stop > end:
                break
            try:
                message = parse(unit, bytes(buf[pos + HEADER_LENGTH : stop]))
            except FrameError as exc:
                errors.append(f"transaction {transaction_id}: {exc.reason}")
                self.discarded += stop - pos
            else:
                found.append(MbapFrame(transaction_id, message))
            pos = stop
        del buf[:pos]
        raise_first(errors)
        self._ready = []
        return found
