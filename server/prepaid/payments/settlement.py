"""Applying a verified payment: lock the order, check it, mark it paid and post, atomically."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import psycopg2
import psycopg2.extensions

from server.clock import Clock, SystemClock
from server.prepaid.payments.orders import mark_paid, select_order
from server.prepaid.payments.rejection import NOT_FOUND, CallbackRejected, mismatch
from server.prepaid.records import LedgerError, Posted

log = logging.getLogger(__name__)

Connection = psycopg2.extensions.connection
Cursor = psycopg2.extensions.cursor
T = TypeVar("T")

RECHARGE_KINDS = {"wechat": "wechat_recharge", "alipay": "alipay_recharge"}
SERVER_ERROR = 500


class RechargeLedger(Protocol):
    """The part of the ledger a payment needs: one idempotent posting per provider event."""

    def post(
        self,
        kind: str,
        *,
        meter: str,
        amount_fen: int,
        operator: str,
        channel: str,
        merchant: str | None = None,
        reason: str = "",
        provider: str | None = None,
        provider_event_id: str | None = None,
        cur: Cursor | None = None,
    ) -> Posted:
        """Post one transaction; a known provider event id posts nothing (duplicate=True)."""
        ...


LedgerFactory = Callable[[Connection], RechargeLedger]
AfterCommit = Callable[[], None]


class RechargeFollowUp(Protocol):
    """What a recharge does to its meter inside the recharge's own transaction.

    `before_recharge` runs before the posting (to take locks in the order settlement takes
    them); `after_recharge` runs after a new posting (e.g. enqueue the relay close) and may
    return what to run once the transaction has committed (e.g. publish command events).
    """

    def before_recharge(self, meter: str, *, cur: Cursor) -> None:
        """Prepare the meter's recharge in `cur`'s transaction."""
        ...

    def after_recharge(self, meter: str, posted: Posted, *, cur: Cursor) -> AfterCommit | None:
        """Act on the new posting in `cur`'s transaction; what to run after the commit."""
        ...


@dataclass(frozen=True, slots=True)
class PaidNotice:
    """What a verified notification says was paid, whatever the provider."""

    provider: str
    merchant: str
    out_trade_no: str
    provider_txn_id: str
    total_fen: int


@dataclass(frozen=True, slots=True)
class Settlement:
    """The outcome: the order's meter credited once; `duplicate` for a repeated notice."""

    out_trade_no: str
    meter: str
    amount_fen: int
    duplicate: bool
    receipt_no: str | None = None
    balance_after_fen: int | None = None


def settle(
    conn: Connection,
    ledger: RechargeLedger,
    notice: PaidNotice,
    *,
    clock: Clock,
    follow_up: RechargeFollowUp | None = None,
) -> Settlement:
    """Check `notice` against its order and, if new, mark it paid and post, in ONE transaction.

    The order row is locked first, so concurrent copies of one notification queue behind
    each other; the ledger's unique provider event id is the second guard. `follow_up`
    acts on the meter (its relay) in the same transaction as the posting.
    """
    after_commit: AfterCommit | None = None
    with conn, conn.cursor() as cur:
        order = select_order(cur, notice.out_trade_no, for_update=True)
        if order is None:
            raise CallbackRejected(NOT_FOUND, "ORDER", f"no order {notice.out_trade_no}")
        if order.provider != notice.provider or order.merchant != notice.merchant:
            raise mismatch(
                f"order {order.out_trade_no} is a {order.provider} order of merchant "
                f"{order.merchant}, not {notice.provider} of {notice.merchant}"
            )
        if order.amount_fen != notice.total_fen:
            raise mismatch(
                f"order {order.out_trade_no} is {order.amount_fen} fen, "
                f"the notification says {notice.total_fen}"
            )
        if order.state == "paid":
            if order.provider_txn_id != notice.provider_txn_id:
                raise mismatch(
                    f"order {order.out_trade_no} was paid by {order.provider_txn_id}, "
                    f"not {notice.provider_txn_id}"
                )
            return Settlement(order.out_trade_no, order.meter, order.amount_fen, duplicate=True)
        if follow_up is not None:
            follow_up.before_recharge(order.meter, cur=cur)
        try:
            posted = ledger.post(
                RECHARGE_KINDS[notice.provider],
                meter=order.meter,
                amount_fen=order.amount_fen,
                operator=notice.provider,
                channel="api",
                merchant=order.merchant,
                reason=f"order {order.out_trade_no}",
                provider=notice.provider,
                provider_event_id=notice.provider_txn_id,
                cur=cur,
            )
        except LedgerError as problem:
            # The money arrived but cannot be booked: fail loudly so the provider retries.
            raise CallbackRejected(SERVER_ERROR, "LEDGER", str(problem)) from None
        if posted.duplicate:
            raise mismatch(
                f"{notice.provider} transaction {notice.provider_txn_id} already paid "
                f"another order, not {order.out_trade_no}"
            )
        mark_paid(
            cur,
            order.out_trade_no,
            notice.provider_txn_id,
            datetime.fromtimestamp(clock.time(), UTC),
        )
        if follow_up is not None:
            after_commit = follow_up.after_recharge(order.meter, posted, cur=cur)
    if after_commit is not None:
        after_commit()
    return Settlement(
        order.out_trade_no,
        order.meter,
        order.amount_fen,
        duplicate=False,
        receipt_no=posted.receipt_no,
        balance_after_fen=posted.balance_after_fen,
    )


def close_unpaid(conn: Connection, provider: str, merchant: str, out_trade_no: str) -> bool:
    """Mark an unpaid order closed after the provider closed the trade; False if it was not open."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE payment_orders SET state = 'closed'"
            " WHERE out_trade_no = %s AND provider = %s AND merchant = %s AND state = 'created'",
            (out_trade_no, provider, merchant),
        )
        return cur.rowcount == 1


class SettlementWorkers:
    """Worker threads, each with its own database connection, that settle payments."""

    def __init__(
        self,
        db_url: str,
        ledger_factory: LedgerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
        follow_up: RechargeFollowUp | None = None,
    ) -> None:
        """Settle on up to `workers` connections to `db_url` at once; see `settle`."""
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.db_url = db_url
        self.ledger_factory = ledger_factory
        self.follow_up = follow_up
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="payments-db")
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg2.connect(self.db_url, connect_timeout=5)
            with self._lock:
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    def _settle_blocking(self, notice: PaidNotice) -> Settlement:
        conn = self._connection()
        try:
            return settle(
                conn,
                self.ledger_factory(conn),
                notice,
                clock=self.clock,
                follow_up=self.follow_up,
            )
        except psycopg2.InterfaceError:
            conn.close()  # a broken connection is replaced on the next call
            raise

    async def settle(self, notice: PaidNotice) -> Settlement:
        """Settle `notice` on a worker thread (CallbackRejected when it is refused)."""
        if self._closed:
            raise RuntimeError("the settlement workers are closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._settle_blocking, notice)

    async def close_unpaid(self, provider: str, merchant: str, out_trade_no: str) -> bool:
        """Mark an unpaid order closed on a worker thread; False if it was not open."""
        if self._closed:
            raise RuntimeError("the settlement workers are closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor,
            lambda: close_unpaid(self._connection(), provider, merchant, out_trade_no),
        )

    def close(self) -> None:
        """Wait for the running settlements, stop the threads and close the connections."""
        self._closed = True
        self._executor.shutdown(wait=True)
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
