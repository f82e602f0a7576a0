"""Direct SQL checks on the ledger tables, independent of the Ledger class."""

from __future__ import annotations

import psycopg2.extensions


def postings_sum(conn: psycopg2.extensions.connection, account_id: int) -> int:
    """The sum of an account's postings, straight from the table."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COALESCE(SUM(amount_fen), 0) FROM ledger_postings WHERE account_id = %s",
            (account_id,),
        )
        row = cur.fetchone()
    conn.rollback()
    assert row is not None
    return int(row[0])


def unbalanced_transactions(conn: psycopg2.extensions.connection) -> list[int]:
    """Ids of transactions whose postings do not sum to zero."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT transaction_id FROM ledger_postings GROUP BY transaction_id"
            " HAVING SUM(amount_fen) <> 0"
        )
        found = [int(r[0]) for r in cur.fetchall()]
    conn.rollback()
    return found
