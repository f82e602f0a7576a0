"""Writing COPY blocks into the historian tables, and replaying the spool, on one connection."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import Final, Literal

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from historian.copy_rows import COLUMNS, COPY_HEADER, COPY_TRAILER, BlockError, CopyBlock
from historian.schema import StorageMode, ensure_partitions, months_between
from historian.spool import Spool

log = logging.getLogger(__name__)

Staging = Literal["on_conflict", "always"]
STAGINGS: Final = ("on_conflict", "always")


def connect(db_url: str, *, timeout_s: int = 5) -> psycopg2.extensions.connection:
    """A connection for the historian: short connect timeout, TCP keepalives on."""
    return psycopg2.connect(
        db_url,
        connect_timeout=timeout_s,
        application_name="parkgrid-historian",
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
    )


class Ingest:
    """One connection writing blocks: direct binary COPY, staged when keys already exist.

    A direct COPY into the table is the fast path. When it meets a key that is already
    there (a replayed batch the database had before the outage), the transaction is
    rolled back and the blocks go through a temporary staging table and
    `INSERT ... ON CONFLICT DO NOTHING`; `staging="always"` takes that path every time.
    """

    def __init__(
        self,
        conn: psycopg2.extensions.connection,
        mode: StorageMode,
        *,
        staging: Staging = "on_conflict",
    ) -> None:
        if staging not in STAGINGS:
            raise ValueError(f"staging must be one of {', '.join(STAGINGS)}, got {staging!r}")
        self.conn = conn
        self.mode = mode
        self.staging = staging
        self.staged_writes = 0
        self._months: dict[str, set[int]] = {table: set() for table in COLUMNS}

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def write(self, blocks: Sequence[CopyBlock]) -> int:
        """Write `blocks` in one transaction, existing keys skipped; return the rows sent."""
        by_table: dict[str, list[CopyBlock]] = {}
        for block in blocks:
            by_table.setdefault(block.table, []).append(block)
        if self.mode is StorageMode.NATIVE:
            for table, group in by_table.items():
                self._partitions(table, group)
        staged = self.staging == "always"
        if not staged:
            try:
                with self.conn.cursor() as cur:
                    for table, group in by_table.items():
                        self._copy(cur, table, group)
                self.conn.commit()
            except psycopg2.errors.UniqueViolation:
                self.conn.rollback()
                staged = True
        if staged:
            with self.conn.cursor() as cur:
                for table, group in by_table.items():
                    self._copy_staged(cur, table, group)
            self.conn.commit()
            self.staged_writes += 1
        return sum(b.rows for b in blocks)

    def _partitions(self, table: str, blocks: Sequence[CopyBlock]) -> None:
        """Make sure the monthly partitions the blocks fall in exist."""
        first = min(b.first_ts for b in blocks)
        last = max(b.last_ts for b in blocks)
        missing = set(months_between(first, last)) - self._months[table]
        if missing:
            ensure_partitions(self.conn, table, missing)
            self._months[table] |= missing

    def _copy(
        self,
        cur: psycopg2.extensions.cursor,
        table: str,
        blocks: Sequence[CopyBlock],
        target: str | None = None,
    ) -> None:
        """Binary COPY of the blocks' tuples (rows of `table`) into `target`, default `table`."""
        data = b"".join([COPY_HEADER, *(b.tuples for b in blocks), COPY_TRAILER])
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS[table])
        statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(
            sql.Identifier(target or table), columns
        )
        cur.copy_expert(statement.as_string(self.conn), io.BytesIO(data), size=len(data))

    def _copy_staged(
        self, cur: psycopg2.extensions.cursor, table: str, blocks: Sequence[CopyBlock]
    ) -> None:
        """COPY into a session staging table, then insert what is new into `table`."""
        stage = f"stage_{table}"
        # Created in the transaction each time: a rollback would also undo a creation.
        cur.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS").format(
                sql.Identifier(stage), sql.Identifier(table)
            )
        )
        self._copy(cur, table, blocks, stage)
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS[table])
        cur.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                sql.Identifier(table), columns, columns, sql.Identifier(stage)
            )
        )


def replay(
    ingest: Ingest, spool: Spool, *, max_records: int = 64, max_bytes: int = 32 << 20
) -> int:
    """Write the oldest spooled records (one transaction) and commit the cursor; return them.

    A record whose payload is not a block (written by another version) is logged and
    skipped. Replaying a record twice is harmless: existing keys are skipped.
    """
    blocks: list[CopyBlock] = []
    taken, size, end = 0, 0, None
    for record in spool.read(max_records):
        if taken and size + len(record.payload) > max_bytes:
            break
        try:
            blocks.append(CopyBlock.from_bytes(record.payload))
        except BlockError as exc:
            log.error("historian spool: skipping record at offset %d: %s", record.offset, exc)
        taken += 1
        size += len(record.payload)
        end = record.end
    if end is None:
        return 0
    if blocks:
        ingest.write(blocks)
    spool.commit(end, taken)
    return taken
