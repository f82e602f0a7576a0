"""Recharge orders: numbering, merchant binding, payloads and refusals."""

from __future__ import annotations

import re

import pytest

from server.prepaid.payments import OrderError, PaymentOrders
from server.prepaid.payments.orders import MAX_ORDER_FEN, yuan_text
from tests.payments.conftest import NOTIFY_BASE


def test_wechat_order_bound_to_the_areas_merchant(orders: PaymentOrders) -> None:
    order = orders.create_order("E0001", 5000, "wechat")
    assert order.merchant == "M1"
    assert order.state == "created"
    assert re.fullmatch(r"PG\d{8}[0-9a-f]{20}", order.out_trade_no)
    body = order.payload["body"]
    assert body["mchid"] == "1900000001"
    assert body["appid"] == "wx0000000000000001"
    assert body["amount"] == {"total": 5000, "currency": "CNY"}
    assert body["notify_url"] == NOTIFY_BASE + "/pay/wechat/M1"
    assert body["out_trade_no"] == order.out_trade_no
    stored = orders.get(order.out_trade_no)
    assert stored is not None
    assert (stored.meter, stored.amount_fen, stored.payload) == ("E0001", 5000, order.payload)


def test_meters_own_merchant_wins(orders: PaymentOrders) -> None:
    assert orders.create_order("E0003", 100, "wechat").merchant == "M2"


def test_alipay_payload(orders: PaymentOrders) -> None:
    order = orders.create_order("P0001", 1205, "alipay")
    biz = order.payload["biz_content"]
    assert order.payload["app_id"] == "2021000000000001"
    assert order.payload["notify_url"] == NOTIFY_BASE + "/pay/alipay/M1"
    assert biz["total_amount"] == "12.05"
    assert biz["seller_id"] == "2088000000000001"


def test_numbers_are_unique(orders: PaymentOrders) -> None:
    numbers = {orders.create_order("E0001", 1, "wechat").out_trade_no for _ in range(50)}
    assert len(numbers) == 50


@pytest.mark.parametrize(
    ("meter", "amount", "provider", "message"),
    [
        ("NOPE", 100, "wechat", "no meter"),
        ("E0002", 100, "wechat", "postpaid"),
        ("E0003", 100, "alipay", "does not take alipay"),
        ("E0001", 0, "wechat", "amount"),
        ("E0001", -5, "wechat", "amount"),
        ("E0001", MAX_ORDER_FEN + 1, "wechat", "amount"),
        ("E0001", 12.5, "wechat", "amount"),
        ("E0001", True, "wechat", "amount"),
        ("E0001", 100, "paypal", "provider"),
    ],
)
def test_refusals(orders, meter, amount, provider, message):
    with pytest.raises(OrderError, match=message):
        orders.create_order(meter, amount, provider)


def test_unknown_order_is_none(orders: PaymentOrders) -> None:
    assert orders.get("PG-missing") is None


@pytest.mark.parametrize(("fen", "text"), [(1, "0.01"), (100, "1.00"), (123456, "1234.56")])
def test_yuan_text(fen: int, text: str) -> None:
    assert yuan_text(fen) == text
