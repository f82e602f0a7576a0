"""Meter register profiles: read plans, field tables and writes, loaded from TOML and checked."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Final

from config.catalogue import CatalogueError, TagCatalogue, default_catalogue
from config.profile_toml import (
    TIME_KEYS,
    WORD_TYPES,
    ProfileError,
    int_in,
    ints,
    items,
    known_keys,
    scale,
    string,
    table,
    time_layout,
)
from config.profile_writes import WriteParam, WriteSpec, parse_write

__all__ = [
    "FREEZE",
    "POLL_BLOCK",
    "WORD_TYPES",
    "Block",
    "Field",
    "FreezeSpec",
    "Plan",
    "ProfileError",
    "RegisterProfile",
    "WriteParam",
    "WriteSpec",
    "load_profile",
    "load_profile_file",
    "parse_profile",
]

PROFILE_DIR: Final = Path(__file__).with_name("profiles")
MAX_READ: Final = 125  # registers per function-03 request (Modbus limit)
RATIOS: Final = ("", "pt", "ct", "ptct")
POLL_BLOCK: Final = "poll_block"
FREEZE: Final = "freeze"

_TOP_KEYS: Final = frozenset(
    {"model", "text", "phases", "address_base", "word_order", "time_code", "poll_type"}
    | {"plans", "freeze", "writes"}
)
_FIELD_KEYS: Final = frozenset({"tag", "address", "type", "scale", "ratio", "unit"})
_BIT_KEYS: Final = frozenset({"tag", "address", "bits", "all"})


@dataclass(frozen=True, slots=True)
class Block:
    """One contiguous read: `count` registers from register number `start`."""

    start: int
    count: int
    pdu_start: int

    @property
    def end(self) -> int:
        """The register number just past the block."""
        return self.start + self.count


@dataclass(frozen=True, slots=True)
class Field:
    """One tag in a plan: a word value, a set of status bits, or a clock time."""

    tag: str
    kind: str  # the catalogue kind of the tag: float, int or bool
    address: int
    count: int  # registers
    column: int  # index of the first register in the plan's concatenated raw array
    type: str  # u16, i16, u32, i32, bits or time
    scale: float | int = 1
    ratio: str = ""
    bits: tuple[int, ...] = ()
    all_bits: bool = True
    layout: tuple[str, ...] = ()

    @property
    def mask(self) -> int:
        """The bit mask of a bits field."""
        return sum(1 << b for b in self.bits)


@dataclass(frozen=True, slots=True)
class Plan:
    """A scan class: the blocks to read and the fields decoded from them."""

    name: str
    blocks: tuple[Block, ...]
    fields: tuple[Field, ...]
    absent: tuple[str, ...]  # tags the model does not have: they decode to NaN (or 0)
    absent_kinds: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        """Registers per meter in the plan's raw array (all blocks, in order)."""
        return sum(b.count for b in self.blocks)

    @property
    def tags(self) -> tuple[str, ...]:
        """Every tag the plan yields: its fields' tags, then the absent ones."""
        return (*dict.fromkeys(f.tag for f in self.fields), *self.absent)


@dataclass(frozen=True, slots=True)
class FreezeSpec:
    """Where the monthly freeze blocks are read and where their month label sits."""

    base: int
    stride: int
    depth: int
    month_address: int
    month_layout: tuple[str, ...]

    def address(self, n: int) -> int:
        """The register number of freeze block `n` (1 = the previous month)."""
        if not 1 <= n <= self.depth:
            raise ValueError(f"freeze block {n} is outside 1..{self.depth}")
        return self.base + (n - 1) * self.stride


@dataclass(frozen=True)
class RegisterProfile:
    """A meter model's register map: read plans per scan class, freeze layout and writes."""

    model: str
    text: str
    phases: int
    address_base: int
    word_order: str
    time_code: str
    poll_type: int
    plans: Mapping[str, Plan]
    freeze: FreezeSpec
    writes: Mapping[str, WriteSpec]
    source: str = field(default="", compare=False)

    def plan(self, scan_class: str) -> tuple[Block, ...]:
        """The blocks to read for `scan_class`."""
        return self.read_plan(scan_class).blocks

    def read_plan(self, scan_class: str) -> Plan:
        """The full plan of `scan_class`; a `KeyError` names an unknown class."""
        try:
            return self.plans[scan_class]
        except KeyError:
            known = ", ".join(self.plans)
            raise KeyError(f"{self.model}: no read plan {scan_class!r} (known: {known})") from None

    def write(self, command: str) -> WriteSpec:
        """The write spec of `command`; a `KeyError` names an unknown command."""
        try:
            return self.writes[command]
        except KeyError:
            known = ", ".join(self.writes)
            raise KeyError(f"{self.model}: no write {command!r} (known: {known})") from None

    def pdu(self, address: int) -> int:
        """The PDU address on the wire for register number `address`."""
        return address - self.address_base


def _blocks(plan: Mapping[str, object], where: str, base: int) -> tuple[Block, ...]:
    entries = items(plan, "blocks", where)
    if not entries:
        raise ProfileError(f"{where}.blocks: at least one block is required")
    blocks: list[Block] = []
    for i, entry in enumerate(entries):
        at = f"{where}.blocks[{i}]"
        if not isinstance(entry, dict):
            raise ProfileError(f"{at}: must be a table like {{ start = 0x0061, count = 3 }}")
        known_keys(entry, frozenset({"start", "count"}), at)
        start = int_in(entry, "start", at, base, 0xFFFF)
        count = int_in(entry, "count", at, 1, MAX_READ)
        if start + count > 0x10000:
            raise ProfileError(f"{at}: runs past register 0xFFFF")
        for j, other in enumerate(blocks):
            if start < other.end and other.start < start + count:
                raise ProfileError(f"{at}: overlaps {where}.blocks[{j}]")
        blocks.append(Block(start, count, start - base))
    return tuple(blocks)


def _field(
    entry: Mapping[str, object], at: str, cat: TagCatalogue, blocks: tuple[Block, ...]
) -> Field:
    tag = string(entry, "tag", at)
    if tag not in cat:
        raise ProfileError(f"{at}.tag: {tag!r} is not in the tag catalogue (config/tags.toml)")
    kind, unit = cat.tag(tag).kind, cat.tag(tag).unit
    address = int_in(entry, "address", at, 0, 0xFFFF)
    bits: tuple[int, ...] = ()
    layout: tuple[str, ...] = ()
    all_bits, ratio = True, ""
    scale_value: float | int = 1
    if "bits" in entry:
        known_keys(entry, _BIT_KEYS, at)
        bits = ints(entry, "bits", at, 0, 15)
        if len(set(bits)) != len(bits):
            raise ProfileError(f"{at}.bits: a bit is listed twice")
        flag = entry.get("all", True)
        if not isinstance(flag, bool):
            raise ProfileError(f"{at}.all: must be true or false, got {flag!r}")
        ftype, count, need, all_bits = "bits", 1, "bool", flag
    elif "layout" in entry:
        known_keys(entry, TIME_KEYS, at)
        layout = time_layout(entry, at)
        if not {"MM", "DD", "hh", "mm"} <= set(layout):
            raise ProfileError(f"{at}.layout: a time needs at least MM, DD, hh and mm")
        ftype, count, need = "time", len(layout) // 2, "float"
    else:
        known_keys(entry, _FIELD_KEYS, at)
        ftype = string(entry, "type", at, tuple(WORD_TYPES))
        count, need = WORD_TYPES[ftype], "int" if kind == "int" else "float"
        ratio = string(entry, "ratio", at, RATIOS) if "ratio" in entry else ""
        scale_value = scale(entry, at)
        if kind == "int" and (not isinstance(scale_value, int) or ratio):
            raise ProfileError(f"{at}: {tag} is an integer tag: scale must be an integer, no ratio")
        if entry.get("unit", unit) != unit:
            raise ProfileError(f"{at}.unit: {entry['unit']!r} is not the catalogue unit {unit!r}")
    if kind != need:
        raise ProfileError(f"{at}: a {ftype} field cannot feed {tag}, a {kind} tag")
    column = 0
    for block in blocks:
        if block.start <= address < block.end:
            if address + count > block.end:
                raise ProfileError(
                    f"{at}: {count} registers at 0x{address:04X} cross the block end"
                )
            column += address - block.start
            return Field(
                tag, kind, address, count, column, ftype, scale_value, ratio, bits, all_bits, layout
            )
        column += block.count
    raise ProfileError(f"{at}.address: 0x{address:04X} is outside every block of the plan")


def _plan(name: str, plan: Mapping[str, object], where: str, cat: TagCatalogue, base: int) -> Plan:
    known_keys(plan, frozenset({"blocks", "fields", "absent"}), where)
    blocks = _blocks(plan, where, 0 if name == FREEZE else base)
    fields: list[Field] = []
    used_words: dict[int, str] = {}
    used_bits: dict[int, int] = {}
    for i, entry in enumerate(items(plan, "fields", where)):
        at = f"{where}.fields[{i}]"
        if not isinstance(entry, dict):
            raise ProfileError(f"{at}: must be a table like {{ tag = ..., address = ... }}")
        f = _field(entry, at, cat, blocks)
        at = f"{at} ({f.tag})"
        group = cat.tag(f.tag).group
        if name not in (POLL_BLOCK, FREEZE) and group != name:
            raise ProfileError(f"{at}: tag belongs to scan group {group!r}, not {name!r}")
        if any(g.tag == f.tag for g in fields):
            raise ProfileError(f"{at}: tag {f.tag} is mapped twice in this plan")
        if f.type == "bits":
            if used_bits.get(f.address, 0) & f.mask:
                raise ProfileError(f"{at}: bits overlap another bit field at 0x{f.address:04X}")
            used_bits[f.address] = used_bits.get(f.address, 0) | f.mask
        else:
            for reg in range(f.address, f.address + f.count):
                if reg in used_words:
                    raise ProfileError(f"{at}: register 0x{reg:04X} is also {used_words[reg]}")
                used_words[reg] = f.tag
        fields.append(f)
    absent = items(plan, "absent", where) if "absent" in plan else []
    for i, tag in enumerate(absent):
        if not isinstance(tag, str) or tag not in cat or any(f.tag == tag for f in fields):
            raise ProfileError(f"{where}.absent[{i}]: {tag!r} is not a catalogue tag or is a field")
    names = tuple(str(t) for t in absent)
    return Plan(name, blocks, tuple(fields), names, tuple(cat.tag(t).kind for t in names))


def parse_profile(data: Mapping[str, object], source: str, cat: TagCatalogue) -> RegisterProfile:
    """Build a validated profile from parsed TOML; errors are prefixed with `source`."""
    try:
        return _parse(data, cat, source)
    except ProfileError as exc:
        raise ProfileError(f"{source}: {exc}") from None


def _parse(data: Mapping[str, object], cat: TagCatalogue, source: str) -> RegisterProfile:
    known_keys(data, _TOP_KEYS, "profile")
    base = int_in(data, "address_base", "profile", 0, 1)
    raw_plans = table(data, "plans", "profile")
    required = (*cat.groups, POLL_BLOCK, FREEZE)
    for name in raw_plans:
        if name not in required:
            raise ProfileError(f"plans.{name}: unknown scan class (known: {', '.join(required)})")
    plans = {}
    for name in required:
        plans[name] = _plan(name, table(raw_plans, name, "plans"), f"plans.{name}", cat, base)
    poll_type_register = plans[POLL_BLOCK].blocks[0].start
    if any(f.address == poll_type_register for f in plans[POLL_BLOCK].fields):
        raise ProfileError("plans.poll_block: its first register is the type (poll_type)")
    freeze = table(data, "freeze", "profile")
    known_keys(freeze, frozenset({"base", "stride", "depth", "month"}), "freeze")
    month = table(freeze, "month", "freeze")
    known_keys(month, TIME_KEYS - {"tag"}, "freeze.month")
    month_address = int_in(month, "address", "freeze.month", 0, plans[FREEZE].width - 1)
    month_layout = time_layout(month, "freeze.month")
    if not {"YY", "MM"} <= set(month_layout):
        raise ProfileError("freeze.month.layout: needs YY and MM")
    for f in plans[FREEZE].fields:
        if (
            f.address < month_address + len(month_layout) // 2
            and month_address < f.address + f.count
        ):
            raise ProfileError(f"freeze.month: overlaps plans.freeze field {f.tag}")
    raw_writes = table(data, "writes", "profile")
    writes = {
        command: parse_write(
            command, table(raw_writes, command, "writes"), f"writes.{command}", base
        )
        for command in raw_writes
    }
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for w in writes.values():
        for address in w.tables or (w.address,):
            key = (address, w.count, w.values)
            if key in seen:
                raise ProfileError(f"writes.{w.command}: same registers as writes.{seen[key]}")
            seen[key] = w.command
    return RegisterProfile(
        model=string(data, "model", "profile"),
        text=string(data, "text", "profile") if "text" in data else "",
        phases=int_in(data, "phases", "profile", 1, 3),
        address_base=base,
        word_order=string(data, "word_order", "profile", ("big", "little")),
        time_code=string(data, "time_code", "profile", ("binary", "bcd")),
        poll_type=int_in(data, "poll_type", "profile", 0, 0xFFFF),
        plans=MappingProxyType(plans),
        freeze=FreezeSpec(
            base=int_in(freeze, "base", "freeze", 0, 0xFFFF),
            stride=int_in(freeze, "stride", "freeze", 1, 0xFFFF),
            depth=int_in(freeze, "depth", "freeze", 1, 0xFFFF),
            month_address=month_address,
            month_layout=month_layout,
        ),
        writes=MappingProxyType(writes),
        source=source,
    )


def load_profile_file(path: Path, catalogue: TagCatalogue | None = None) -> RegisterProfile:
    """Read and validate one profile file; errors name the file and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{path}: invalid TOML: {exc}") from None
    try:
        cat = catalogue if catalogue is not None else default_catalogue()
    except CatalogueError as exc:
        raise ProfileError(f"{path}: cannot check tags: {exc}") from None
    profile = parse_profile(data, str(path), cat)
    if profile.phases not in (1, 3):
        raise ProfileError(f"{path}: phases: must be 1 or 3, got {profile.phases}")
    return profile


@cache
def load_profile(model: str) -> RegisterProfile:
    """The shipped profile of `model` (`config/profiles/<model>.toml`), loaded once."""
    path = PROFILE_DIR / f"{model}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
        raise ProfileError(f"{path}: no profile for model {model!r} (known: {known})")
    profile = load_profile_file(path)
    if profile.model != model:
        raise ProfileError(f"{path}: model: says {profile.model!r}, expected {model!r}")
    return profile
