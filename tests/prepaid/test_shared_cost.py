"""Shared-cost allocation: exact integer splits, and one posting per tenant."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.prepaid.records import LedgerError, TransactionFilter
from server.prepaid.shared_cost import allocate_shared_cost


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (100, {"a": 1, "b": 1, "c": 1}, {"a": 34, "b": 33, "c": 33}),
        (10, {"a": 2, "b": 1}, {"a": 7, "b": 3}),
        (0, {"a": 5, "b": 5}, {"a": 0, "b": 0}),
        (5, {"a": 0, "b": 3}, {"a": 0, "b": 5}),
        (1, {"b": 1, "a": 1}, {"a": 1, "b": 0}),
        (99_999, {"x": 12_050, "y": 8_000, "z": 30}, {"x": 60_009, "y": 39_840, "z": 150}),
    ],
)
def test_known_splits(total, weights, expected):
    assert allocate_shared_cost("A1", total, weights) == expected


@given(
    total=st.integers(0, 10**12),
    weights=st.dictionaries(
        st.text(min_size=1, max_size=4), st.integers(0, 10**7), min_size=1, max_size=40
    ).filter(lambda w: sum(w.values()) > 0),
)
def test_split_is_exact_and_within_one_fen_of_the_true_share(total, weights):
    shares = allocate_shared_cost("A1", total, weights)
    assert set(shares) == set(weights)
    assert sum(shares.values()) == total
    whole = sum(weights.values())
    for meter, share in shares.items():
        # |share - total*w/whole| < 1, in integers.
        assert abs(share * whole - total * weights[meter]) < whole
        if weights[meter] == 0:
            assert share == 0


@pytest.mark.parametrize(
    ("total", "weights", "message"),
    [
        (1.5, {"a": 1}, "integer fen"),
        (-1, {"a": 1}, "negative"),
        (10, {}, "no meters"),
        (10, {"a": 0}, "sum to zero"),
        (10, {"a": -1}, "meter a"),
        (10, {"a": 0.5}, "meter a"),
    ],
)
def test_bad_input_is_named(total, weights, message):
    with pytest.raises(LedgerError, match=message):
        allocate_shared_cost("A1", total, weights)


def test_post_shared_cost_debits_each_tenant_once(ledger, fresh):
    merchant = fresh("M")
    meters = [fresh("E") for _ in range(3)]
    for meter in meters:
        ledger.open_wallet(meter, merchant)
    posted = ledger.post_shared_cost(
        "A1", 1_000, {meters[0]: 120, meters[1]: 60, meters[2]: 0}, operator="s", channel="system"
    )
    assert set(posted) == {meters[0], meters[1]}
    assert ledger.balances(meters) == {meters[0]: -667, meters[1]: -333, meters[2]: 0}
    (tx,) = ledger.transactions(TransactionFilter(meter=meters[0]))
    assert (tx.type, tx.reason) == ("shared_cost", "公摊 A1")


def test_post_shared_cost_is_all_or_nothing(ledger, fresh):
    merchant = fresh("M")
    good, missing = fresh("E"), fresh("E")
    ledger.open_wallet(good, merchant)
    with pytest.raises(LedgerError, match="no wallet"):
        ledger.post_shared_cost("A1", 100, {good: 1, missing: 1}, operator="s", channel="system")
    assert ledger.balance(good) == 0
