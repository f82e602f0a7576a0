"""The same valid notification 1,000 times at once: one posting, one balance change."""

from __future__ import annotations

import asyncio

import psycopg2.extensions
from tornado.httpclient import HTTPResponse

from tests.payments.app_rig import payment_app
from tests.payments.conftest import NOW, count_postings
from tests.payments.signing import (
    alipay_body,
    alipay_fields,
    wechat_body,
    wechat_headers,
    wechat_transaction,
)

COPIES = 1_000


def balance_changes(db: psycopg2.extensions.connection, meter: str) -> int:
    """How many ledger transactions touched a meter's wallet."""
    with db, db.cursor() as cur:
        cur.execute("SELECT count(*) FROM ledger_transactions WHERE meter = %s", (meter,))
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def test_wechat_storm(run, site, sides, db, db_url, clock, ledger, new_order, orders):
    order = new_order("G0001", 8800, "wechat")
    before_balance = ledger.balance("G0001")
    before_changes = balance_changes(db, "G0001")
    side = sides["M1"]
    body = wechat_body(side, wechat_transaction(side, order.out_trade_no, "4200STORM", 8800))
    headers = wechat_headers(side, body, int(NOW))

    async def main() -> list[HTTPResponse]:
        async with payment_app(site, db_url, clock, workers=8, max_clients=COPIES) as app:
            sent: list[HTTPResponse] = await asyncio.gather(
                *(app.post("/pay/wechat/M1", body, headers) for _ in range(COPIES))
            )
            return sent

    answers = run(main())
    assert [a.code for a in answers] == [204] * COPIES
    assert count_postings(db, "wechat", "4200STORM") == 1
    assert balance_changes(db, "G0001") == before_changes + 1
    assert ledger.balance("G0001") == before_balance + 8800
    paid = orders.get(order.out_trade_no)
    assert paid is not None
    assert paid.state == "paid"


def test_alipay_storm(run, site, sides, db, db_url, clock, ledger, new_order):
    order = new_order("E0001", 4321, "alipay")
    before_balance = ledger.balance("E0001")
    side = sides["M1"]
    body = alipay_body(side, alipay_fields(side, order.out_trade_no, "2026STORM", 4321))

    async def main() -> list[HTTPResponse]:
        async with payment_app(site, db_url, clock, workers=8, max_clients=200) as app:
            sent: list[HTTPResponse] = await asyncio.gather(
                *(app.post("/pay/alipay/M1", body) for _ in range(COPIES))
            )
            return sent

    answers = run(main())
    assert {(a.code, a.body) for a in answers} == {(200, b"success")}
    assert count_postings(db, "alipay", "2026STORM") == 1
    assert ledger.balance("E0001") == before_balance + 4321
