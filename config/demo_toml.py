"""A small deterministic TOML writer: values, inline tables, tables and arrays of tables."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TypeAlias

# Recursive: arrays and inline tables hold further values.
TomlValue: TypeAlias = (
    str | bool | int | float | datetime | Sequence["TomlValue"] | Mapping[str, "TomlValue"]
)

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_key(key: str) -> str:
    """A key, bare when TOML allows it, else quoted."""
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_string(text: str) -> str:
    """A TOML basic string with every character that needs it escaped."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: TomlValue) -> str:
    """One value as TOML text; arrays and tables are written inline."""
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write the non-finite float {value!r} to TOML")
        return repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"datetime {value.isoformat()} needs an offset")
        return value.isoformat()
    if isinstance(value, Mapping):
        items = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    return "[" + ", ".join(toml_value(item) for item in value) + "]"


class TomlDocument:
    """Builds a TOML document line by line, in the order the caller writes it."""

    def __init__(self) -> None:
        """Start an empty document."""
        self._lines: list[str] = []

    def comment(self, text: str) -> None:
        """A comment line (or several, split on newlines)."""
        for line in text.split("\n"):
            self._lines.append(f"# {line}".rstrip())

    def blank(self) -> None:
        """An empty line, to separate sections."""
        self._lines.append("")

    def table(self, name: str) -> None:
        """A `[name]` header; `name` is a dotted path of keys."""
        self._lines.append(f"[{self._path(name)}]")

    def array_table(self, name: str) -> None:
        """A `[[name]]` header: the next element of an array of tables."""
        self._lines.append(f"[[{self._path(name)}]]")

    def set(self, key: str, value: TomlValue, comment: str = "") -> None:
        """A `key = value` line, with an optional trailing comment."""
        line = f"{toml_key(key)} = {toml_value(value)}"
        self._lines.append(f"{line}  # {comment}" if comment else line)

    def set_lines(self, key: str, values: Sequence[TomlValue]) -> None:
        """An array written one element per line, for long arrays of inline tables."""
        self._lines.append(f"{toml_key(key)} = [")
        self._lines.extend(f"  {toml_value(item)}," for item in values)
        self._lines.append("]")

    def text(self) -> str:
        """The document, ending in exactly one newline."""
        return "\n".join(self._lines).rstrip("\n") + "\n"

    @staticmethod
    def _path(name: str) -> str:
        return ".".join(toml_key(part) for part in name.split("."))
