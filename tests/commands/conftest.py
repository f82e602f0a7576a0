"""Fixtures for the command tests: the example site, a clean outbox, and in-test meters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from config import Site, load_site
from server.clock import ManualClock
from server.commands import CommandOutbox
from tests.commands.fake_meters import POLICY, FakeMeters

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "small"


@pytest.fixture(scope="session")
def site() -> Site:
    return load_site(EXAMPLE, env={})


@pytest.fixture
def clean_db(db: psycopg2.extensions.connection) -> psycopg2.extensions.connection:
    """The test database with an empty outbox (the audit log is append-only: it stays)."""
    with db.cursor() as cur:
        cur.execute("TRUNCATE command_events, commands, command_requests RESTART IDENTITY")
    db.commit()
    return db


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def outbox(
    clean_db: psycopg2.extensions.connection, site: Site, clock: ManualClock
) -> CommandOutbox:
    return CommandOutbox(clean_db, site, clock=clock, policy=POLICY)


@pytest.fixture
def second_conn(db_url: str) -> Iterator[psycopg2.extensions.connection]:
    """Another connection, as another process would have."""
    conn = psycopg2.connect(db_url, connect_timeout=5)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def meters() -> FakeMeters:
    return FakeMeters()
