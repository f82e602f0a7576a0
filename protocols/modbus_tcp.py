"""Modbus TCP (MBAP) framing for functions 03, 06 and 16: encoders and a stream decoder.

The PDU is `modbus_rtu`'s: its request and reply classes (with the MBAP unit id in their
`slave` field) encode it with `pdu()`, and `parse_request_pdu` / `parse_reply_pdu` read it in
place from the stream buffer. This module adds only the MBAP header and the stream cutting.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Literal, TypeVar, overload

from protocols.crc import BytesLike
from protocols.errors import EncodeError, FrameError, raise_first
from protocols.modbus_rtu import Reply, Request, parse_reply_pdu, parse_request_pdu

PROTOCOL_ID = 0
HEADER_LENGTH = 7  # transaction id, protocol id, length, unit id
MAX_PDU_LENGTH = 253
MAX_ADU_LENGTH = HEADER_LENGTH - 1 + 1 + MAX_PDU_LENGTH  # 260
MAX_TRANSACTION_ID = 0xFFFF

_MBAP = struct.Struct(">HHHB")


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
    return _frame(transaction_id, request.slave, request)


def encode_reply(transaction_id: int, reply: Reply) -> bytes:
    """The MBAP frame of `reply`, from unit `reply.slave`."""
    return _frame(transaction_id, reply.slave, reply)


def _frame(transaction_id: int, unit: int, message: Request | Reply) -> bytes:
    _check("transaction id", transaction_id, 0, MAX_TRANSACTION_ID)
    _check("unit id", unit, 0, 0xFF)
    pdu = message.pdu()
    return _MBAP.pack(transaction_id, PROTOCOL_ID, 1 + len(pdu), unit) + pdu


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
        parse = parse_reply_pdu if sender is Sender.SERVER else parse_request_pdu
        self._parse: Callable[[int, BytesLike, int, int], MessageT] = parse  # type: ignore[assignment]
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
                    message = self._parse(unit, data, HEADER_LENGTH, len(data))
                    return [MbapFrame(transaction_id, message)]
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
                message = parse(unit, buf, pos + HEADER_LENGTH, stop)
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
