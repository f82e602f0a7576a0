"""The exceptions raised by the southbound codecs; all derive from ProtocolError."""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of every error a codec in `protocols/` raises on purpose."""


class FrameError(ProtocolError):
    """Bytes that are not a valid frame: bad checksum, wrong address or function, bad BCD."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EncodeError(ProtocolError, ValueError):
    """A value that cannot be put on the wire: out of range, too long, or too precise."""


class UnknownDataIdentifier(ProtocolError, KeyError):
    """A DL/T 645 data identifier that is not in the DI table."""

    def __init__(self, di: int) -> None:
        super().__init__(f"unknown DL/T 645 data identifier {di:08X}")
        self.di = di

    def __str__(self) -> str:
        return str(self.args[0])


def raise_first(errors: list[str]) -> None:
    """Raise FrameError for the first of `errors`, counting the others; do nothing if none."""
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise FrameError(errors[0] + more)
