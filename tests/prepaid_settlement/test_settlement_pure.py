"""Settlement arithmetic: deltas, rollover, implausible readings, fen and the carry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.prepaid.settlement import (
    E4_PER_FEN,
    REGISTER_STEPS,
    UNBOUNDED,
    Flag,
    Settled,
    centi_kwh,
    max_delta,
    rated_kw,
    register_modulus,
    settle,
    step_table,
    tiered_amount_e4,
)

MOD = int(register_modulus(1, 1))
BIG = 10**9
PRICES = [[11850, 10210, 6970, 3720]]


def one(
    previous: Any,
    current: Any,
    *,
    limit: int = BIG,
    modulus: int = MOD,
    prices: Any = PRICES,
    carry: int = 0,
) -> Settled:
    return settle(
        np.asarray([previous], dtype=np.int64),
        np.asarray([current], dtype=np.int64),
        modulus=[modulus],
        limit=[limit],
        prices_e4=prices,
        carry_e4=[carry],
    )


@pytest.mark.parametrize(
    ("previous", "current", "limit", "delta", "flags"),
    [
        # plain forward deltas, bucket by bucket
        ([0, 0, 0, 0], [100, 0, 250, 7], BIG, [100, 0, 250, 7], [0, 0, 0, 0]),
        # nothing moved
        ([5, 5, 5, 5], [5, 5, 5, 5], BIG, [0, 0, 0, 0], [0, 0, 0, 0]),
        # the sharp register wraps at 2^32: a plausible rollover is charged
        ([MOD - 10, 0, 0, 0], [15, 0, 0, 0], 100, [25, 0, 0, 0], [1, 0, 0, 0]),
        # backwards without rollover evidence: flagged, not charged, others still charged
        ([1000, 10, 0, 0], [900, 20, 0, 0], 100, [0, 10, 0, 0], [2, 0, 0, 0]),
        # a jump larger than the meter could draw: flagged, not charged
        ([0, 0, 0, 0], [0, 0, 101, 0], 100, [0, 0, 0, 0], [0, 0, 3, 0]),
        # exactly the limit is still plausible
        ([0, 0, 0, 0], [0, 0, 0, 100], 100, [0, 0, 0, 100], [0, 0, 0, 0]),
    ],
)
def test_bucket_table(previous, current, limit, delta, flags):
    result = one(previous, current, limit=limit)
    assert result.delta.tolist() == [delta]
    assert result.flags.tolist() == [flags]
    flagged = [f >= Flag.NEGATIVE for f in flags]
    expected_cursor = [
        p if bad else c for p, c, bad in zip(previous, current, flagged, strict=True)
    ]
    assert result.cursor.tolist() == [expected_cursor]


@pytest.mark.parametrize(
    ("delta", "price", "carry", "fen", "carry_after"),
    [
        ([100, 0, 0, 0], [6000] * 4, 0, 60, 0),  # 1 kWh at 0.6 yuan = 60 fen
        ([1, 0, 0, 0], [6000] * 4, 0, 0, 6000),  # 0.01 kWh = 0.6 fen: carried
        ([1, 0, 0, 0], [6000] * 4, 6000, 1, 2000),  # the carry completes a fen
        ([100, 100, 100, 100], [11850, 10210, 6970, 3720], 0, 327, 5000),
        ([0, 0, 0, 0], [6000] * 4, 9999, 0, 9999),
    ],
)
def test_cost_table(delta, price, carry, fen, carry_after):
    result = one([0, 0, 0, 0], delta, prices=[price], carry=carry)
    assert result.cost_fen.tolist() == [fen]
    assert result.carry_e4.tolist() == [carry_after]


def test_modulus_scales_with_pt_and_ct():
    assert register_modulus([1, 10], [1, 200]).tolist() == [REGISTER_STEPS, REGISTER_STEPS * 2000]
    with pytest.raises(ValueError, match="PT and CT"):
        register_modulus([0], [1])


def test_centi_kwh_is_exact_for_primary_values():
    raw = np.asarray([123_456_789, 4_294_967_295, 7])
    primary = raw * 0.01 * 10 * 200  # × PT × CT, as the tag table holds it
    assert centi_kwh(primary).tolist() == (raw * 2000).tolist()
    with pytest.raises(ValueError, match="finite"):
        centi_kwh([np.nan])


def test_plausibility_bound_grows_with_time_and_rating():
    rated = rated_kw([True, False], [1, 1], [50, 1], 220.0)
    assert rated.tolist() == pytest.approx([3 * 220 * 300 / 1000, 220 * 100 / 1000])
    bound = max_delta(rated, [3600.0, 0.0], [50, 1])
    assert bound[0] == int(np.ceil(198.0 * 100 * 1.5)) + 50
    assert bound[1] == 1  # no elapsed time: one register step at most


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="shape"):
        one([0, 0, 0], [0, 0, 0])
    with pytest.raises(ValueError, match="carry_e4"):
        one([0] * 4, [0] * 4, carry=E4_PER_FEN)
    with pytest.raises(ValueError, match="prices_e4"):
        one([0] * 4, [1] * 4, prices=[[-1, 0, 0, 0]])


def test_tiered_steps_split_a_delta():
    bounds, prices = step_table([(200, 5283), (400, 5783), (None, 8283)], 3)
    assert bounds == [20000, 40000, UNBOUNDED]
    # 150 kWh used, 100 kWh more: 50 at step 1, 50 at step 2
    amount = tiered_amount_e4([15000], [10000], [bounds], [prices])
    assert amount.tolist() == [5000 * 5283 + 5000 * 5783]
    # far into the top step
    assert tiered_amount_e4([50000], [100], [bounds], [prices]).tolist() == [100 * 8283]


register = st.integers(0, 10**7)
deltas = st.lists(st.tuples(*[st.integers(0, 5000)] * 4), min_size=1, max_size=12)
price = st.integers(0, 20000)


@given(
    start=st.tuples(*[register] * 4),
    steps=deltas,
    prices=st.tuples(*[price] * 4),
    carry=st.integers(0, E4_PER_FEN - 1),
)
def test_sequence_costs_the_same_as_its_total(start, steps, prices, carry):
    current = np.asarray(start, dtype=np.int64)
    fen = 0
    carried = carry
    for step in steps:
        result = one(
            current.tolist(), (current + step).tolist(), prices=[list(prices)], carry=carried
        )
        assert result.cost_fen[0] >= 0
        fen += int(result.cost_fen[0])
        carried = int(result.carry_e4[0])
        current = result.cursor[0]
    whole = one(list(start), current.tolist(), prices=[list(prices)], carry=carry)
    assert abs(fen - int(whole.cost_fen[0])) <= 1
    # exact, in fact: nothing is lost or rounded twice
    assert fen * E4_PER_FEN + carried == carry + int(whole.amount_e4[0])


@given(
    used=st.integers(0, 60000),
    parts=st.lists(st.integers(0, 20000), min_size=1, max_size=8),
)
def test_tiered_sequence_equals_total(used, parts):
    bounds, prices = step_table([(200, 5283), (400, 5783), (None, 8283)], 3)
    total = 0
    position = used
    for part in parts:
        total += int(tiered_amount_e4([position], [part], [bounds], [prices])[0])
        position += part
    assert total == int(tiered_amount_e4([used], [sum(parts)], [bounds], [prices])[0])


@given(
    previous=st.tuples(*[st.integers(0, MOD - 1)] * 4),
    current=st.tuples(*[st.integers(0, MOD - 1)] * 4),
    limit=st.integers(0, 10**6),
    bucket=st.integers(0, 3),
    other=st.integers(0, MOD - 1),
)
def test_buckets_are_independent_and_never_negative(previous, current, limit, bucket, other):
    first = one(list(previous), list(current), limit=limit)
    changed = list(current)
    changed[bucket] = other
    second = one(list(previous), changed, limit=limit)
    keep = [b for b in range(4) if b != bucket]
    assert first.delta[0, keep].tolist() == second.delta[0, keep].tolist()
    assert first.flags[0, keep].tolist() == second.flags[0, keep].tolist()
    for result in (first, second):
        assert (result.delta >= 0).all()
        assert (result.delta <= limit).all()
        assert result.cost_fen[0] >= 0


def test_vectorised_rows_do_not_mix():
    previous = np.asarray([[0, 0, 0, 0], [MOD - 1, 0, 0, 0]], dtype=np.int64)
    current = np.asarray([[100, 0, 0, 0], [1, 0, 0, 0]], dtype=np.int64)
    result = settle(
        previous,
        current,
        modulus=[MOD, MOD],
        limit=[BIG, 10],
        prices_e4=[[6000] * 4, [6000] * 4],
        carry_e4=[0, 0],
    )
    assert result.delta[:, 0].tolist() == [100, 2]
    assert result.flags[:, 0].tolist() == [Flag.OK, Flag.ROLLOVER]
    assert result.cost_fen.tolist() == [60, 1]
    assert result.carry_e4.tolist() == [0, 2000]
