"""Postings, balances, reversals and refunds against real PostgreSQL."""

from __future__ import annotations

import psycopg2
import pytest

from server.prepaid.records import (
    AlreadyReversed,
    LedgerError,
    NoWallet,
    Page,
    TransactionFilter,
    WalletClosed,
)
from tests.prepaid.ledger_queries import postings_sum, unbalanced_transactions


def _accounts(db: psycopg2.extensions.connection, merchant: str) -> dict[str, int]:
    with db.cursor() as cur:
        cur.execute("SELECT kind, id FROM ledger_accounts WHERE merchant = %s", (merchant,))
        found = dict(cur.fetchall())
    db.rollback()
    return found


def test_recharge_and_deductions_move_money_between_the_right_accounts(ledger, db, fresh):
    meter, merchant = fresh("E"), fresh("M")
    wallet = ledger.open_wallet(meter, merchant, tenant="张三")
    ledger.post("counter_recharge", meter=meter, amount_fen=10_000, operator="a", channel="hmi")
    ledger.post("energy_deduction", meter=meter, amount_fen=1_234, operator="s", channel="system")
    ledger.post("property_fee", meter=meter, amount_fen=500, operator="s", channel="system")
    posted = ledger.post("capacity_fee", meter=meter, amount_fen=66, operator="s", channel="system")
    assert posted.balance_after_fen == 10_000 - 1_234 - 500 - 66
    assert ledger.balance(meter) == posted.balance_after_fen == postings_sum(db, wallet.id)
    kinds = _accounts(db, merchant)
    assert postings_sum(db, kinds["merchant_cash"]) == -10_000
    assert postings_sum(db, kinds["energy_revenue"]) == 1_234
    assert postings_sum(db, kinds["fee_revenue"]) == 566
    assert unbalanced_transactions(db) == []


def test_posting_needs_an_open_wallet(ledger, fresh):
    with pytest.raises(NoWallet, match="no wallet"):
        ledger.post("counter_recharge", meter=fresh("E"), amount_fen=1, operator="a", channel="hmi")


def test_open_wallet_is_idempotent_and_refuses_another_merchant(ledger, fresh):
    meter, merchant = fresh("E"), fresh("M")
    first = ledger.open_wallet(meter, merchant)
    assert ledger.open_wallet(meter, merchant) == first
    with pytest.raises(LedgerError, match="already has an open wallet"):
        ledger.open_wallet(meter, fresh("M"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"amount_fen": 1.5}, "integer fen"),
        ({"amount_fen": True}, "integer fen"),
        ({"amount_fen": 0}, "positive"),
        ({"amount_fen": -5}, "positive"),
        ({"operator": " "}, "actor"),
        ({"channel": "fax"}, "channel"),
        ({"provider": "wechat"}, "go together"),
        ({"provider": "wechat", "provider_event_id": ""}, "provider_event_id"),
        ({"reason": 7}, "reason"),
    ],
)
def test_bad_arguments_are_named(ledger, fresh, kwargs, message):
    meter = fresh("E")
    ledger.open_wallet(meter, fresh("M"))
    args = {"meter": meter, "amount_fen": 100, "operator": "a", "channel": "hmi", **kwargs}
    with pytest.raises(ValueError, match=message):
        ledger.post("counter_recharge", **args)
    assert ledger.balance(meter) == 0


def test_unknown_kind_is_refused(ledger, fresh):
    with pytest.raises(LedgerError, match="kind must be one of"):
        ledger.post("refund", meter=fresh("E"), amount_fen=1, operator="a", channel="hmi")


def test_an_unbalanced_transaction_is_refused_at_commit(ledger, db, fresh):
    meter = fresh("E")
    wallet = ledger.open_wallet(meter, fresh("M"))
    posted = ledger.post(
        "counter_recharge", meter=meter, amount_fen=100, operator="a", channel="hmi"
    )
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO ledger_postings (transaction_id, account_id, amount_fen)"
            " VALUES (%s, %s, 1)",
            (posted.transaction_id, wallet.id),
        )
    with pytest.raises(psycopg2.Error, match="does not balance"):
        db.commit()
    db.rollback()
    assert ledger.balance(meter) == 100


def test_reversal_mirrors_the_original_once_only(ledger, db, fresh):
    meter = fresh("E")
    ledger.open_wallet(meter, fresh("M"))
    first = ledger.post(
        "counter_recharge", meter=meter, amount_fen=300, operator="a", channel="hmi"
    )
    ledger.post("energy_deduction", meter=meter, amount_fen=100, operator="s", channel="system")
    undone = ledger.reverse(first.transaction_id, operator="b", reason="输错金额")
    assert undone.balance_after_fen == -100 == ledger.balance(meter)
    reversal = ledger.transaction(undone.transaction_id)
    assert (reversal.type, reversal.reverses, reversal.amount_fen) == (
        "reversal",
        first.transaction_id,
        -300,
    )
    assert ledger.transaction(first.transaction_id).reversed_by == undone.transaction_id
    with pytest.raises(AlreadyReversed, match="already reversed"):
        ledger.reverse(first.transaction_id, operator="b", reason="again")
    with pytest.raises(LedgerError, match="cannot be reversed"):
        ledger.reverse(undone.transaction_id, operator="b", reason="undo the undo")
    assert unbalanced_transactions(db) == []


def test_reversal_needs_a_reason_and_a_known_transaction(ledger, fresh):
    meter = fresh("E")
    ledger.open_wallet(meter, fresh("M"))
    posted = ledger.post("counter_recharge", meter=meter, amount_fen=1, operator="a", channel="hmi")
    with pytest.raises(LedgerError, match="needs a reason"):
        ledger.reverse(posted.transaction_id, operator="b", reason="  ")
    with pytest.raises(LedgerError, match="no ledger transaction"):
        ledger.reverse(10**12, operator="b", reason="x")


def test_the_database_refuses_a_second_reversal_even_without_the_check(ledger, db, fresh):
    meter = fresh("E")
    ledger.open_wallet(meter, fresh("M"))
    posted = ledger.post("counter_recharge", meter=meter, amount_fen=5, operator="a", channel="hmi")
    undone = ledger.reverse(posted.transaction_id, operator="b", reason="x")
    with db.cursor() as cur, pytest.raises(psycopg2.errors.UniqueViolation):
        cur.execute(
            "INSERT INTO ledger_transactions (receipt_no, type, account_id, meter, merchant,"
            " amount_fen, balance_after_fen, operator, channel, reason, reverses, created_at)"
            " SELECT receipt_no || '-dup', type, account_id, meter, merchant, amount_fen,"
            " balance_after_fen, operator, channel, reason, reverses, created_at"
            " FROM ledger_transactions WHERE id = %s",
            (undone.transaction_id,),
        )
    db.rollback()


def test_refund_pays_out_the_balance_and_closes_the_wallet(ledger, db, fresh):
    meter, merchant = fresh("E"), fresh("M")
    wallet = ledger.open_wallet(meter, merchant)
    ledger.post(
        "alipay_recharge",
        meter=meter,
        amount_fen=2_000,
        operator="ali",
        channel="api",
        provider="alipay",
        provider_event_id=fresh("ali"),
    )
    ledger.post("energy_deduction", meter=meter, amount_fen=450, operator="s", channel="system")
    refunded = ledger.refund(meter, operator="a", reason="退租")
    assert refunded.balance_after_fen == 0 == ledger.balance(meter)
    assert ledger.transaction(refunded.transaction_id).amount_fen == -1_550
    assert postings_sum(db, _accounts(db, merchant)["refunds_payable"]) == 1_550
    assert postings_sum(db, wallet.id) == 0
    with pytest.raises(WalletClosed, match="closed"):
        ledger.post("counter_recharge", meter=meter, amount_fen=1, operator="a", channel="hmi")
    with pytest.raises(WalletClosed):
        ledger.refund(meter, operator="a")
    earlier = ledger.transactions(TransactionFilter(meter=meter, types=("energy_deduction",)))
    with pytest.raises(LedgerError, match="is closed"):
        ledger.reverse(earlier[0].id, operator="a", reason="too late")
    # A new tenant gets a new wallet on the same meter.
    again = ledger.open_wallet(meter, merchant)
    assert again.id != wallet.id
    ledger.post("counter_recharge", meter=meter, amount_fen=7, operator="a", channel="hmi")
    assert ledger.balance(meter) == 7


def test_refund_of_an_empty_wallet_closes_it_with_no_postings(ledger, db, fresh):
    meter = fresh("E")
    ledger.open_wallet(meter, fresh("M"))
    refunded = ledger.refund(meter, operator="a")
    with db.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM ledger_postings WHERE transaction_id = %s",
            (refunded.transaction_id,),
        )
        assert cur.fetchone() == (0,)
    db.rollback()


def test_refund_refuses_a_wallet_in_debt(ledger, fresh):
    meter = fresh("E")
    ledger.open_wallet(meter, fresh("M"))
    ledger.post("energy_deduction", meter=meter, amount_fen=10, operator="s", channel="system")
    with pytest.raises(LedgerError, match="owes 10 fen"):
        ledger.refund(meter, operator="a")
    assert ledger.balance(meter) == -10


def test_balances_reads_many_meters_at_once(ledger, fresh):
    meters = [fresh("E") for _ in range(3)]
    merchant = fresh("M")
    for n, meter in enumerate(meters[:2]):
        ledger.open_wallet(meter, merchant)
        ledger.post(
            "counter_recharge", meter=meter, amount_fen=100 * (n + 1), operator="a", channel="hmi"
        )
    assert ledger.balances(meters) == {meters[0]: 100, meters[1]: 200}
    assert ledger.balances([]) == {}


def test_transactions_filter_and_page_newest_first(ledger, fresh, clock):
    meter, merchant = fresh("E"), fresh("M")
    ledger.open_wallet(meter, merchant)
    ids = []
    for n in range(5):
        clock.advance(60)
        ids.append(
            ledger.post(
                "counter_recharge", meter=meter, amount_fen=n + 1, operator="a", channel="hmi"
            ).transaction_id
        )
    page = ledger.transactions(TransactionFilter(merchant=merchant), Page(limit=2))
    assert [t.id for t in page] == ids[:-3:-1]
    rest = ledger.transactions(
        TransactionFilter(merchant=merchant), Page(limit=10, before_id=page[-1].id)
    )
    assert [t.id for t in rest] == ids[2::-1]
    later = ledger.transactions(TransactionFilter(meter=meter, since=clock.time() - 30))
    assert [t.id for t in later] == [ids[-1]]
    with pytest.raises(LedgerError, match="unknown transaction type"):
        ledger.transactions(TransactionFilter(types=("gift",)))
    with pytest.raises(LedgerError, match="page limit"):
        ledger.transactions(paging=Page(limit=0))
