"""Benchmark "historian": wide-row binary COPY ingest of the whole park into TimescaleDB.

Realtime batches of all 5,407 meters (one wide row each) go through the writer as the
pipeline hands them over: encode on the caller, COPY on the writer thread. The same
blocks are then written directly and through the staging table (ON CONFLICT DO NOTHING),
and a sample with psycopg2's `execute_values`, each in the same process. Runs against a
scratch database (PARKGRID_BENCH_HISTORIAN_DB_URL) that it creates and drops.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg2
from psycopg2.extras import execute_values

from bench.runner import Metric, ratio
from config.catalogue import default_catalogue
from historian.copy_rows import CopyBlock, ReadingEncoder
from historian.databases import scratch_database
from historian.ingest import Ingest, Staging, connect
from historian.schema import prepare
from historian.writer import HistorianWriter
from server.clock import SystemClock
from server.tags import Batch, TagTable

DB_URL = os.environ.get(
    "PARKGRID_BENCH_HISTORIAN_DB_URL",
    "postgresql://postgres@127.0.0.1:5432/parkgrid_bench_historian",
)
METERS = 5_407
BATCHES = 40
SAMPLE_ROWS = 20_000


def _park() -> TagTable:
    ids = [f"M{i:05d}" for i in range(METERS)]
    return TagTable(
        ids, areas=["A"] * METERS, gateways=[None] * METERS, three_phase=[True] * METERS
    )


def _batches(table: TagTable, start: float) -> list[Batch]:
    rng = np.random.default_rng(7)
    tags = table.catalogue.group_tags("realtime")
    out = []
    for k in range(BATCHES):
        values = {
            t.name: rng.normal(230.0, 5.0, METERS)
            if t.kind == "float"
            else rng.integers(0, 2, METERS)
            for t in tags
        }
        out.append(Batch("realtime", np.arange(METERS), values, source_ts=start + k))
    return out


def _truncate(url: str) -> None:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE readings")
        conn.commit()
    finally:
        conn.close()


def _timed_ingest(url: str, blocks: list[CopyBlock], staging: Staging) -> float:
    """Seconds to write `blocks` (8 at a time) with the given staging policy."""
    _truncate(url)
    conn = connect(url)
    ingest = Ingest(conn, prepare(conn, default_catalogue(), time.time()), staging=staging)
    try:
        began = time.perf_counter()
        for i in range(0, len(blocks), 8):
            ingest.write(blocks[i : i + 8])
        return time.perf_counter() - began
    finally:
        ingest.close()


def _execute_values_rows_per_s(url: str, table: TagTable, batch: Batch) -> float:
    """Rows per second inserting the same wide rows with `execute_values`."""
    _truncate(url)
    tags = table.catalogue.group_tags("realtime")
    ids = table.ids
    rows = [
        (
            float(batch.source_ts[i]),
            str(ids[i]),
            "realtime",
            0,
            float(batch.source_ts[i]),
            [float(batch.values[t.name][i]) for t in tags],
        )
        for i in range(min(SAMPLE_ROWS, len(batch)))
    ]
    conn = psycopg2.connect(url)
    try:
        began = time.perf_counter()
        with conn.cursor() as cur:
            execute_values(
                cur,
                "INSERT INTO readings (ts, meter, grp, quality, server_ts, vals) VALUES %s",
                rows,
                template="(to_timestamp(%s), %s, %s, %s, to_timestamp(%s), %s)",
                page_size=1000,
            )
        conn.commit()
        return len(rows) / (time.perf_counter() - began)
    finally:
        conn.close()


def _measure(url: str, folder: Path) -> dict[str, Metric]:
    table = _park()
    width = len(table.catalogue.group_tags("realtime"))
    start = time.time() - 3600.0
    batches = _batches(table, start)
    writer = HistorianWriter(
        url, clock=SystemClock(), spool_dir=folder, meter_ids=list(table.ids), energy_group=""
    )
    writer.start()
    try:
        writer.flush(60)  # connected and prepared before the clock starts
        began = time.perf_counter()
        for batch in batches:
            writer.on_batch(table.apply(batch))
        if not writer.flush(300):
            raise RuntimeError(f"historian writer did not drain: {writer.status()}")
        elapsed = time.perf_counter() - began
    finally:
        writer.stop()
    rows = BATCHES * METERS
    encoder = ReadingEncoder(list(table.ids), table.catalogue)
    blocks = [b for b in (encoder.encode(x, start) for x in batches) if b is not None]
    direct_s = _timed_ingest(url, blocks, "on_conflict")
    staged_s = _timed_ingest(url, blocks, "always")
    copy_rows_s = rows / direct_s
    values_rows_s = _execute_values_rows_per_s(url, table, batches[0])
    return {
        "ingest_values_per_s": Metric(rows * width / elapsed, "values/s", 1_000_000, "higher"),
        "ingest_rows_per_s": Metric(rows / elapsed, "rows/s", better="higher"),
        "copy_direct_rows_per_s": Metric(copy_rows_s, "rows/s", better="higher"),
        "copy_staged_rows_per_s": Metric(rows / staged_s, "rows/s", better="higher"),
        "staging_cost_ratio": Metric(ratio(staged_s, direct_s), "x", better="lower"),
        "copy_vs_execute_values": Metric(ratio(copy_rows_s, values_rows_s), "x", better="higher"),
    }


def run() -> dict[str, Metric]:
    """Writer ingest, direct vs staged COPY, and COPY vs execute_values."""
    with (
        tempfile.TemporaryDirectory(prefix="parkgrid-bench-historian-") as folder,
        scratch_database(DB_URL) as url,
    ):
        return _measure(url, Path(folder))
