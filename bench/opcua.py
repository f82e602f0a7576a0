# mypy: disable-error-code="attr-defined,arg-type,name-defined"
# (asyncua 2.1 re-exports `ua.*`/`Server` implicitly and types scalars as NewTypes.)
"""Benchmark "opcua": build the park's OPC UA address space fast and the plain way, and update it.

Each build runs in its own child process so that one build's memory does not count
against the other: `build_s` / `build_rss_mb` are the fast build (types, nodes, value
index and the first load of the values); `naive_build_s` is the plain asyncua build,
stopped at NAIVE_CAP_S (and reported as the cap) if it runs longer.
`update_ms_per_batch` is the cost of writing one realtime batch in which every value of
every meter changed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.runner import Metric

BUILD_TARGET_S = 5.0
BUILD_RSS_TARGET_MB = 400.0
NAIVE_CAP_S = 150.0
UPDATE_ROUNDS = 5


def _rss_mb() -> float:
    """The resident set size of the current process in MB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def _child(kind: str, folder: Path) -> dict[str, float]:
    """Build in this (child) process; report seconds, RSS growth and update cost."""
    from asyncua import Server

    from config.loader import load_site
    from server.clock import ManualClock
    from server.opcua import build_naive, build_park
    from server.process import build_tag_table
    from server.tags import Batch

    site = load_site(folder)
    clock = ManualClock()
    table = build_tag_table(site, clock)
    server = Server()
    await server.init()
    before = _rss_mb()
    started = time.perf_counter()
    if kind == "naive":
        await build_naive(server, site, table.catalogue)
        return {"seconds": time.perf_counter() - started}
    values = await build_park(server, site, table)
    result = {"seconds": time.perf_counter() - started, "rss_mb": _rss_mb() - before}
    tags = table.catalogue.group_tags("realtime")
    rows = np.arange(len(table), dtype=np.int64)
    rng = np.random.default_rng(1)
    costs = []
    for _ in range(UPDATE_ROUNDS):
        clock.advance(1.0)
        batch_values = {
            t.name: rng.uniform(0.0, 400.0, len(rows))
            if t.kind == "float"
            else rng.integers(0, 2, len(rows))
            for t in tags
        }
        changes = table.apply(Batch("realtime", rows, batch_values, source_ts=clock.time()))
        await values.on_batch(changes)
        costs.append(values.stats.last_ms)
    result["update_ms"] = float(np.median(costs[1:]))
    result["values_per_batch"] = float(len(rows) * len(tags))
    return result


def _run_child(kind: str, folder: Path, timeout: float | None) -> dict[str, float] | None:
    """Run one build in a fresh interpreter; None when it hit `timeout`."""
    command = [sys.executable, "-m", "bench.opcua", kind, str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    report: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def run() -> dict[str, Metric]:
    """Build the generated park both ways and update it; return the figures."""
    from config.demo import generate_site

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "site"
        generate_site(folder, seed=1)
        fast = _run_child("fast", folder, None)
        assert fast is not None
        naive = _run_child("naive", folder, NAIVE_CAP_S)
    naive_s = NAIVE_CAP_S if naive is None else naive["seconds"]
    return {
        "build_s": Metric(fast["seconds"], "s", BUILD_TARGET_S),
        "build_rss_mb": Metric(fast["rss_mb"], "MB", BUILD_RSS_TARGET_MB),
        "naive_build_s": Metric(naive_s, "s"),
        "naive_capped": Metric(1.0 if naive is None else 0.0, "bool"),
        "update_ms_per_batch": Metric(fast["update_ms"], "ms"),
        "update_values_per_batch": Metric(fast["values_per_batch"], "values", better="higher"),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_child(sys.argv[1], Path(sys.argv[2])))))
