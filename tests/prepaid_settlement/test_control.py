"""Relay decisions: credit limit, hysteresis on who opened it, forced mode, billing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.prepaid.control import RelayInputs, decide, requests


def inputs(**over: Any) -> RelayInputs:
    base = dict(
        prepaid=True,
        has_account=True,
        forced=False,
        balance_fen=0,
        credit_limit_fen=500,
        relay_known_open=False,
        held_open=False,
    )
    base.update(over)
    columns: dict[str, Any] = {
        k: np.asarray([v], dtype=np.int64 if k.endswith("fen") else np.bool_)
        for k, v in base.items()
    }
    return RelayInputs(**columns)


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"balance_fen": -501}, "open"),
        ({"balance_fen": -500}, None),  # at minus the credit limit: still allowed
        ({"balance_fen": -501, "held_open": True}, None),  # already asked
        ({"balance_fen": -501, "relay_known_open": True}, None),  # already open
        ({"balance_fen": -501, "forced": True}, None),
        ({"balance_fen": -501, "prepaid": False}, None),  # post-paid / no billing
        ({"balance_fen": -501, "has_account": False}, None),
        ({"balance_fen": -500, "held_open": True}, "close"),
        ({"balance_fen": 100, "held_open": True}, "close"),
        ({"balance_fen": 100, "held_open": True, "forced": True}, None),
        ({"balance_fen": 100, "held_open": False}, None),  # opened by someone else
        ({"balance_fen": -1, "credit_limit_fen": 0}, "open"),
    ],
)
def test_decision_table(over, expected):
    decided = decide(inputs(**over))
    got = "open" if decided.open[0] else "close" if decided.close[0] else None
    assert got == expected


@given(
    balance=st.integers(-(10**6), 10**6),
    credit=st.integers(0, 10**5),
    flags=st.tuples(*[st.booleans()] * 5),
)
def test_never_both_and_only_prepaid_accounts(balance, credit, flags):
    prepaid, account, forced, known_open, held = flags
    decided = decide(
        inputs(
            balance_fen=balance,
            credit_limit_fen=credit,
            prepaid=prepaid,
            has_account=account,
            forced=forced,
            relay_known_open=known_open,
            held_open=held,
        )
    )
    assert not (decided.open[0] and decided.close[0])
    if not prepaid or not account or forced:
        assert not decided.open[0] and not decided.close[0]


def test_requests_carry_their_cause():
    decided = decide(
        RelayInputs(
            prepaid=np.ones(3, bool),
            has_account=np.ones(3, bool),
            forced=np.zeros(3, bool),
            balance_fen=np.asarray([-600, 0, 10]),
            credit_limit_fen=np.asarray([500, 0, 0]),
            relay_known_open=np.zeros(3, bool),
            held_open=np.asarray([False, False, True]),
        )
    )
    found = requests(["A", "B", "C"], decided, [11, 12, 13], [-600, 0, 10])
    assert [(r.meter, r.kind, r.cause) for r in found] == [
        ("A", "relay_open", 11),
        ("C", "relay_close", 13),
    ]


def test_negative_credit_limit_is_refused():
    with pytest.raises(ValueError, match="credit"):
        decide(inputs(credit_limit_fen=-1))
