"""Timing for benchmarks: run a function many times and keep the median."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable


def median_seconds(
    action: Callable[[], object],
    *,
    repeat: int = 51,
    warmup: int = 3,
    setup: Callable[[], object] | None = None,
) -> float:
    """The median wall time of `action` over `repeat` runs, after `warmup` untimed runs.

    `setup`, when given, runs untimed before each run. The garbage collector is paused
    while timing so that one collection does not land in a sample.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    for _ in range(warmup):
        if setup is not None:
            setup()
        action()
    samples: list[float] = []
    collecting = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            if setup is not None:
                setup()
            start = time.perf_counter()
            action()
            samples.append(time.perf_counter() - start)
    finally:
        if collecting:
            gc.enable()
    return statistics.median(samples)
