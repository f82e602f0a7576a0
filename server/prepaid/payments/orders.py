"""Recharge orders: a unique out_trade_no bound to the meter's merchant, and its payload."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2.extensions
from psycopg2.extras import Json

from config.model import Merchant, Site
from server.clock import Clock, SystemClock

Cursor = psycopg2.extensions.cursor

PROVIDERS = ("wechat", "alipay")
MAX_ORDER_FEN = 10_000_000  # 100,000 yuan: far above any recharge, far below int32 fen
ORDER_LIFETIME = timedelta(hours=2)
# "PG" + UTC date + 80 random bits in hex: 30 characters, within WeChat's 6..32 [0-9A-Za-z].
_RANDOM_BYTES = 10

_COLUMNS = (
    "out_trade_no, meter, merchant, provider, amount_fen, state, payload,"
    " provider_txn_id, created_at, paid_at"
)


class OrderError(ValueError):
    """An order that cannot be created: unknown meter, no merchant, bad amount or provider."""


@dataclass(frozen=True, slots=True)
class Order:
    """A recharge order as stored; `payload` is the request we would send to the provider."""

    out_trade_no: str
    meter: str
    merchant: str
    provider: str
    amount_fen: int
    state: str
    payload: Mapping[str, Any]
    provider_txn_id: str | None
    created_at: datetime
    paid_at: datetime | None


def new_out_trade_no(now: datetime) -> str:
    """A fresh, unguessable merchant order number."""
    return f"PG{now.astimezone(UTC):%Y%m%d}{secrets.token_hex(_RANDOM_BYTES)}"


def yuan_text(fen: int) -> str:
    """Fen as the yuan text Alipay expects ("12.50")."""
    return f"{fen // 100}.{fen % 100:02d}"


def provider_payload(
    provider: str,
    merchant: Merchant,
    out_trade_no: str,
    amount_fen: int,
    description: str,
    notify_url: str,
    expires: datetime,
) -> dict[str, Any]:
    """The body we would POST to the provider to open the payment (not sent from here).

    WeChat Pay: `POST /v3/pay/transactions/native` (a JSAPI order adds `payer.openid`).
    Alipay: the `biz_content` and common parameters of `alipay.trade.precreate`.
    """
    if provider == "wechat":
        if merchant.wechat is None:
            raise OrderError(f"merchant {merchant.id} has no WeChat Pay account")
        return {
            "endpoint": "POST https://api.mch.weixin.qq.com/v3/pay/transactions/native",
            "body": {
                "appid": merchant.wechat.appid,
                "mchid": merchant.wechat.mchid,
                "description": description,
                "out_trade_no": out_trade_no,
                "time_expire": expires.isoformat(timespec="seconds"),
                "notify_url": notify_url,
                "amount": {"total": amount_fen, "currency": "CNY"},
            },
        }
    if merchant.alipay is None:
        raise OrderError(f"merchant {merchant.id} has no Alipay account")
    return {
        "endpoint": "https://openapi.alipay.com/gateway.do",
        "method": "alipay.trade.precreate",
        "app_id": merchant.alipay.app_id,
        "charset": "utf-8",
        "sign_type": "RSA2",
        "notify_url": notify_url,
        "biz_content": {
            "out_trade_no": out_trade_no,
            "total_amount": yuan_text(amount_fen),
            "subject": description,
            "seller_id": merchant.alipay.seller_id,
            "time_expire": expires.strftime("%Y-%m-%d %H:%M:%S"),
        },
    }


class PaymentOrders:
    """The payment_orders table: create orders, read them, lock and settle them."""

    def __init__(
        self,
        conn: psycopg2.extensions.connection,
        site: Site,
        *,
        notify_base_url: str,
        clock: Clock | None = None,
    ) -> None:
        """Orders of `site`; notify URLs are `notify_base_url` + the merchant's notify path."""
        self._conn = conn
        self.site = site
        self.notify_base_url = notify_base_url.rstrip("/")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()

    @contextmanager
    def _transaction(self, cur: Cursor | None) -> Iterator[Cursor]:
        if cur is not None:
            yield cur
            return
        with self._lock, self._conn, self._conn.cursor() as own:
            yield own

    def merchant_of(self, meter_id: str) -> Merchant:
        """The merchant that takes a meter's payments: the meter's own, else its area's."""
        try:
            meter = self.site.meter(meter_id)
        except KeyError as problem:
            raise OrderError(str(problem.args[0])) from None
        if meter.billing != "prepaid":
            raise OrderError(f"meter {meter_id} is {meter.billing}, not prepaid")
        merchant_id = meter.merchant or self.site.area(meter.area).merchant
        if merchant_id is None:
            raise OrderError(f"meter {meter_id} has no merchant (neither it nor area {meter.area})")
        return self.site.merchant(merchant_id)

    def create_order(
        self, meter: str, amount_fen: int, provider: str, *, cur: Cursor | None = None
    ) -> Order:
        """A new order for recharging `meter` with `amount_fen` through `provider`."""
        if provider not in PROVIDERS:
            raise OrderError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
        if (
            not isinstance(amount_fen, int)
            or isinstance(amount_fen, bool)
            or not 0 < amount_fen <= MAX_ORDER_FEN
        ):
            raise OrderError(f"amount must be 1..{MAX_ORDER_FEN} fen, got {amount_fen!r}")
        merchant = self.merchant_of(meter)
        account = merchant.wechat if provider == "wechat" else merchant.alipay
        if account is None:
            raise OrderError(f"merchant {merchant.id} of meter {meter} does not take {provider}")
        now = datetime.fromtimestamp(self.clock.time(), UTC)
        out_trade_no = new_out_trade_no(now)
        payload = provider_payload(
            provider,
            merchant,
            out_trade_no,
            amount_fen,
            f"电费充值 {meter}",
            self.notify_base_url + account.notify_path,
            now + ORDER_LIFETIME,
        )
        with self._transaction(cur) as tx:
            tx.execute(
                "INSERT INTO payment_orders"
                " (out_trade_no, meter, merchant, provider, amount_fen, state, payload,"
                " created_at) VALUES (%s, %s, %s, %s, %s, 'created', %s, %s)",
                (out_trade_no, meter, merchant.id, provider, amount_fen, Json(payload), now),
            )
        return Order(
            out_trade_no,
            meter,
            merchant.id,
            provider,
            amount_fen,
            "created",
            payload,
            None,
            now,
            None,
        )

    def get(self, out_trade_no: str, *, cur: Cursor | None = None) -> Order | None:
        """The order with this number, None when there is none."""
        with self._transaction(cur) as tx:
            return select_order(tx, out_trade_no, for_update=False)


def select_order(cur: Cursor, out_trade_no: str, *, for_update: bool) -> Order | None:
    """Read one order; `for_update` locks its row until the transaction ends."""
    lock = " FOR UPDATE" if for_update else ""
    cur.execute(
        f"SELECT {_COLUMNS} FROM payment_orders WHERE out_trade_no = %s{lock}",  # noqa: S608
        (out_trade_no,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return Order(
        out_trade_no=row[0],
        meter=row[1],
        merchant=row[2],
        provider=row[3],
        amount_fen=int(row[4]),
        state=row[5],
        payload=row[6],
        provider_txn_id=row[7],
        created_at=row[8],
        paid_at=row[9],
    )


def mark_paid(cur: Cursor, out_trade_no: str, provider_txn_id: str, paid_at: datetime) -> None:
    """Record an order as paid by this provider transaction (inside the caller's transaction)."""
    cur.execute(
        "UPDATE payment_orders SET state = 'paid', provider_txn_id = %s, paid_at = %s"
        " WHERE out_trade_no = %s AND state <> 'paid'",
        (provider_txn_id, paid_at, out_trade_no),
    )
    if cur.rowcount != 1:
        raise RuntimeError(f"order {out_trade_no} was not open when it was marked paid")
