"""Register-profile write commands: their specs and how they are parsed from TOML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from config.profile_toml import (
    WORD_TYPES,
    ProfileError,
    int_in,
    ints,
    items,
    known_keys,
    scale,
    string,
    time_layout,
)

PARAM_TYPES: Final = ("u8", *WORD_TYPES)
WRITE_KINDS: Final = ("fixed", "params", "day_table", "clock")


@dataclass(frozen=True, slots=True)
class WriteParam:
    """One parameter of a write: its wire type, scale and allowed range."""

    name: str
    type: str
    scale: float | int
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True, slots=True)
class WriteSpec:
    """One write command (function 16) and where its registers go."""

    command: str
    kind: str  # fixed, params, day_table or clock
    address: int  # register number (day tables: table 1)
    count: int  # registers
    values: tuple[int, ...] = ()
    params: tuple[WriteParam, ...] = ()
    tables: tuple[int, ...] = ()
    periods: int = 0
    bucket_base: int = 0
    layout: tuple[str, ...] = ()


def _param(entry: object, at: str) -> WriteParam:
    if not isinstance(entry, dict):
        raise ProfileError(f"{at}: must be a table like {{ name = ..., type = ... }}")
    known_keys(entry, frozenset({"name", "type", "scale", "min", "max"}), at)
    lo = int_in(entry, "min", at, -(2**31), 2**32 - 1) if "min" in entry else None
    hi = int_in(entry, "max", at, -(2**31), 2**32 - 1) if "max" in entry else None
    ptype = string(entry, "type", at, PARAM_TYPES)
    return WriteParam(string(entry, "name", at), ptype, scale(entry, at), lo, hi)


def parse_write(command: str, spec: Mapping[str, object], where: str, base: int) -> WriteSpec:
    """The spec of write `command`, checked."""
    kind = str(spec.get("kind", "params" if "params" in spec else "fixed"))
    if kind not in WRITE_KINDS:
        raise ProfileError(f"{where}.kind: {kind!r} is not one of {', '.join(WRITE_KINDS)}")
    if kind == "day_table":
        known_keys(spec, frozenset({"kind", "tables", "periods", "bucket_base"}), where)
        tables = ints(spec, "tables", where, base, 0xFFFF)
        periods = int_in(spec, "periods", where, 1, 60)
        bucket_base = int_in(spec, "bucket_base", where, 0, 1)
        return WriteSpec(
            command,
            kind,
            tables[0],
            2 * periods,
            tables=tables,
            periods=periods,
            bucket_base=bucket_base,
        )
    address = int_in(spec, "address", where, base, 0xFFFF)
    if kind == "clock":
        known_keys(spec, frozenset({"kind", "address", "layout"}), where)
        layout = time_layout(spec, where)
        if not {"YY", "MM", "DD", "hh", "mm", "ss"} <= set(layout):
            raise ProfileError(f"{where}.layout: a clock set needs YY, MM, DD, hh, mm and ss")
        return WriteSpec(command, kind, address, len(layout) // 2, layout=layout)
    if kind == "fixed":
        known_keys(spec, frozenset({"kind", "address", "values"}), where)
        values = ints(spec, "values", where, 0, 0xFFFF)
        return WriteSpec(command, kind, address, len(values), values=values)
    known_keys(spec, frozenset({"kind", "address", "params"}), where)
    entries = items(spec, "params", where)
    params = tuple(_param(p, f"{where}.params[{i}]") for i, p in enumerate(entries))
    size = 0
    for p in params:
        if p.type != "u8" and size % 2:
            raise ProfileError(f"{where}.params: {p.name} must start a register (pair the u8s)")
        size += 1 if p.type == "u8" else 2 * WORD_TYPES[p.type]
    if not params or size % 2:
        raise ProfileError(f"{where}.params: must fill whole registers (u8 params come in pairs)")
    return WriteSpec(command, kind, address, size // 2, params=params)
