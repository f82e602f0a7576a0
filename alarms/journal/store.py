"""The alarm journal: transitions, comments and operator actions into PostgreSQL, never lost.

Records are queued in memory (bounded) and written by `flush()` in batches, one
transaction each. While PostgreSQL is unreachable they stay queued and are written, in
order, once a new connection succeeds; every row has a unique key, so writing a batch
twice (after a commit whose answer was lost) stores it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import Any

import psycopg2
import psycopg2.extensions

from alarms.engine import AlarmEngine
from alarms.journal.rows import (
    CHANNELS,
    ActionRow,
    CommentRow,
    JournalRow,
    TransitionRow,
    placement,
    write_rows,
)
from alarms.kinds import AlarmKind
from alarms.records import AlarmComment, AlarmTransition
from config.model import Site
from server.clock import Clock

log = logging.getLogger(__name__)

Connection = psycopg2.extensions.connection
ConnectionFactory = Callable[[], Connection]

DEFAULT_MAX_PENDING = 200_000
DEFAULT_BATCH = 5_000
DEFAULT_RETRY_S = 5.0
CONNECT_TIMEOUT_S = 5

# Errors that mean the database (or the way to it) is away, not that a row is bad.
_OUTAGE = (psycopg2.OperationalError, psycopg2.InterfaceError)


class AlarmJournal:
    """Writes the alarm engine's transitions, comments and the operator audit to PostgreSQL."""

    def __init__(
        self,
        database: str | ConnectionFactory,
        *,
        clock: Clock,
        site: Site | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        batch_size: int = DEFAULT_BATCH,
        retry_s: float = DEFAULT_RETRY_S,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not (math.isfinite(retry_s) and retry_s >= 0):
            raise ValueError(f"retry_s must be a finite number >= 0, got {retry_s}")
        if isinstance(database, str):
            url = database
            self._connect: ConnectionFactory = lambda: psycopg2.connect(
                url, connect_timeout=CONNECT_TIMEOUT_S
            )
        elif callable(database):
            self._connect = database
        else:
            raise ValueError("database must be a PostgreSQL URL or a connection factory")
        self.clock = clock
        self.site = site
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.retry_s = float(retry_s)
        self.dropped = 0
        self.rejected = 0
        self._conn: Connection | None = None
        self._pending: deque[tuple[int, JournalRow]] = deque()
        self._numbered = 0
        self._lock = threading.Lock()
        self._writing = threading.RLock()
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._down_since: float | None = None
        self._retry_at = -math.inf
        self._dropped_in_outage = 0
        self._attached: dict[int, Callable[[], None]] = {}

    # --- what goes in -------------------------------------------------------------------

    def attach(self, engine: AlarmEngine) -> Callable[[], None]:
        """Journal every transition and comment of `engine` (once, however often called)."""
        key = id(engine)
        if key not in self._attached:
            self._attached[key] = engine.subscribe(self.record, self.record_comment)
        return self._detacher(key)

    def _detacher(self, key: int) -> Callable[[], None]:
        def detach() -> None:
            unsubscribe = self._attached.pop(key, None)
            if unsubscribe is not None:
                unsubscribe()

        return detach

    def record(self, transition: AlarmTransition) -> TransitionRow:
        """Queue one transition; its seq orders it among the instance's at the same time."""
        seq = self._next_seq("t", transition.kind, transition.target, transition.at)
        where = placement(self.site, transition.kind, transition.target)
        row = TransitionRow.of(transition, seq, where, transition.kind.spec.priority_rank)
        self._queue(row)
        return row

    def record_comment(self, comment: AlarmComment) -> CommentRow:
        """Queue one comment of an instance's thread."""
        seq = self._next_seq("c", comment.kind, comment.target, comment.at)
        row = CommentRow.of(comment, seq, placement(self.site, comment.kind, comment.target))
        self._queue(row)
        return row

    def audit(
        self,
        action: str,
        *,
        user: str,
        channel: str,
        kind: AlarmKind | None = None,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
        at: float | None = None,
    ) -> ActionRow:
        """Queue one operator action for the audit (alarm_actions and audit_log)."""
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
        if not isinstance(user, str) or not user.strip():
            raise ValueError(f"user must be a non-empty name, got {user!r}")
        row = ActionRow(
            key=uuid.uuid4().hex,
            at=self.clock.time() if at is None else float(at),
            user=user.strip(),
            channel=channel,
            action=action,
            kind=None if kind is None else kind.label,
            target=target,
            detail=dict(detail or {}),
        )
        self._queue(row)
        return row

    def write(self, rows: Iterable[JournalRow]) -> None:
        """Queue rows made before (a replay): the keys they carry keep them from doubling."""
        for row in rows:
            self._queue(row)

    def _next_seq(self, table: str, kind: AlarmKind, target: str, at: float) -> int:
        # One entry per instance: only a record at the same time as the last one needs seq > 0.
        key = (table, kind.label, target)
        with self._lock:
            last = self._last.get(key)
            seq = last[1] + 1 if last is not None and last[0] == at else 0
            self._last[key] = (at, seq)
        return seq

    def _queue(self, row: JournalRow) -> None:
        with self._lock:
            if len(self._pending) >= self.max_pending:
                self._pending.popleft()
                self.dropped += 1
                self._dropped_in_outage += 1
                if self._dropped_in_outage == 1:
                    log.error(
                        "alarm journal: %d records waiting, the oldest are being dropped"
                        " (counted in `dropped`)",
                        self.max_pending,
                    )
            self._numbered += 1
            self._pending.append((self._numbered, row))

    # --- writing ------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """How many records wait to be written."""
        with self._lock:
            return len(self._pending)

    @property
    def online(self) -> bool:
        """False from a failed write until the next successful one."""
        return self._down_since is None

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of the journal's connection (None when not connected)."""
        conn = self._conn
        return None if conn is None or conn.closed else int(conn.get_backend_pid())

    def flush(self) -> int:
        """Write what waits, in order, one transaction per batch; return how many were written.

        During an outage it tries again only once `retry_s` has passed on the clock.
        """
        with self._writing:
            if self.clock.time() < self._retry_at:
                return 0
            written = 0
            while True:
                with self._lock:
                    batch = list(islice(self._pending, self.batch_size))
                if not batch:
                    break
                try:
                    refused = self._write_batch([row for _, row in batch])
                except _OUTAGE as exc:
                    self._went_down(exc)
                    return written
                self._done_through(batch[-1][0])
                written += len(batch) - refused
            if self._down_since is not None or self._dropped_in_outage:
                self._came_back(written)
            return written

    async def run(self, stop: asyncio.Event, interval_s: float = 0.5) -> None:
        """Flush every `interval_s` (in a worker thread) until `stop` is set, then once more."""
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be a positive number, got {interval_s}")
        while not stop.is_set():
            await asyncio.to_thread(self.flush)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
        await asyncio.to_thread(self.flush)

    def _write_batch(self, rows: list[JournalRow]) -> int:
        """Write one batch in one transaction; return how many rows PostgreSQL refused."""
        fresh = self._conn is None or self._conn.closed
        try:
            return self._write_on(self._connection(), rows)
        except _OUTAGE:
            if fresh:
                raise
            # A connection that sat idle may have been dropped (server restart, failover):
            # one new connection is tried before calling it an outage.
            self._close_connection()
            return self._write_on(self._connection(), rows)

    def _write_on(self, conn: Connection, rows: list[JournalRow]) -> int:
        try:
            with conn, conn.cursor() as cur:
                write_rows(cur, rows)
            return 0
        except _OUTAGE:
            raise
        except psycopg2.Error as exc:
            log.error("alarm journal: a batch of %d was refused (%s); writing it row by row",
                      len(rows), str(exc).strip())  # fmt: skip
            return self._write_singly(conn, rows)

    def _write_singly(self, conn: Connection, rows: list[JournalRow]) -> int:
        """Write rows one by one so that only a row PostgreSQL refuses is left out."""
        refused = 0
        for row in rows:
            try:
                with conn, conn.cursor() as cur:
                    write_rows(cur, [row])
            except _OUTAGE:
                raise
            except psycopg2.Error as exc:
                refused += 1
                self.rejected += 1
                log.error("alarm journal: row refused, left out: %r (%s)", row, str(exc).strip())
        return refused

    def _done_through(self, number: int) -> None:
        with self._lock:
            while self._pending and self._pending[0][0] <= number:
                self._pending.popleft()

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = None
            self._conn = self._connect()
        return self._conn

    def _went_down(self, exc: Exception) -> None:
        self._close_connection()
        now = self.clock.time()
        self._retry_at = now + self.retry_s
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "alarm journal: PostgreSQL unreachable (%s); keeping up to %d records in memory",
                str(exc).strip() or type(exc).__name__,
                self.max_pending,
            )

    def _came_back(self, written: int) -> None:
        down_since, lost = self._down_since, self._dropped_in_outage
        self._down_since = None
        self._retry_at = -math.inf
        self._dropped_in_outage = 0
        log.warning(
            "alarm journal: PostgreSQL back; wrote %d waiting records, %d dropped",
            written,
            lost,
        )
        if lost:
            # The loss itself goes on record, so a gap in the journal is explained.
            self.audit(
                "alarm.journal.dropped",
                user="parkgrid",
                channel="system",
                detail={"count": lost, "down_since": down_since, "back_at": self.clock.time()},
            )
            self.flush()

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                conn.close()
            except psycopg2.Error:
                log.debug("alarm journal: closing a broken connection failed", exc_info=True)

    def close(self) -> None:
        """Detach from engines and close the connection (records not yet written are logged)."""
        for key in list(self._attached):
            self._detacher(key)()
        left = self.pending
        if left:
            log.warning("alarm journal closed with %d records not written", left)
        self._close_connection()
