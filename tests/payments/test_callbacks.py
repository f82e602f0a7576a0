"""The notify endpoints over real HTTP: valid notifications post once, forgeries post nothing."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from tornado.httpclient import HTTPResponse

from tests.payments.app_rig import payment_app
from tests.payments.conftest import NOW, count_postings, order_postings
from tests.payments.signing import (
    ProviderSide,
    alipay_body,
    alipay_fields,
    rsa_key,
    wechat_body,
    wechat_headers,
    wechat_transaction,
)

TS = int(NOW)
WECHAT_M1 = "/pay/wechat/M1"
ALIPAY_M1 = "/pay/alipay/M1"


def test_wechat_valid_then_retried(run, site, sides, db, db_url, clock, ledger, new_order, orders):
    order = new_order("E0001", 5000, "wechat")
    before = ledger.balance("E0001")
    side = sides["M1"]
    body = wechat_body(side, wechat_transaction(side, order.out_trade_no, "4200000001", 5000))

    async def main() -> tuple[HTTPResponse, HTTPResponse]:
        async with payment_app(site, db_url, clock) as app:
            first = await app.post(WECHAT_M1, body, wechat_headers(side, body, TS))
            clock.advance(3600)  # WeChat retries later with a fresh timestamp and signature
            again = await app.post(WECHAT_M1, body, wechat_headers(side, body, TS + 3600))
            return first, again

    first, again = run(main())
    assert (first.code, first.body) == (204, b"")
    assert (again.code, again.body) == (204, b"")
    assert ledger.balance("E0001") == before + 5000
    assert count_postings(db, "wechat", "4200000001") == 1
    paid = orders.get(order.out_trade_no)
    assert paid is not None
    assert (paid.state, paid.provider_txn_id) == ("paid", "4200000001")


Request = tuple[str, dict[str, str], bytes]
Build = Callable[[ProviderSide, ProviderSide, str], Request]


def forgeries() -> list[tuple[str, Build, int]]:
    """(name, build(side, other_side, order_no) -> (path, headers, body), status)."""

    def signed(
        side: ProviderSide, order_no: str, txn_id: str, total: int = 5000, **changes: object
    ) -> tuple[bytes, dict[str, str]]:
        body = wechat_body(side, wechat_transaction(side, order_no, txn_id, total, **changes))
        return body, wechat_headers(side, body, TS)

    def forged_signature(side: ProviderSide, other: ProviderSide, no: str) -> Request:
        body, headers = signed(side, no, "F1")
        headers = wechat_headers(side, body, TS, key=rsa_key("stranger"))
        return WECHAT_M1, headers, body

    def tampered_body(side: ProviderSide, other: ProviderSide, no: str) -> Request:
        body, headers = signed(side, no, "F2")
        return WECHAT_M1, headers, body.replace(b'"id": "EV-', b'"id": "EV-X')

    def old_timestamp(side: ProviderSide, other: ProviderSide, no: str) -> Request:
        body = signed(side, no, "F3")[0]
        return WECHAT_M1, wechat_headers(side, body, TS - 301), body

    def unknown_serial(side: ProviderSide, other: ProviderSide, no: str) -> Request:
        body = signed(side, no, "F4")[0]
        return WECHAT_M1, wechat_headers(side, body, TS, serial="PUB_KEY_ID_7777"), body

    def other_merchants_key(side: ProviderSide, other: ProviderSide, no: str) -> Request:
        body = signed(side, no, "F5")[0]
        return WECHAT_M1, wechat_headers(other, body, TS), body

    def wrong_apiv3_key(side: ProviderSide, other: ProviderSide, no: str) -> Request:
        txn = wechat_transaction(side, no, "F6", 5000)
        body = wechat_body(side, txn, apiv3_key=other.apiv3_key)
        return WECHAT_M1, wechat_headers(side, body, TS), body

    def mismatched_amount(side: ProviderSide, other: ProviderSide, no: str) -> Request:
        body, headers = signed(side, no, "F7", total=4999)
        return WECHAT_M1, headers, body

    def wrong_mchid(side: ProviderSide, other: ProviderSide, no: str) -> Request:
        body, headers = signed(side, no, "F8", mchid="1900000002")
        return WECHAT_M1, headers, body

    def unpaid_state(side: ProviderSide, other: ProviderSide, no: str) -> Request:
        body, headers = signed(side, no, "F9", trade_state="NOTPAY")
        return WECHAT_M1, headers, body

    def other_merchants_endpoint(side: ProviderSide, other: ProviderSide, no: str) -> Request:
        # Correctly signed by M2 for M2's endpoint, but the order belongs to M1.
        body, headers = signed(other, no, "F10")
        return "/pay/wechat/M2", headers, body

    def unknown_order(side: ProviderSide, other: ProviderSide, no: str) -> Request:
        body, headers = signed(side, "PG-no-such-order", "F11")
        return WECHAT_M1, headers, body

    return [
        ("forged_signature", forged_signature, 401),
        ("tampered_body", tampered_body, 401),
        ("old_timestamp", old_timestamp, 401),
        ("unknown_serial", unknown_serial, 401),
        ("other_merchants_key", other_merchants_key, 401),
        ("wrong_apiv3_key", wrong_apiv3_key, 400),
        ("mismatched_amount", mismatched_amount, 409),
        ("wrong_mchid", wrong_mchid, 409),
        ("unpaid_state", unpaid_state, 422),
        ("other_merchants_endpoint", other_merchants_endpoint, 409),
        ("unknown_order", unknown_order, 404),
    ]


@pytest.mark.parametrize(("name", "build", "status"), forgeries(), ids=[f[0] for f in forgeries()])
def test_wechat_forgeries_post_nothing(
    run, site, sides, db, db_url, clock, ledger, new_order, orders, name, build, status
):
    order = new_order("E0001", 5000, "wechat")
    before = ledger.balance("E0001")
    path, headers, body = build(sides["M1"], sides["M2"], order.out_trade_no)

    async def main() -> HTTPResponse:
        async with payment_app(site, db_url, clock) as app:
            return await app.post(path, body, headers)

    response = run(main())
    assert response.code == status, response.body
    answer = json.loads(response.body)
    assert answer["code"] == "FAIL"
    assert answer["message"]
    assert ledger.balance("E0001") == before
    assert order_postings(db, order.out_trade_no) == 0
    stored = orders.get(order.out_trade_no)
    assert stored is not None
    assert stored.state == "created"


def test_meter_without_wallet_answers_5xx(run, site, sides, db, db_url, clock, orders):
    order = orders.create_order("G0002", 700, "wechat")  # G0002's wallet is never opened
    side = sides["M2"]
    body = wechat_body(side, wechat_transaction(side, order.out_trade_no, "NW-1", 700))

    async def main() -> HTTPResponse:
        async with payment_app(site, db_url, clock) as app:
            return await app.post("/pay/wechat/M2", body, wechat_headers(side, body, TS))

    response = run(main())
    assert response.code == 500
    assert json.loads(response.body)["code"] == "FAIL"
    assert count_postings(db, "wechat", "NW-1") == 0
    stored = orders.get(order.out_trade_no)
    assert stored is not None
    assert stored.state == "created"


def test_alipay_success_then_finished(
    run, site, sides, db, db_url, clock, ledger, new_order, orders
):
    order = new_order("P0001", 1250, "alipay")
    before = ledger.balance("P0001")
    side = sides["M1"]
    success = alipay_body(side, alipay_fields(side, order.out_trade_no, "2026112522100", 1250))
    finished = alipay_body(
        side,
        alipay_fields(
            side, order.out_trade_no, "2026112522100", 1250, trade_status="TRADE_FINISHED"
        ),
    )
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

    async def main() -> list[HTTPResponse]:
        async with payment_app(site, db_url, clock) as app:
            return [await app.post(ALIPAY_M1, body, form) for body in (success, success, finished)]

    answers = run(main())
    assert [(a.code, a.body) for a in answers] == [(200, b"success")] * 3
    assert ledger.balance("P0001") == before + 1250
    assert count_postings(db, "alipay", "2026112522100") == 1
    stored = orders.get(order.out_trade_no)
    assert stored is not None
    assert stored.state == "paid"


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("forged", 401),
        ("tampered", 401),
        ("amount", 409),
        ("app_id", 409),
        ("seller_id", 409),
        ("unknown_order", 404),
    ],
)
def test_alipay_forgeries_post_nothing(
    run, site, sides, db, db_url, clock, ledger, new_order, case, status
):
    order = new_order("P0001", 1250, "alipay")
    before = ledger.balance("P0001")
    side = sides["M1"]
    no = "PG-unknown" if case == "unknown_order" else order.out_trade_no
    changes = {
        "amount": {"total_amount": "12.49"},
        "app_id": {"app_id": "2021000000000009"},
        "seller_id": {"seller_id": "2088000000000009"},
    }.get(case, {})
    fields = alipay_fields(side, no, f"AF-{case}", 1250, **changes)
    body = alipay_body(side, fields, key=rsa_key("stranger") if case == "forged" else None)
    if case == "tampered":
        body = body.replace(b"total_amount=12.50", b"total_amount=125.00")

    async def main() -> HTTPResponse:
        async with payment_app(site, db_url, clock) as app:
            return await app.post(ALIPAY_M1, body)

    response = run(main())
    assert (response.code, response.body) == (status, b"fail")
    assert ledger.balance("P0001") == before
    assert order_postings(db, order.out_trade_no) == 0


def test_alipay_closed_trade_is_acknowledged_without_posting(
    run, site, sides, db, db_url, clock, new_order, orders
):
    order = new_order("P0001", 300, "alipay")
    side = sides["M1"]
    fields = alipay_fields(side, order.out_trade_no, "AC-1", 300, trade_status="TRADE_CLOSED")

    async def main() -> HTTPResponse:
        async with payment_app(site, db_url, clock) as app:
            return await app.post(ALIPAY_M1, alipay_body(side, fields))

    response = run(main())
    assert (response.code, response.body) == (200, b"success")
    assert order_postings(db, order.out_trade_no) == 0
    stored = orders.get(order.out_trade_no)
    assert stored is not None
    assert stored.state == "closed"


def test_only_post_is_allowed(run, site, db_url, clock):
    async def main() -> HTTPResponse:
        async with payment_app(site, db_url, clock) as app:
            return await app.client.fetch(app.base + WECHAT_M1, raise_error=False)

    assert run(main()).code == 405


def test_routes_follow_the_merchants_notify_paths(site, merchant_keys):
    from server.prepaid.payments import callback_routes
    from server.prepaid.payments.callbacks import AlipayNotifyHandler, WechatNotifyHandler

    class Idle:
        clock = None

    routes = callback_routes(site, Idle(), keys=merchant_keys)  # type: ignore[arg-type]
    found = {(r.regex.pattern, r.target) for r in routes}
    assert found == {
        ("/pay/wechat/M1$", WechatNotifyHandler),
        ("/pay/wechat/M2$", WechatNotifyHandler),
        ("/pay/alipay/M1$", AlipayNotifyHandler),
    }
