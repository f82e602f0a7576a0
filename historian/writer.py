"""The historian writer: batches from the pipeline, COPYed by a thread, spooled while away."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg2

from config.catalogue import TagCatalogue, default_catalogue
from historian.copy_rows import CopyBlock, IntervalEncoder, ReadingEncoder, event_block
from historian.ingest import Ingest, Staging, connect, replay
from historian.schema import Maintenance, Retention, StorageMode, prepare
from historian.spool import Spool, SpoolFull
from server.clock import Clock
from server.tags import ChangeSet, CommChange, CommState

log = logging.getLogger(__name__)

_STOP: Final = object()
# Blocks written together in one COPY transaction, at most.
_COALESCE_ROWS: Final = 50_000


@dataclass(frozen=True, slots=True)
class HistorianStatus:
    """What the writer is doing: mode, backlog, spool use and the last successful write."""

    mode: str
    storage: str | None
    queue_depth: int
    spool_bytes: int
    spool_records: int
    spool_near_full: bool
    spool_rejected: int
    rows_written: int
    last_write: float | None
    dropped_batches: int
    last_error: str | None


class HistorianWriter:
    """Writes every applied batch to the historian tables, off the event loop.

    `on_batch` encodes the batch as binary COPY rows and queues them; a thread writes
    them. While the database is away the thread appends each block to the spool (fsync
    per block), and once the database is back it replays the spool oldest first before
    anything newer, so rows arrive in order; existing keys are skipped, so a block
    replayed twice is harmless. Reconnects are tried every `retry_s` seconds of `clock`.
    """

    def __init__(
        self,
        db_url: str,
        *,
        clock: Clock,
        spool_dir: Path,
        meter_ids: Sequence[str],
        catalogue: TagCatalogue | None = None,
        spool_max_bytes: int = 1 << 30,
        near_full_ratio: float = 0.8,
        retry_s: float = 5.0,
        retention: Retention | None = None,
        energy_group: str = "energy",
        interval_s: int = 900,
        queue_max: int = 10_000,
        poll_s: float = 0.2,
        staging: Staging = "on_conflict",
    ) -> None:
        self.db_url = db_url
        self.clock = clock
        self.catalogue = catalogue if catalogue is not None else default_catalogue()
        self.meter_ids = tuple(meter_ids)
        self.retry_s = retry_s
        self.poll_s = poll_s
        self.staging: Staging = staging
        self._readings = ReadingEncoder(self.meter_ids, self.catalogue)
        self._intervals = (
            IntervalEncoder(
                self.meter_ids, self.catalogue, group=energy_group, interval_s=interval_s
            )
            if energy_group in self.catalogue.groups
            else None
        )
        self._spool = Spool(spool_dir, max_bytes=spool_max_bytes, near_full_ratio=near_full_ratio)
        self._maintenance = Maintenance(retention if retention is not None else Retention())
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_max)
        self._thread: threading.Thread | None = None
        self._ingest: Ingest | None = None
        self._storage: StorageMode | None = None
        self._retry_at = float("-inf")
        self._down = False
        self._dropped = 0
        self._rows_written = 0
        self._last_write: float | None = None
        self._last_error: str | None = None

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is not None:
            raise RuntimeError("the historian writer is already started")
        self._thread = threading.Thread(target=self._run, name="historian-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write or spool what is queued, then stop the thread and close the database and spool."""
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"the historian writer did not stop within {timeout} s")
            self._thread = None
        self._disconnect()
        self._spool.close()

    def on_batch(self, changes: ChangeSet) -> None:
        """Queue the rows of one applied batch (and the energy intervals it opens)."""
        batch = changes.batch
        block = self._readings.encode(batch, changes.server_ts)
        if block is not None:
            self._put(block)
        if self._intervals is not None:
            interval = self._intervals.encode(batch)
            if interval is not None:
                self._put(interval)

    def on_comm(self, change: CommChange) -> None:
        """Queue one `comm` event per meter whose communication state changed."""
        if not change:
            return
        events = [
            (
                float(change.since[i]),
                self.meter_ids[int(row)],
                "comm",
                f"{CommState(int(change.previous[i])).name.lower()}"
                f"->{CommState(int(change.state[i])).name.lower()}",
            )
            for i, row in enumerate(change.rows)
        ]
        self._put(event_block(events, self.clock.time()))

    def record_event(self, ts: float, meter: str, kind: str, detail: str = "") -> None:
        """Queue one meter event, such as a command outcome."""
        self._put(event_block([(ts, meter, kind, detail)], self.clock.time()))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued is handled; True when nothing is left in the spool."""
        if self._thread is None:
            raise RuntimeError("the historian writer is not started")
        deadline = time.monotonic() + timeout
        while True:
            done = threading.Event()
            self._queue.put(done, timeout=max(0.0, deadline - time.monotonic()))
            if not done.wait(max(0.0, deadline - time.monotonic())):
                return False
            if not len(self._spool):
                return True
            if self._ingest is None:
                return False

    def status(self) -> HistorianStatus:
        """A snapshot of the writer's state for the HMI and the alarm side."""
        if self._thread is None:
            mode = "stopped"
        elif self._down:
            mode = "spooling"
        elif len(self._spool):
            mode = "replaying"
        else:
            mode = "direct"
        return HistorianStatus(
            mode=mode,
            storage=self._storage.value if self._storage is not None else None,
            queue_depth=self._queue.qsize(),
            spool_bytes=self._spool.size,
            spool_records=len(self._spool),
            spool_near_full=self._spool.near_full,
            spool_rejected=self._spool.rejected,
            rows_written=self._rows_written,
            last_write=self._last_write,
            dropped_batches=self._dropped,
            last_error=self._last_error,
        )

    def _put(self, block: CopyBlock) -> None:
        """Queue a block without blocking; a full queue drops it, counted and logged once."""
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            if self._dropped == 0:
                log.error("historian queue is full (%d blocks): dropping", self._queue.maxsize)
            self._dropped += 1

    def _run(self) -> None:
        """The thread: take blocks, write or spool them, replay and maintain when due."""
        stopping = False
        while not stopping:
            wait = 0.0 if len(self._spool) and self._ingest is not None else self.poll_s
            blocks: list[CopyBlock] = []
            markers: list[threading.Event] = []
            try:
                item: object = self._queue.get(timeout=wait) if wait else self._queue.get_nowait()
            except queue.Empty:
                item = None
            rows = 0
            while item is not None:
                if item is _STOP:
                    stopping = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                elif isinstance(item, CopyBlock):
                    blocks.append(item)
                    rows += item.rows
                if rows >= _COALESCE_ROWS or stopping:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if blocks:
                self._deliver(blocks)
            self._service()
            for marker in markers:
                marker.set()
        # Whatever arrived behind the stop is spooled, never dropped.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, CopyBlock):
                self._to_spool([item])
            elif isinstance(item, threading.Event):
                item.set()

    def _deliver(self, blocks: list[CopyBlock]) -> None:
        """Write blocks directly, or spool them when the spool has a backlog or the DB is away."""
        if len(self._spool) or not self._connected():
            self._to_spool(blocks)
            return
        assert self._ingest is not None
        try:
            self._rows_written += self._ingest.write(blocks)
            self._last_write = self.clock.time()
        except Exception as exc:  # any failure: keep the rows, retry later
            self._lost(exc)
            self._to_spool(blocks)

    def _service(self) -> None:
        """Replay some of the spool and run maintenance, when connected and due."""
        if len(self._spool) and self._connected():
            assert self._ingest is not None
            try:
                replay(self._ingest, self._spool)
                self._last_write = self.clock.time()
                if not len(self._spool):
                    log.info("historian spool replayed; writing directly again")
            except Exception as exc:  # the spool keeps the rows; retry later
                self._lost(exc)
        now = self.clock.time()
        if self._ingest is not None and self._storage is not None and self._maintenance.due(now):
            try:
                self._maintenance.run(self._ingest.conn, self._storage, now)
            except psycopg2.Error as exc:
                self._lost(exc)

    def _to_spool(self, blocks: list[CopyBlock]) -> None:
        """Append each block to the spool (fsync each); count the ones that do not fit."""
        for block in blocks:
            try:
                self._spool.append(block.to_bytes())
            except SpoolFull as exc:
                if self._spool.rejected == 1:
                    log.error("%s", exc)
                self._dropped += 1
            except OSError as exc:
                log.error("historian spool write failed: %s", exc)
                self._dropped += 1

    def _connected(self) -> bool:
        """Whether there is a connection, trying to open one when the retry time has come."""
        if self._ingest is not None:
            return True
        now = self.clock.time()
        if now < self._retry_at:
            return False
        try:
            conn = connect(self.db_url)
        except psycopg2.Error as exc:
            self._lost(exc)
            return False
        try:
            mode = prepare(conn, self.catalogue, now)
        except psycopg2.Error as exc:
            conn.close()
            self._lost(exc)
            return False
        self._storage = mode
        self._ingest = Ingest(conn, mode, staging=self.staging)
        if self._down:
            log.info("historian database is back; %d spooled block(s) to replay", len(self._spool))
        self._down = False
        return True

    def _lost(self, exc: Exception) -> None:
        """Note a database failure: disconnect, log once, retry after `retry_s`."""
        message = str(exc).strip() or type(exc).__name__
        if not self._down:
            log.warning("historian database unavailable, spooling to disk: %s", message)
            if not isinstance(exc, psycopg2.Error):
                log.error("historian write failed unexpectedly", exc_info=exc)
        self._down = True
        self._last_error = message
        self._retry_at = self.clock.time() + self.retry_s
        self._disconnect()

    def _disconnect(self) -> None:
        """Close the connection if there is one."""
        if self._ingest is not None:
            try:
                self._ingest.close()
            except psycopg2.Error:
                log.debug("historian: closing a broken connection failed", exc_info=True)
            self._ingest = None
