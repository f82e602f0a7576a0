"""The double-entry prepaid ledger: recharges, deductions, reversals and refunds.

Accounts are a tenant's wallet (one open wallet per meter) and, per merchant, its cash,
energy revenue, fee revenue and refunds payable. Every transaction writes postings that sum
to zero (PostgreSQL checks this at commit) and are never changed; amounts are integer fen,
credit-positive, so a wallet's balance is the sum of its postings and what the tenant holds.

Public API (`cur=` joins the caller's transaction: the ledger works inside a savepoint and
neither commits nor rolls back the caller's work; the connection must not be autocommit):

    ledger = Ledger(conn, clock=clock, merchant_names={"M1": "一期物业"})
    ledger.open_wallet(meter_id, merchant, *, tenant="", cur=None) -> Account
    ledger.post(kind, *, meter, amount_fen, operator, channel, merchant=None, reason="",
                provider=None, provider_event_id=None, cur=None) -> Posted
        kind: counter_recharge | wechat_recharge | alipay_recharge (credit the wallet) or
        energy_deduction | shared_cost | property_fee | capacity_fee (debit it; a wallet
        may go negative, credit limits are the settlement engine's business).
        A provider event id seen before returns the first posting with duplicate=True.
    ledger.post_shared_cost(area, total_fen, weights, *, operator, channel, reason="",
                            cur=None) -> dict[meter, Posted]
    ledger.reverse(transaction_id, *, operator, reason, channel="hmi", cur=None) -> Posted
    ledger.refund(meter, *, operator, channel="hmi", reason="", cur=None) -> Posted
    ledger.balance(meter) -> int;  ledger.balances(meter_ids) -> dict[meter, int]
    ledger.transaction(transaction_id) -> Transaction
    ledger.transactions(TransactionFilter(...), Page(...)) -> list[Transaction]
    ledger.mark_invoiced(transaction_id, operator, *, channel="hmi", cur=None) -> Transaction
    ledger.receipt_html(transaction_id) -> str

Errors are `LedgerError` (a `ValueError`) or its kinds `NoWallet`, `WalletClosed`,
`AlreadyReversed`; a bad operator or channel is a `ValueError` naming it. Every money
movement and invoice mark appends an `audit_log` row in the same transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import psycopg2.extensions

from server.clock import Clock
from server.commands.events import check_actor, write_audit
from server.prepaid import accounts, checks, journal
from server.prepaid.receipts import next_receipt_no, render_receipt_html
from server.prepaid.records import (
    DEDUCTIONS,
    POSTABLE,
    RECHARGES,
    Account,
    AlreadyReversed,
    LedgerError,
    NoWallet,
    Page,
    Posted,
    Transaction,
    TransactionFilter,
)
from server.prepaid.shared_cost import allocate_shared_cost

Cursor = psycopg2.extensions.cursor


class _DuplicateEvent(Exception):
    """Raised inside a posting to undo it when a concurrent one stored the same event."""


class Ledger:
    """The prepaid ledger on one PostgreSQL connection (thread-safe: one call at a time)."""

    def __init__(
        self,
        conn: psycopg2.extensions.connection,
        *,
        clock: Clock,
        merchant_names: Mapping[str, str] | None = None,
    ) -> None:
        self._conn = conn
        self.clock = clock
        self.merchant_names = dict(merchant_names or {})
        self._lock = threading.Lock()

    @contextmanager
    def _transaction(self, cur: Cursor | None) -> Iterator[Cursor]:
        """A savepoint in the caller's transaction, or a transaction of our own."""
        if cur is None:
            with self._lock, self._conn, self._conn.cursor() as own:
                yield own
            return
        cur.execute("SAVEPOINT parkgrid_ledger")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK TO SAVEPOINT parkgrid_ledger")
            raise
        cur.execute("RELEASE SAVEPOINT parkgrid_ledger")

    def open_wallet(
        self, meter_id: str, merchant: str, *, tenant: str = "", cur: Cursor | None = None
    ) -> Account:
        """The meter's open wallet with `merchant`, opened now if it has none."""
        meter_id = checks.check_name(meter_id, "meter id")
        merchant = checks.check_name(merchant, "merchant")
        if not isinstance(tenant, str):
            raise LedgerError(f"tenant must be text, got {tenant!r}")
        now = self.clock.time()
        with self._transaction(cur) as tx:
            return accounts.open_wallet(tx, meter_id, merchant, tenant.strip(), now)

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
        """Recharge or debit the meter's wallet by `amount_fen` (> 0) against `merchant`.

        `merchant` defaults to the wallet's; its cash takes recharges and its revenue
        accounts take deductions, and it numbers the receipt.
        """
        if kind not in POSTABLE:
            raise LedgerError(f"kind must be one of {', '.join(POSTABLE)}, got {kind!r}")
        meter = checks.check_name(meter, "meter")
        amount = checks.positive_fen(amount_fen)
        operator, channel = check_actor(operator, channel)
        event = checks.provider_event(provider, provider_event_id)
        if merchant is not None:
            merchant = checks.check_name(merchant, "merchant")
        now = self.clock.time()
        try:
            with self._transaction(cur) as tx:
                if event is not None:
                    known = journal.by_provider_event(tx, *event)
                    if known is not None:
                        return _posted(known, duplicate=True)
                wallet = accounts.current_wallet(tx, meter)
                if wallet is None:
                    raise NoWallet(f"meter {meter} has no wallet; open one first")
                payee = merchant or wallet.merchant
                receipt_no = next_receipt_no(tx, payee, now)
                wallet = accounts.lock_open_wallet(tx, meter)
                signed = amount if kind in RECHARGES else -amount
                other_kind = "merchant_cash" if kind in RECHARGES else DEDUCTIONS[kind]
                other = accounts.merchant_account(tx, payee, other_kind, now)
                after = accounts.account_balance(tx, wallet.id) + signed
                tx_id = journal.insert_transaction(
                    tx,
                    receipt_no=receipt_no,
                    type_=kind,
                    account_id=wallet.id,
                    meter=meter,
                    merchant=payee,
                    amount_fen=signed,
                    balance_after_fen=after,
                    operator=operator,
                    channel=channel,
                    reason=checks.reason_text(reason),
                    provider=None if event is None else event[0],
                    provider_event_id=None if event is None else event[1],
                    reverses=None,
                    at=now,
                )
                if tx_id is None:
                    raise _DuplicateEvent
                accounts.add_postings(tx, tx_id, [(wallet.id, signed), (other, -signed)])
                journal.audit_movement(tx, tx_id)
                return Posted(tx_id, receipt_no, after)
        except _DuplicateEvent:
            assert event is not None
            with self._transaction(cur) as tx:
                known = journal.by_provider_event(tx, *event)
            if known is None:
                raise LedgerError(f"provider event {event} vanished after a conflict") from None
            return _posted(known, duplicate=True)

    def post_shared_cost(
        self,
        area: str,
        total_fen: int,
        weights: Mapping[str, int],
        *,
        operator: str,
        channel: str,
        reason: str = "",
        cur: Cursor | None = None,
    ) -> dict[str, Posted]:
        """Split an area's common-meter cost by `weights` and debit each tenant's share."""
        shares = allocate_shared_cost(area, total_fen, weights)
        note = reason or f"公摊 {area}"
        posted: dict[str, Posted] = {}
        with self._transaction(cur) as tx:
            for meter, share in shares.items():
                if share > 0:
                    posted[meter] = self.post(
                        "shared_cost",
                        meter=meter,
                        amount_fen=share,
                        operator=operator,
                        channel=channel,
                        reason=note,
                        cur=tx,
                    )
        return posted

    def reverse(
        self,
        transaction_id: int,
        *,
        operator: str,
        reason: str,
        channel: str = "hmi",
        cur: Cursor | None = None,
    ) -> Posted:
        """Post the mirror image of a transaction (冲正); each is reversed at most once."""
        operator, channel = check_actor(operator, channel)
        why = checks.reason_text(reason)
        if not why:
            raise LedgerError("a reversal needs a reason")
        now = self.clock.time()
        with self._transaction(cur) as tx:
            original = journal.fetch(tx, transaction_id)
            if original.type in ("reversal", "refund"):
                raise LedgerError(
                    f"transaction {transaction_id} is a {original.type} and cannot be reversed"
                )
            receipt_no = next_receipt_no(tx, original.merchant, now)
            wallet = accounts.lock_account(tx, original.account_id)
            if wallet.closed_at is not None:
                raise LedgerError(
                    f"transaction {transaction_id}: the wallet of meter {original.meter}"
                    " is closed, so it can no longer be reversed"
                )
            original = journal.fetch(tx, transaction_id)
            if original.reversed_by is not None:
                raise AlreadyReversed(
                    f"transaction {transaction_id} was already reversed by {original.reversed_by}"
                )
            signed = -original.amount_fen
            after = accounts.account_balance(tx, wallet.id) + signed
            tx_id = journal.insert_transaction(
                tx,
                receipt_no=receipt_no,
                type_="reversal",
                account_id=wallet.id,
                meter=original.meter,
                merchant=original.merchant,
                amount_fen=signed,
                balance_after_fen=after,
                operator=operator,
                channel=channel,
                reason=why,
                provider=None,
                provider_event_id=None,
                reverses=transaction_id,
                at=now,
            )
            if tx_id is None:
                raise LedgerError(f"reversal of {transaction_id} was not stored")
            legs = [(a, -f) for a, f in journal.postings_of(tx, transaction_id)]
            accounts.add_postings(tx, tx_id, legs)
            journal.audit_movement(tx, tx_id)
            return Posted(tx_id, receipt_no, after)

    def refund(
        self,
        meter: str,
        *,
        operator: str,
        channel: str = "hmi",
        reason: str = "",
        cur: Cursor | None = None,
    ) -> Posted:
        """Pay the wallet's balance out to refunds payable (退电) and close the wallet."""
        meter = checks.check_name(meter, "meter")
        operator, channel = check_actor(operator, channel)
        now = self.clock.time()
        with self._transaction(cur) as tx:
            wallet = accounts.current_wallet(tx, meter)
            if wallet is None:
                raise NoWallet(f"meter {meter} has no wallet; open one first")
            receipt_no = next_receipt_no(tx, wallet.merchant, now)
            wallet = accounts.lock_open_wallet(tx, meter)
            balance = accounts.account_balance(tx, wallet.id)
            if balance < 0:
                raise LedgerError(
                    f"meter {meter} owes {-balance} fen; settle the debt before a refund"
                )
            payable = accounts.merchant_account(tx, wallet.merchant, "refunds_payable", now)
            tx_id = journal.insert_transaction(
                tx,
                receipt_no=receipt_no,
                type_="refund",
                account_id=wallet.id,
                meter=meter,
                merchant=wallet.merchant,
                amount_fen=-balance,
                balance_after_fen=0,
                operator=operator,
                channel=channel,
                reason=checks.reason_text(reason),
                provider=None,
                provider_event_id=None,
                reverses=None,
                at=now,
            )
            if tx_id is None:
                raise LedgerError(f"refund of meter {meter} was not stored")
            accounts.add_postings(tx, tx_id, [(wallet.id, -balance), (payable, balance)])
            accounts.close_account(tx, wallet.id, now)
            journal.audit_movement(tx, tx_id)
            return Posted(tx_id, receipt_no, 0)

    def balance(self, meter: str) -> int:
        """The meter's wallet balance in fen (0 once refunded); `NoWallet` if it never had one."""
        with self._transaction(None) as tx:
            wallet = accounts.current_wallet(tx, meter)
            if wallet is None:
                raise NoWallet(f"meter {meter} has no wallet")
            return accounts.account_balance(tx, wallet.id)

    def balances(self, meter_ids: Sequence[str]) -> dict[str, int]:
        """Wallet balances of many meters in one query; meters without a wallet are left out."""
        with self._transaction(None) as tx:
            return accounts.wallet_balances(tx, list(meter_ids))

    def transaction(self, transaction_id: int) -> Transaction:
        """One transaction by id (`LedgerError` if unknown)."""
        with self._transaction(None) as tx:
            return journal.fetch(tx, transaction_id)

    def transactions(
        self, filters: TransactionFilter | None = None, paging: Page | None = None
    ) -> list[Transaction]:
        """Transactions matching `filters`, newest first, one page."""
        with self._transaction(None) as tx:
            return journal.search(tx, filters or TransactionFilter(), paging or Page())

    def mark_invoiced(
        self,
        transaction_id: int,
        operator: str,
        *,
        channel: str = "hmi",
        cur: Cursor | None = None,
    ) -> Transaction:
        """Set a transaction's invoiced flag (once) and audit who did it."""
        operator, channel = check_actor(operator, channel)
        now = self.clock.time()
        with self._transaction(cur) as tx:
            journal.mark_invoiced(tx, transaction_id, operator, now)
            marked = journal.fetch(tx, transaction_id)
            write_audit(
                tx,
                at=now,
                actor=operator,
                channel=channel,
                action="ledger.invoiced",
                target=marked.meter,
                detail={"transaction_id": transaction_id, "receipt_no": marked.receipt_no},
            )
            return marked

    def receipt_html(self, transaction_id: int) -> str:
        """The printable HTML receipt of one transaction."""
        tx = self.transaction(transaction_id)
        return render_receipt_html(tx, self.merchant_names.get(tx.merchant, tx.merchant))


def _posted(tx: Transaction, *, duplicate: bool) -> Posted:
    """The `Posted` answer for an existing transaction."""
    return Posted(tx.id, tx.receipt_no, tx.balance_after_fen, duplicate)
