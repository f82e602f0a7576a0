"""The historian tables in both storage modes: exact read-back, duplicates, layout, retention."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import pytest

from historian.copy_rows import IntervalEncoder, ReadingEncoder, event_block
from historian.ingest import Ingest, connect
from historian.schema import (
    Maintenance,
    Retention,
    StorageMode,
    partitions,
    prepare,
    storage_mode,
)
from historian.writer import HistorianWriter
from server.clock import ManualClock
from server.tags import Batch, CommState, TagTable
from server.tags.quality import StatusCode
from tests.historian.conftest import METERS, random_values


def _expected_mode(url: str) -> StorageMode:
    return StorageMode.NATIVE if url.endswith("_plain") else StorageMode.TIMESCALE


def test_storage_mode_matches_the_extension_and_is_logged(
    store: psycopg2.extensions.connection,
    store_url: str,
    table: TagTable,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="historian.schema"):
        mode = prepare(store, table.catalogue, 1_760_000_000.0)
    assert mode is _expected_mode(store_url)
    assert storage_mode(store) is mode
    wanted = "TimescaleDB hypertables" if mode is StorageMode.TIMESCALE else "native monthly"
    assert any(wanted in r.getMessage() for r in caplog.records)
    with store.cursor() as cur:
        if mode is StorageMode.TIMESCALE:
            cur.execute(
                "SELECT hypertable_name FROM timescaledb_information.hypertables"
                " ORDER BY hypertable_name"
            )
            assert [r[0] for r in cur.fetchall()] == [
                "energy_intervals",
                "meter_events",
                "readings",
            ]
        else:
            cur.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
            assert cur.fetchone() == (0,)
    if mode is StorageMode.NATIVE:
        # The month of `now` and two after it.
        assert partitions(store, "readings")[:3] == [202510, 202511, 202512]


def test_layout_names_each_array_position(
    store: psycopg2.extensions.connection, table: TagTable
) -> None:
    prepare(store, table.catalogue, 1_760_000_000.0)
    with store.cursor() as cur:
        cur.execute("SELECT position, tag FROM historian_layout WHERE grp = 'energy' ORDER BY 1")
        rows = cur.fetchall()
    assert rows == [(i, t.name) for i, t in enumerate(table.catalogue.group_tags("energy"), 1)]


def _read_readings(conn: psycopg2.extensions.connection) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT meter, grp, extract(epoch FROM ts)::float8, quality,"
            " extract(epoch FROM server_ts)::float8, vals FROM readings ORDER BY meter, ts"
        )
        return cur.fetchall()


def test_batches_read_back_exactly(
    store: psycopg2.extensions.connection, store_url: str, table: TagTable, clock: ManualClock
) -> None:
    n = len(METERS)
    rows = np.arange(n)
    values = random_values(table, "realtime", n, seed=1)
    quality = np.full(n, StatusCode.GOOD, dtype=np.uint32)
    quality[3] = StatusCode.BAD_COMMUNICATION_ERROR
    quality[4] = StatusCode.UNCERTAIN_LAST_USABLE_VALUE
    source = clock.time() - np.arange(n) * 0.125
    changes = table.apply(Batch("realtime", rows, values, quality=quality, source_ts=source))
    encoder = ReadingEncoder(METERS, table.catalogue)
    block = encoder.encode(changes.batch, changes.server_ts)
    assert block is not None
    ingest = Ingest(connect(store_url), prepare(store, table.catalogue, clock.time()))
    try:
        assert ingest.write([block]) == n
    finally:
        ingest.close()
    got = {r[0]: r for r in _read_readings(store)}
    assert len(got) == n
    tags = table.catalogue.group_tags("realtime")
    for i, meter in enumerate(METERS):
        _, grp, ts, q, server_ts, vals = got[meter]
        assert (grp, q) == ("realtime", int(quality[i]))
        assert ts == pytest.approx(source[i], abs=1e-6)
        assert server_ts == pytest.approx(changes.server_ts, abs=1e-6)
        expected = [float(values[t.name][i]) for t in tags]
        if i == 3:
            assert all(math.isnan(v) for v in vals)
        else:
            assert vals == expected


def test_writer_skips_duplicates_and_records_intervals_and_events(
    store: psycopg2.extensions.connection,
    store_url: str,
    table: TagTable,
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    n = len(METERS)
    writer = HistorianWriter(
        store_url, clock=clock, spool_dir=tmp_path, meter_ids=METERS, catalogue=table.catalogue
    )
    writer.start()
    try:
        energy = {t.name: np.full(n, 10.0) for t in table.catalogue.group_tags("energy")}
        start = 1_760_000_500.0  # 100 s into a 15-minute interval
        for step in range(4):  # 0, 300, 600, 900 s: the last opens the next interval
            ts = start + 300.0 * step
            energy["e_total"] = np.full(n, 10.0 + step)
            changes = table.apply(Batch("energy", np.arange(n), energy, source_ts=ts))
            writer.on_batch(changes)
            writer.on_batch(changes)  # the same readings twice: written once
        change = table.set_comm(np.array([0, 1]), CommState.OFFLINE, ts=start)
        writer.on_comm(change)
        writer.on_comm(change)
        writer.record_event(start + 5, "M0001", "command", "relay_open confirmed")
        assert writer.flush(30)
        status = writer.status()
        assert status.mode == "direct"
        assert status.storage == _expected_mode(store_url).value
    finally:
        writer.stop()
    with store.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT (meter, ts)) FROM readings")
        assert cur.fetchone() == (4 * n, 4 * n)
        cur.execute(
            "SELECT extract(epoch FROM ts)::float8, extract(epoch FROM read_ts)::float8,"
            " registers[1] FROM energy_intervals WHERE meter = 'G22' ORDER BY ts"
        )
        assert cur.fetchall() == [
            (1_760_000_400.0, start, 10.0),
            (1_760_001_300.0, start + 900, 13.0),
        ]
        cur.execute("SELECT meter, kind, detail FROM meter_events ORDER BY meter, kind")
        assert cur.fetchall() == [
            ("M0000", "comm", "unknown->offline"),
            ("M0001", "comm", "unknown->offline"),
            ("M0001", "command", "relay_open confirmed"),
        ]


def test_retention_drops_old_chunks_on_the_clock(
    store: psycopg2.extensions.connection, store_url: str, table: TagTable, clock: ManualClock
) -> None:
    n = len(METERS)
    mode = prepare(store, table.catalogue, clock.time())
    encoder = ReadingEncoder(METERS, table.catalogue)
    ingest = Ingest(connect(store_url), mode)
    try:
        for age_days in (200, 100, 1):
            ts = clock.time() - age_days * 86_400.0
            values = random_values(table, "demand", n, seed=age_days)
            block = encoder.encode(Batch("demand", np.arange(n), values, source_ts=ts), ts)
            assert block is not None
            ingest.write([block])
        maintenance = Maintenance(Retention(readings_days=150, every_s=3600))
        assert maintenance.due(clock.time())
        first = maintenance.run(ingest.conn, mode, clock.time())
        assert first.dropped >= 1
        assert not maintenance.due(clock.advance(3599))
        assert maintenance.due(clock.advance(1))
    finally:
        ingest.close()
    with store.cursor() as cur:
        cur.execute(
            "SELECT round((%s - extract(epoch FROM ts)) / 86400) AS age, count(*)"
            " FROM readings GROUP BY 1 ORDER BY 1",
            (clock.time() - 3600,),
        )
        assert cur.fetchall() == [(1, n), (100, n)]


def test_bad_batch_rows_are_refused_with_a_message(table: TagTable) -> None:
    encoder = ReadingEncoder(METERS[:3], table.catalogue)
    values = random_values(table, "demand", 5, seed=3)
    with pytest.raises(ValueError, match="outside the meter list"):
        encoder.encode(Batch("demand", np.arange(5), values, source_ts=1.7e9), 1.7e9)


def test_interval_encoder_opens_each_interval_once(table: TagTable) -> None:
    encoder = IntervalEncoder(METERS, table.catalogue, group="energy", interval_s=900)
    values = {t.name: np.ones(2) for t in table.catalogue.group_tags("energy")}
    first = encoder.encode(Batch("energy", [0, 1], values, source_ts=900.0 * 10 + 1))
    again = encoder.encode(Batch("energy", [0, 1], values, source_ts=900.0 * 10 + 500))
    later = encoder.encode(
        Batch("energy", [1], {k: v[:1] for k, v in values.items()}, source_ts=900.0 * 11)
    )
    assert first is not None and first.rows == 2
    assert again is None
    assert later is not None and later.rows == 1 and later.first_ts == 900.0 * 11


def test_event_block_needs_finite_times() -> None:
    with pytest.raises(ValueError, match="no finite time"):
        event_block([(math.nan, "M1", "comm", "")], 1.7e9)
