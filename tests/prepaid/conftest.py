"""Fixtures for the ledger tests: a ledger on the test database, fresh names, connections."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator

import psycopg2
import psycopg2.extensions
import pytest

from server.clock import ManualClock
from server.prepaid.ledger import Ledger

# The ledger refuses DELETE and TRUNCATE, so each test works on meters and merchants
# whose names no other test uses: a clean ledger of its own.
_RUN = uuid.uuid4().hex[:6]
_COUNTER = itertools.count()


@pytest.fixture
def fresh() -> Callable[[str], str]:
    """Make names (meter or merchant ids) unique to this test run and call."""

    def make(stem: str) -> str:
        return f"{stem}{_RUN}x{next(_COUNTER)}"

    return make


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock in 2024 (China time)."""
    return ManualClock(1_718_000_000.0)


@pytest.fixture
def ledger(db: psycopg2.extensions.connection, clock: ManualClock) -> Ledger:
    """A ledger on the shared test connection."""
    return Ledger(db, clock=clock, merchant_names={"M1": "一期物业"})


@pytest.fixture
def connect(db_url: str) -> Iterator[Callable[[], psycopg2.extensions.connection]]:
    """Open extra connections to the test database; all are closed after the test."""
    opened: list[psycopg2.extensions.connection] = []

    def open_one() -> psycopg2.extensions.connection:
        conn = psycopg2.connect(db_url, connect_timeout=5)
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        conn.close()
