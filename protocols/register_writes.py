"""Meter write commands (function 16) from a register profile: encode, and decode for the sim."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Final, TypeAlias

from config.profile import WORD_TYPES, RegisterProfile, WriteParam, WriteSpec
from config.tariffs import BUCKETS
from protocols.errors import EncodeError, ProtocolError

Period: TypeAlias = tuple[int, int, int]  # (hour, minute, bucket index into BUCKETS)
Write: TypeAlias = tuple[int, list[int]]  # (PDU start address, register values)

_RANGES: Final = {
    "u8": (0, 0xFF),
    "u16": (0, 0xFFFF),
    "i16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF),
    "i32": (-0x80000000, 0x7FFFFFFF),
}


class IllegalWriteAddress(ProtocolError):
    """No write of the profile starts at this address with this many registers (Modbus 02)."""

    exception_code: Final = 2


class IllegalWriteValue(ProtocolError, ValueError):
    """A write at a known address whose values the meter would refuse (Modbus 03)."""

    exception_code: Final = 3


def _byte(value: int, bcd: bool) -> int:
    return (value // 10) << 4 | value % 10 if bcd else value


def _unbyte(value: int, bcd: bool) -> int:
    if bcd and ((value >> 4) > 9 or (value & 0xF) > 9):
        raise IllegalWriteValue(f"byte 0x{value:02X} is not BCD")
    return (value >> 4) * 10 + (value & 0xF) if bcd else value


def _registers(data: Sequence[int]) -> list[int]:
    return [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]


def _bytes(values: Sequence[int]) -> list[int]:
    return [b for v in values for b in (v >> 8, v & 0xFF)]


def _param_raw(command: str, p: WriteParam, value: object) -> int:
    """The raw integer of one parameter, checked against its type and the profile's range."""
    where = f"{command}: {p.name}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodeError(f"{where} must be a number, got {value!r}")
    if isinstance(p.scale, int):
        if not isinstance(value, int) or value % p.scale:
            raise EncodeError(f"{where} must be a whole multiple of {p.scale}, got {value!r}")
        raw = value // p.scale
    elif not math.isfinite(value):
        raise EncodeError(f"{where} must be finite, got {value!r}")
    else:
        raw = round(value / p.scale)
    lo, hi = _RANGES[p.type]
    lo = max(lo, p.minimum if p.minimum is not None else lo)
    hi = min(hi, p.maximum if p.maximum is not None else hi)
    if not lo <= raw <= hi:
        raise EncodeError(f"{where} must be {lo * p.scale}..{hi * p.scale}, got {value!r}")
    return raw


def _pack_params(profile: RegisterProfile, spec: WriteSpec, params: dict[str, object]) -> list[int]:
    names = [p.name for p in spec.params]
    if sorted(params) != sorted(names):
        raise EncodeError(f"{spec.command}: takes {', '.join(names)}; got {', '.join(params)}")
    data: list[int] = []
    for p in spec.params:
        raw = _param_raw(spec.command, p, params[p.name])
        if p.type == "u8":
            data.append(raw)
            continue
        words = [(raw >> 16) & 0xFFFF, raw & 0xFFFF] if WORD_TYPES[p.type] == 2 else [raw & 0xFFFF]
        if profile.word_order == "little":
            words.reverse()
        data.extend(_bytes(words))
    return _registers(data)


def _check_periods(command: str, periods: Sequence[Sequence[int]], most: int) -> list[Period]:
    if not 1 <= len(periods) <= most:
        raise ValueError(f"{command}: a day table has 1..{most} periods, got {len(periods)}")
    out: list[Period] = []
    for i, period in enumerate(periods):
        if len(period) != 3 or not all(type(x) is int for x in period):
            raise ValueError(f"{command}: period {i + 1} must be (hour, minute, bucket)")
        hh, mm, bucket = period
        if not (0 <= hh <= 23 and 0 <= mm <= 59 and 0 <= bucket < len(BUCKETS)):
            raise ValueError(
                f"{command}: period {i + 1} = {tuple(period)} needs hour 0..23, minute 0..59 "
                f"and bucket 0..{len(BUCKETS) - 1} ({', '.join(BUCKETS)})"
            )
        if out and (hh, mm) <= out[-1][:2]:
            raise ValueError(f"{command}: period {i + 1} must start after period {i}")
        out.append((hh, mm, bucket))
    return out


def _day_table(spec: WriteSpec, table: object, periods: object) -> Write:
    if type(table) is not int or not 1 <= table <= len(spec.tables):
        raise EncodeError(f"{spec.command}: table must be 1..{len(spec.tables)}, got {table!r}")
    if not isinstance(periods, Sequence):
        raise EncodeError(f"{spec.command}: periods must be a list of (hour, minute, bucket)")
    try:
        checked = _check_periods(spec.command, periods, spec.periods)
    except ValueError as exc:
        raise EncodeError(str(exc)) from None
    full = checked + [checked[-1]] * (spec.periods - len(checked))
    values = [v for hh, mm, b in full for v in (hh << 8 | mm, b + spec.bucket_base)]
    return spec.tables[table - 1], values


def _clock(profile: RegisterProfile, spec: WriteSpec, when: object) -> list[int]:
    if not isinstance(when, datetime) or not 2000 <= when.year <= 2099:
        raise EncodeError(f"{spec.command}: when must be a datetime in 2000..2099, got {when!r}")
    parts = {
        "YY": when.year - 2000,
        "MM": when.month,
        "DD": when.day,
        "hh": when.hour,
        "mm": when.minute,
        "ss": when.second,
        "WD": (when.weekday() + 1) % 7,
        "--": 0,
    }
    bcd = profile.time_code == "bcd"
    return _registers([_byte(parts[name], bcd) for name in spec.layout])


def encode_write(profile: RegisterProfile, command: str, **params: object) -> list[Write]:
    """The function-16 writes of `command`: (PDU start address, register values) each.

    Commands and their parameters come from the profile's `writes`, e.g. `relay_open`,
    `prices(sharp_e4=, peak_e4=, flat_e4=, valley_e4=)`, `alarm1(fen=)`, `power_limit(kw=)`,
    `tou_day_table(table=, periods=[(hour, minute, bucket), ...])`, `clock(when=datetime)`.
    """
    try:
        spec = profile.write(command)
    except KeyError as exc:
        raise EncodeError(str(exc.args[0])) from None
    if spec.kind == "day_table":
        unknown = set(params) - {"table", "periods"}
        if unknown:
            raise EncodeError(f"{command}: unknown parameter(s) {', '.join(sorted(unknown))}")
        start, values = _day_table(spec, params.get("table"), params.get("periods"))
        return [(profile.pdu(start), values)]
    if spec.kind == "clock":
        if set(params) != {"when"}:
            raise EncodeError(f"{command}: takes when=datetime only")
        return [(profile.pdu(spec.address), _clock(profile, spec, params["when"]))]
    if spec.kind == "fixed":
        if params:
            raise EncodeError(f"{command}: takes no parameters")
        return [(profile.pdu(spec.address), list(spec.values))]
    return [(profile.pdu(spec.address), _pack_params(profile, spec, params))]


def _unpack_params(
    profile: RegisterProfile, spec: WriteSpec, values: list[int]
) -> dict[str, object]:
    data, at = _bytes(values), 0
    out: dict[str, object] = {}
    for p in spec.params:
        size = 1 if p.type == "u8" else 2 * WORD_TYPES[p.type]
        chunk = data[at : at + size]
        at += size
        if size == 4 and profile.word_order == "little":
            chunk = chunk[2:] + chunk[:2]
        raw = int.from_bytes(bytes(chunk), "big", signed=p.type.startswith("i"))
        lo, hi = p.minimum, p.maximum
        if (lo is not None and raw < lo) or (hi is not None and raw > hi):
            raise IllegalWriteValue(f"{spec.command}: {p.name} raw {raw} is outside {lo}..{hi}")
        out[p.name] = raw * p.scale if isinstance(p.scale, int) else round(raw * p.scale, 9)
    return out


def _decode_clock(profile: RegisterProfile, spec: WriteSpec, values: list[int]) -> datetime:
    bcd = profile.time_code == "bcd"
    parts = dict(zip(spec.layout, (_unbyte(b, bcd) for b in _bytes(values)), strict=True))
    try:
        return datetime(
            2000 + parts["YY"], parts["MM"], parts["DD"], parts["hh"], parts["mm"], parts["ss"]
        )
    except ValueError as exc:
        raise IllegalWriteValue(f"{spec.command}: not a valid time: {exc}") from None


def _decode_day_table(spec: WriteSpec, table: int, values: list[int]) -> dict[str, object]:
    periods = [
        (v >> 8, v & 0xFF, b - spec.bucket_base)
        for v, b in zip(values[::2], values[1::2], strict=True)
    ]
    while len(periods) > 1 and periods[-1] == periods[-2]:
        periods.pop()
    try:
        checked = _check_periods(spec.command, periods, spec.periods)
    except ValueError as exc:
        raise IllegalWriteValue(str(exc)) from None
    return {"table": table, "periods": checked}


def decode_write(
    profile: RegisterProfile, address: int, values: Sequence[int]
) -> tuple[str, dict[str, object]]:
    """The command and parameters of a function-16 write received at PDU `address`."""
    regs = list(values)
    if any(type(v) is not int or not 0 <= v <= 0xFFFF for v in regs):
        raise IllegalWriteValue("register values must be integers 0..65535")
    start = address + profile.address_base
    for spec in profile.writes.values():
        if spec.count != len(regs) or start not in (spec.tables or (spec.address,)):
            continue
        if spec.kind == "fixed":
            if tuple(regs) == spec.values:
                return spec.command, {}
        elif spec.kind == "day_table":
            return spec.command, _decode_day_table(spec, spec.tables.index(start) + 1, regs)
        elif spec.kind == "clock":
            return spec.command, {"when": _decode_clock(profile, spec, regs)}
        else:
            return spec.command, _unpack_params(profile, spec, regs)
    if any(
        start in (s.tables or (s.address,)) and s.count == len(regs)
        for s in profile.writes.values()
    ):
        raise IllegalWriteValue(
            f"{profile.model}: values {regs} at 0x{address:04X} match no command"
        )
    raise IllegalWriteAddress(
        f"{profile.model}: no write of {len(regs)} register(s) at PDU address 0x{address:04X}"
    )
