"""A poll group: the coordinator of one gateway or dial-in link, and of its meters' scan classes.

One group per gateway (Modbus TCP, or a DTU that dialled in) and one for all direct 4G
meters. A group reads every due scan class meter by meter with one request in flight on
its line, decodes all its meters at once per model, and submits one batch per tag group:
good rows with values, failed rows with a StatusCode saying why (BadTimeout,
BadNotConnected, BadCommunicationError, BadDeviceFailure). A line found down fails the
rest of its meters at once instead of waiting out each timeout.

Like a Home Assistant coordinator it has one state, `ok`, `failing` (no meter answered the
last scan) or `recovered` (answers again after failing; `ok` after the next good scan), and
logs one line per transition. Nothing a meter, a link or a consumer does escapes `scan`.

The direct 4G group differs in three ways, all data-driven by its classes: its members
each have their own line (so up to `parallel` of them are read side by side); its
`poll_block` class reads only the meters whose pushed upload is overdue (`stale`); and it
sets meter clocks with the 0x93 frame (`time_setter`).

A group of a DL/T 645 gateway reads through a `Dlt645Reader` (DI by DI, from the read
plan) instead of registers, and submits the same batches.

Intervals may differ between the members of one group (a meters group in the site's
[[acquisition.groups]]): each pass reads, per class, the subset of members that is due.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from enum import Enum
from typing import Final

import numpy as np
import numpy.typing as npt

from config.catalogue import TagCatalogue
from config.profile import FREEZE, POLL_BLOCK, RegisterProfile
from protocols.errors import ProtocolError
from protocols.link_errors import (
    Dlt645Refused,
    LinkDown,
    LinkError,
    LinkTimeout,
    ModbusException,
)
from server.acquisition.channels import LineChannel, SharedLine
from server.acquisition.clock_sync import CLOCK_TAG, ClockSync, clock_field, decode_clock
from server.acquisition.comm import CommTracker
from server.acquisition.decoding import (
    GOOD,
    ModelRows,
    decode_scan,
    group_batches,
    poll_block_groups,
)
from server.acquisition.dlt645_reads import Dlt645Reader
from server.acquisition.pipeline import BatchPipeline, FreezeReadings
from server.acquisition.schedule import FreezeSchedule, Intervals, ScanSchedule
from server.clock import Clock
from server.tags import StatusCode

log = logging.getLogger(__name__)

DIRECT_KIND: Final = "direct4g"
MAX_SLEEP_S: Final = 1.0  # the loop looks at the clock at least this often (real seconds)


class GroupState(Enum):
    """The coordinator state of a poll group."""

    OK = "ok"
    FAILING = "failing"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class Member:
    """One meter of a group: its table row, line, slave address, profile and ratios."""

    meter_id: str
    row: int
    line: SharedLine
    slave: int
    profile: RegisterProfile
    pt: int
    ct: int

    @property
    def channel(self) -> LineChannel:
        """The meter's channel over the group's line."""
        return LineChannel(self.meter_id, self.line, self.slave)


@dataclass(frozen=True, slots=True)
class ScanReport:
    """What one scan of one class did."""

    group: str
    scan_class: str
    at: float
    duration_s: float
    good: int
    bad: int


TimeSetter = Callable[[Member, float], Awaitable[None]]
Stale = Callable[[npt.NDArray[np.int64], float], npt.NDArray[np.bool_]]


def status_of(exc: BaseException) -> int:
    """The StatusCode a failed request gives its meter's values."""
    if isinstance(exc, LinkDown):
        return StatusCode.BAD_NOT_CONNECTED
    if isinstance(exc, LinkTimeout):
        return StatusCode.BAD_TIMEOUT
    if isinstance(exc, ModbusException | Dlt645Refused):
        return StatusCode.BAD_DEVICE_FAILURE
    return StatusCode.BAD_COMMUNICATION_ERROR


class PollGroup:
    """The coordinator of one link (or of the direct 4G meters): schedule, reads, batches."""

    def __init__(
        self,
        name: str,
        kind: str,
        members: Sequence[Member],
        *,
        pipeline: BatchPipeline,
        comm: CommTracker,
        clock: Clock,
        tz: tzinfo,
        intervals: Intervals,
        phase: float = 0.0,
        freeze_retry_s: float = 600.0,
        clock_sync: ClockSync | None = None,
        time_setter: TimeSetter | None = None,
        stale: Stale | None = None,
        freeze: bool = True,
        ready: Callable[[], bool] | None = None,
        parallel: int = 1,
        startup_window_s: float = 5.0,
        dlt645: Dlt645Reader | None = None,
    ) -> None:
        self.name = name
        self.dlt645 = dlt645
        self.kind = kind
        self.members = tuple(members)
        self.pipeline = pipeline
        self.comm = comm
        self.clock = clock
        self.tz = tz
        self.catalogue: TagCatalogue = pipeline.table.catalogue
        now = clock.time()
        self.schedule = ScanSchedule(
            intervals,
            now,
            members=len(self.members),
            phase=phase,
            startup_window_s=startup_window_s,
        )
        self.freeze = FreezeSchedule(len(self.members), tz, now, retry_s=freeze_retry_s)
        # the freeze comes after the first realtime scan, in the same spread start-up window
        self.freeze.next_try = now + phase * startup_window_s + min(startup_window_s, 1.0)
        self.clock_sync = clock_sync
        self.time_setter = time_setter or self._write_clock
        self.stale = stale
        self.freeze_enabled = freeze and bool(self.members)
        self.ready = ready
        self.parallel = max(1, parallel)
        self.rows = np.array([m.row for m in self.members], np.int64).reshape(len(self.members))
        self.state = GroupState.OK
        self.last: dict[str, ScanReport] = {}
        self._wake = asyncio.Event()
        self._errors_logged: set[str] = set()
        self._poll_groups = poll_block_groups(self.catalogue, [m.profile for m in self.members])

    def __repr__(self) -> str:
        return f"<PollGroup {self.name} {self.kind} {len(self.members)} meters {self.state.value}>"

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Scan whatever is due, then wait for the next due time or a wake-up; forever."""
        while True:
            self._wake.clear()
            await self.run_due()
            delay = min(self.schedule.next_time(), self._freeze_next()) - self.clock.time()
            if self.deferred:
                delay = MAX_SLEEP_S
            if delay > 0:
                try:
                    async with asyncio.timeout(min(delay, MAX_SLEEP_S)):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)  # let the other groups and the links run

    def wake(self, scan_class: str | None = None) -> None:
        """Run `scan_class` now (or just re-check what is due): a link came back, a test asks."""
        if scan_class is not None:
            self.schedule.trigger(scan_class, self.clock.time())
        self._wake.set()

    def _freeze_next(self) -> float:
        if not self.freeze_enabled:
            return math.inf
        return self.freeze.next_try if self.freeze.pending.any() else math.inf

    @property
    def deferred(self) -> bool:
        """Whether scans wait: a dial-in link that has not registered yet since the start."""
        return self.ready is not None and not self.ready()

    async def run_due(self) -> list[ScanReport]:
        """Every scan class due now, in order, then the freeze if it is owed; never raises."""
        if self.deferred:
            return []
        reports = []
        for scan_class in self.schedule.due(self.clock.time()):
            chosen = self.schedule.due_members(scan_class, self.clock.time())
            reports.append(await self.scan(scan_class, chosen))
            self.schedule.done(scan_class, self.clock.time(), chosen)
        if self.freeze_enabled and self.freeze.due(self.clock.time()):
            reports.append(await self.scan(FREEZE))
        return reports

    # -- one scan ------------------------------------------------------------------------------

    async def scan(
        self, scan_class: str, members: npt.NDArray[np.int64] | None = None
    ) -> ScanReport:
        """Read, decode and submit one scan class for `members` (positions; None: all).

        The freeze and the poll block narrow that further, to the members still owing the
        month's block and those whose upload is overdue. Never raises.
        """
        began, at = time.perf_counter(), self.clock.time()
        if members is None:
            members = np.arange(len(self.members), dtype=np.int64)
        try:
            good, bad = await self._scan(scan_class, at, members)
        except Exception as exc:
            self._log_error(f"{scan_class} scan", exc)
            good, bad = 0, len(members)
        report = ScanReport(self.name, scan_class, at, time.perf_counter() - began, good, bad)
        self.last[scan_class] = report
        return report

    async def _scan(
        self, scan_class: str, at: float, chosen: npt.NDArray[np.int64]
    ) -> tuple[int, int]:
        if scan_class == FREEZE:
            chosen = chosen[self.freeze.pending[chosen]]
        elif scan_class == POLL_BLOCK and self.stale is not None:
            chosen = chosen[self.stale(self.rows, at)]
        if not len(chosen):
            return 0, 0
        members = [self.members[i] for i in chosen.tolist()]
        codes = np.zeros(len(members), np.uint32)
        stamps = np.full(len(members), at)
        if self.dlt645 is not None:
            columns = await self._read_dlt645(self.dlt645, members, scan_class, codes, stamps)
            now = self.clock.time()
        else:
            models = ModelRows(
                [m.profile for m in members],
                np.array([m.pt for m in members], np.float64),
                np.array([m.ct for m in members], np.float64),
            )
            raw = np.zeros((len(members), models.width(scan_class)), np.uint16)
            await self._read_all(members, scan_class, raw, codes, stamps)
            now = self.clock.time()
            columns = decode_scan(models, scan_class, raw, codes, self.tz, now)
        rows = self.rows[chosen]
        ok = codes == GOOD
        if scan_class == FREEZE:
            await self._freeze_read(chosen, rows, columns, ok, now)
        else:
            groups = self._poll_groups if scan_class == POLL_BLOCK else [scan_class]
            for batch in group_batches(self.catalogue, groups, rows, columns, codes, stamps):
                await self.pipeline.submit(batch)
        await self.comm.polled(rows, ok, now)
        if self.kind != DIRECT_KIND:
            await self._link_result(rows, bool(ok.any()), now)
        await self._after(scan_class, members, ok, columns, now)
        self._transition(scan_class, int(ok.sum()), len(members), codes)
        return int(ok.sum()), len(members) - int(ok.sum())

    async def _read_all(
        self,
        members: list[Member],
        scan_class: str,
        raw: npt.NDArray[np.uint16],
        codes: npt.NDArray[np.uint32],
        stamps: npt.NDArray[np.float64],
    ) -> None:
        by_line: dict[int, list[int]] = {}
        for i, m in enumerate(members):
            by_line.setdefault(id(m.line), []).append(i)
        if len(by_line) == 1:
            await self._read_line(
                members, next(iter(by_line.values())), scan_class, raw, codes, stamps
            )
            return
        gate = asyncio.Semaphore(self.parallel)

        async def one(positions: list[int]) -> None:
            async with gate:
                await self._read_line(members, positions, scan_class, raw, codes, stamps)

        await asyncio.gather(*(one(p) for p in by_line.values()))

    async def _read_line(
        self,
        members: list[Member],
        positions: list[int],
        scan_class: str,
        raw: npt.NDArray[np.uint16],
        codes: npt.NDArray[np.uint32],
        stamps: npt.NDArray[np.float64],
    ) -> None:
        """Read the members on one line in turn; a line found down fails the rest at once."""
        down: int | None = None
        for i in positions:
            m = members[i]
            if down is not None:
                codes[i] = down
                continue
            try:
                column = 0
                for address, count in self._blocks(m.profile, scan_class):
                    raw[i, column : column + count] = await m.line.read(m.slave, address, count)
                    column += count
            except LinkError as exc:
                codes[i] = status_of(exc)
                if isinstance(exc, LinkDown):
                    down = codes[i]
            except Exception as exc:
                self._log_error(f"read of {m.meter_id}", exc)
                codes[i] = StatusCode.BAD_COMMUNICATION_ERROR
            stamps[i] = self.clock.time()

    async def _read_dlt645(
        self,
        reader: Dlt645Reader,
        members: list[Member],
        scan_class: str,
        codes: npt.NDArray[np.uint32],
        stamps: npt.NDArray[np.float64],
    ) -> dict[str, npt.NDArray[np.generic]]:
        """Read the plan's DIs from each member in turn; a line found down fails the rest."""
        columns = reader.columns(scan_class, len(members))
        down: int | None = None
        for i, m in enumerate(members):
            if down is not None:
                codes[i] = down
                continue
            try:
                values = await reader.read_meter(m.meter_id, scan_class, m.pt, m.ct)
            except LinkError as exc:
                codes[i] = status_of(exc)
                if isinstance(exc, LinkDown):
                    down = codes[i]
            except ProtocolError as exc:
                self._log_error(f"decoding of {m.meter_id}", exc)
                codes[i] = StatusCode.BAD_DECODING_ERROR
            except Exception as exc:
                self._log_error(f"read of {m.meter_id}", exc)
                codes[i] = StatusCode.BAD_COMMUNICATION_ERROR
            else:
                for tag, value in values.items():
                    columns[tag][i] = value
            stamps[i] = self.clock.time()
        return columns

    @staticmethod
    def _blocks(profile: RegisterProfile, scan_class: str) -> list[tuple[int, int]]:
        if scan_class == FREEZE:
            width = profile.read_plan(FREEZE).width
            return [(profile.pdu(profile.freeze.address(1)), width)]
        return [(b.pdu_start, b.count) for b in profile.read_plan(scan_class).blocks]

    # -- after a scan --------------------------------------------------------------------------

    async def _link_result(self, rows: npt.NDArray[np.int64], answered: bool, now: float) -> None:
        """Record the link's result; a link down for `gateway_down_s` takes its meters offline."""
        self.comm.link_answered(self.name, self.kind, answered, now)
        record = self.comm.links.get(self.name)
        if record is not None and record.down_for(now) >= self.comm.gateway_down_s:
            await self.comm.lost(rows, now)

    async def _freeze_read(
        self,
        chosen: npt.NDArray[np.int64],
        rows: npt.NDArray[np.int64],
        columns: dict[str, npt.NDArray[np.generic]],
        ok: npt.NDArray[np.bool_],
        now: float,
    ) -> None:
        current = ok & (
            columns.get("yymm", np.zeros(len(ok), np.int64)) == self.freeze.expected(now)
        )
        self.freeze.answered(chosen[current], now)
        if current.any():
            values = {tag: column[current] for tag, column in columns.items() if tag != "yymm"}
            yymm = np.asarray(columns["yymm"][current], np.int64)
            await self.pipeline.freeze_read(FreezeReadings(rows[current], yymm, values, now))

    async def _after(
        self,
        scan_class: str,
        members: list[Member],
        ok: npt.NDArray[np.bool_],
        columns: dict[str, npt.NDArray[np.generic]],
        now: float,
    ) -> None:
        """Clock checks: from a poll block's clock, or read after the daily prepaid scan."""
        if self.clock_sync is None:
            return
        if scan_class == POLL_BLOCK and CLOCK_TAG in columns:
            clocks = np.asarray(columns[CLOCK_TAG], np.float64)
            await self.check_clocks(
                [m for m, good in zip(members, ok, strict=True) if good], clocks[ok], now
            )
        elif scan_class == "prepaid" and CLOCK_TAG not in columns:
            answered = [m for m, good in zip(members, ok, strict=True) if good]
            clocks = np.array([await self._read_clock(m) for m in answered], np.float64)
            await self.check_clocks(answered, clocks, self.clock.time())

    async def _read_clock(self, m: Member) -> float:
        field = clock_field(m.profile)
        if field is None:
            return math.nan
        try:
            registers = await m.line.read(m.slave, m.profile.pdu(field.address), field.count)
        except LinkError:
            return math.nan
        return decode_clock(m.profile, field, registers, self.tz)

    async def check_clocks(
        self, members: list[Member], clocks: npt.NDArray[np.float64], now: float
    ) -> None:
        """Set the clocks of the members that drifted beyond the limit."""
        if self.clock_sync is None or not members:
            return
        rows = np.array([m.row for m in members], np.int64)
        chosen = set(self.clock_sync.drifted(rows, clocks.reshape(len(rows)), now).tolist())
        for m in members:
            if m.row in chosen:
                await self.time_setter(m, self.clock.time())

    async def _write_clock(self, m: Member, now: float) -> None:
        assert self.clock_sync is not None
        await self.clock_sync.set_through(m.channel, m.profile, now)

    # -- state ---------------------------------------------------------------------------------

    def _transition(
        self, scan_class: str, good: int, total: int, codes: npt.NDArray[np.uint32]
    ) -> None:
        if not total:
            return
        before = self.state
        if good == 0:
            self.state = GroupState.FAILING
        elif before is GroupState.FAILING:
            self.state = GroupState.RECOVERED
        elif before is GroupState.RECOVERED:
            self.state = GroupState.OK
        if self.state is before:
            return
        if self.state is GroupState.FAILING:
            reason = StatusCode(int(codes[0])).name if len(codes) else "?"
            log.warning(
                "poll group %s (%s): failing, no meter answered the %s scan (%s)",
                self.name,
                self.kind,
                scan_class,
                reason,
            )
        else:
            log.info(
                "poll group %s (%s): %s, %d of %d meters answered the %s scan",
                self.name,
                self.kind,
                self.state.value,
                good,
                total,
                scan_class,
            )

    def _log_error(self, what: str, exc: Exception) -> None:
        key = f"{what.split(' ')[0]}:{type(exc).__name__}"
        if key in self._errors_logged:
            return
        self._errors_logged.add(key)
        log.error("poll group %s: %s failed unexpectedly: %r", self.name, what, exc, exc_info=exc)
