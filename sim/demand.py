"""Maximum demand: a 15-minute window sliding every minute over one-minute energy slots."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

WINDOW_SLOTS: Final = 15
WINDOW_MS: Final = WINDOW_SLOTS * 60_000


class DemandRing:
    """The last 15 completed minutes of energy per meter, and the month's maximum window."""

    def __init__(self, n_meters: int) -> None:
        """An empty ring and no maximum yet."""
        self.slots: IntArray = np.zeros((WINDOW_SLOTS, n_meters), dtype=np.int64)
        self.partial: IntArray = np.zeros(n_meters, dtype=np.int64)
        self.max_energy: IntArray = np.zeros(n_meters, dtype=np.int64)
        self.max_time: FloatArray = np.full(n_meters, np.nan)

    def add(self, energy: IntArray, complete: npt.NDArray[np.bool_], end_s: FloatArray) -> None:
        """Feed consecutive minute segments (segments × meters, mW·ms).

        `complete[s]` says segment s ends on a minute boundary at `end_s[s]`; only the last
        segment may be incomplete, and the first continues the minute already in `partial`.
        """
        if energy.shape[0] == 0:
            return
        done = np.flatnonzero(complete)
        if done.size == 0:
            self.partial = self.partial + energy.sum(axis=0)
            return
        minutes = energy[done]
        minutes[0] += self.partial
        sequence = np.concatenate([self.slots, minutes])
        sums = np.concatenate([np.zeros((1, sequence.shape[1]), np.int64), sequence.cumsum(0)])
        n = done.size
        windows = sums[WINDOW_SLOTS + 1 : WINDOW_SLOTS + 1 + n] - sums[1 : 1 + n]
        best = windows.max(axis=0)
        when = end_s[done][windows.argmax(axis=0)]
        higher = best > self.max_energy
        self.max_energy = np.where(higher, best, self.max_energy)
        self.max_time = np.where(higher, when, self.max_time)
        self.slots = sequence[-WINDOW_SLOTS:]
        self.partial = np.zeros_like(self.partial) if complete[-1] else energy[-1].copy()

    def reset_max(self) -> None:
        """Start a new maximum, as the monthly freeze does."""
        self.max_energy = np.zeros_like(self.max_energy)
        self.max_time = np.full_like(self.max_time, np.nan)


def demand_kw(window_energy: IntArray, ratio: IntArray) -> FloatArray:
    """Average primary kW over a 15-minute window of secondary mW·ms."""
    return window_energy / (WINDOW_MS * 1e6) * ratio
