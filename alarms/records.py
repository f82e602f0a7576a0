"""What the alarm engine hands out: transitions, live alarms and operator comments."""

from __future__ import annotations

from dataclasses import dataclass

from alarms.kinds import AlarmKind
from alarms.states import AlarmEvent, AlarmState
from config.model import PRIORITIES


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """One instance moved from one state to another (the journal's and notifiers' record).

    `value` and `limit` are what the condition saw (None when not numeric, such as a
    fault bit or a gateway); `user` is the operator for acks, shelving and service changes.
    """

    kind: AlarmKind
    target: str
    from_state: AlarmState
    to_state: AlarmState
    event: AlarmEvent
    at: float
    value: float | None = None
    limit: float | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class ActiveAlarm:
    """An entry of the live alarm list."""

    kind: AlarmKind
    target: str
    area: str
    state: AlarmState
    priority: int
    since: float
    chattering: bool

    @property
    def priority_name(self) -> str:
        """The priority as its site name: low, medium, high or urgent."""
        return PRIORITIES[self.priority]

    @property
    def acknowledged(self) -> bool:
        """Whether an operator has acknowledged it."""
        return self.state is AlarmState.ACKED


@dataclass(frozen=True, slots=True)
class AlarmComment:
    """One entry of an instance's comment thread."""

    kind: AlarmKind
    target: str
    user: str
    at: float
    text: str
