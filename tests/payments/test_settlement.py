"""Settling a verified payment against its order, in one transaction with the posting."""

from __future__ import annotations

import pytest

from server.prepaid.payments import CallbackRejected, Order, PaidNotice, settle
from server.prepaid.payments.settlement import close_unpaid
from tests.payments.conftest import count_postings, order_postings


def notice(order: Order, txn: str, total: int | None = None) -> PaidNotice:
    return PaidNotice(
        order.provider,
        order.merchant,
        order.out_trade_no,
        txn,
        order.amount_fen if total is None else total,
    )


def test_settles_once(db, clock, ledger, new_order, orders):
    order = new_order("E0001", 600, "wechat")
    before = ledger.balance("E0001")
    first = settle(db, ledger, notice(order, "S-1"), clock=clock)
    second = settle(db, ledger, notice(order, "S-1"), clock=clock)
    assert not first.duplicate
    assert first.balance_after_fen == before + 600
    assert first.receipt_no
    assert second.duplicate
    assert ledger.balance("E0001") == before + 600
    stored = orders.get(order.out_trade_no)
    assert stored is not None
    assert stored.paid_at is not None
    assert stored.paid_at.timestamp() == clock.time()


def test_one_transaction_cannot_pay_two_orders(db, clock, ledger, new_order, orders):
    a = new_order("E0001", 600, "wechat")
    b = new_order("E0001", 600, "wechat")
    settle(db, ledger, notice(a, "S-2"), clock=clock)
    with pytest.raises(CallbackRejected) as caught:
        settle(db, ledger, notice(b, "S-2"), clock=clock)
    assert caught.value.status == 409
    assert "already paid another order" in caught.value.message
    stored = orders.get(b.out_trade_no)
    assert stored is not None
    assert stored.state == "created"
    assert count_postings(db, "wechat", "S-2") == 1


def test_paid_order_refuses_another_transaction(db, clock, ledger, new_order):
    order = new_order("E0001", 600, "wechat")
    settle(db, ledger, notice(order, "S-3"), clock=clock)
    with pytest.raises(CallbackRejected, match="was paid by S-3"):
        settle(db, ledger, notice(order, "S-4"), clock=clock)
    assert order_postings(db, order.out_trade_no) == 1


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"total_fen": 601}, 409),
        ({"provider": "alipay"}, 409),
        ({"merchant": "M2"}, 409),
        ({"out_trade_no": "PG-none"}, 404),
    ],
)
def test_refusals_roll_back(db, clock, ledger, new_order, change, status):
    order = new_order("E0001", 600, "wechat")
    base = notice(order, "S-5")
    bad = PaidNotice(**{**{f: getattr(base, f) for f in base.__slots__}, **change})
    with pytest.raises(CallbackRejected) as caught:
        settle(db, ledger, bad, clock=clock)
    assert caught.value.status == status
    assert order_postings(db, order.out_trade_no) == 0
    assert count_postings(db, "wechat", "S-5") == 0


def test_closed_order_paid_late_is_still_credited(db, clock, ledger, new_order, orders):
    """Money that arrives after the trade was closed is booked, not lost."""
    order = new_order("E0001", 600, "alipay")
    assert close_unpaid(db, "alipay", "M1", order.out_trade_no)
    assert not close_unpaid(db, "alipay", "M1", order.out_trade_no)
    assert not settle(db, ledger, notice(order, "S-6"), clock=clock).duplicate
    stored = orders.get(order.out_trade_no)
    assert stored is not None
    assert stored.state == "paid"


def test_close_needs_the_orders_provider_and_merchant(db, new_order, orders):
    order = new_order("E0001", 600, "alipay")
    assert not close_unpaid(db, "wechat", "M1", order.out_trade_no)
    assert not close_unpaid(db, "alipay", "M2", order.out_trade_no)
    stored = orders.get(order.out_trade_no)
    assert stored is not None
    assert stored.state == "created"
