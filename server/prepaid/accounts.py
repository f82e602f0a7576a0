"""Ledger accounts in PostgreSQL: wallets, merchant accounts, locks and balances."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2.extensions

from server.prepaid.records import Account, LedgerError, NoWallet, WalletClosed

Cursor = psycopg2.extensions.cursor

_COLUMNS = (
    "id, kind, meter, tenant, merchant, extract(epoch FROM opened_at)::float8,"
    " extract(epoch FROM closed_at)::float8"
)


def _account(row: Sequence[object]) -> Account:
    """An `Account` from a row of `_COLUMNS`."""
    closed = row[6]
    return Account(
        id=int(str(row[0])),
        kind=str(row[1]),
        meter=None if row[2] is None else str(row[2]),
        tenant=str(row[3]),
        merchant=str(row[4]),
        opened_at=float(str(row[5])),
        closed_at=None if closed is None else float(str(closed)),
    )


def current_wallet(cur: Cursor, meter: str) -> Account | None:
    """The meter's open wallet, or else its most recently closed one, or None."""
    cur.execute(
        f"SELECT {_COLUMNS} FROM ledger_accounts WHERE kind = 'wallet' AND meter = %s"  # noqa: S608
        " ORDER BY (closed_at IS NULL) DESC, id DESC LIMIT 1",
        (meter,),
    )
    row = cur.fetchone()
    return None if row is None else _account(row)


def open_wallet(cur: Cursor, meter: str, merchant: str, tenant: str, at: float) -> Account:
    """The meter's open wallet, created when it has none; refuses a different merchant."""
    cur.execute(
        f"INSERT INTO ledger_accounts (kind, meter, tenant, merchant, opened_at)"  # noqa: S608
        " VALUES ('wallet', %s, %s, %s, to_timestamp(%s))"
        " ON CONFLICT (meter) WHERE kind = 'wallet' AND closed_at IS NULL DO NOTHING"
        f" RETURNING {_COLUMNS}",
        (meter, tenant, merchant, at),
    )
    row = cur.fetchone()
    if row is not None:
        return _account(row)
    found = current_wallet(cur, meter)
    if found is None or found.closed_at is not None:
        raise LedgerError(f"meter {meter}: its wallet changed while opening it; try again")
    if found.merchant != merchant:
        raise LedgerError(
            f"meter {meter} already has an open wallet with merchant {found.merchant},"
            f" not {merchant}; refund it before opening another"
        )
    return found


def lock_open_wallet(cur: Cursor, meter: str) -> Account:
    """The meter's open wallet, row-locked until the transaction ends."""
    cur.execute(
        f"SELECT {_COLUMNS} FROM ledger_accounts"  # noqa: S608
        " WHERE kind = 'wallet' AND meter = %s AND closed_at IS NULL FOR UPDATE",
        (meter,),
    )
    row = cur.fetchone()
    if row is not None:
        return _account(row)
    if current_wallet(cur, meter) is not None:
        raise WalletClosed(f"meter {meter}: its wallet was refunded and closed")
    raise NoWallet(f"meter {meter} has no wallet; open one first")


def lock_account(cur: Cursor, account_id: int) -> Account:
    """The account with this id, row-locked until the transaction ends."""
    cur.execute(
        f"SELECT {_COLUMNS} FROM ledger_accounts WHERE id = %s FOR UPDATE",  # noqa: S608
        (account_id,),
    )
    row = cur.fetchone()
    if row is None:
        raise LedgerError(f"no ledger account {account_id}")
    return _account(row)


def merchant_account(cur: Cursor, merchant: str, kind: str, at: float) -> int:
    """The id of the merchant's account of `kind`, created on first use."""
    cur.execute(
        "INSERT INTO ledger_accounts (kind, merchant, opened_at)"
        " VALUES (%s, %s, to_timestamp(%s))"
        " ON CONFLICT (merchant, kind) WHERE kind <> 'wallet' DO NOTHING RETURNING id",
        (kind, merchant, at),
    )
    row = cur.fetchone()
    if row is None:
        cur.execute(
            "SELECT id FROM ledger_accounts WHERE merchant = %s AND kind = %s",
            (merchant, kind),
        )
        row = cur.fetchone()
        if row is None:
            raise LedgerError(f"merchant {merchant}: its {kind} account could not be opened")
    return int(row[0])


def close_account(cur: Cursor, account_id: int, at: float) -> None:
    """Mark the account closed at `at`."""
    cur.execute(
        "UPDATE ledger_accounts SET closed_at = to_timestamp(%s) WHERE id = %s",
        (at, account_id),
    )


def account_balance(cur: Cursor, account_id: int) -> int:
    """The sum of the account's postings, in fen."""
    cur.execute(
        "SELECT COALESCE(SUM(amount_fen), 0) FROM ledger_postings WHERE account_id = %s",
        (account_id,),
    )
    row = cur.fetchone()
    return 0 if row is None else int(row[0])


def wallet_balances(cur: Cursor, meters: Sequence[str]) -> dict[str, int]:
    """Each meter's current wallet balance in one query (meters without a wallet omitted)."""
    cur.execute(
        "SELECT DISTINCT ON (a.meter) a.meter,"
        " COALESCE((SELECT SUM(p.amount_fen) FROM ledger_postings p"
        "           WHERE p.account_id = a.id), 0)"
        " FROM ledger_accounts a"
        " WHERE a.kind = 'wallet' AND a.meter = ANY(%s)"
        " ORDER BY a.meter, (a.closed_at IS NULL) DESC, a.id DESC",
        (list(meters),),
    )
    return {str(meter): int(total) for meter, total in cur.fetchall()}


def add_postings(cur: Cursor, transaction_id: int, legs: Sequence[tuple[int, int]]) -> None:
    """Write the (account id, fen) legs of a transaction, leaving out zero legs."""
    for account_id, amount in legs:
        if amount != 0:
            cur.execute(
                "INSERT INTO ledger_postings (transaction_id, account_id, amount_fen)"
                " VALUES (%s, %s, %s)",
                (transaction_id, account_id, amount),
            )
