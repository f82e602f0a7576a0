"""Every (state, event) pair of the ISA-18.2 table, accepted or refused."""

from __future__ import annotations

import pytest

from alarms.states import (
    NEXT,
    REFUSALS,
    REFUSED,
    TABLE,
    AlarmEvent,
    AlarmState,
    TransitionRefused,
    transition,
)

S = AlarmState
E = AlarmEvent
N, U, A, R, SH, SU, OOS = (
    S.NORMAL,
    S.UNACKED,
    S.ACKED,
    S.RTN_UNACKED,
    S.SHELVED,
    S.SUPPRESSED,
    S.OUT_OF_SERVICE,
)
X = None  # refused

# Columns: ACTIVATE, CLEAR, ACK, SHELVE, UNSHELVE, SUPPRESS, UNSUPPRESS, REMOVE, RETURN
EXPECTED: dict[AlarmState, tuple[AlarmState | None, ...]] = {
    N: (U, X, X, SH, X, SU, X, OOS, X),
    U: (X, R, A, SH, X, SU, X, OOS, X),
    A: (X, N, X, SH, X, SU, X, OOS, X),
    R: (U, X, N, SH, X, SU, X, OOS, X),
    SH: (X, X, X, X, N, SU, X, OOS, X),
    SU: (X, X, X, X, X, X, N, OOS, X),
    OOS: (X, X, X, X, X, X, X, X, N),
}
PAIRS = [(state, event, EXPECTED[state][event]) for state in S for event in E]


def test_every_pair_is_listed() -> None:
    assert len(PAIRS) == len(S) * len(E) == 63
    assert len(TABLE) + len(REFUSALS) == 63


def _name(value: object) -> str:
    return getattr(value, "label", "refused")


@pytest.mark.parametrize(("state", "event", "expected"), PAIRS, ids=_name)
def test_transition(state: AlarmState, event: AlarmEvent, expected: AlarmState | None) -> None:
    if expected is None:
        with pytest.raises(TransitionRefused) as refused:
            transition(state, event)
        assert refused.value.state is state and refused.value.event is event
        assert refused.value.reason
        assert state.label in str(refused.value) and event.label in str(refused.value)
        assert NEXT[state, event] == REFUSED
    else:
        assert transition(state, event) is expected
        assert NEXT[state, event] == expected


@pytest.mark.parametrize(
    ("state", "event", "words"),
    [
        (N, E.ACK, "nothing to acknowledge"),
        (N, E.UNSHELVE, "not shelved"),
        (A, E.ACK, "nothing to acknowledge"),
        (U, E.ACTIVATE, "already active"),
        (N, E.CLEAR, "not active"),
        (SH, E.SHELVE, "shelved"),
        (SU, E.SHELVE, "suppressed by design"),
        (OOS, E.ACK, "out of service"),
        (U, E.RETURN_TO_SERVICE, "not out of service"),
    ],
)
def test_refusal_reasons_say_why(state: AlarmState, event: AlarmEvent, words: str) -> None:
    with pytest.raises(TransitionRefused, match=words):
        transition(state, event)


def test_next_table_is_read_only() -> None:
    with pytest.raises(ValueError):
        NEXT[0, 0] = 3
