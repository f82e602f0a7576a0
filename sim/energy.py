"""Energy registers as a meter keeps them: integer 0.01 kWh counters per TOU bucket."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

# Internal energy unit: secondary milliwatt × millisecond. One register count is 0.01 kWh.
COUNT_MWMS: Final = 36_000_000_000
U32: Final = 1 << 32
N_BUCKETS: Final = 4


class EnergyRegisters:
    """Secondary-side counters (0.01 kWh, wrapping at U32) with the sub-count remainder carried."""

    def __init__(self, n_meters: int) -> None:
        """All counters at zero."""
        self.buckets: IntArray = np.zeros((n_meters, N_BUCKETS), dtype=np.int64)
        self.total: IntArray = np.zeros(n_meters, dtype=np.int64)
        self.remainder: IntArray = np.zeros(n_meters, dtype=np.int64)

    def accumulate(self, energy: IntArray, bucket: npt.NDArray[np.int8]) -> IntArray:
        """Add energy (segments × meters, mW·ms) into each segment's bucket; counts per bucket.

        A count lands in the bucket of the segment during which the running sum crosses it,
        like the pulses of a real register; the total always grows by the counts added.
        """
        if energy.shape[0] == 0:
            return np.zeros_like(self.buckets)
        running = np.cumsum(energy, axis=0)
        running += self.remainder[None, :]
        crossed = running // COUNT_MWMS
        counts = np.diff(crossed, axis=0, prepend=0)
        added = np.empty_like(self.buckets)
        for b in range(N_BUCKETS):
            added[:, b] = np.where(bucket == b, counts, 0).sum(axis=0)
        self.remainder = running[-1] % COUNT_MWMS
        self.buckets = (self.buckets + added) % U32
        self.total = (self.total + crossed[-1]) % U32
        return added

    def preset(self, rows: IntArray, buckets: IntArray) -> None:
        """Load counters (rows × 4 buckets) as a newly installed meter shows them."""
        values = np.asarray(buckets, dtype=np.int64)
        if values.shape != (rows.size, N_BUCKETS) or values.min(initial=0) < 0:
            raise ValueError(f"buckets: need {rows.size} rows of 4 counts ≥ 0")
        self.buckets[rows] = values % U32
        self.total[rows] = values.sum(axis=1) % U32
        self.remainder[rows] = 0
