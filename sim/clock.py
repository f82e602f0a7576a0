"""An accelerated clock for demos: simulated time runs `factor` times faster than a base clock."""

from __future__ import annotations

import math

from server.clock import Clock


class AcceleratedClock:
    """Simulated Unix time: `origin` plus `factor` × the base clock's elapsed time."""

    def __init__(self, base: Clock, factor: float, origin: float | None = None) -> None:
        """Start at `origin` (default: the base clock's time) and run `factor` times faster."""
        if not math.isfinite(factor) or factor <= 0:
            raise ValueError(f"factor must be a positive number, got {factor!r}")
        self._base = base
        self._factor = float(factor)
        self._base_start = base.time()
        self._origin = self._base_start if origin is None else float(origin)
        if not math.isfinite(self._origin):
            raise ValueError(f"origin must be a finite Unix time, got {origin!r}")

    @property
    def factor(self) -> float:
        """How many simulated seconds pass per base-clock second."""
        return self._factor

    def set_factor(self, factor: float) -> None:
        """Change the speed from now on; the simulated time does not jump."""
        if not math.isfinite(factor) or factor <= 0:
            raise ValueError(f"factor must be a positive number, got {factor!r}")
        self._origin = self.time()
        self._base_start = self._base.time()
        self._factor = float(factor)

    def time(self) -> float:
        """The simulated time, Unix seconds."""
        return self._origin + (self._base.time() - self._base_start) * self._factor
