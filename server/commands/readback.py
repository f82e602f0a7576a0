"""What reading a meter back means for each profile write: the registers to read and the test.

A write is confirmed by what the meter shows afterwards, never by what was asked:

- `relay_open` / `relay_close` (relay_open, relay_close, forced_mode_on): the relay status
  bits of the realtime plan's `relay` field. Open needs none of its bits set; closed needs
  the field to read true (all of its bits when the profile says `all`). A meter whose own
  logic reopens the relay at once (a power-limit trip) therefore reads back as not done.
- `relay_auto` (forced_mode_off, prepaid_mode): the relay-control registers equal what was
  written (`[0, 0]`); the relay state is then the meter's own decision and is not judged.
- `clock` (time_sync): the meter clock (a `meter_clock` field with a year) lies within the
  tolerance of the server's local time at the read.
- parameter writes (prices, power_limit, alarm1, alarm2, credit_limit) and
  `tou_day_table`: the written registers read back equal, register for register.

Equality is only trusted when no read-plan field of some other tag sits on the written
registers (DDSY1352/DTSY1352 write the power limit to 0x0061, which their realtime plan
reads as `u_a`): such a write is `Unconfirmable`, and the error names the clash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from config.profile import FREEZE, Field, RegisterProfile

Registers = tuple[int, ...]
Judge = Callable[[Sequence[Registers]], bool]

RELAY_TAG: Final = "relay"
CLOCK_TAG: Final = "meter_clock"
RELAY_WRITES: Final = {"relay_open": "open", "relay_close": "closed"}
# The tags a read plan may map onto the registers of each echoed write: the same quantity.
ECHO_TAGS: Final[Mapping[str, frozenset[str]]] = {
    "prices": frozenset({"price_sharp_e4", "price_peak_e4", "price_flat_e4", "price_valley_e4"}),
    "power_limit": frozenset({"power_limit"}),
    "alarm1": frozenset({"alarm1_fen"}),
    "alarm2": frozenset({"alarm2_fen"}),
    "credit_limit": frozenset({"credit_limit_fen"}),
}


class Unconfirmable(ValueError):
    """The profile gives no way to read this write back (a missing field, a register clash)."""


@dataclass(frozen=True, slots=True)
class ReadBack:
    """The reads that confirm one write and the test their registers must pass."""

    rule: str
    reads: tuple[tuple[int, int], ...]  # (PDU address, count) per read, in order
    judge: Judge


def _plan_fields(profile: RegisterProfile) -> list[tuple[str, Field]]:
    """(plan name, field) of every plan whose addresses are register numbers (not freeze)."""
    return [
        (name, f) for name, plan in profile.plans.items() if name != FREEZE for f in plan.fields
    ]


def relay_field(profile: RegisterProfile) -> Field:
    """The realtime plan's relay status bits; `Unconfirmable` when the plan has none."""
    for f in profile.read_plan("realtime").fields:
        if f.tag == RELAY_TAG and f.type == "bits":
            return f
    raise Unconfirmable(f"{profile.model}: the realtime plan has no relay status bits")


def relay_state(f: Field, word: int) -> str:
    """`closed`, `open`, or `partial` (some phases closed) from the status word."""
    masked = word & f.mask
    closed = masked == f.mask if f.all_bits else masked != 0
    if closed:
        return "closed"
    return "open" if masked == 0 else "partial"


def clock_field(profile: RegisterProfile) -> Field:
    """A `meter_clock` field that carries the year; `Unconfirmable` when no plan has one."""
    for _, f in _plan_fields(profile):
        if f.tag == CLOCK_TAG and f.type == "time" and "YY" in f.layout:
            return f
    raise Unconfirmable(f"{profile.model}: no read plan has a meter_clock field with a year")


def decode_clock(profile: RegisterProfile, f: Field, words: Sequence[int]) -> datetime | None:
    """The meter-local time in the registers of clock field `f`, or None when it is no time."""
    if len(words) != f.count or any(not 0 <= w <= 0xFFFF for w in words):
        return None
    data = [b for w in words for b in (w >> 8, w & 0xFF)]
    bcd = profile.time_code == "bcd"
    parts: dict[str, int] = {"ss": 0}
    for name, byte in zip(f.layout, data, strict=True):
        if bcd:
            if (byte >> 4) > 9 or (byte & 0xF) > 9:
                return None
            byte = (byte >> 4) * 10 + (byte & 0xF)
        parts[name] = byte
    try:
        return datetime(
            2000 + parts["YY"], parts["MM"], parts["DD"], parts["hh"], parts["mm"], parts["ss"]
        )
    except ValueError:
        return None


def _clash(profile: RegisterProfile, command: str, address: int, count: int) -> str | None:
    """A read-plan field of another quantity on registers `address`..+`count`, described."""
    allowed = ECHO_TAGS.get(command, frozenset())
    start = address + profile.address_base
    for plan, f in _plan_fields(profile):
        size = 1 if f.type == "bits" else f.count
        overlaps = f.address < start + count and start < f.address + size
        if overlaps and f.tag not in allowed:
            return f"register 0x{f.address:04X} reads as {f.tag} in plans.{plan}"
    return None


def _relay_rule(profile: RegisterProfile, want: str) -> ReadBack:
    f = relay_field(profile)

    def judge(values: Sequence[Registers]) -> bool:
        return relay_state(f, values[0][0]) == want

    rule = f"relay status bits {list(f.bits)} at 0x{f.address:04X} show {want}"
    return ReadBack(rule, ((profile.pdu(f.address), 1),), judge)


def _clock_rule(profile: RegisterProfile, now_local: datetime, tolerance_s: float) -> ReadBack:
    f = clock_field(profile)

    def judge(values: Sequence[Registers]) -> bool:
        shown = decode_clock(profile, f, values[0])
        return shown is not None and abs((shown - now_local).total_seconds()) <= tolerance_s

    rule = f"meter clock at 0x{f.address:04X} within {tolerance_s:g} s of {now_local:%H:%M:%S}"
    return ReadBack(rule, ((profile.pdu(f.address), f.count),), judge)


def _echo_rule(
    profile: RegisterProfile, command: str, writes: Sequence[tuple[int, Sequence[int]]]
) -> ReadBack:
    for address, values in writes:
        clash = _clash(profile, command, address, len(values))
        if clash is not None:
            raise Unconfirmable(f"{profile.model}: {command} cannot be read back: {clash}")
    expected = [tuple(values) for _, values in writes]

    def judge(values: Sequence[Registers]) -> bool:
        return [tuple(v) for v in values] == expected

    spans = ", ".join(f"0x{a + profile.address_base:04X}+{len(v)}" for a, v in writes)
    return ReadBack(
        f"registers {spans} read back as written",
        tuple((address, len(values)) for address, values in writes),
        judge,
    )


def read_back(
    profile: RegisterProfile,
    command: str,
    writes: Sequence[tuple[int, Sequence[int]]],
    *,
    now_local: datetime,
    clock_tolerance_s: float,
) -> ReadBack:
    """How to confirm profile write `command`, whose `encode_write` blocks are `writes`.

    `now_local` is the server's meter-local time, against which a clock set is judged.
    """
    if command in RELAY_WRITES:
        return _relay_rule(profile, RELAY_WRITES[command])
    if profile.write(command).kind == "clock":
        return _clock_rule(profile, now_local, clock_tolerance_s)
    return _echo_rule(profile, command, writes)
