"""DL/T 645-2007 framing: address, control code, +0x33 data, checksum, and the stream decoder."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocols.crc import BytesLike
from protocols.errors import EncodeError, FrameError, raise_first

START = 0x68
END = 0x16
PREAMBLE_BYTE = 0xFE
HEADER_LENGTH = 10  # 68 A0..A5 68 C L
MAX_FRAME_LENGTH = HEADER_LENGTH + 255 + 2
BROADCAST = "999999999999"
WILDCARD = "AAAAAAAAAAAA"
DIRECTION_BIT = 0x80
ERROR_BIT = 0x40
MORE_BIT = 0x20
FUNCTION_MASK = 0x1F

_PLUS_33 = bytes((i + 0x33) & 0xFF for i in range(256))
_MINUS_33 = bytes((i - 0x33) & 0xFF for i in range(256))
_ADDRESS_CHARS = frozenset("0123456789A")
_HEX_ADDRESS_CHARS = frozenset("0123456789a")

ERROR_BITS = (
    (0x01, "other error"),
    (0x02, "no requested data"),
    (0x04, "password error or unauthorised"),
    (0x08, "baud rate cannot be changed"),
    (0x10, "too many annual time zones"),
    (0x20, "too many daily time periods"),
    (0x40, "too many tariffs"),
)


class Function(IntEnum):
    """The function codes (control code bits 0–4) this codec speaks."""

    BROADCAST_TIME = 0x08
    READ = 0x11
    READ_FOLLOW_UP = 0x12
    READ_ADDRESS = 0x13
    WRITE = 0x14
    FREEZE = 0x16
    RELAY = 0x1C


def error_names(error: int) -> tuple[str, ...]:
    """The names of the bits set in an error reply's error byte."""
    return tuple(name for bit, name in ERROR_BITS if error & bit)


def encode_address(address: str) -> bytes:
    """Six wire bytes, low byte first, of a 12-digit address ('A' nibbles are wildcards)."""
    text = address.upper()
    if len(text) != 12 or not set(text) <= _ADDRESS_CHARS:
        raise EncodeError(f"meter address {address!r} is not 12 digits (A for a wildcard)")
    return bytes.fromhex(text)[::-1]


def decode_address(raw: BytesLike) -> str:
    """The 12-digit address of six wire bytes, low byte first."""
    text = bytes(raw)[::-1].hex().upper()
    if not set(text) <= _ADDRESS_CHARS:
        raise FrameError(f"meter address {text} has a nibble that is neither BCD nor A")
    return text


@dataclass(frozen=True, slots=True)
class Dlt645Frame:
    """One frame: the address, the control code and the data with the 0x33 removed."""

    address: str
    control: int
    data: bytes = b""

    @property
    def function(self) -> int:
        """The function code, bits 0–4 of the control code."""
        return self.control & FUNCTION_MASK

    @property
    def is_reply(self) -> bool:
        """Whether the direction bit marks a reply from the meter."""
        return bool(self.control & DIRECTION_BIT)

    @property
    def is_error(self) -> bool:
        """Whether the meter refused the request."""
        return bool(self.control & ERROR_BIT)

    @property
    def more_follows(self) -> bool:
        """Whether more frames follow (read with follow-up)."""
        return bool(self.control & MORE_BIT)

    def encode(self, preamble: int = 4) -> bytes:
        """The wire bytes, with `preamble` FE bytes in front."""
        if not 0 <= self.control <= 0xFF:
            raise EncodeError(f"control code {self.control} is not a byte")
        if len(self.data) > 255:
            raise EncodeError(f"{len(self.data)} data bytes do not fit one frame (255 at most)")
        if not 0 <= preamble <= 4:
            raise EncodeError(f"preamble of {preamble} FE bytes is outside 0..4")
        body = bytearray((START,))
        body += encode_address(self.address)
        body += bytes((START, self.control, len(self.data)))
        body += self.data.translate(_PLUS_33)
        body += bytes((sum(body) & 0xFF, END))
        return b"\xfe" * preamble + bytes(body)


class Dlt645Decoder:
    """Turns a byte stream into DL/T 645 frames; never blocks, never does I/O.

    FE preambles and other bytes outside frames are skipped. A frame with a bad checksum,
    terminator or address raises FrameError once all the data has been read; the decoder
    resynchronises on the next 0x68, and the frames found in that call come back from the
    next `feed` (feed b"" to collect them). The buffer never holds more than one frame.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._ready: list[Dlt645Frame] = []
        self.discarded = 0

    def feed(self, data: BytesLike) -> list[Dlt645Frame]:
        """The complete frames found so far, in order."""
        buf = self._buffer
        buf += data
        end = len(buf)
        pos = buf.find(START)
        if pos < 0:
            pos = end
        pending = -1
        errors: list[str] = []
        found = self._ready
        while pos < end:
            if pos + HEADER_LENGTH > end:
                if pending < 0:
                    pending = pos
            elif buf[pos + 7] == START:
                length = HEADER_LENGTH + buf[pos + 9] + 2
                if pos + length > end:
                    if pending < 0:
                        pending = pos
                else:
                    problem = self._check(buf, pos, length)
                    if problem is None:
                        found.append(self._frame(buf, pos, length))
                        pending = -1
                        pos += length
                        nxt = buf.find(START, pos)
                        pos = end if nxt < 0 else nxt
                        continue
                    if pending < 0:
                        errors.append(problem)
            nxt = buf.find(START, pos + 1)
            pos = end if nxt < 0 else nxt
        keep_from = pending if pending >= 0 else end
        self.discarded += keep_from
        del buf[:keep_from]
        raise_first(errors)
        self._ready = []
        return found

    @staticmethod
    def _check(buf: bytearray, pos: int, length: int) -> str | None:
        checksum_at = pos + length - 2
        if sum(buf[pos:checksum_at]) & 0xFF != buf[checksum_at]:
            return f"bad DL/T 645 checksum 0x{buf[checksum_at]:02X}"
        if buf[checksum_at + 1] != END:
            return f"DL/T 645 frame ends with 0x{buf[checksum_at + 1]:02X}, not 0x16"
        if not set(buf[pos + 1 : pos + 7].hex()) <= _HEX_ADDRESS_CHARS:
            return f"meter address {bytes(buf[pos + 1 : pos + 7])[::-1].hex()} is not BCD"
        return None

    @staticmethod
    def _frame(buf: bytearray, pos: int, length: int) -> Dlt645Frame:
        address = bytes(buf[pos + 1 : pos + 7])[::-1].hex().upper()
        data = bytes(buf[pos + HEADER_LENGTH : pos + length - 2]).translate(_MINUS_33)
        return Dlt645Frame(address, buf[pos + 8], data)
