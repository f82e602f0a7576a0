"""Pushed 4G uploads: the poll blocks meters send by themselves enter the same path as polls.

The dial-in listener calls `on_upload(serial, registers, received_at)` from its receive
path; the upload is queued and the `run` task decodes what has queued up, all meters of a
model at once, into one batch per tag group the poll block feeds (realtime, energy, demand,
prepaid), submits them through the pipeline, marks the meters online, and sets the clock of
a meter whose clock drifted. An upload of the wrong size, or of another model, gives its
meter bad values rather than wrong good ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import tzinfo
from typing import Final

import numpy as np
import numpy.typing as npt

from config.model import Site
from config.profile import POLL_BLOCK, RegisterProfile
from server.acquisition.clock_sync import CLOCK_TAG, ClockSync
from server.acquisition.comm import CommTracker
from server.acquisition.decoding import (
    GOOD,
    ModelRows,
    decode_scan,
    group_batches,
    poll_block_groups,
)
from server.acquisition.pipeline import BatchPipeline
from server.tags import StatusCode
from server.tags.quality import is_good

log = logging.getLogger(__name__)

MAX_QUEUED: Final = 100_000
TimeSync = Callable[[str, float], Awaitable[None]]


class UploadPath:
    """Queues 4G uploads and turns them into batches, a model at a time."""

    def __init__(
        self,
        site: Site,
        pipeline: BatchPipeline,
        comm: CommTracker,
        profiles: dict[str, RegisterProfile],
        tz: tzinfo,
        *,
        period_s: float,
        clock_sync: ClockSync | None = None,
        time_sync: TimeSync | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.comm = comm
        self.tz = tz
        self.period_s = period_s
        self.clock_sync = clock_sync
        self.time_sync = time_sync
        self._meters: dict[str, tuple[int, str, RegisterProfile, int, int]] = {}
        for meter in site.direct_meters():
            if meter.serial:
                row = site.meter_row(meter.id)
                self._meters[meter.serial] = (row, meter.id, profiles[meter.id], meter.pt, meter.ct)
        self._queue: list[tuple[str, tuple[int, ...], float]] = []
        self._ready = asyncio.Event()
        self._groups = poll_block_groups(pipeline.table.catalogue, profiles.values())
        self.received = 0
        self.dropped = 0

    def on_upload(self, serial: str, registers: tuple[int, ...], received_at: float) -> None:
        """The listener's callback: queue one upload (never blocks, never raises)."""
        if len(self._queue) >= MAX_QUEUED:
            self.dropped += 1
            return
        self._queue.append((serial, registers, received_at))
        self._ready.set()

    async def run(self) -> None:
        """Process queued uploads as they come; forever."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            await self.process()

    async def process(self) -> int:
        """Decode and submit what is queued now; returns how many uploads it took."""
        items, self._queue = self._queue, []
        known = [(s, r, at) for s, r, at in items if s in self._meters]
        if len(known) < len(items):
            self.dropped += len(items) - len(known)
        if not known:
            return 0
        latest: dict[str, tuple[tuple[int, ...], float]] = {}
        for serial, registers, at in known:
            latest[serial] = (registers, at)  # a meter's later upload supersedes its earlier one
        try:
            await self._submit(latest)
        except Exception:
            log.exception("4G uploads: %d upload(s) could not be processed", len(latest))
        self.received += len(known)
        return len(known)

    async def _submit(self, latest: dict[str, tuple[tuple[int, ...], float]]) -> None:
        serials = list(latest)
        meters = [self._meters[s] for s in serials]
        models = ModelRows(
            [m[2] for m in meters],
            np.array([m[3] for m in meters], np.float64),
            np.array([m[4] for m in meters], np.float64),
        )
        width = models.width(POLL_BLOCK)
        raw = np.zeros((len(serials), width), np.uint16)
        codes = np.zeros(len(serials), np.uint32)
        stamps = np.array([latest[s][1] for s in serials], np.float64)
        for i, serial in enumerate(serials):
            registers = latest[serial][0]
            if len(registers) == meters[i][2].read_plan(POLL_BLOCK).width:
                raw[i, : len(registers)] = registers
            else:
                codes[i] = StatusCode.BAD_DECODING_ERROR
                log.warning(
                    "4G meter %s uploaded %d registers, expected %d",
                    meters[i][1],
                    len(registers),
                    meters[i][2].read_plan(POLL_BLOCK).width,
                )
        now = float(stamps.max())
        columns = decode_scan(models, POLL_BLOCK, raw, codes, self.tz, now)
        rows = np.array([m[0] for m in meters], np.int64)
        catalogue = self.pipeline.table.catalogue
        for batch in group_batches(catalogue, self._groups, rows, columns, codes, stamps):
            await self.pipeline.submit(batch)
        ok = codes == GOOD
        await self.comm.polled(rows, ok, now)
        if self.clock_sync is not None and self.time_sync is not None and CLOCK_TAG in columns:
            clocks = np.asarray(columns[CLOCK_TAG], np.float64)[ok]
            drifted = set(self.clock_sync.drifted(rows[ok], clocks, now).tolist())
            for serial, meter in zip(serials, meters, strict=True):
                if meter[0] in drifted:
                    await self.time_sync(serial, now)

    def stale(self, rows: npt.NDArray[np.int64], now: float) -> npt.NDArray[np.bool_]:
        """Which of these direct meters have no good realtime data within the upload period."""
        table = self.pipeline.table
        fresh = is_good(table.quality("realtime")[rows])
        fresh &= now - table.source_ts("realtime")[rows] < self.period_s
        return ~fresh
