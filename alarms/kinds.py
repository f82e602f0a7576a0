"""The alarm kinds: what each watches, whom it is raised on, and its default priority."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from config.model import PRIORITIES


class AlarmKind(IntEnum):
    """Every alarm the engine raises; meter kinds index the rows of the meter state matrix."""

    PHASE_LOSS = 0
    UNDERVOLTAGE = 1
    OVERVOLTAGE = 2
    LOST_COMM = 3
    ARREARS = 4
    LOW_BALANCE_1 = 5
    LOW_BALANCE_2 = 6
    UNEXPECTED_TRIP = 7
    OVER_POWER = 8
    METER_FAULT = 9
    GATEWAY_LOST_COMM = 10

    @property
    def label(self) -> str:
        """The kind's name for people, the journal and the API, e.g. `phase_loss`."""
        return self.name.lower()

    @property
    def spec(self) -> KindSpec:
        """What this kind watches and its default priority."""
        return SPECS[self]

    @classmethod
    def parse(cls, kind: AlarmKind | str) -> AlarmKind:
        """A kind from itself or its label; a `ValueError` lists the known labels."""
        if isinstance(kind, AlarmKind):
            return kind
        try:
            return cls[str(kind).upper()]
        except KeyError:
            known = ", ".join(k.label for k in cls)
            raise ValueError(f"unknown alarm kind {kind!r} (known: {known})") from None


@dataclass(frozen=True, slots=True)
class KindSpec:
    """One kind's scope (meter or gateway), default priority, tag group and description."""

    scope: str
    priority: str
    group: str
    text: str

    @property
    def priority_rank(self) -> int:
        """The priority as a rank: 0 low … 3 urgent."""
        return PRIORITIES.index(self.priority)


K = AlarmKind

SPECS: Final[dict[AlarmKind, KindSpec]] = {
    K.PHASE_LOSS: KindSpec("meter", "urgent", "realtime", "Phase loss"),
    K.UNDERVOLTAGE: KindSpec("meter", "high", "realtime", "Undervoltage"),
    K.OVERVOLTAGE: KindSpec("meter", "high", "realtime", "Overvoltage"),
    K.LOST_COMM: KindSpec("meter", "medium", "realtime", "Meter lost communication"),
    K.ARREARS: KindSpec("meter", "medium", "prepaid", "Arrears (balance below zero)"),
    K.LOW_BALANCE_1: KindSpec("meter", "low", "prepaid", "Low balance, level 1"),
    K.LOW_BALANCE_2: KindSpec("meter", "low", "prepaid", "Low balance, level 2"),
    K.UNEXPECTED_TRIP: KindSpec("meter", "high", "realtime", "Relay open without a command"),
    K.OVER_POWER: KindSpec("meter", "medium", "realtime", "Power above the limit"),
    K.METER_FAULT: KindSpec("meter", "high", "realtime", "Meter fault bit set"),
    K.GATEWAY_LOST_COMM: KindSpec("gateway", "high", "realtime", "Gateway lost communication"),
}

METER_KINDS: Final = tuple(k for k in AlarmKind if SPECS[k].scope == "meter")
"""The kinds raised per meter, in the order of the meter matrices' rows."""

GATEWAY_KINDS: Final = tuple(k for k in AlarmKind if SPECS[k].scope == "gateway")
"""The kinds raised per gateway, in the order of the gateway matrices' rows."""

COMMANDED_OPEN_SUPPRESSES: Final = (K.UNDERVOLTAGE, K.PHASE_LOSS)
"""Load-side kinds suppressed by design while the relay is open by command."""

assert tuple(AlarmKind)[: len(METER_KINDS)] == METER_KINDS, "meter kinds must come first"


def row_of(kind: AlarmKind) -> int:
    """The row of `kind` in its scope's matrices."""
    if SPECS[kind].scope == "meter":
        return int(kind)
    return GATEWAY_KINDS.index(kind)


def kind_at(scope: str, row: int) -> AlarmKind:
    """The kind at `row` of a scope's matrices."""
    return METER_KINDS[row] if scope == "meter" else GATEWAY_KINDS[row]
