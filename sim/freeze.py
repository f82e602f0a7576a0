"""Monthly freeze blocks: the last 12 month-end copies of the energy and demand registers."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DEPTH: Final = 12


class FreezeRing:
    """Freeze block n (1 = the previous month) sits at index n − 1; older blocks shift down."""

    def __init__(self, n_meters: int) -> None:
        """Twelve empty blocks (month 0)."""
        self.month: IntArray = np.zeros(DEPTH, dtype=np.int64)
        self.time: FloatArray = np.full(DEPTH, np.nan)
        self.counts: IntArray = np.zeros((DEPTH, n_meters, 5), dtype=np.int64)
        self.demand_energy: IntArray = np.zeros((DEPTH, n_meters), dtype=np.int64)
        self.demand_time: FloatArray = np.full((DEPTH, n_meters), np.nan)

    def freeze(
        self,
        month: int,
        at_s: float,
        total: IntArray,
        buckets: IntArray,
        demand_energy: IntArray,
        demand_time: FloatArray,
    ) -> None:
        """Push a block for `month` (YY×100 + MM of the month that ended) frozen at `at_s`."""
        for column in (self.month, self.time, self.counts, self.demand_energy, self.demand_time):
            column[1:] = column[:-1].copy()
        self.month[0] = month
        self.time[0] = at_s
        self.counts[0, :, 0] = total
        self.counts[0, :, 1:] = buckets
        self.demand_energy[0] = demand_energy
        self.demand_time[0] = demand_time
