"""The errors the asyncio links raise to their callers; all derive from LinkError."""

from __future__ import annotations


class LinkError(Exception):
    """Base class of every failure a southbound link reports for one request."""

    def __init__(self, link: str, reason: str) -> None:
        super().__init__(f"{link}: {reason}")
        self.link = link
        self.reason = reason


class LinkTimeout(LinkError):
    """No (complete) reply came within the request timeout."""


class LinkDown(LinkError):
    """The link is not connected: refused, closed, replaced, or waiting out its backoff."""


class BadReply(LinkError):
    """A reply came but was not the answer: corrupt, wrong unit or address, wrong transaction."""


class ModbusException(LinkError):
    """The device refused a Modbus request with an exception code."""

    def __init__(self, link: str, function: int, code: int, name: str) -> None:
        super().__init__(link, f"function 0x{function:02X} refused: {name} (code {code})")
        self.function = function
        self.code = code
        self.name = name


class Dlt645Refused(LinkError):
    """A DL/T 645 meter answered with an error reply; `names` are its error bits."""

    def __init__(self, link: str, function: int, error: int, names: tuple[str, ...]) -> None:
        listed = ", ".join(names) or "no error bit set"
        super().__init__(link, f"function 0x{function:02X} refused: {listed} (0x{error:02X})")
        self.function = function
        self.error = error
        self.names = names
