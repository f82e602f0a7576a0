"""Store-and-forward: the database goes away under load and comes back; nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg2
import pytest

from historian.copy_rows import ReadingEncoder
from historian.ingest import Ingest, connect, replay
from historian.schema import prepare
from historian.spool import CURSOR_NAME, Spool
from historian.writer import HistorianWriter
from server.clock import ManualClock
from server.tags import Batch, TagTable
from tests.historian.conftest import METERS, random_values
from tests.historian.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]


def _via(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"postgres@{proxy.url_host}"))


def _counts(conn: psycopg2.extensions.connection) -> tuple[int, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT (meter, grp, ts)) FROM readings")
        row = cur.fetchone()
    conn.commit()
    assert row is not None
    return int(row[0]), int(row[1])


def _feed(
    writer: HistorianWriter, table: TagTable, clock: ManualClock, count: int, seed: int
) -> None:
    n = len(METERS)
    for k in range(count):
        values = random_values(table, "realtime", n, seed=seed + k)
        changes = table.apply(Batch("realtime", np.arange(n), values, source_ts=clock.time()))
        writer.on_batch(changes)
        clock.advance(1.0)


@pytest.mark.parametrize("cut", ["proxy", "terminate"])
def test_outage_under_load_loses_and_duplicates_nothing(
    store: psycopg2.extensions.connection,
    store_url: str,
    table: TagTable,
    clock: ManualClock,
    tmp_path: Path,
    cut: str,
) -> None:
    n = len(METERS)
    proxy = TcpProxy()
    proxy.start()
    writer = HistorianWriter(
        _via(store_url, proxy),
        clock=clock,
        spool_dir=tmp_path,
        meter_ids=METERS,
        catalogue=table.catalogue,
        retry_s=5.0,
        energy_group="none",
    )
    writer.start()
    try:
        _feed(writer, table, clock, 30, seed=0)
        if cut == "proxy":
            proxy.stop()
        else:
            with store.cursor() as cur:
                cur.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'parkgrid-historian'"
                    " AND datname = current_database()"
                )
            store.commit()
            proxy.stop()  # refused too, so the outage lasts until the proxy is back
        _feed(writer, table, clock, 60, seed=100)  # a minute of readings while away
        assert not writer.flush(30)
        status = writer.status()
        assert status.mode == "spooling"
        assert status.spool_records > 0
        assert status.last_error
        proxy.start()
        _feed(writer, table, clock, 30, seed=200)  # the clock passes the retry time
        assert writer.flush(60)
        status = writer.status()
        assert (status.mode, status.spool_records, status.spool_bytes) == ("direct", 0, 0)
    finally:
        writer.stop()
        proxy.stop()
    assert _counts(store) == (120 * n, 120 * n)
    with store.cursor() as cur:
        cur.execute("SELECT count(DISTINCT ts) FROM readings")
        assert cur.fetchone() == (120,)


def _fill_spool(spool: Spool, table: TagTable, batches: int) -> int:
    encoder = ReadingEncoder(METERS, table.catalogue)
    n = len(METERS)
    for k in range(batches):
        ts = 1_760_000_000.0 + k
        values = random_values(table, "realtime", n, seed=k)
        block = encoder.encode(Batch("realtime", np.arange(n), values, source_ts=ts), ts)
        assert block is not None
        spool.append(block.to_bytes())
    return batches * n


def test_kill_9_during_replay_then_replay_again(
    store: psycopg2.extensions.connection, store_url: str, table: TagTable, tmp_path: Path
) -> None:
    prepare(store, table.catalogue, 1_760_000_000.0)
    spool = Spool(tmp_path, max_bytes=1 << 30)
    expected = _fill_spool(spool, table, 600)
    spool.close()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.historian.replay_child", str(tmp_path), store_url],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        cursor = tmp_path / CURSOR_NAME
        while not cursor.exists() or cursor.stat().st_size == 0:
            assert child.poll() is None, "the replay finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        written, _ = _counts(store)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    partial, _ = _counts(store)
    assert 0 < written <= partial < expected
    resumed = Spool(tmp_path, max_bytes=1 << 30)
    assert 0 < len(resumed) < 600
    ingest = Ingest(connect(store_url), prepare(store, table.catalogue, 1_760_000_000.0))
    try:
        # Start again from the very beginning too: records already written are skipped.
        while replay(ingest, resumed):
            pass
        assert len(resumed) == 0
        again = Spool(tmp_path / "again", max_bytes=1 << 30)
        _fill_spool(again, table, 600)
        while replay(ingest, again):
            pass
        again.close()
    finally:
        ingest.close()
        resumed.close()
    assert _counts(store) == (expected, expected)
