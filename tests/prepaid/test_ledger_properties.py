"""Random sequences of posts, reversals and refunds: balances always equal their postings."""

from __future__ import annotations

import psycopg2.extensions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.prepaid.ledger import Ledger
from server.prepaid.records import POSTABLE, RECHARGES, LedgerError, TransactionFilter
from tests.prepaid.ledger_queries import postings_sum, unbalanced_transactions

METERS = 3

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("post"),
            st.integers(0, METERS - 1),
            st.sampled_from(POSTABLE),
            st.integers(1, 10**9),
        ),
        st.tuples(st.just("reverse"), st.integers(0, METERS - 1), st.integers(0, 20)),
        st.tuples(st.just("refund"), st.integers(0, METERS - 1)),
        st.tuples(st.just("reopen"), st.integers(0, METERS - 1)),
    ),
    max_size=25,
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_balances_equal_the_sum_of_postings_after_any_sequence(ledger, db, fresh, ops):
    merchant = fresh("M")
    meters = [fresh("E") for _ in range(METERS)]
    wallets = {m: ledger.open_wallet(m, merchant) for m in meters}
    model = dict.fromkeys(meters, 0)
    closed: set[str] = set()
    posted: dict[str, list[int]] = {m: [] for m in meters}
    for op in ops:
        meter = meters[op[1]]
        try:
            if op[0] == "post":
                _, _, kind, amount = op
                result = ledger.post(
                    kind, meter=meter, amount_fen=amount, operator="p", channel="system"
                )
                model[meter] += amount if kind in RECHARGES else -amount
                posted[meter].append(result.transaction_id)
            elif op[0] == "reverse" and posted[meter]:
                target = posted[meter][op[2] % len(posted[meter])]
                original = ledger.transaction(target)
                ledger.reverse(target, operator="p", reason="test")
                model[meter] -= original.amount_fen
            elif op[0] == "refund":
                ledger.refund(meter, operator="p")
                model[meter] = 0
                closed.add(meter)
            elif op[0] == "reopen" and meter in closed:
                wallets[meter] = ledger.open_wallet(meter, merchant)
                closed.discard(meter)
                posted[meter] = []
        except LedgerError as refused:
            # Only the documented refusals: closed wallets, debts, repeated reversals.
            assert meter in closed or "owes" in str(refused) or "reversed" in str(refused)
        assert result_balance_ok(ledger, db, meter, wallets[meter].id, model[meter])
    assert ledger.balances(meters) == model
    assert unbalanced_transactions(db) == []
    for meter in meters:
        running = 0
        listed = ledger.transactions(TransactionFilter(meter=meter), None)
        for tx in sorted(listed, key=lambda t: t.id):
            if tx.account_id != wallets[meter].id:
                continue
            running += tx.amount_fen
            assert tx.balance_after_fen == running


def result_balance_ok(
    ledger: Ledger, db: psycopg2.extensions.connection, meter: str, wallet_id: int, expected: int
) -> bool:
    """Whether the ledger, the raw postings and the model agree on one wallet."""
    return ledger.balance(meter) == postings_sum(db, wallet_id) == expected
