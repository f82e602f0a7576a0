"""Immutability, invoicing and its audit, and the audit row of every money movement."""

from __future__ import annotations

import json

import psycopg2
import pytest

from server.prepaid.records import LedgerError


@pytest.fixture
def posted(ledger, fresh):
    meter = fresh("E")
    ledger.open_wallet(meter, fresh("M"))
    return ledger.post(
        "counter_recharge", meter=meter, amount_fen=1_000, operator="a", channel="hmi"
    )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_postings SET amount_fen = amount_fen * 2 WHERE transaction_id = %s",
        "DELETE FROM ledger_postings WHERE transaction_id = %s",
        "UPDATE ledger_transactions SET amount_fen = 1 WHERE id = %s",
        "UPDATE ledger_transactions SET operator = 'mallory' WHERE id = %s",
        "DELETE FROM ledger_transactions WHERE id = %s",
        "UPDATE ledger_accounts SET merchant = 'X' WHERE id ="
        " (SELECT account_id FROM ledger_transactions WHERE id = %s)",
        "DELETE FROM ledger_accounts WHERE id ="
        " (SELECT account_id FROM ledger_transactions WHERE id = %s)",
    ],
)
def test_postings_transactions_and_accounts_refuse_changes(db, posted, statement):
    with db.cursor() as cur, pytest.raises(psycopg2.Error, match=r"immutable|permanent"):
        cur.execute(statement, (posted.transaction_id,))
    db.rollback()


@pytest.mark.parametrize("table", ["ledger_postings", "ledger_transactions", "ledger_accounts"])
def test_truncate_is_refused(db, posted, table):
    with db.cursor() as cur, pytest.raises(psycopg2.Error, match="refused"):
        cur.execute(f"TRUNCATE {table} CASCADE")
    db.rollback()


def test_mark_invoiced_sets_the_flag_once_and_is_audited(ledger, db, posted, clock):
    marked = ledger.mark_invoiced(posted.transaction_id, "finance1")
    assert (marked.invoiced, marked.invoiced_by, marked.invoiced_at) == (
        True,
        "finance1",
        clock.time(),
    )
    with pytest.raises(LedgerError, match="already invoiced"):
        ledger.mark_invoiced(posted.transaction_id, "finance2")
    with pytest.raises(LedgerError, match="no ledger transaction"):
        ledger.mark_invoiced(10**12, "finance2")
    with db.cursor() as cur:
        cur.execute(
            "SELECT actor, channel, target, detail FROM audit_log"
            " WHERE action = 'ledger.invoiced' AND (detail->>'transaction_id')::bigint = %s",
            (posted.transaction_id,),
        )
        rows = cur.fetchall()
        assert [(r[0], r[1], r[2]) for r in rows] == [("finance1", "hmi", marked.meter)]
        with pytest.raises(psycopg2.Error, match="immutable"):
            cur.execute(
                "UPDATE ledger_transactions SET invoiced = false, invoiced_at = NULL,"
                " invoiced_by = NULL WHERE id = %s",
                (posted.transaction_id,),
            )
    db.rollback()


def test_every_money_movement_writes_an_audit_row(ledger, db, fresh):
    meter = fresh("E")
    ledger.open_wallet(meter, fresh("M"))
    event = fresh("wx")
    ledger.post(
        "wechat_recharge",
        meter=meter,
        amount_fen=900,
        operator="wechat",
        channel="api",
        provider="wechat",
        provider_event_id=event,
    )
    shared = ledger.post(
        "shared_cost", meter=meter, amount_fen=25, operator="s", channel="system", reason="公摊 A1"
    )
    ledger.reverse(shared.transaction_id, operator="b", reason="公摊有误")
    ledger.refund(meter, operator="b")
    with db.cursor() as cur:
        cur.execute(
            "SELECT action, actor, channel, detail FROM audit_log WHERE target = %s ORDER BY id",
            (meter,),
        )
        rows = cur.fetchall()
    db.rollback()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("ledger.wechat_recharge", "wechat", "api"),
        ("ledger.shared_cost", "s", "system"),
        ("ledger.reversal", "b", "hmi"),
        ("ledger.refund", "b", "hmi"),
    ]
    detail = rows[0][3] if isinstance(rows[0][3], dict) else json.loads(rows[0][3])
    assert detail["amount_fen"] == 900
    assert detail["provider_event_id"] == event
    assert rows[2][3]["reverses"] == shared.transaction_id
    assert rows[3][3]["amount_fen"] == -900
    assert rows[2][3]["balance_after_fen"] == 900
