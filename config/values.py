"""Parsers for single field values; each raises ValueError with a message naming the rule."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_CLOCK = re.compile(r"([0-9]{2}):([0-9]{2})")
_DLT645 = re.compile(r"[0-9]{12}")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_SERIAL = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,18}[\x21-\x7e])?")

DLT645_BROADCAST = "999999999999"
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A host and TCP port to listen on or connect to."""

    host: str
    port: int

    def __str__(self) -> str:
        """`host:port`, with brackets around an IPv6 host."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_ident(text: str) -> str:
    """An identifier: a letter or digit, then up to 31 of letters, digits, `_`, `.`, `-`."""
    if not IDENT.fullmatch(text):
        raise ValueError(f"must be an identifier ([A-Za-z0-9][A-Za-z0-9_.-]{{0,31}}), got {text!r}")
    return text


def parse_host(text: str) -> str:
    """A host name or an IPv4/IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if not _HOSTNAME.fullmatch(text):
            raise ValueError(f"must be a host name or IP address, got {text!r}") from None
    return text


def parse_port(value: object) -> int:
    """A TCP port 1..65535."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"must be an integer 1..65535, got {value!r}")
    return value


def parse_endpoint(text: str, *, listen: bool = False) -> Endpoint:
    """`host:port` or `[ipv6]:port`; a listen address may use port 0 (any free port)."""
    problem = f"must be host:port like 127.0.0.1:8080, got {text!r}"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(problem)
        port_text = rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon or ":" in host:
            raise ValueError(problem)
    if not host or not port_text.isdigit() or not port_text.isascii():
        raise ValueError(problem)
    try:
        port = int(port_text)
        return Endpoint(parse_host(host), port if listen and port == 0 else parse_port(port))
    except ValueError as error:
        raise ValueError(f"{problem}: {error}") from None


def parse_url(text: str, schemes: tuple[str, ...]) -> str:
    """A URL with one of `schemes` and a host (a port, if given, must be valid)."""
    problem = f"must be a {' or '.join(s + '://' for s in schemes)} URL with a host, got {text!r}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(problem) from None
    if parts.scheme not in schemes or not parts.hostname or port == 0:
        raise ValueError(problem)
    if any(char.isspace() for char in text):
        raise ValueError(problem)
    return text


def parse_email(text: str) -> str:
    """An e-mail address (one @, no spaces)."""
    if not _EMAIL.fullmatch(text):
        raise ValueError(f"must be an e-mail address like ops@example.com, got {text!r}")
    return text


def parse_clock(text: str, *, end: bool) -> int:
    """`HH:MM` as minutes after midnight; `24:00` only when `end` is true."""
    match = _CLOCK.fullmatch(text)
    hours, minutes = (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
    if text == "24:00" and end:
        return MINUTES_PER_DAY
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        allowed = "00:00..24:00" if end else "00:00..23:59"
        raise ValueError(f"must be a time HH:MM in {allowed}, got {text!r}")
    return hours * 60 + minutes


def format_clock(minute: int) -> str:
    """Minutes after midnight as `HH:MM` (1440 is `24:00`)."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_dlt645_address(text: str) -> str:
    """A DL/T 645 meter address: 12 decimal digits, not the broadcast address."""
    if not _DLT645.fullmatch(text) or not text.isascii():
        raise ValueError(f"must be 12 decimal digits, got {text!r}")
    if text == DLT645_BROADCAST:
        raise ValueError(f"{DLT645_BROADCAST} is the broadcast address")
    return text


def parse_payload(text: str, form: str) -> bytes:
    """A registration or heartbeat payload written as `ascii` text or `hex` digits."""
    if form == "hex":
        compact = text.replace(" ", "")
        if not _HEX.fullmatch(compact):
            raise ValueError(f"must be an even number of hex digits, got {text!r}")
        return bytes.fromhex(compact)
    if not text or not text.isascii() or not text.isprintable():
        raise ValueError(f"must be non-empty printable ASCII, got {text!r}")
    return text.encode("ascii")


def parse_serial(text: str) -> str:
    """A 4G meter serial: 1..20 printable ASCII characters, no spaces at either end."""
    if not _SERIAL.fullmatch(text):
        raise ValueError(f"must be 1..20 printable ASCII characters, got {text!r}")
    return text


def parse_fields(pairs: Iterable[str], option: str = "--set") -> dict[str, Any]:
    """KEY=VALUE pairs from a command line; a value that parses as JSON keeps its type."""
    fields: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} {pair!r}: expected KEY=VALUE")
        try:
            fields[key] = json.loads(value)
        except json.JSONDecodeError:
            fields[key] = value
    return fields
