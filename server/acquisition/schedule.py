"""When each scan class of a poll group is due, on the injected clock.

Each group has a phase in [0, 1): its scans of a class fall at `anchor + (phase + k) ×
interval`, so 224 gateways polled every 60 s spread their requests over the minute instead
of firing together. The first scan of every class comes within `startup_window_s` (phase ×
the window) so that a freshly started server fills the table at once. A scan that overran
its interval skips the missed slots rather than running back to back.

Intervals are per member (a meters group may scan one meter of a gateway faster than the
rest): each member has its own next time, members sharing an interval stay in step, and
a scan reads the due subset, picked with one array comparison.

The monthly freeze is read after 00:00 local time on the 1st (and once at start, since the
server may have been down then): every meter is pending until it answers with the block
of the month that just ended; the others are retried every `retry_s`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

SCAN_ORDER: Final = ("poll_block", "realtime", "energy", "demand", "prepaid", "freeze")
MIN_INTERVAL_S: Final = 1.0


def group_phase(index: int, count: int) -> float:
    """An evenly spread phase for group `index` of `count` (a golden-ratio sequence)."""
    if count <= 1:
        return 0.0
    return (index * 0.6180339887498949) % 1.0


Intervals: TypeAlias = Mapping[str, float | npt.NDArray[np.float64]]


class ScanSchedule:
    """Due times of a group's periodic scan classes, member by member."""

    def __init__(
        self,
        intervals: Intervals,
        now: float,
        *,
        members: int = 1,
        phase: float = 0.0,
        startup_window_s: float = 5.0,
    ) -> None:
        """`intervals`: per class one interval for every member, or an array of `members`."""
        self.members = members
        self.intervals: dict[str, npt.NDArray[np.float64]] = {}
        for name, interval in intervals.items():
            column = np.broadcast_to(np.asarray(interval, np.float64), (members,)).copy()
            if not np.all(np.isfinite(column)) or np.any(column < MIN_INTERVAL_S):
                bad = column[~(np.isfinite(column) & (column >= MIN_INTERVAL_S))][0]
                raise ValueError(f"scan class {name}: interval must be >= 1 s, got {bad!r}")
            self.intervals[name] = column
        if not 0.0 <= phase < 1.0:
            raise ValueError(f"phase must be in [0, 1), got {phase!r}")
        self.phase = phase
        self.anchor = now
        window = max(0.0, startup_window_s)
        self._next = {c: now + phase * np.minimum(i, window) for c, i in self.intervals.items()}

    def due(self, now: float) -> list[str]:
        """The classes with a member due at `now`, in scan order."""
        return [c for c in SCAN_ORDER if c in self._next and bool((self._next[c] <= now).any())]

    def due_members(self, scan_class: str, now: float) -> npt.NDArray[np.int64]:
        """Positions of the members whose `scan_class` is due at `now`."""
        return np.flatnonzero(self._next[scan_class] <= now).astype(np.int64)

    def done(
        self, scan_class: str, now: float, members: npt.NDArray[np.int64] | None = None
    ) -> None:
        """`scan_class` ran at `now` for `members` (None: all): their next slot is after `now`."""
        chosen = slice(None) if members is None else members
        interval = self.intervals[scan_class][chosen]
        start = self.anchor + self.phase * interval
        k = np.floor((now - start) / interval) + 1
        self._next[scan_class][chosen] = start + np.maximum(k, 1) * interval

    def trigger(self, scan_class: str, now: float) -> None:
        """Make `scan_class` due at `now` for every member (a link came back, a full scan)."""
        if scan_class in self._next:
            np.minimum(self._next[scan_class], now, out=self._next[scan_class])

    def next_time(self) -> float:
        """When the next class falls due (for some member)."""
        return min((float(n.min()) for n in self._next.values() if len(n)), default=math.inf)


def local_month(now: float, tz: tzinfo) -> tuple[int, int]:
    """(year, month) of `now` on the park's wall clock."""
    local = datetime.fromtimestamp(now, tz)
    return local.year, local.month


def previous_yymm(now: float, tz: tzinfo) -> int:
    """YY×100+MM of the month before the one `now` falls in (the month the freeze closes)."""
    year, month = local_month(now, tz)
    year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return (year % 100) * 100 + month


class FreezeSchedule:
    """Which members still owe this month's freeze block, and when to ask them again."""

    def __init__(self, members: int, tz: tzinfo, now: float, *, retry_s: float) -> None:
        if retry_s < MIN_INTERVAL_S:
            raise ValueError(f"freeze retry must be >= 1 s, got {retry_s!r}")
        self.tz = tz
        self.retry_s = retry_s
        self.month = local_month(now, tz)
        self.pending: npt.NDArray[np.bool_] = np.ones(members, np.bool_)
        self.next_try = now
        self.collected = 0

    def due(self, now: float) -> bool:
        """Whether a freeze read is due (a new month starts every member pending)."""
        month = local_month(now, self.tz)
        if month != self.month:
            self.month = month
            self.pending[:] = True
            self.next_try = now
        return bool(self.pending.any()) and now >= self.next_try

    def expected(self, now: float) -> int:
        """The YYMM the freeze blocks read at `now` must carry."""
        return previous_yymm(now, self.tz)

    def answered(self, members: npt.NDArray[np.int64], now: float) -> None:
        """These members gave this month's block; the rest are retried after `retry_s`."""
        done = members[self.pending[members]]
        self.collected += len(done)
        self.pending[done] = False
        self.next_try = now + self.retry_s
