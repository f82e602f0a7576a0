"""Ledger transactions in PostgreSQL: insert, fetch by id or provider event, and list."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2.extensions

from server.commands.events import write_audit
from server.prepaid.records import TYPES, LedgerError, Page, Transaction, TransactionFilter

Cursor = psycopg2.extensions.cursor

MAX_PAGE = 1000

_SELECT = (
    "SELECT t.id, t.receipt_no, t.type, t.account_id, t.meter, t.merchant, t.amount_fen,"
    " t.balance_after_fen, t.operator, t.channel, t.reason, t.provider,"
    " t.provider_event_id, t.reverses, r.id, t.invoiced,"
    " extract(epoch FROM t.invoiced_at)::float8, t.invoiced_by,"
    " extract(epoch FROM t.created_at)::float8"
    " FROM ledger_transactions t LEFT JOIN ledger_transactions r ON r.reverses = t.id"
)


def _transaction(row: Sequence[object]) -> Transaction:
    """A `Transaction` from a row of `_SELECT`."""

    def opt_int(value: object) -> int | None:
        return None if value is None else int(str(value))

    def opt_str(value: object) -> str | None:
        return None if value is None else str(value)

    invoiced_at = row[16]
    return Transaction(
        id=int(str(row[0])),
        receipt_no=str(row[1]),
        type=str(row[2]),
        account_id=int(str(row[3])),
        meter=str(row[4]),
        merchant=str(row[5]),
        amount_fen=int(str(row[6])),
        balance_after_fen=int(str(row[7])),
        operator=str(row[8]),
        channel=str(row[9]),
        reason=str(row[10]),
        provider=opt_str(row[11]),
        provider_event_id=opt_str(row[12]),
        reverses=opt_int(row[13]),
        reversed_by=opt_int(row[14]),
        invoiced=bool(row[15]),
        invoiced_at=None if invoiced_at is None else float(str(invoiced_at)),
        invoiced_by=opt_str(row[17]),
        created_at=float(str(row[18])),
    )


def insert_transaction(
    cur: Cursor,
    *,
    receipt_no: str,
    type_: str,
    account_id: int,
    meter: str,
    merchant: str,
    amount_fen: int,
    balance_after_fen: int,
    operator: str,
    channel: str,
    reason: str,
    provider: str | None,
    provider_event_id: str | None,
    reverses: int | None,
    at: float,
) -> int | None:
    """Insert one transaction row; None when its provider event id is already stored."""
    cur.execute(
        "INSERT INTO ledger_transactions (receipt_no, type, account_id, meter, merchant,"
        " amount_fen, balance_after_fen, operator, channel, reason, provider,"
        " provider_event_id, reverses, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s))"
        " ON CONFLICT (provider, provider_event_id) DO NOTHING RETURNING id",
        (
            receipt_no,
            type_,
            account_id,
            meter,
            merchant,
            amount_fen,
            balance_after_fen,
            operator,
            channel,
            reason,
            provider,
            provider_event_id,
            reverses,
            at,
        ),
    )
    row = cur.fetchone()
    return None if row is None else int(row[0])


def fetch(cur: Cursor, transaction_id: int) -> Transaction:
    """The transaction with this id, or a `LedgerError`."""
    cur.execute(_SELECT + " WHERE t.id = %s", (transaction_id,))
    row = cur.fetchone()
    if row is None:
        raise LedgerError(f"no ledger transaction {transaction_id}")
    return _transaction(row)


def by_provider_event(cur: Cursor, provider: str, event_id: str) -> Transaction | None:
    """The transaction that stored this provider event id, if any."""
    cur.execute(
        _SELECT + " WHERE t.provider = %s AND t.provider_event_id = %s", (provider, event_id)
    )
    row = cur.fetchone()
    return None if row is None else _transaction(row)


def postings_of(cur: Cursor, transaction_id: int) -> list[tuple[int, int]]:
    """The (account id, fen) postings of a transaction, in the order written."""
    cur.execute(
        "SELECT account_id, amount_fen FROM ledger_postings WHERE transaction_id = %s ORDER BY id",
        (transaction_id,),
    )
    return [(int(a), int(f)) for a, f in cur.fetchall()]


def mark_invoiced(cur: Cursor, transaction_id: int, operator: str, at: float) -> None:
    """Set the invoiced flag, or a `LedgerError` when it is unknown or already set."""
    cur.execute(
        "UPDATE ledger_transactions SET invoiced = true, invoiced_at = to_timestamp(%s),"
        " invoiced_by = %s WHERE id = %s AND NOT invoiced RETURNING id",
        (at, operator, transaction_id),
    )
    if cur.fetchone() is None:
        fetch(cur, transaction_id)
        raise LedgerError(f"ledger transaction {transaction_id} is already invoiced")


def search(cur: Cursor, where: TransactionFilter, page: Page) -> list[Transaction]:
    """Transactions matching `where`, newest first, one keyset page."""
    if isinstance(page.limit, bool) or not isinstance(page.limit, int):
        raise LedgerError(f"page limit must be an integer, got {page.limit!r}")
    if not 1 <= page.limit <= MAX_PAGE:
        raise LedgerError(f"page limit must be 1..{MAX_PAGE}, got {page.limit}")
    clauses: list[str] = []
    args: list[object] = []
    for column, value in (
        ("t.meter", where.meter),
        ("t.merchant", where.merchant),
        ("t.operator", where.operator),
        ("t.invoiced", where.invoiced),
        ("t.id <", page.before_id),
    ):
        if value is not None:
            clauses.append(f"{column} {'' if column.endswith('<') else '='} %s")
            args.append(value)
    if where.types is not None:
        unknown = sorted(set(where.types) - set(TYPES))
        if unknown:
            raise LedgerError(f"unknown transaction type(s): {', '.join(unknown)}")
        clauses.append("t.type = ANY(%s)")
        args.append(list(where.types))
    if where.since is not None:
        clauses.append("t.created_at >= to_timestamp(%s)")
        args.append(where.since)
    if where.until is not None:
        clauses.append("t.created_at < to_timestamp(%s)")
        args.append(where.until)
    sql = _SELECT + (" WHERE " + " AND ".join(clauses) if clauses else "")
    cur.execute(sql + " ORDER BY t.id DESC LIMIT %s", (*args, page.limit))
    return [_transaction(row) for row in cur.fetchall()]


def audit_movement(cur: Cursor, transaction_id: int) -> Transaction:
    """Append the audit row of a money movement just written; returns the transaction."""
    moved = fetch(cur, transaction_id)
    detail: dict[str, object] = {
        "transaction_id": moved.id,
        "receipt_no": moved.receipt_no,
        "merchant": moved.merchant,
        "amount_fen": moved.amount_fen,
        "balance_after_fen": moved.balance_after_fen,
    }
    if moved.provider is not None:
        detail["provider"] = moved.provider
        detail["provider_event_id"] = moved.provider_event_id
    if moved.reason:
        detail["reason"] = moved.reason
    if moved.reverses is not None:
        detail["reverses"] = moved.reverses
    write_audit(
        cur,
        at=moved.created_at,
        actor=moved.operator,
        channel=moved.channel,
        action=f"ledger.{moved.type}",
        target=moved.meter,
        detail=detail,
    )
    return moved
