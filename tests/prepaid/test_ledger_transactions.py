"""Idempotency under concurrency, joining a caller's transaction, and receipt numbering."""

from __future__ import annotations

import threading

import pytest

from server.prepaid.ledger import Ledger
from server.prepaid.records import TransactionFilter, WalletClosed

THREADS = 50


def test_a_duplicate_provider_event_returns_the_first_posting(ledger, fresh):
    meter = fresh("E")
    ledger.open_wallet(meter, fresh("M"))
    event = fresh("wx")
    args = {
        "meter": meter,
        "amount_fen": 5_000,
        "operator": "wechat",
        "channel": "api",
        "provider": "wechat",
        "provider_event_id": event,
    }
    first = ledger.post("wechat_recharge", **args)
    again = ledger.post("wechat_recharge", **args)
    assert not first.duplicate and again.duplicate
    assert (again.transaction_id, again.receipt_no, again.balance_after_fen) == (
        first.transaction_id,
        first.receipt_no,
        first.balance_after_fen,
    )
    assert ledger.balance(meter) == 5_000
    # The same id from another provider is another event.
    other = ledger.post("alipay_recharge", **{**args, "provider": "alipay"})
    assert not other.duplicate and ledger.balance(meter) == 10_000


def test_fifty_concurrent_callbacks_of_one_event_post_once(ledger, connect, clock, fresh):
    meter, merchant = fresh("E"), fresh("M")
    ledger.open_wallet(meter, merchant)
    event = fresh("wx")
    barrier = threading.Barrier(THREADS)
    results = []
    errors = []
    lock = threading.Lock()
    conns = [connect() for _ in range(THREADS)]

    def callback(conn):
        try:
            mine = Ledger(conn, clock=clock)
            barrier.wait(timeout=30)
            posted = mine.post(
                "wechat_recharge",
                meter=meter,
                amount_fen=777,
                operator="wechat",
                channel="api",
                provider="wechat",
                provider_event_id=event,
            )
            with lock:
                results.append(posted)
        except Exception as exc:  # reported below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=callback, args=(c,)) for c in conns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(results) == THREADS
    assert sum(not p.duplicate for p in results) == 1
    assert len({p.transaction_id for p in results}) == 1
    assert ledger.balance(meter) == 777
    listed = ledger.transactions(TransactionFilter(meter=meter))
    assert [t.provider_event_id for t in listed] == [event]
    # The losers gave their receipt numbers back: the next one follows on.
    nxt = ledger.post("counter_recharge", meter=meter, amount_fen=1, operator="a", channel="hmi")
    assert nxt.receipt_no.endswith("-000002")


def test_joining_a_callers_transaction_then_rolling_back_leaves_nothing(ledger, db, fresh):
    meter, merchant = fresh("E"), fresh("M")
    ledger.open_wallet(meter, merchant)
    with db.cursor() as cur:
        posted = ledger.post(
            "counter_recharge", meter=meter, amount_fen=400, operator="a", channel="hmi", cur=cur
        )
        ledger.post(
            "energy_deduction", meter=meter, amount_fen=50, operator="s", channel="system", cur=cur
        )
        cur.execute(
            "SELECT count(*) FROM ledger_transactions WHERE id = %s", (posted.transaction_id,)
        )
        assert cur.fetchone() == (1,)
    db.rollback()
    assert ledger.balance(meter) == 0
    assert ledger.transactions(TransactionFilter(meter=meter)) == []
    first = ledger.post("counter_recharge", meter=meter, amount_fen=1, operator="a", channel="hmi")
    assert first.receipt_no == f"{merchant}-2024-000001"


def test_a_refused_posting_leaves_the_callers_transaction_usable(ledger, db, fresh):
    meter, closed = fresh("E"), fresh("E")
    merchant = fresh("M")
    ledger.open_wallet(meter, merchant)
    ledger.open_wallet(closed, merchant)
    ledger.refund(closed, operator="a")
    with db.cursor() as cur:
        ledger.post(
            "counter_recharge", meter=meter, amount_fen=10, operator="a", channel="hmi", cur=cur
        )
        with pytest.raises(WalletClosed):
            ledger.post(
                "counter_recharge",
                meter=closed,
                amount_fen=10,
                operator="a",
                channel="hmi",
                cur=cur,
            )
        ledger.post(
            "counter_recharge", meter=meter, amount_fen=5, operator="a", channel="hmi", cur=cur
        )
    db.commit()
    assert ledger.balance(meter) == 15
    numbers = [t.receipt_no for t in ledger.transactions(TransactionFilter(merchant=merchant))]
    assert numbers == [f"{merchant}-2024-00000{n}" for n in (3, 2, 1)]


def test_receipt_numbers_are_sequential_per_merchant_and_restart_each_year(ledger, fresh, clock):
    m1, m2 = fresh("M"), fresh("M")
    e1, e2 = fresh("E"), fresh("E")
    ledger.open_wallet(e1, m1)
    ledger.open_wallet(e2, m2)
    seen = []
    for n in range(6):
        meter = e1 if n % 3 else e2
        seen.append(
            ledger.post(
                "counter_recharge", meter=meter, amount_fen=1, operator="a", channel="hmi"
            ).receipt_no
        )
    assert [r for r in seen if r.startswith(m1)] == [f"{m1}-2024-{n:06d}" for n in (1, 2, 3, 4)]
    assert [r for r in seen if r.startswith(m2)] == [f"{m2}-2024-{n:06d}" for n in (1, 2)]
    # 2024-12-31 16:00 UTC is 2025-01-01 00:00 in China.
    clock.set(1_735_660_800.0)
    nxt = ledger.post("counter_recharge", meter=e1, amount_fen=1, operator="a", channel="hmi")
    assert nxt.receipt_no == f"{m1}-2025-000001"
    # A recharge paid to another merchant is numbered by that merchant.
    paid = ledger.post(
        "counter_recharge", meter=e1, amount_fen=1, operator="a", channel="hmi", merchant=m2
    )
    assert paid.receipt_no == f"{m2}-2025-000001"
