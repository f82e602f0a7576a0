"""Benchmark "alarms": one evaluation of every alarm of 5,407 meters after a realtime batch."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt

from alarms.engine import AlarmEngine
from bench.runner import Metric
from bench.tags import GATEWAYS, METERS
from bench.timing import median_seconds
from config.model import (
    Acquisition,
    AlarmLimits,
    Alarms,
    Area,
    Gateway,
    Meter,
    Park,
    Services,
    Site,
)
from server.clock import ManualClock
from server.tags import Batch, ChangeSet, StatusCode, TagTable

EVAL_TARGET_MS = 1.0
NOMINAL_V = 220.0
FLIPPING_SHARE = 0.01


def build_site(limits: AlarmLimits | None = None) -> Site:
    """The reference park's shape: 5,407 meters in blocks behind 224 gateways, all prepaid."""
    meters = []
    for i in range(METERS):
        three = i % 4 == 0
        meters.append(
            Meter(
                id=f"M{i:05d}",
                model="DTSY1352" if three else "DDSY1352",
                dlt645_address=f"{i + 1:012d}",
                gateway=f"GW{i * GATEWAYS // METERS + 1:03d}",
                slave=i % 32 + 1,
                serial=None,
                area="DORM" if i % 5 < 3 else "ENT",
                building=None,
                room=str(i),
                owner="",
                billing="prepaid",
                ct=1,
                pt=1,
                merchant=None,
                tariff=None,
                power_limit_kw=Decimal(30 if three else 5),
                alarm1_fen=5_000,
                alarm2_fen=1_000,
                credit_limit_fen=0,
                line=i + 2,
            )
        )
    gateway_ids = sorted({m.gateway for m in meters if m.gateway})
    return Site(
        folder=Path("bench-site"),
        park=Park("bench", "Asia/Shanghai", NOMINAL_V),
        services=Services(),
        acquisition=Acquisition(),
        areas=(
            Area("DORM", "Dormitories", "dormitory", None, ()),
            Area("ENT", "Enterprises", "enterprise", None, ()),
        ),
        gateways=tuple(Gateway(g, "dtu", "DORM", "modbus_rtu") for g in gateway_ids),
        meters=tuple(meters),
        tariffs=(),
        merchants=(),
        alarms=Alarms(limits or AlarmLimits()),
        routes=(),
        users=(),
    )


def realtime_batch(
    rng: np.random.Generator, clock: ManualClock, low_rows: npt.NDArray[np.int64]
) -> Batch:
    """A full realtime batch of healthy meters, with the voltage of `low_rows` at 150 V."""
    rows = np.arange(METERS, dtype=np.int64)
    voltages = {t: rng.normal(NOMINAL_V, 3.0, METERS) for t in ("u_a", "u_b", "u_c")}
    for column in voltages.values():
        column[low_rows] = 150.0
    values: dict[str, npt.NDArray[np.generic]] = {
        **voltages,
        "p": rng.uniform(0.1, 4.0, METERS),
        "relay": np.ones(METERS, dtype=np.uint8),
        "fault": np.zeros(METERS, dtype=np.uint8),
        "over_limit": np.zeros(METERS, dtype=np.uint8),
    }
    return Batch("realtime", rows, values, quality=StatusCode.GOOD, source_ts=clock.time())


def time_on_batch(
    engine: AlarmEngine, table: TagTable, clock: ManualClock, batches: list[Batch]
) -> float:
    """Median seconds of `on_batch`; applying each batch to the table is not timed."""
    cycle = itertools.cycle(batches)
    pending: dict[str, ChangeSet] = {}

    def apply_next() -> None:
        clock.advance(1.0)
        pending["changes"] = table.apply(next(cycle))

    return median_seconds(lambda: engine.on_batch(pending["changes"]), setup=apply_next)


def build_engine(site: Site, clock: ManualClock) -> tuple[AlarmEngine, TagTable]:
    """A tag table for `site` with every balance well above the alarm levels, and its engine."""
    table = TagTable(
        [m.id for m in site.meters],
        areas=[m.area for m in site.meters],
        gateways=[m.gateway for m in site.meters],
        three_phase=[m.three_phase for m in site.meters],
        clock=clock,
    )
    rows = np.arange(METERS, dtype=np.int64)
    balance = Batch(
        "prepaid", rows, {"balance_fen": np.full(METERS, 20_000)}, source_ts=clock.time()
    )
    table.apply(balance)
    return AlarmEngine(site, table, clock=clock), table


def run() -> dict[str, Metric]:
    """Time evaluation on quiet batches and on batches where 1 % of meters flip an alarm."""
    rng = np.random.default_rng(20_240_601)
    clock = ManualClock()
    none = np.zeros(0, dtype=np.int64)
    engine, table = build_engine(build_site(), clock)
    quiet = [realtime_batch(rng, clock, none) for _ in range(2)]
    quiet_s = time_on_batch(engine, table, clock, quiet)

    # Without an on-delay, every other batch raises and the next clears 1 % of the meters.
    engine, table = build_engine(build_site(AlarmLimits(undervoltage_delay_s=0)), clock)
    flipping = rng.choice(METERS, int(METERS * FLIPPING_SHARE), replace=False)
    flips = [realtime_batch(rng, clock, flipping), realtime_batch(rng, clock, none)]
    seen = [0]

    def count(_record: object) -> None:
        seen[0] += 1

    engine.subscribe(count)
    flipping_s = time_on_batch(engine, table, clock, flips)
    return {
        "eval_ms": Metric(quiet_s * 1e3, "ms", EVAL_TARGET_MS, "lower"),
        "eval_flipping_1pct_ms": Metric(flipping_s * 1e3, "ms", None, "lower"),
        "meters": Metric(float(METERS), "meters", None, "higher"),
        "transitions_seen": Metric(float(seen[0]), "transitions", None, "higher"),
    }
