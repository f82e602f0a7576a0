"""The Acrel 4G meter frame: 7B7B | cmd | payload | CRC16-Modbus(cmd + payload) | 7D7D.

The frame carries no length, and 7D 7D may occur inside a binary payload, so a frame is never
cut at the first 7D7D: its length comes from the command (fixed layouts below), from the byte
count of the embedded Modbus frame (0x91, 0x90), or, for a payload of unknown length, from the
first 7D7D whose preceding two bytes are the CRC of everything since 7B7B. The layouts are
provisional (DOMAIN.md ⚠), hence the field lengths as constants here.
The register ack `7B7B 84 BF23 7D7D` is just an empty 0x84 frame: BF 23 is CRC16-Modbus(0x84).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum, IntEnum
from typing import TypeAlias

from protocols import modbus_rtu
from protocols.crc import BytesLike, crc16_modbus, crc_matches
from protocols.errors import EncodeError, FrameError, raise_first
from protocols.modbus_rtu import RegistersReply, Reply, Request

HEAD = b"\x7b\x7b"
TAIL = b"\x7d\x7d"
SERIAL_LENGTH = 20
ICCID_LENGTH = 30
RSSI_LENGTH = 1
FIRMWARE_LENGTH = 3
UPLOAD_INTERVAL_LENGTH = 2
REGISTRATION_LENGTH = (
    SERIAL_LENGTH + ICCID_LENGTH + RSSI_LENGTH + FIRMWARE_LENGTH + UPLOAD_INTERVAL_LENGTH
)
TIME_SYNC_LENGTH = 7
HEARTBEAT_PAYLOAD_LENGTH: int | None = None  # None: any length up to MAX_OPEN_PAYLOAD
MAX_OPEN_PAYLOAD = 64
POLL_BLOCK_REGISTERS = 48
OVERHEAD = len(HEAD) + 1 + 2 + len(TAIL)


class Command(IntEnum):
    """The command byte after 7B7B."""

    REGISTER = 0x84
    HEARTBEAT = 0x94
    TIME_SYNC = 0x93
    DATA_UPLOAD = 0x91
    DOWNLINK = 0x90


class Sender(Enum):
    """Which end wrote the stream a decoder reads: the same command differs by direction."""

    METER = "meter"
    SERVER = "server"


def _frame(command: Command, payload: bytes) -> bytes:
    body = bytes((command,)) + payload
    return HEAD + body + crc16_modbus(body).to_bytes(2, "little") + TAIL


def _text_field(raw: bytes, what: str) -> str:
    text = raw.rstrip(b"\x00 ")
    if not all(0x20 <= b < 0x7F for b in text):
        raise FrameError(f"{what} {raw.hex()} is not printable ASCII")
    return text.decode("ascii")


def _encode_text(text: str, length: int, what: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > length or not all(0x20 <= b < 0x7F for b in raw):
        raise EncodeError(f"{what} {text!r} is not printable ASCII of at most {length} characters")
    return raw.ljust(length, b"\x00")


def _bcd_byte(value: int, what: str) -> int:
    if not 0 <= value <= 99:
        raise EncodeError(f"{what} {value} is not a two-digit number")
    return ((value // 10) << 4) | (value % 10)


@dataclass(frozen=True, slots=True)
class Registration:
    """0x84 from the meter: serial, ICCID, signal, firmware versions, upload interval."""

    serial: str
    iccid: str
    rssi: int
    firmware: tuple[int, int, int]
    upload_interval_min: int

    def encode(self) -> bytes:
        """The frame bytes."""
        if not 0 <= self.rssi < 1 << (8 * RSSI_LENGTH):
            raise EncodeError(f"RSSI {self.rssi} does not fit {RSSI_LENGTH} byte(s)")
        if not 0 <= self.upload_interval_min < 1 << (8 * UPLOAD_INTERVAL_LENGTH):
            raise EncodeError(f"upload interval {self.upload_interval_min} min does not fit")
        payload = _encode_text(self.serial, SERIAL_LENGTH, "serial")
        payload += _encode_text(self.iccid, ICCID_LENGTH, "ICCID")
        payload += self.rssi.to_bytes(RSSI_LENGTH, "big")
        payload += bytes(_bcd_byte(v, "firmware version") for v in self.firmware)
        payload += self.upload_interval_min.to_bytes(UPLOAD_INTERVAL_LENGTH, "big")
        return _frame(Command.REGISTER, payload)


@dataclass(frozen=True, slots=True)
class RegistrationAck:
    """0x84 from the server with no payload: `7B7B 84 BF23 7D7D`."""

    def encode(self) -> bytes:
        """The frame bytes."""
        return _frame(Command.REGISTER, b"")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """0x94 from the meter; the server does not answer it."""

    payload: bytes = b""

    def encode(self) -> bytes:
        """The frame bytes."""
        limit = MAX_OPEN_PAYLOAD if HEARTBEAT_PAYLOAD_LENGTH is None else HEARTBEAT_PAYLOAD_LENGTH
        exact = HEARTBEAT_PAYLOAD_LENGTH is not None and len(self.payload) != limit
        if exact or len(self.payload) > limit:
            raise EncodeError(f"heartbeat payload of {len(self.payload)} bytes does not fit")
        return _frame(Command.HEARTBEAT, self.payload)


@dataclass(frozen=True, slots=True)
class TimeSync:
    """0x93 from the server: YY MM DD weekday hh mm ss, binary, Sunday = 0."""

    when: datetime

    def encode(self) -> bytes:
        """The frame bytes."""
        when = self.when
        if not 2000 <= when.year <= 2099:
            raise EncodeError(f"time sync year {when.year} is outside 2000..2099")
        weekday = (when.weekday() + 1) % 7
        fields = (when.year - 2000, when.month, when.day, weekday, when.hour, when.minute)
        return _frame(Command.TIME_SYNC, bytes((*fields, when.second)))


@dataclass(frozen=True, slots=True)
class DataUpload:
    """0x91 from the meter: its serial and a Modbus 03 reply of the poll block."""

    serial: str
    reply: RegistersReply

    def encode(self) -> bytes:
        """The frame bytes."""
        payload = _encode_text(self.serial, SERIAL_LENGTH, "serial") + self.reply.encode()
        return _frame(Command.DATA_UPLOAD, payload)


@dataclass(frozen=True, slots=True)
class Downlink:
    """0x90 from the server: a Modbus-RTU request for the meter."""

    request: Request

    def encode(self) -> bytes:
        """The frame bytes."""
        return _frame(Command.DOWNLINK, self.request.encode())


@dataclass(frozen=True, slots=True)
class DownlinkReply:
    """0x90 from the meter: the Modbus-RTU reply to a downlink request."""

    reply: Reply

    def encode(self) -> bytes:
        """The frame bytes."""
        return _frame(Command.DOWNLINK, self.reply.encode())


Frame: TypeAlias = (
    Registration | RegistrationAck | Heartbeat | TimeSync | DataUpload | Downlink | DownlinkReply
)


def _payload_length(sender: Sender, command: int, buf: bytearray, start: int) -> int | None:
    """Payload bytes of the frame whose payload starts at `buf[start]`; -1 if open-ended."""
    if sender is Sender.METER:
        if command == Command.REGISTER:
            return REGISTRATION_LENGTH
        if command == Command.HEARTBEAT:
            return -1 if HEARTBEAT_PAYLOAD_LENGTH is None else HEARTBEAT_PAYLOAD_LENGTH
        if command == Command.DATA_UPLOAD:
            embedded = modbus_rtu.reply_length(buf, start + SERIAL_LENGTH)
            return None if embedded is None else SERIAL_LENGTH + embedded
        if command == Command.DOWNLINK:
            return modbus_rtu.reply_length(buf, start)
    else:
        if command == Command.REGISTER:
            return 0
        if command == Command.TIME_SYNC:
            return TIME_SYNC_LENGTH
        if command == Command.DOWNLINK:
            return modbus_rtu.request_length(buf, start)
    raise FrameError(f"unknown Acrel 4G command 0x{command:02X} from the {sender.value}")


def _parse(sender: Sender, command: int, payload: bytes) -> Frame:
    """The typed frame of a payload whose length and CRC have been checked."""
    if command == Command.DOWNLINK:
        if sender is Sender.METER:
            return DownlinkReply(modbus_rtu.decode_reply(payload))
        return Downlink(modbus_rtu.decode_request(payload))
    if command == Command.HEARTBEAT:
        return Heartbeat(payload)
    if command == Command.DATA_UPLOAD:
        reply = modbus_rtu.decode_reply(payload[SERIAL_LENGTH:])
        if not isinstance(reply, RegistersReply):
            raise FrameError(f"data upload carries {type(reply).__name__}, not a register reply")
        return DataUpload(_text_field(payload[:SERIAL_LENGTH], "serial"), reply)
    if command == Command.TIME_SYNC:
        year, month, day, weekday, hour, minute, second = payload
        try:
            when = datetime(2000 + year, month, day, hour, minute, second)  # meter local time
        except ValueError as exc:
            raise FrameError(f"time sync {payload.hex()} is not a valid time ({exc})") from None
        if weekday != (when.weekday() + 1) % 7:
            raise FrameError(f"time sync weekday {weekday} does not match {when:%Y-%m-%d}")
        return TimeSync(when)
    if sender is Sender.SERVER:
        return RegistrationAck()
    at = SERIAL_LENGTH + ICCID_LENGTH
    firmware_raw = payload[at + RSSI_LENGTH : at + RSSI_LENGTH + FIRMWARE_LENGTH]
    if not firmware_raw.hex().isdigit():
        raise FrameError(f"firmware versions {firmware_raw.hex()} are not BCD")
    major, minor, patch = (int(firmware_raw.hex()[i : i + 2]) for i in range(0, 6, 2))
    return Registration(
        serial=_text_field(payload[:SERIAL_LENGTH], "serial"),
        iccid=_text_field(payload[SERIAL_LENGTH:at], "ICCID"),
        rssi=int.from_bytes(payload[at : at + RSSI_LENGTH], "big"),
        firmware=(major, minor, patch),
        upload_interval_min=int.from_bytes(payload[at + RSSI_LENGTH + FIRMWARE_LENGTH :], "big"),
    )


class Acrel4GDecoder:
    """Turns bytes from a 4G meter (or, in the simulator, from the server) into frames.

    Never blocks, never does I/O. A corrupt frame (bad CRC, unknown command, bad payload)
    raises FrameError once all the data has been read; the decoder resynchronises on the next
    7B7B, and the frames found in that call come back from the next `feed` (feed b"" to
    collect them). The buffer never holds more than one frame.
    """

    def __init__(self, sender: Sender = Sender.METER) -> None:
        self.sender = sender
        self._buffer = bytearray()
        self._ready: list[Frame] = []
        self.discarded = 0

    def feed(self, data: BytesLike) -> list[Frame]:
        """The complete frames found so far, in order."""
        buf = self._buffer
        buf += data
        end = len(buf)
        pos = buf.find(HEAD)
        pos = end if pos < 0 else pos
        pending = -1
        errors: list[str] = []
        found = self._ready
        while pos < end:
            if pos + 2 < end and buf[pos + 2] == HEAD[0]:
                pos += 1  # a run of 7B: the frame starts at the last pair
                continue
            problem: str | None = None
            try:
                length = self._frame_length(buf, pos, end)
            except FrameError as exc:
                length, problem = 0, exc.reason
            if length is None:
                pending = pos if pending < 0 else pending
            elif problem is None:
                try:
                    found.append(
                        _parse(self.sender, buf[pos + 2], bytes(buf[pos + 3 : pos + length - 4]))
                    )
                except FrameError as exc:
                    problem = exc.reason
                else:
                    pending = -1
                    nxt = buf.find(HEAD, pos + length)
                    pos = end if nxt < 0 else nxt
                    continue
            if problem is not None and pending < 0:
                errors.append(problem)
            nxt = buf.find(HEAD, pos + 1)
            pos = end if nxt < 0 else nxt
        keep_from = pending if pending >= 0 else end
        if pending < 0 and buf.endswith(HEAD[:1]):
            keep_from = end - 1
        self.discarded += keep_from
        del buf[:keep_from]
        raise_first(errors)
        self._ready = []
        return found

    def _frame_length(self, buf: bytearray, pos: int, end: int) -> int | None:
        """Length of the checked frame at `pos`, None until it is complete; FrameError if bad."""
        if pos + 3 > end:
            return None
        command = buf[pos + 2]
        payload = _payload_length(self.sender, command, buf, pos + 3)
        if payload is None:
            return None
        if payload >= 0:
            length = payload + OVERHEAD
            if pos + length > end:
                return None
            if buf[pos + length - 2 : pos + length] != TAIL:
                raise FrameError(f"Acrel 4G frame 0x{command:02X} of {length} bytes lacks 7D7D")
            if not crc_matches(buf, pos + 2, pos + length - 4):
                raise FrameError(f"bad CRC in Acrel 4G frame 0x{command:02X}")
            return length
        limit = min(end, pos + MAX_OPEN_PAYLOAD + OVERHEAD)
        tail = buf.find(TAIL, pos + 5, limit)
        while tail >= 0:
            if crc_matches(buf, pos + 2, tail - 2):
                return tail + 2 - pos
            tail = buf.find(TAIL, tail + 1, limit)
        if limit == pos + MAX_OPEN_PAYLOAD + OVERHEAD:
            raise FrameError(f"no valid end within {limit - pos} bytes of Acrel 4G 0x{command:02X}")
        return None
