"""Fixtures for the historian: both storage modes, a small park, a clock and a spool dir."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg2
import pytest

from historian.databases import create_database
from server.clock import ManualClock
from server.tags import TagTable
from tests.conftest import TEST_DB_URL

# Ids of different lengths, and one that is not ASCII, so rows pack in several widths.
METERS = [f"M{i:04d}" for i in range(40)] + ["G1", "G22", "电表7", "LONGMETER-000001"]
START = 1_760_000_000.0


def _plain_url() -> str:
    parts = urlsplit(TEST_DB_URL)
    return urlunsplit(parts._replace(path=parts.path + "_plain"))


@pytest.fixture(scope="session")
def plain_db_url() -> str:
    """A migrated scratch database WITHOUT the timescaledb extension."""
    url = _plain_url()
    create_database(url, timescale=False)
    return url


@pytest.fixture(params=["timescaledb", "native"])
def store_url(request: pytest.FixtureRequest, db_url: str) -> Iterator[str]:
    """The URL of an empty historian in each storage mode."""
    url = db_url if request.param == "timescaledb" else request.getfixturevalue("plain_db_url")
    conn = psycopg2.connect(url, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE readings, energy_intervals, meter_events, historian_layout")
        conn.commit()
        yield url
    finally:
        conn.close()


@pytest.fixture
def store(store_url: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection to the historian under test, closed afterwards."""
    conn = psycopg2.connect(store_url, connect_timeout=5)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at a fixed start."""
    return ManualClock(START)


@pytest.fixture
def table(clock: ManualClock) -> TagTable:
    """A tag table over `METERS`."""
    n = len(METERS)
    return TagTable(
        METERS, areas=["A"] * n, gateways=[None] * n, three_phase=[True] * n, clock=clock
    )


def random_values(table: TagTable, group: str, count: int, seed: int) -> dict[str, np.ndarray]:
    """Random values for every tag of `group` in its kind."""
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for tag in table.catalogue.group_tags(group):
        if tag.kind == "float":
            values[tag.name] = rng.normal(100.0, 30.0, count)
        elif tag.kind == "int":
            values[tag.name] = rng.integers(0, 1 << 40, count)
        else:
            values[tag.name] = rng.integers(0, 2, count).astype(bool)
    return values
