"""Vectorised register codec: raw register blocks of many meters to tag columns and back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from config.profile import FREEZE, POLL_BLOCK, Field, Plan, RegisterProfile
from protocols.errors import EncodeError, ProtocolError

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
Registers: TypeAlias = npt.NDArray[np.uint16]
Columns: TypeAlias = dict[str, npt.NDArray[Any]]
TimeParts: TypeAlias = dict[str, IntArray]

# A time without a year takes the latest year that does not put it more than a day past
# its reference (now, the meter's own clock, or the end of the freeze month): clock drift.
YEAR_SLACK_S: Final = 86_400
_QUARTER: Final = 900  # UTC offsets change on quarter-hour boundaries at the finest
_EPOCH: Final = datetime(1970, 1, 1)  # naive: the origin of local wall-clock seconds
_MONTH_DAYS: Final = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)
_RANGES: Final = {
    "u16": (0, 0xFFFF),
    "i16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF),
    "i32": (-0x80000000, 0x7FFFFFFF),
}


class RegisterDecodeError(ProtocolError, ValueError):
    """Raw registers that do not fit the plan (shape, dtype), or a time with no reference."""


def _days_from_civil(y: IntArray, m: IntArray, d: IntArray) -> IntArray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm)."""
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * np.where(m > 2, m - 3, m + 9) + 2) // 5 + d - 1
    days: IntArray = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days


def _civil_from_days(z: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Year, month and day of days since 1970-01-01."""
    z = z + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    return yoe + era * 400 + (m <= 2), m, d


def _offset_at(second: int, tz: tzinfo, local: bool) -> int:
    if local:
        wall = (_EPOCH + timedelta(seconds=second)).replace(tzinfo=tz)
    else:
        wall = datetime.fromtimestamp(second, tz)
    offset = wall.utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


def _offsets(seconds: IntArray, tz: tzinfo, *, local: bool) -> IntArray:
    """UTC offsets in seconds, looked up once per distinct day, never per meter.

    A day whose offset differs at its start and end holds a transition: its instants are
    looked up per quarter-hour, the finest step at which any zone changes its offset.
    """
    days, inverse = np.unique(seconds // 86400, return_inverse=True)
    inverse = inverse.reshape(-1)
    found = np.zeros(len(days), np.int64)
    mixed = np.zeros(len(days), np.bool_)
    for i, day in enumerate(days.tolist()):
        found[i] = _offset_at(day * 86400, tz, local)
        mixed[i] = _offset_at(day * 86400 + 86399, tz, local) != found[i]
    out = found[inverse]
    changing = mixed[inverse]
    if changing.any():
        quarters, back = np.unique(seconds[changing] // _QUARTER, return_inverse=True)
        table = np.array([_offset_at(q * _QUARTER, tz, local) for q in quarters.tolist()])
        out[changing] = table[back.reshape(-1)]
    return out


def local_fields(unix: FloatArray, tz: tzinfo) -> TimeParts:
    """Local calendar fields of Unix seconds: YY (full year), MM, DD, hh, mm, ss, WD (Sun = 0)."""
    ts = np.floor(np.nan_to_num(unix, nan=0.0)).astype(np.int64)
    wall = ts + _offsets(ts, tz, local=False)
    days, sec = np.divmod(wall, 86400)
    y, m, d = _civil_from_days(days)
    wd = (days + 4) % 7
    return {
        "YY": y,
        "MM": m,
        "DD": d,
        "hh": sec // 3600,
        "mm": sec // 60 % 60,
        "ss": sec % 60,
        "WD": wd,
        "ok": (~np.isnan(unix)).astype(np.int64),
    }


def _to_unix(f: TimeParts, valid: BoolArray, tz: tzinfo) -> FloatArray:
    """Unix seconds of local calendar fields; NaN where not `valid` or not a real date."""
    y, m, d = f["YY"], f["MM"], f["DD"]
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    month_days = _MONTH_DAYS[np.clip(m, 0, 12)] + ((m == 2) & leap)
    valid = valid & (m >= 1) & (m <= 12) & (d >= 1) & (d <= month_days)
    valid &= (f["hh"] < 24) & (f["mm"] < 60) & (f["ss"] < 60)
    wall = _days_from_civil(y, np.clip(m, 1, 12), d) * 86400
    wall += f["hh"] * 3600 + f["mm"] * 60 + f["ss"]
    out = np.full(len(y), np.nan)
    out[valid] = wall[valid] - _offsets(wall[valid], tz, local=True)
    return out


def _minute_of_year(f: TimeParts) -> IntArray:
    return ((f["MM"] * 32 + f["DD"]) * 24 + f["hh"]) * 60 + f["mm"]


def _time_parts(
    raw: Registers, layout: tuple[str, ...], column: int, bcd: bool
) -> tuple[TimeParts, BoolArray]:
    """The named bytes of a time (high byte first), and where they are valid BCD."""
    parts: TimeParts = {"ss": np.zeros(len(raw), np.int64)}
    valid = np.ones(len(raw), np.bool_)
    for i, name in enumerate(layout):
        word = raw[:, column + i // 2].astype(np.int64)
        byte = (word >> 8) & 0xFF if i % 2 == 0 else word & 0xFF
        if bcd:
            valid &= ((byte >> 4) <= 9) & ((byte & 0xF) <= 9)
            byte = (byte >> 4) * 10 + (byte & 0xF)
        parts[name] = byte
    return parts, valid


def _decode_time(
    raw: Registers, f: Field, bcd: bool, tz: tzinfo, ref: TimeParts | None
) -> FloatArray:
    parts, valid = _time_parts(raw, f.layout, f.column, bcd)
    if "YY" in parts:
        parts["YY"] = parts["YY"] + 2000
    elif ref is None:
        raise RegisterDecodeError(f"{f.tag}: a time without a year needs a reference time (now)")
    else:
        parts["YY"] = ref["YY"] - (_minute_of_year(parts) > _minute_of_year(ref))
        valid &= ref["ok"] != 0
    return _to_unix(parts, valid, tz)


def _encode_time(out: Registers, f: Field, values: FloatArray, bcd: bool, tz: tzinfo) -> None:
    """Write times as bytes; NaN becomes all-zero bytes, which decode back to NaN."""
    known = ~np.isnan(values)
    parts = local_fields(values, tz)
    parts["YY"] = parts["YY"] - 2000
    parts["--"] = np.zeros(len(values), np.int64)
    if "YY" in f.layout and np.any(known & ((parts["YY"] < 0) | (parts["YY"] > 99))):
        raise EncodeError(f"{f.tag}: a time outside the years 2000..2099 cannot be encoded")
    for i, name in enumerate(f.layout):
        byte = np.where(known, parts[name], 0)
        if bcd:
            byte = (byte // 10) << 4 | byte % 10
        out[:, f.column + i // 2] |= (byte << (8 if i % 2 == 0 else 0)).astype(np.uint16)


def _word(raw: Registers, f: Field, big: bool) -> IntArray:
    """The raw integer of a word field, signed for i16 and i32."""
    first = raw[:, f.column]
    if f.count == 1:
        return (first.view(np.int16) if f.type == "i16" else first).astype(np.int64)
    hi, lo = (first, raw[:, f.column + 1]) if big else (raw[:, f.column + 1], first)
    joined = (hi.astype(np.uint32) << 16) | lo
    return (joined.view(np.int32) if f.type == "i32" else joined).astype(np.int64)


def _put_word(out: Registers, f: Field, raw: IntArray, big: bool) -> None:
    if f.count == 1:
        out[:, f.column] = (raw & 0xFFFF).astype(np.uint16)
        return
    hi, lo = ((raw >> 16) & 0xFFFF).astype(np.uint16), (raw & 0xFFFF).astype(np.uint16)
    out[:, f.column], out[:, f.column + 1] = (hi, lo) if big else (lo, hi)


def _ratios(pt: npt.ArrayLike, ct: npt.ArrayLike, n: int) -> dict[str, FloatArray]:
    pt_a = np.broadcast_to(np.asarray(pt, np.float64), (n,))
    ct_a = np.broadcast_to(np.asarray(ct, np.float64), (n,))
    return {"": np.ones(n), "pt": pt_a, "ct": ct_a, "ptct": pt_a * ct_a}


def _checked(plan: Plan, raw: object) -> Registers:
    if not isinstance(raw, np.ndarray) or raw.dtype != np.uint16:
        raise RegisterDecodeError(f"{plan.name}: raw registers must be a uint16 numpy array")
    if raw.ndim != 2 or raw.shape[1] != plan.width:
        shape = getattr(raw, "shape", None)
        raise RegisterDecodeError(f"{plan.name}: raw must be (meters, {plan.width}), got {shape}")
    return raw


def _decode(
    profile: RegisterProfile,
    plan: Plan,
    raw: Registers,
    ratios: dict[str, FloatArray],
    tz: tzinfo,
    ref: TimeParts | None,
) -> Columns:
    """Every tag of the plan, for every meter; yearless times come after the meter clock."""
    big, bcd = profile.word_order == "big", profile.time_code == "bcd"
    out: Columns = {}
    for f in sorted(plan.fields, key=lambda g: g.type == "time" and "YY" not in g.layout):
        if f.type == "bits":
            masked = raw[:, f.column] & f.mask
            out[f.tag] = (masked == f.mask if f.all_bits else masked != 0).astype(np.uint8)
        elif f.type == "time":
            clock = next(
                (out[g.tag] for g in plan.fields if "YY" in g.layout and g.tag in out), None
            )
            if clock is not None and "YY" not in f.layout:
                ref = local_fields(clock + YEAR_SLACK_S, tz)
            out[f.tag] = _decode_time(raw, f, bcd, tz, ref)
        elif f.kind == "int":
            out[f.tag] = _word(raw, f, big) * int(f.scale)
        else:
            out[f.tag] = _word(raw, f, big) * (f.scale * ratios[f.ratio])
    for tag, kind in zip(plan.absent, plan.absent_kinds, strict=True):
        out[tag] = np.full(len(raw), np.nan) if kind == "float" else np.zeros(len(raw), np.int64)
        if kind == "bool":
            out[tag] = out[tag].astype(np.uint8)
    return {tag: out[tag] for tag in plan.tags}


def _encode(
    profile: RegisterProfile,
    plan: Plan,
    tags: Mapping[str, npt.ArrayLike],
    n: int,
    ratios: dict[str, FloatArray],
    tz: tzinfo,
) -> Registers:
    """The raw registers of every meter; bit tags are laid over the words they share."""
    big, bcd = profile.word_order == "big", profile.time_code == "bcd"
    out = np.zeros((n, plan.width), np.uint16)
    bit_words = {f.address for f in plan.fields if f.type == "bits"}
    optional = [f.tag for f in plan.fields if f.type == "bits" or f.address in bit_words]
    missing = [f.tag for f in plan.fields if f.tag not in tags and f.tag not in optional]
    if missing:
        raise EncodeError(f"{plan.name}: no values for tag(s) {', '.join(missing)}")
    for f in sorted(plan.fields, key=lambda g: g.type == "bits"):
        if f.tag not in tags:
            continue
        values = np.asarray(tags[f.tag])
        if values.shape != (n,):
            raise EncodeError(f"{plan.name}.{f.tag}: expected shape ({n},), got {values.shape}")
        if f.type == "bits":
            word = out[:, f.column]
            out[:, f.column] = np.where(values != 0, word | f.mask, word & ~np.uint16(f.mask))
        elif f.type == "time":
            _encode_time(out, f, values.astype(np.float64), bcd, tz)
        else:
            _put_word(out, f, _to_raw(plan, f, values, ratios), big)
    return out


def _to_raw(
    plan: Plan, f: Field, values: npt.NDArray[Any], ratios: dict[str, FloatArray]
) -> IntArray:
    lo, hi = _RANGES[f.type]
    where = f"{plan.name}.{f.tag}"
    if f.kind == "int":
        ints = values.astype(np.int64)
        if np.any(ints != values) or np.any(ints % int(f.scale)):
            raise EncodeError(f"{where}: values must be whole multiples of {f.scale}")
        raw = ints // int(f.scale)
    else:
        exact = values.astype(np.float64) / (f.scale * ratios[f.ratio])
        if not np.all(np.isfinite(exact)):
            raise EncodeError(f"{where}: NaN, infinite, or a zero ratio cannot be encoded")
        raw = np.rint(np.clip(exact, lo - 1, hi + 1)).astype(np.int64)
    bad = (raw < lo) | (raw > hi)
    if np.any(bad):
        first = values[np.argmax(bad)]
        raise EncodeError(
            f"{where}: {int(bad.sum())} value(s) outside the {f.type} range, e.g. {first}"
        )
    return raw


def decode_blocks(
    profile: RegisterProfile,
    scan_class: str,
    raw: Registers,
    pt: npt.ArrayLike,
    ct: npt.ArrayLike,
    tz: tzinfo,
    *,
    now: float | None = None,
) -> Columns:
    """Tag columns of all meters from the plan's blocks, concatenated: raw is (meters, width).

    `now` (Unix seconds) dates times that carry no year, such as the maximum demand's.
    """
    plan = profile.read_plan(scan_class)
    raw = _checked(plan, raw)
    ref = None if now is None else local_fields(np.full(len(raw), now + YEAR_SLACK_S), tz)
    return _decode(profile, plan, raw, _ratios(pt, ct, len(raw)), tz, ref)


def encode_blocks(
    profile: RegisterProfile,
    scan_class: str,
    tags: Mapping[str, npt.ArrayLike],
    pt: npt.ArrayLike,
    ct: npt.ArrayLike,
    tz: tzinfo,
) -> Registers:
    """The raw registers (meters, width) that decode to `tags`, within scale resolution."""
    n = len(np.atleast_1d(np.asarray(pt)))
    plan = profile.read_plan(scan_class)
    return _encode(profile, plan, tags, n, _ratios(pt, ct, n), tz)


def _poll_ratios(profile: RegisterProfile, raw: Registers) -> dict[str, FloatArray]:
    plan = profile.read_plan(POLL_BLOCK)
    own = {f.tag: f for f in plan.fields if f.tag in ("pt", "ct")}
    if len(own) != 2:
        raise RegisterDecodeError(f"{profile.model}: the poll block must carry pt and ct")
    big = profile.word_order == "big"
    return _ratios(_word(raw, own["pt"], big), _word(raw, own["ct"], big), len(raw))


def decode_poll_block(
    profile: RegisterProfile, raw48: Registers, tz: tzinfo, *, now: float | None = None
) -> Columns:
    """Tag columns from the 4G compact poll block, scaled by the PT and CT it carries."""
    plan = profile.read_plan(POLL_BLOCK)
    raw = _checked(plan, raw48)
    ref = None if now is None else local_fields(np.full(len(raw), now + YEAR_SLACK_S), tz)
    return _decode(profile, plan, raw, _poll_ratios(profile, raw), tz, ref)


def poll_block_matches(profile: RegisterProfile, raw48: Registers) -> BoolArray:
    """Where the poll block's type register names this profile's model."""
    raw = _checked(profile.read_plan(POLL_BLOCK), raw48)
    return np.asarray(raw[:, 0] == profile.poll_type, np.bool_)


def encode_poll_block(
    profile: RegisterProfile, tags: Mapping[str, npt.ArrayLike], tz: tzinfo
) -> Registers:
    """The poll block that decodes to `tags`; its PT and CT come from tags `pt` and `ct`."""
    if "pt" not in tags or "ct" not in tags:
        raise EncodeError("poll_block: tags pt and ct are required")
    pt, ct = np.asarray(tags["pt"]), np.asarray(tags["ct"])
    out = _encode(
        profile, profile.read_plan(POLL_BLOCK), tags, len(pt), _ratios(pt, ct, len(pt)), tz
    )
    out[:, 0] = profile.poll_type
    return out


def _freeze_month(profile: RegisterProfile, raw: Registers) -> tuple[IntArray, TimeParts]:
    """YY×100+MM of each block (0 if invalid), and the start of the following month."""
    spec = profile.freeze
    parts, valid = _time_parts(
        raw, spec.month_layout, spec.month_address, profile.time_code == "bcd"
    )
    yy, mm = parts["YY"], parts["MM"]
    valid &= (mm >= 1) & (mm <= 12) & (yy <= 99)
    zero = np.zeros(len(raw), np.int64)
    after = {
        "YY": 2000 + yy + (mm == 12),
        "MM": mm % 12 + 1,
        "DD": zero + 1,
        "hh": zero,
        "mm": zero,
        "ok": valid.astype(np.int64),
    }
    return np.where(valid, yy * 100 + mm, 0), after


def decode_freeze_block(
    profile: RegisterProfile, raw60: Registers, pt: npt.ArrayLike, ct: npt.ArrayLike, tz: tzinfo
) -> Columns:
    """A monthly freeze block of every meter: `yymm` (YY×100+MM), energies, demand and its time."""
    plan = profile.read_plan(FREEZE)
    raw = _checked(plan, raw60)
    yymm, after = _freeze_month(profile, raw)
    return {"yymm": yymm} | _decode(profile, plan, raw, _ratios(pt, ct, len(raw)), tz, after)


def encode_freeze_block(
    profile: RegisterProfile,
    yymm: npt.ArrayLike,
    tags: Mapping[str, npt.ArrayLike],
    pt: npt.ArrayLike,
    ct: npt.ArrayLike,
    tz: tzinfo,
) -> Registers:
    """The freeze blocks that decode to `yymm` and `tags` (demand time inside that month)."""
    month = np.atleast_1d(np.asarray(yymm, np.int64))
    if np.any((month % 100 < 1) | (month % 100 > 12) | (month < 0) | (month > 9912)):
        raise EncodeError("freeze: yymm must be YY×100+MM with MM 1..12 and YY 0..99")
    out = encode_blocks(profile, FREEZE, tags, pt, ct, tz)
    spec = profile.freeze
    values = {"YY": month // 100, "MM": month % 100, "--": np.zeros(len(month), np.int64)}
    for i, name in enumerate(spec.month_layout):
        byte = values.get(name, values["--"])
        if profile.time_code == "bcd":
            byte = (byte // 10) << 4 | byte % 10
        out[:, spec.month_address + i // 2] |= (byte << (8 if i % 2 == 0 else 0)).astype(np.uint16)
    return out
