"""The ISA-18.2 alarm state machine as a pure transition table (IEC 62682, OPC UA Part 9)."""

from __future__ import annotations

from enum import IntEnum
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt


class AlarmState(IntEnum):
    """The state of one alarm instance (held in uint8 state columns)."""

    NORMAL = 0
    UNACKED = 1
    ACKED = 2
    RTN_UNACKED = 3
    SHELVED = 4
    SUPPRESSED = 5
    OUT_OF_SERVICE = 6

    @property
    def label(self) -> str:
        """The state's name for people and the journal, e.g. `rtn_unacked`."""
        return self.name.lower()


class AlarmEvent(IntEnum):
    """What can happen to an alarm instance: a condition change or an operator action."""

    ACTIVATE = 0
    CLEAR = 1
    ACK = 2
    SHELVE = 3
    UNSHELVE = 4
    SUPPRESS = 5
    UNSUPPRESS = 6
    REMOVE_FROM_SERVICE = 7
    RETURN_TO_SERVICE = 8

    @property
    def label(self) -> str:
        """The event's name for people and the journal, e.g. `ack`."""
        return self.name.lower()


class TransitionRefused(ValueError):
    """An event that the state machine does not accept in the current state."""

    def __init__(self, state: AlarmState, event: AlarmEvent, reason: str) -> None:
        super().__init__(f"{event.label} refused in state {state.label}: {reason}")
        self.state = state
        self.event = event
        self.reason = reason


S = AlarmState
E = AlarmEvent

ALARM_STATES: Final = frozenset({S.NORMAL, S.UNACKED, S.ACKED, S.RTN_UNACKED})
"""The states in which the condition drives the instance (not shelved, suppressed or out)."""

ACTIVE_STATES: Final = frozenset({S.UNACKED, S.ACKED})
"""The states of an instance whose condition is active and announced."""

LISTED_STATES: Final = frozenset({S.UNACKED, S.ACKED, S.RTN_UNACKED})
"""The states an operator sees in the live alarm list."""

_ACCEPTED: dict[tuple[AlarmState, AlarmEvent], AlarmState] = {
    (S.NORMAL, E.ACTIVATE): S.UNACKED,
    (S.UNACKED, E.ACK): S.ACKED,
    (S.UNACKED, E.CLEAR): S.RTN_UNACKED,
    (S.ACKED, E.CLEAR): S.NORMAL,
    (S.RTN_UNACKED, E.ACK): S.NORMAL,
    (S.RTN_UNACKED, E.ACTIVATE): S.UNACKED,
    (S.SHELVED, E.UNSHELVE): S.NORMAL,
    (S.SHELVED, E.SUPPRESS): S.SUPPRESSED,
    (S.SHELVED, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    (S.SUPPRESSED, E.UNSUPPRESS): S.NORMAL,
    (S.SUPPRESSED, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    (S.OUT_OF_SERVICE, E.RETURN_TO_SERVICE): S.NORMAL,
}
for _state in ALARM_STATES:
    _ACCEPTED[(_state, E.SHELVE)] = S.SHELVED
    _ACCEPTED[(_state, E.SUPPRESS)] = S.SUPPRESSED
    _ACCEPTED[(_state, E.REMOVE_FROM_SERVICE)] = S.OUT_OF_SERVICE


def _refusal(state: AlarmState, event: AlarmEvent) -> str:
    """Why `event` is refused in `state` (only called for pairs not in the table)."""
    if state is S.OUT_OF_SERVICE:
        return "the alarm is out of service; return it to service first"
    if state is S.SUPPRESSED and event is not E.RETURN_TO_SERVICE:
        return "the alarm is suppressed by design; it cannot be changed until that ends"
    if state is S.SHELVED and event in (E.ACTIVATE, E.CLEAR, E.ACK, E.SHELVE):
        return "the alarm is shelved; unshelve it first"
    reasons = {
        E.ACTIVATE: "the condition is already active",
        E.CLEAR: "the condition is not active",
        E.ACK: "there is nothing to acknowledge",
        E.UNSHELVE: "the alarm is not shelved",
        E.UNSUPPRESS: "the alarm is not suppressed",
        E.RETURN_TO_SERVICE: "the alarm is not out of service",
    }
    return reasons.get(event, "not allowed")


TABLE: Final = MappingProxyType(dict(_ACCEPTED))
"""Every accepted (state, event) pair and the state it leads to."""

REFUSALS: Final = MappingProxyType(
    {(s, e): _refusal(s, e) for s in S for e in E if (s, e) not in _ACCEPTED}
)
"""Every refused (state, event) pair and the reason given."""

REFUSED: Final = 255
"""The code in `NEXT` for a refused pair."""

NEXT: Final[npt.NDArray[np.uint8]] = np.full((len(S), len(E)), REFUSED, dtype=np.uint8)
"""`NEXT[state, event]`: the next state code, or `REFUSED`; for vectorised transitions."""
for (_state, _event), _next in _ACCEPTED.items():
    NEXT[_state, _event] = _next
NEXT.flags.writeable = False


def transition(state: AlarmState, event: AlarmEvent) -> AlarmState:
    """The state after `event` in `state`; `TransitionRefused` (with a reason) if not allowed."""
    following = TABLE.get((state, event))
    if following is None:
        raise TransitionRefused(state, event, REFUSALS[(state, event)])
    return following
