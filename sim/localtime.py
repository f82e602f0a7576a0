"""Local calendar fields of Unix minutes in the park's time zone, vectorised."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class LocalMinutes:
    """Local calendar fields, one entry per Unix minute."""

    month: IntArray  # 1..12
    weekday: IntArray  # Monday = 0 .. Sunday = 6
    minute_of_day: IntArray  # 0..1439
    day: IntArray  # local days since 1970-01-01

    @property
    def weekend(self) -> IntArray:
        """1 on Saturday and Sunday, else 0."""
        return (self.weekday >= 5).astype(np.int64)


def utc_offset_s(tz: ZoneInfo, unix_s: float) -> int:
    """The zone's offset from UTC in seconds at a Unix time, rounded down to the minute."""
    offset = datetime.fromtimestamp(unix_s, tz).utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    return seconds - seconds % 60


def local_minutes(tz: ZoneInfo, minutes: IntArray) -> LocalMinutes:
    """Local month, weekday, minute of the day and day number of each Unix minute."""
    if minutes.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return LocalMinutes(empty, empty, empty, empty)
    first = utc_offset_s(tz, float(minutes[0]) * 60.0)
    last = utc_offset_s(tz, float(minutes[-1]) * 60.0)
    if first == last:
        offsets: IntArray | int = first
    else:  # a daylight-saving change inside the span: resolve minute by minute
        offsets = np.array([utc_offset_s(tz, float(m) * 60.0) for m in minutes], dtype=np.int64)
    local_s = minutes * 60 + offsets
    day = local_s // 86_400
    month = day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12 + 1
    return LocalMinutes(
        month=month,
        weekday=(day + 3) % 7,
        minute_of_day=(local_s % 86_400) // 60,
        day=day,
    )


def month_starts(tz: ZoneInfo, after_s: float, until_s: float) -> list[float]:
    """Unix times of local 00:00 on the 1st of a month, in (after_s, until_s]."""
    here = datetime.fromtimestamp(after_s, tz)
    year, month = here.year, here.month
    found: list[float] = []
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        start = datetime(year, month, 1, tzinfo=tz).timestamp()
        if start > until_s:
            return found
        if start > after_s:
            found.append(start)
