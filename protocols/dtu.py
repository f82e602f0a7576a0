"""A dial-in DTU link's session: the registration packet, heartbeats, and the data between them.

A DTU sends its registration packet on connect and, if it has one, a heartbeat payload while
idle; everything else is the serial traffic (Modbus-RTU or DL/T 645 replies) for the RTU
decoder. The session cannot see frame boundaries inside that traffic, so it takes a heartbeat
only where a read starts or ends with one (a heartbeat comes while the line is idle, so it
arrives between replies, never inside one), and holds back a read that is the first part of
a heartbeat.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from protocols.crc import BytesLike
from protocols.errors import EncodeError

MAX_REGISTRATION_LENGTH = 256


@dataclass(frozen=True, slots=True)
class DtuIdentity:
    """A known device: its id, its registration packet and its heartbeat payload (None: none)."""

    id: str
    registration: bytes
    heartbeat: bytes | None = None


@dataclass(frozen=True, slots=True)
class Registered:
    """The device registered as a known id."""

    id: str


@dataclass(frozen=True, slots=True)
class UnknownRegistration:
    """The first bytes on the link match no known registration packet: refuse and log them."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The device's heartbeat payload arrived."""


@dataclass(frozen=True, slots=True)
class Data:
    """Serial traffic from the device, for the RTU or DL/T 645 decoder."""

    payload: bytes


Event: TypeAlias = Registered | UnknownRegistration | Heartbeat | Data


def parse_payload(text: str, kind: str) -> bytes:
    """The bytes of a configured payload written as `ascii` text or as `hex` digits."""
    if kind == "ascii":
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise EncodeError(f"payload {text!r} is not ASCII") from None
    elif kind == "hex":
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise EncodeError(f"payload {text!r} is not hex digits") from None
    else:
        raise EncodeError(f"payload kind {kind!r} is neither 'ascii' nor 'hex'")
    if not raw or len(raw) > MAX_REGISTRATION_LENGTH:
        raise EncodeError(f"payload {text!r} must be 1..{MAX_REGISTRATION_LENGTH} bytes")
    return raw


class DtuSession:
    """The state of one dial-in connection; `feed` turns reads into events, with no I/O."""

    def __init__(self, devices: Iterable[DtuIdentity]) -> None:
        self._by_registration: dict[bytes, DtuIdentity] = {}
        for device in devices:
            if not device.registration:
                raise EncodeError(f"DTU {device.id!r} needs a registration packet")
            if device.heartbeat == b"":
                raise EncodeError(f"DTU {device.id!r} has an empty heartbeat; give None for none")
            if len(device.registration) > MAX_REGISTRATION_LENGTH:
                raise EncodeError(f"DTU {device.id!r} registration packet is too long")
            other = self._by_registration.setdefault(device.registration, device)
            if other is not device:
                raise EncodeError(f"DTUs {other.id!r} and {device.id!r} start alike")
        # In sorted order, a packet that is a prefix of another is a prefix of its successor.
        packets = sorted(self._by_registration)
        for shorter, longer in itertools.pairwise(packets):
            if longer.startswith(shorter):
                first, second = self._by_registration[shorter].id, self._by_registration[longer].id
                raise EncodeError(
                    f"DTU registrations of {first!r} and {second!r} start alike,"
                    " so a split packet could not be told apart"
                )
        self.device: DtuIdentity | None = None
        self.refused = False
        self._held = b""

    def feed(self, data: BytesLike) -> list[Event]:
        """The events one read from the socket produces, in order."""
        chunk = self._held + bytes(data)
        self._held = b""
        if self.refused:
            return []
        events: list[Event] = []
        if self.device is None:
            chunk = self._register(chunk, events)
            if self.device is None:
                return events
        return self._split(chunk, events)

    def _register(self, chunk: bytes, events: list[Event]) -> bytes:
        """Match the start of the link against the registration packets; the rest is returned."""
        waiting = False
        for packet, device in self._by_registration.items():
            if chunk.startswith(packet):
                self.device = device
                events.append(Registered(device.id))
                return chunk[len(packet) :]
            waiting = waiting or packet.startswith(chunk)
        if waiting:
            self._held = chunk
        else:
            self.refused = True
            events.append(UnknownRegistration(chunk[:MAX_REGISTRATION_LENGTH]))
        return b""

    def _split(self, chunk: bytes, events: list[Event]) -> list[Event]:
        """Heartbeats at the start and end of a read become events; the middle is data."""
        assert self.device is not None
        beat = self.device.heartbeat
        if beat is None:
            if chunk:
                events.append(Data(chunk))
            return events
        while chunk.startswith(beat):
            events.append(Heartbeat())
            chunk = chunk[len(beat) :]
        if chunk and beat.startswith(chunk):
            self._held = chunk
            return events
        trailing = 0
        while len(chunk) > len(beat) and chunk.endswith(beat):
            chunk = chunk[: -len(beat)]
            trailing += 1
        if chunk:
            events.append(Data(chunk))
        events.extend(Heartbeat() for _ in range(trailing))
        return events
