"""Typed reads of register-profile TOML tables, each error naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

WORD_TYPES: Final[Mapping[str, int]] = MappingProxyType({"u16": 1, "i16": 1, "u32": 2, "i32": 2})
TIME_PARTS: Final = ("YY", "MM", "DD", "hh", "mm", "ss", "WD", "--")
TIME_KEYS: Final = frozenset({"tag", "address", "layout"})


class ProfileError(ValueError):
    """A register profile is invalid; the message names the file and the field."""


def need(table: Mapping[str, object], key: str, where: str) -> object:
    """The value of `key`, or an error naming it."""
    if key not in table:
        raise ProfileError(f"{where}: missing {key!r}")
    return table[key]


def int_in(table: Mapping[str, object], key: str, where: str, lo: int, hi: int) -> int:
    """An integer `key` within lo..hi."""
    value = need(table, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(f"{where}.{key}: must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ProfileError(f"{where}.{key}: {value} is outside {lo}..{hi}")
    return value


def scale(table: Mapping[str, object], where: str) -> float | int:
    """A positive numeric `scale`."""
    value = need(table, "scale", where)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ProfileError(f"{where}.scale: must be a positive number, got {value!r}")
    return value


def string(table: Mapping[str, object], key: str, where: str, choices: tuple[str, ...] = ()) -> str:
    """A string `key`, one of `choices` when given."""
    value = need(table, key, where)
    if not isinstance(value, str):
        raise ProfileError(f"{where}.{key}: must be a string, got {value!r}")
    if choices and value not in choices:
        raise ProfileError(
            f"{where}.{key}: {value!r} is not one of {', '.join(map(repr, choices))}"
        )
    return value


def table(table: Mapping[str, object], key: str, where: str) -> dict[str, object]:
    """A sub-table `key`."""
    value = need(table, key, where)
    if not isinstance(value, dict):
        raise ProfileError(f"{where}.{key}: must be a table, got {value!r}")
    return value


def items(table: Mapping[str, object], key: str, where: str) -> list[object]:
    """A list `key`."""
    value = need(table, key, where)
    if not isinstance(value, list):
        raise ProfileError(f"{where}.{key}: must be a list, got {value!r}")
    return value


def ints(table: Mapping[str, object], key: str, where: str, lo: int, hi: int) -> tuple[int, ...]:
    """A non-empty list of integers lo..hi."""
    values = items(table, key, where)
    out = tuple(v for v in values if isinstance(v, int) and not isinstance(v, bool))
    if not values or len(out) != len(values) or not all(lo <= v <= hi for v in out):
        raise ProfileError(f"{where}.{key}: must be a non-empty list of integers {lo}..{hi}")
    return out


def known_keys(table: Mapping[str, object], allowed: frozenset[str], where: str) -> None:
    """Refuse keys outside `allowed`."""
    extra = sorted(set(table) - allowed)
    if extra:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(extra)}")


def time_layout(table: Mapping[str, object], where: str) -> tuple[str, ...]:
    """A time layout: an even number of distinct parts from TIME_PARTS."""
    parts = items(table, "layout", where)
    if not parts or len(parts) % 2 or any(p not in TIME_PARTS for p in parts):
        raise ProfileError(
            f"{where}.layout: must be an even number of parts from {', '.join(TIME_PARTS)}"
        )
    named = [str(p) for p in parts if p != "--"]
    if len(set(named)) != len(named):
        raise ProfileError(f"{where}.layout: a part is listed twice")
    return tuple(str(p) for p in parts)
