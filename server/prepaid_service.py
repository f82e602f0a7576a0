"""The prepaid side of one process: the engine on the pipeline, and relays after recharges.

`PrepaidService` settles every energy batch on its own PostgreSQL connection, in a worker
thread so the event loop keeps scanning, one batch at a time in the order they arrived.
`RelayOnRecharge` is what a recharge (WeChat Pay, Alipay or the counter) runs in its own
transaction: lock the meter's settlement cursor first (the order settlement takes its
locks in, so the two never deadlock), post, then enqueue the relay close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg2
import psycopg2.extensions

from config import Site
from server.acquisition.pipeline import BatchPipeline, Subscription
from server.clock import Clock
from server.commands import CommandOutbox, Enqueued
from server.prepaid.engine import PrepaidEngine, SettlementReport
from server.prepaid.ledger import Ledger
from server.prepaid.records import Posted
from server.tags import ChangeSet, TagTable

log = logging.getLogger(__name__)

Cursor = psycopg2.extensions.cursor
STAGE = "prepaid"


def merchant_names(site: Site) -> dict[str, str]:
    """Merchant id → name, for receipts."""
    return {m.id: m.name for m in site.merchants}


class RelayOnRecharge:
    """A recharge's follow-up: the relay settlement opened is closed in the same transaction."""

    def __init__(self, engine: PrepaidEngine) -> None:
        self.engine = engine

    def before_recharge(self, meter: str, *, cur: Cursor) -> None:
        """Lock the meter's settlement cursor before its wallet, as settlement does."""
        self.engine.store.lock(cur, [meter])

    def after_recharge(
        self, meter: str, posted: Posted, *, cur: Cursor
    ) -> Callable[[], None] | None:
        """Enqueue the relay close the new balance allows; publish its events after commit."""
        enqueued = self.engine.on_recharge(meter, posted, cur=cur)
        if enqueued is None:
            return None
        log.info(
            "meter %s: recharge %s brings the balance to %d fen; relay close #%s queued",
            meter,
            posted.receipt_no,
            posted.balance_after_fen,
            ",".join(str(c.id) for c in enqueued.commands),
        )
        return _publisher(self.engine.outbox, enqueued)


def _publisher(outbox: CommandOutbox, enqueued: Enqueued) -> Callable[[], None]:
    def publish() -> None:
        outbox.publish(enqueued.events)

    return publish


class PrepaidService:
    """Settles energy batches into the ledger and relay commands (the pipeline's prepaid stage)."""

    def __init__(
        self, site: Site, table: TagTable, pipeline: BatchPipeline, *, clock: Clock
    ) -> None:
        self.site = site
        self.conn: psycopg2.extensions.connection = psycopg2.connect(
            site.services.db_url, connect_timeout=5
        )
        try:
            self.outbox = CommandOutbox(self.conn, site, clock=clock, tags=table)
            self.ledger = Ledger(self.conn, clock=clock, merchant_names=merchant_names(site))
            self.engine = PrepaidEngine(
                site, table, self.conn, self.outbox, self.ledger, clock=clock
            )
        except BaseException:
            self.conn.close()
            raise
        self.follow_up = RelayOnRecharge(self.engine)
        self.last_report: SettlementReport | None = None
        self.batches = 0
        self._pipeline = pipeline
        self._subscription: Subscription | None = None
        # asyncio.Lock wakes its waiters first come, first served: batches settle in order.
        self._order = asyncio.Lock()

    def start(self) -> None:
        """Subscribe the engine to the pipeline's prepaid stage."""
        if self._subscription is None:
            self._subscription = self._pipeline.subscribe(STAGE, self, name="prepaid engine")

    async def on_batch(self, changes: ChangeSet) -> None:
        """Settle an energy batch in a worker thread; other scan classes are not money."""
        if changes.group != "energy":
            return
        async with self._order:
            report = await asyncio.to_thread(self.engine.on_batch, changes)
        self.batches += 1
        self.last_report = report
        if report.postings or report.commands:
            log.info(
                "prepaid: %d posting(s), %d fen charged, %d relay command(s)",
                report.postings,
                report.charged_fen,
                len(report.commands),
            )

    async def stop(self) -> None:
        """Leave the pipeline, let the batch in progress finish, close the connection."""
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        async with self._order:
            self.conn.close()
