"""Injectable wall clocks: the system clock for the server, a manual clock for tests."""

from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Something that tells the wall-clock time as Unix seconds."""

    def time(self) -> float:
        """The current time, Unix seconds."""
        ...


class SystemClock:
    """The operating system's wall clock."""

    def time(self) -> float:
        """The current time, Unix seconds."""
        return time.time()


class ManualClock:
    """A clock that only moves when told to; tests use it instead of sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = _finite(start, "start")

    def time(self) -> float:
        """The current time, Unix seconds."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by `seconds` (never backwards) and return the new time."""
        step = _finite(seconds, "seconds")
        if step < 0:
            raise ValueError(f"a ManualClock cannot go back: advance({seconds!r})")
        self._now += step
        return self._now

    def set(self, now: float) -> None:
        """Jump to `now`, which may be earlier (to test a clock that was set back)."""
        self._now = _finite(now, "now")


def _finite(value: float, name: str) -> float:
    """`value` as a float, or a `ValueError` naming `name` when it is not finite."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return number
