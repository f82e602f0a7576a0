"""Benchmark "tags": batch apply, deltas and snapshots on a 5,407-meter tag table."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt

from bench.runner import Metric, ratio
from bench.timing import median_seconds
from config.catalogue import TagDef, default_catalogue
from server.clock import ManualClock
from server.tags import Batch, StatusCode, TagTable

METERS = 5_407
GATEWAYS = 224
CHANGED_SHARE = 0.10
APPLY_TARGET_MS = 5.0


def build_table(clock: ManualClock) -> TagTable:
    """The reference park's shape: 5,407 meters in contiguous blocks behind 224 gateways."""
    ids = [f"M{i:05d}" for i in range(METERS)]
    gateway = [f"GW{i * GATEWAYS // METERS + 1:03d}" for i in range(METERS)]
    areas = ["DORM" if i % 5 < 3 else "ENT" for i in range(METERS)]
    three_phase = [i % 4 == 0 for i in range(METERS)]
    return TagTable(ids, areas=areas, gateways=gateway, three_phase=three_phase, clock=clock)


def random_values(
    tags: tuple[TagDef, ...], count: int, rng: np.random.Generator
) -> dict[str, npt.NDArray[np.generic]]:
    """Plausible decoded values for `count` meters: floats, small ints and 0/1 flags."""
    values: dict[str, npt.NDArray[np.generic]] = {}
    for tag in tags:
        if tag.kind == "float":
            values[tag.name] = rng.uniform(0.0, 400.0, count)
        elif tag.kind == "int":
            values[tag.name] = rng.integers(0, 100_000, count, dtype=np.int64)
        else:
            values[tag.name] = rng.integers(0, 2, count, dtype=np.uint8)
    return values


def full_batches(group: str, rng: np.random.Generator, clock: ManualClock) -> list[Batch]:
    """Two full batches of a group whose values all differ, so each apply changes every row."""
    tags = default_catalogue().group_tags(group)
    rows = np.arange(METERS, dtype=np.int64)
    first = random_values(tags, METERS, rng)
    second = {name: _other(values) for name, values in first.items()}
    return [
        Batch(group, rows, first, quality=StatusCode.GOOD, source_ts=clock.time()),
        Batch(group, rows, second, quality=StatusCode.GOOD, source_ts=clock.time()),
    ]


def _other(values: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """Values that differ from `values` everywhere."""
    if values.dtype == np.uint8:
        flipped: npt.NDArray[np.generic] = np.subtract(1, values).astype(np.uint8)
        return flipped
    shifted: npt.NDArray[np.generic] = np.add(values, 1)
    return shifted


def time_apply(table: TagTable, batches: list[Batch]) -> float:
    """Median seconds per `apply`, alternating between batches so every apply changes all."""
    cycle = itertools.cycle(batches)
    return median_seconds(lambda: table.apply(next(cycle)))


def naive_apply_seconds(batch: Batch, tags: tuple[TagDef, ...]) -> float:
    """The same realtime apply done the object way: one dict per meter, one tag at a time."""
    meters: list[dict[str, object]] = [
        {**{t.name: math.nan for t in tags}, "quality": 0, "version": 0} for _ in range(METERS)
    ]
    columns = {name: values.tolist() for name, values in batch.values.items()}
    rows = batch.rows.tolist()
    quality = batch.quality.tolist()
    state = {"version": 0, "flip": 0.0}

    def apply_objects() -> None:
        state["version"] += 1
        state["flip"] = 1.0 - state["flip"]
        for position, row in enumerate(rows):
            meter = meters[row]
            changed = meter["quality"] != quality[position]
            meter["quality"] = quality[position]
            for name, column in columns.items():
                new = column[position] + state["flip"]
                old = meter[name]
                if old != new and not (old != old and new != new):
                    changed = True
                meter[name] = new
            if changed:
                meter["version"] = state["version"]

    return median_seconds(apply_objects, repeat=7, warmup=1)


def run() -> dict[str, Metric]:
    """Time full batches, per-gateway batches, deltas, snapshots and the object-way apply."""
    rng = np.random.default_rng(20_240_501)
    clock = ManualClock()
    table = build_table(clock)
    catalogue = default_catalogue()
    realtime = full_batches("realtime", rng, clock)
    energy = full_batches("energy", rng, clock)
    realtime_values = METERS * len(catalogue.group_tags("realtime"))
    energy_values = METERS * len(catalogue.group_tags("energy"))

    realtime_s = time_apply(table, realtime)
    energy_s = time_apply(table, energy)

    order = rng.permutation(METERS)
    shuffled = [
        Batch(
            "realtime",
            b.rows[order],
            {n: v[order] for n, v in b.values.items()},
            source_ts=clock.time(),
        )
        for b in realtime
    ]
    shuffled_s = time_apply(table, shuffled)

    bounds = np.searchsorted(table.meters.gateway_codes, np.arange(GATEWAYS + 1))
    per_gateway = [
        [
            Batch(
                "realtime",
                b.rows[lo:hi],
                {n: v[lo:hi] for n, v in b.values.items()},
                source_ts=clock.time(),
            )
            for lo, hi in itertools.pairwise(bounds.tolist())
        ]
        for b in realtime
    ]
    scans = itertools.cycle(per_gateway)

    def gateway_scan() -> None:
        for batch in next(scans):
            table.apply(batch)

    gateway_scan_s = median_seconds(gateway_scan, repeat=21)

    changed_rows = np.sort(rng.choice(METERS, int(METERS * CHANGED_SHARE), replace=False))
    partial = [
        Batch(
            "realtime",
            changed_rows,
            {n: v[changed_rows] for n, v in b.values.items()},
            source_ts=clock.time(),
        )
        for b in realtime
    ]
    partial_cycle = itertools.cycle(partial)
    since = {"version": table.version}

    def change_ten_percent() -> None:
        since["version"] = table.version
        table.apply(next(partial_cycle))

    deltas_s = median_seconds(lambda: table.deltas(since["version"]), setup=change_ten_percent)
    change_ten_percent()
    delta_rows = len(table.deltas(since["version"]))
    snapshot_s = median_seconds(table.snapshot)
    naive_s = naive_apply_seconds(realtime[0], catalogue.group_tags("realtime"))

    return {
        "realtime_apply_ms": Metric(realtime_s * 1e3, "ms", APPLY_TARGET_MS, "lower"),
        "realtime_values_per_s": Metric(
            ratio(realtime_values, realtime_s), "values/s", None, "higher"
        ),
        "realtime_apply_shuffled_ms": Metric(shuffled_s * 1e3, "ms", APPLY_TARGET_MS, "lower"),
        "energy_apply_ms": Metric(energy_s * 1e3, "ms", None, "lower"),
        "energy_values_per_s": Metric(ratio(energy_values, energy_s), "values/s", None, "higher"),
        "gateway_scan_ms": Metric(gateway_scan_s * 1e3, "ms", None, "lower"),
        "gateway_scan_values_per_s": Metric(
            ratio(realtime_values, gateway_scan_s), "values/s", None, "higher"
        ),
        "deltas_10pct_ms": Metric(deltas_s * 1e3, "ms", None, "lower"),
        "deltas_10pct_rows": Metric(float(delta_rows), "rows", None, "lower"),
        "snapshot_ms": Metric(snapshot_s * 1e3, "ms", None, "lower"),
        "object_apply_ms": Metric(naive_s * 1e3, "ms", None, "lower"),
        "columnar_speedup": Metric(ratio(naive_s, realtime_s), "x", None, "higher"),
    }
