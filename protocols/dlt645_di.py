"""The DL/T 645-2007 data identifier (DI) table and the BCD value codecs for its formats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Final, NamedTuple, TypeAlias

from protocols.errors import EncodeError, FrameError, UnknownDataIdentifier


class Kind(Enum):
    """How the BCD digits of a field are read."""

    NUMBER = "number"
    MONEY = "money"
    DATETIME = "datetime"
    DAY_HOUR = "day_hour"
    WORD = "word"  # a binary status word, little-endian, not BCD


class DayHour(NamedTuple):
    """A settlement day and hour (DDhh)."""

    day: int
    hour: int


@dataclass(frozen=True, slots=True)
class FieldFormat:
    """One BCD field: its pattern from the standard, its byte length and how to read it."""

    pattern: str
    kind: Kind
    length: int
    decimals: int = 0
    signed: bool = False


FieldValue: TypeAlias = Decimal | int | datetime | DayHour | None
Value: TypeAlias = FieldValue | tuple[FieldValue, ...] | tuple[tuple[FieldValue, ...], ...]

ENERGY = FieldFormat("XXXXXX.XX", Kind.NUMBER, 4, 2)
# Combined active energy may be negative: the highest bit is its sign.
ENERGY_SIGNED = FieldFormat("XXXXXX.XX", Kind.NUMBER, 4, 2, signed=True)
VOLTAGE = FieldFormat("XXX.X", Kind.NUMBER, 2, 1)
CURRENT = FieldFormat("XXX.XXX", Kind.NUMBER, 3, 3, signed=True)
POWER = FieldFormat("XX.XXXX", Kind.NUMBER, 3, 4, signed=True)
POWER_FACTOR = FieldFormat("X.XXX", Kind.NUMBER, 2, 3, signed=True)
FREQUENCY = FieldFormat("XX.XX", Kind.NUMBER, 2, 2)
DEMAND = FieldFormat("XX.XXXX", Kind.NUMBER, 3, 4)
DEMAND_TIME = FieldFormat("YYMMDDhhmm", Kind.DATETIME, 5)
SETTLEMENT_DAY = FieldFormat("DDhh", Kind.DAY_HOUR, 2)
MONEY = FieldFormat("XXXXXX.XX", Kind.MONEY, 4, 2)
STATUS_WORD = FieldFormat("XXXX", Kind.WORD, 2)
# The meter clock as BCD digits; the reader splits them (WW: day of week, 0 = Sunday).
DATE_WEEK = FieldFormat("YYMMDDWW", Kind.NUMBER, 4)
TIME_OF_DAY = FieldFormat("hhmmss", Kind.NUMBER, 3)

METER_DATE: Final = 0x04000101
METER_TIME: Final = 0x04000102

RUN_STATUS_3: Final = 0x04000503
"""Meter run status word 3 (operation): the relay bits below."""
RELAY_OPEN_BIT: Final = 1 << 4  # relay state: 0 = closed (通), 1 = open (断)
RELAY_ORDERED_OPEN_BIT: Final = 1 << 6  # relay command state: 1 = a trip is in force
POWER_PROTECT_BIT: Final = 1 << 12  # 保电 (power protect) in force, Q/GDW 1354-2013


@dataclass(frozen=True, slots=True)
class DataItem:
    """A DI: its name and unit, and its fields; a block repeats its fields once per element."""

    di: int
    name: str
    unit: str
    fields: tuple[FieldFormat, ...]
    block: bool = False

    @property
    def group_length(self) -> int:
        """Bytes in one element (the whole item when it is not a block)."""
        return sum(f.length for f in self.fields)


def _digits(raw: bytes, what: str) -> str:
    """The decimal digits of little-endian BCD bytes, most significant first."""
    text = raw[::-1].hex()
    if not text.isdigit():
        raise FrameError(f"{what}: non-BCD byte in {raw.hex(' ')}")
    return text


def decode_field(fmt: FieldFormat, raw: bytes, what: str) -> FieldValue:
    """Decode one field's data bytes (0x33 already removed)."""
    if fmt.kind is Kind.WORD:
        return int.from_bytes(raw, "little")
    if fmt.kind is Kind.NUMBER or fmt.kind is Kind.MONEY:
        negative = False
        if fmt.signed and raw[-1] & 0x80:
            negative = True
            raw = raw[:-1] + bytes((raw[-1] & 0x7F,))
        number = int(_digits(raw, what))
        if negative:
            number = -number
        if fmt.kind is Kind.MONEY:
            return number
        return Decimal(number).scaleb(-fmt.decimals)
    text = _digits(raw, what)
    if fmt.kind is Kind.DAY_HOUR:
        return DayHour(int(text[0:2]), int(text[2:4]))
    if text == "0" * len(text):
        return None
    year, month, day, hour, minute = (int(text[i : i + 2]) for i in range(0, 10, 2))
    try:
        return datetime(2000 + year, month, day, hour, minute)  # the meter's local time
    except ValueError as exc:
        raise FrameError(f"{what}: invalid time {text} ({exc})") from None


def _bcd(number: int, length: int, what: str) -> bytes:
    if not 0 <= number < 10 ** (2 * length):
        raise EncodeError(f"{what}: {number} does not fit {length} BCD bytes")
    return bytes.fromhex(f"{number:0{2 * length}d}")[::-1]


def encode_field(fmt: FieldFormat, value: FieldValue, what: str) -> bytes:
    """Encode one field's value into data bytes (before the +0x33)."""
    if fmt.kind is Kind.WORD:
        if (
            not isinstance(value, Decimal | int)
            or isinstance(value, bool)
            or value != int(value)
            or not 0 <= value < 1 << (8 * fmt.length)
        ):
            raise EncodeError(f"{what}: {value!r} is not a {8 * fmt.length}-bit status word")
        return int(value).to_bytes(fmt.length, "little")
    if fmt.kind is Kind.DATETIME:
        if value is None:
            return bytes(fmt.length)
        if not isinstance(value, datetime) or not 2000 <= value.year <= 2099:
            raise EncodeError(f"{what}: {value!r} is not a datetime in 2000..2099")
        number = int(value.strftime("%y%m%d%H%M"))
        return _bcd(number, fmt.length, what)
    if fmt.kind is Kind.DAY_HOUR:
        if not isinstance(value, DayHour) or not (0 <= value.day <= 99 and 0 <= value.hour <= 99):
            raise EncodeError(f"{what}: {value!r} is not a DayHour of two-digit numbers")
        return _bcd(value.day * 100 + value.hour, fmt.length, what)
    if fmt.kind is Kind.MONEY:
        if not isinstance(value, int) or isinstance(value, bool):
            raise EncodeError(f"{what}: money must be integer fen, got {value!r}")
        number = value
    else:
        if not isinstance(value, Decimal | int) or isinstance(value, bool):
            raise EncodeError(f"{what}: {value!r} is not a Decimal or int")
        scaled = Decimal(value).scaleb(fmt.decimals)
        if scaled != scaled.to_integral_value():
            raise EncodeError(f"{what}: {value} has more than {fmt.decimals} decimals")
        number = int(scaled)
    negative = number < 0
    if negative and not fmt.signed:
        raise EncodeError(f"{what}: {value} is negative, {fmt.pattern} is unsigned")
    magnitude = -number if negative else number
    if fmt.signed and magnitude >= 8 * 10 ** (2 * fmt.length - 1):
        raise EncodeError(f"{what}: {value} does not fit signed {fmt.pattern}")
    raw = _bcd(magnitude, fmt.length, what)
    return raw[:-1] + bytes((raw[-1] | 0x80,)) if negative else raw


def _decode_fields(item: DataItem, raw: bytes, start: int) -> tuple[FieldValue, ...]:
    what = f"DI {item.di:08X} ({item.name})"
    values = []
    for fmt in item.fields:
        values.append(decode_field(fmt, raw[start : start + fmt.length], what))
        start += fmt.length
    return tuple(values)


def decode_value(di: int, data: bytes) -> Value:
    """The value of `di` from its data bytes (DI and 0x33 already removed)."""
    item = lookup(di)
    group = item.group_length
    if item.block:
        if not data or len(data) % group:
            raise FrameError(f"DI {di:08X} ({item.name}): {len(data)} bytes is not n × {group}")
        elements = [_decode_fields(item, data, i) for i in range(0, len(data), group)]
        if len(item.fields) == 1:
            return tuple(element[0] for element in elements)
        return tuple(elements)
    if len(data) != group:
        raise FrameError(f"DI {di:08X} ({item.name}) needs {group} bytes, got {len(data)}")
    values = _decode_fields(item, data, 0)
    return values[0] if len(values) == 1 else values


def _encode_group(item: DataItem, value: Value) -> bytes:
    what = f"DI {item.di:08X} ({item.name})"
    if len(item.fields) == 1:
        if isinstance(value, tuple) and not isinstance(value, DayHour):
            raise EncodeError(f"{what}: expected one value, got {value!r}")
        return encode_field(item.fields[0], value, what)
    if not isinstance(value, tuple) or len(value) != len(item.fields):
        raise EncodeError(f"{what}: expected {len(item.fields)} values, got {value!r}")
    parts = []
    for fmt, part in zip(item.fields, value, strict=True):
        if isinstance(part, tuple) and not isinstance(part, DayHour):
            raise EncodeError(f"{what}: nested value {part!r}")
        parts.append(encode_field(fmt, part, what))
    return b"".join(parts)


def encode_value(di: int, value: Value) -> bytes:
    """The data bytes of `di` holding `value` (before the +0x33)."""
    item = lookup(di)
    if not item.block:
        return _encode_group(item, value)
    if not isinstance(value, tuple) or not value or isinstance(value, DayHour):
        raise EncodeError(f"DI {di:08X} ({item.name}): a block needs a non-empty tuple")
    return b"".join(_encode_group(item, element) for element in value)


def lookup(di: int) -> DataItem:
    """The table entry of `di`."""
    try:
        return DI_TABLE[di]
    except KeyError:
        raise UnknownDataIdentifier(di) from None


_TARIFFS = ("total", "tariff 1 (sharp)", "tariff 2 (peak)", "tariff 3 (flat)", "tariff 4 (valley)")
_PHASES = ("phase A", "phase B", "phase C")


def _when(settlement: int) -> str:
    return "current" if settlement == 0 else f"settlement {settlement} ago"


def _build_table() -> dict[int, DataItem]:
    items: list[DataItem] = []
    energies = (
        (0x00, "combined active energy", ENERGY_SIGNED),
        (0x01, "forward active energy", ENERGY),
    )
    for di2, kind, fmt in energies:
        for settlement in range(13):
            for tariff, label in enumerate(_TARIFFS):
                di = (di2 << 16) | (tariff << 8) | settlement
                items.append(DataItem(di, f"{kind}, {label}, {_when(settlement)}", "kWh", (fmt,)))
            di = (di2 << 16) | 0xFF00 | settlement
            name = f"{kind} block, {_when(settlement)}"
            items.append(DataItem(di, name, "kWh", (fmt,), block=True))
    for settlement in range(13):
        for tariff, label in enumerate(_TARIFFS):
            di = 0x01010000 | (tariff << 8) | settlement
            name = f"forward active maximum demand and time, {label}, {_when(settlement)}"
            items.append(DataItem(di, name, "kW", (DEMAND, DEMAND_TIME)))
        name = f"forward active maximum demand block, {_when(settlement)}"
        items.append(DataItem(0x0101FF00 | settlement, name, "kW", (DEMAND, DEMAND_TIME), True))
    phased = (
        (0x0201, "voltage", "V", VOLTAGE, False),
        (0x0202, "current", "A", CURRENT, False),
        (0x0203, "active power", "kW", POWER, True),
        (0x0206, "power factor", "", POWER_FACTOR, True),
    )
    for di32, name, unit, fmt, has_total in phased:
        if has_total:
            items.append(DataItem(di32 << 16, f"{name}, total", unit, (fmt,)))
        for index, phase in enumerate(_PHASES, start=1):
            items.append(DataItem((di32 << 16) | (index << 8), f"{name}, {phase}", unit, (fmt,)))
        items.append(DataItem((di32 << 16) | 0xFF00, f"{name} block", unit, (fmt,), block=True))
    items.append(DataItem(0x02800002, "grid frequency", "Hz", (FREQUENCY,)))
    for index in range(1, 4):
        items.append(DataItem(0x04000B00 | index, f"settlement day {index}", "", (SETTLEMENT_DAY,)))
    items.append(DataItem(METER_DATE, "date and day of week", "", (DATE_WEEK,)))
    items.append(DataItem(METER_TIME, "time of day", "", (TIME_OF_DAY,)))
    items.append(DataItem(RUN_STATUS_3, "meter run status word 3", "", (STATUS_WORD,)))
    items.append(DataItem(0x00900200, "remaining money", "fen", (MONEY,)))
    items.append(DataItem(0x00900201, "overdrawn money", "fen", (MONEY,)))
    return {item.di: item for item in items}


DI_TABLE: dict[int, DataItem] = _build_table()
