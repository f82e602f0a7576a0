"""When each scan class of a poll group is due, on the injected clock.

Each group has a phase in [0, 1): its scans of a class fall at `anchor + (phase + k) ×
interval`, so 224 gateways polled every 60 s spread their requests over the minute instead
of firing together. The first scan of every class comes within `startup_window_s` (phase ×
the window) so that a freshly started server fills the table at once. A scan that overran
its interval skips the missed slots rather than running back to back.

The monthly freeze is read after 00:00 local time on the 1st (and once at start, since the
server may have been down then): every meter is pending until it answers with the block
of the month that just ended; the others are retried every `retry_s`.
"""

from __future__ import annotations

import math
from datetime import datetime, tzinfo
from typing import Final

import numpy as np
import numpy.typing as npt

SCAN_ORDER: Final = ("poll_block", "realtime", "energy", "demand", "prepaid", "freeze")
MIN_INTERVAL_S: Final = 1.0


def group_phase(index: int, count: int) -> float:
    """An evenly spread phase for group `index` of `count` (a golden-ratio sequence)."""
    if count <= 1:
        return 0.0
    return (index * 0.6180339887498949) % 1.0


class ScanSchedule:
    """Due times of a group's periodic scan classes."""

    def __init__(
        self,
        intervals: dict[str, float],
        now: float,
        *,
        phase: float = 0.0,
        startup_window_s: float = 5.0,
    ) -> None:
        for name, interval in intervals.items():
            if not math.isfinite(interval) or interval < MIN_INTERVAL_S:
                raise ValueError(f"scan class {name}: interval must be >= 1 s, got {interval!r}")
        if not 0.0 <= phase < 1.0:
            raise ValueError(f"phase must be in [0, 1), got {phase!r}")
        self.intervals = dict(intervals)
        self.phase = phase
        self.anchor = now
        window = max(0.0, startup_window_s)
        self._next = {c: now + phase * min(i, window) for c, i in self.intervals.items()}

    def due(self, now: float) -> list[str]:
        """The classes due at `now`, in scan order."""
        return [c for c in SCAN_ORDER if c in self._next and self._next[c] <= now]

    def done(self, scan_class: str, now: float) -> None:
        """`scan_class` ran at `now`: its next slot is the first one after `now`."""
        interval = self.intervals[scan_class]
        start = self.anchor + self.phase * interval
        k = math.floor((now - start) / interval) + 1
        self._next[scan_class] = start + max(k, 1) * interval

    def trigger(self, scan_class: str, now: float) -> None:
        """Make `scan_class` due at `now` (a link came back, or a full scan is asked for)."""
        if scan_class in self._next:
            self._next[scan_class] = min(self._next[scan_class], now)

    def next_time(self) -> float:
        """When the next class falls due."""
        return min(self._next.values(), default=math.inf)


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
