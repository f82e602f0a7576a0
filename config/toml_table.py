"""Typed reads of one TOML table that log every problem and report keys never read.

A read that fails logs an error and returns a harmless fallback (an empty string, the
lower bound, the default), so validation can go on and collect every error of the file;
the loader raises before any object built from a fallback is handed out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from config.errors import ErrorLog, KeyPath
from config.values import parse_ident

T = TypeVar("T")


def _kind(value: object) -> str:
    """The TOML name of a value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, Decimal):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


class TomlTable:
    """One TOML table at a key path; every value read is marked, the rest are unknown keys."""

    def __init__(self, data: Mapping[str, object], path: KeyPath, log: ErrorLog) -> None:
        """Wrap `data`, found at `path`, logging problems to `log`."""
        self.data = data
        self.path = path
        self.log = log
        self._read: set[str] = set()

    def error(self, key: str | int | None, message: str) -> None:
        """Log a problem at `key` of this table (or at the table itself)."""
        self.log.toml(self.path if key is None else (*self.path, key), message)

    def has(self, key: str) -> bool:
        """Whether the table sets `key`."""
        return key in self.data

    def raw(self, key: str, *, required: bool = False) -> object | None:
        """The value of `key` as tomllib gave it, marking it read."""
        self._read.add(key)
        if key not in self.data:
            if required:
                self.error(key, "is required")
            return None
        return self.data[key]

    def finish(self) -> None:
        """Log every key of the table that no read asked for."""
        for key in self.data:
            if key not in self._read:
                self.error(key, "unknown key")

    def parsed(self, key: str, parse: Callable[[object], T], *, required: bool) -> T | None:
        """The value of `key` passed through `parse`; a ValueError becomes a logged error."""
        value = self.raw(key, required=required)
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as problem:
            self.error(key, str(problem))
            return None

    def text(self, key: str, *, default: str | None = None) -> str:
        """A non-empty string; required when there is no default."""
        value = self.raw(key, required=default is None)
        if value is None:
            return default or ""
        if not isinstance(value, str):
            self.error(key, f"must be a string, got {_kind(value)}")
            return default or ""
        if not value.strip():
            self.error(key, "must not be empty")
        return value

    def text_as(self, key: str, parse: Callable[[str], T], *, required: bool = True) -> T | None:
        """A string passed through `parse` (which raises ValueError on a bad value)."""
        value = self.raw(key, required=required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(key, f"must be a string, got {_kind(value)}")
            return None
        try:
            return parse(value)
        except ValueError as problem:
            self.error(key, str(problem))
            return None

    def ident(self, key: str) -> str:
        """A required identifier ("" after an error)."""
        return self.text_as(key, parse_ident) or ""

    def optional_ident(self, key: str) -> str | None:
        """An identifier, or None when absent."""
        return self.text_as(key, parse_ident, required=False)

    def integer(self, key: str, low: int, high: int, default: int | None = None) -> int:
        """An integer in low..high; required when there is no default."""
        found = self.optional_integer(key, low, high, required=default is None)
        if found is None:
            return default if default is not None else low
        return found

    def optional_integer(
        self, key: str, low: int, high: int, *, required: bool = False
    ) -> int | None:
        """An integer in low..high, or None when absent or bad."""
        value = self.raw(key, required=required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(key, f"must be an integer {low}..{high}, got {value!r}")
            return None
        return value

    def real(self, key: str, low: float, high: float, default: float) -> float:
        """A number (integer or float) in low..high, as a float; absent gives `default`."""
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            self.error(key, f"must be a number {low}..{high}, got {_kind(value)}")
            return default
        number = float(value)
        if not low <= number <= high:  # also rejects nan
            self.error(key, f"must be a number {low}..{high}, got {value}")
            return default
        return number

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str:
        """One of `options`; required when there is no default."""
        value = self.raw(key, required=default is None)
        if value is None:
            return default or ""
        if value not in options:
            self.error(key, f"must be one of {' | '.join(options)}, got {value!r}")
            return default or ""
        return str(value)

    def datetime_with_offset(self, key: str) -> datetime | None:
        """A required TOML offset datetime such as 2024-01-01T00:00:00+08:00."""
        value = self.raw(key, required=True)
        if value is None:
            return None
        if not isinstance(value, datetime):
            self.error(key, f"must be a TOML offset datetime, got {_kind(value)}")
            return None
        if value.tzinfo is None:
            self.error(key, f"needs a UTC offset, like {value.isoformat()}+08:00")
            return None
        return value

    def table(self, key: str) -> TomlTable | None:
        """An optional sub-table."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.error(key, f"must be a table, got {_kind(value)}")
            return None
        return TomlTable(value, (*self.path, key), self.log)

    def array(self, key: str) -> list[object]:
        """An optional array (absent gives an empty list)."""
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(key, f"must be an array, got {_kind(value)}")
            return []
        return value

    def tables(self, key: str) -> list[TomlTable]:
        """An optional array of tables (`[[key]]` or an array of inline tables)."""
        found: list[TomlTable] = []
        for index, item in enumerate(self.array(key)):
            if isinstance(item, dict):
                found.append(TomlTable(item, (*self.path, key, index), self.log))
            else:
                self.log.toml((*self.path, key, index), f"must be a table, got {_kind(item)}")
        return found

    def idents(self, key: str) -> tuple[str, ...]:
        """An optional array of identifiers."""
        found: list[str] = []
        for index, item in enumerate(self.array(key)):
            try:
                if not isinstance(item, str):
                    raise ValueError(f"must be a string, got {_kind(item)}")
                found.append(parse_ident(item))
            except ValueError as problem:
                self.log.toml((*self.path, key, index), str(problem))
        return tuple(found)


class UniqueIds:
    """Remembers which element of a section first used each value of one field."""

    def __init__(self, section: str) -> None:
        """Track values of elements of `section` (for messages like `areas[2]`)."""
        self.section = section
        self.first: dict[object, int] = {}

    def claim(self, table: TomlTable, key: str, value: object, index: int, what: str) -> None:
        """Log an error if `value` is already taken; otherwise take it for element `index`."""
        if value in (None, ""):
            return
        if value in self.first:
            table.error(key, f"{what} is already used by {self.section}[{self.first[value]}]")
        else:
            self.first[value] = index
