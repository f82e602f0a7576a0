"""Shared fixtures: a migrated PostgreSQL test database, Redis, and the leak check."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psycopg2
import psycopg2.extensions
import pytest
import redis
from hypothesis import settings

from historian.databases import create_database

pytest_plugins = ["pytester"]

T = TypeVar("T")

# A loaded 2-core CI machine makes per-example deadlines flaky; the benches measure speed.
settings.register_profile("parkgrid", deadline=None)
settings.load_profile("parkgrid")

TEST_DB_URL = os.environ.get(
    "PARKGRID_TEST_DB_URL", "postgresql://postgres@127.0.0.1:5432/parkgrid_test"
)
TEST_REDIS_URL = os.environ.get("PARKGRID_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _open_sockets() -> set[str]:
    """Inode names of the sockets this process holds open."""
    found = set()
    fd_dir = Path("/proc/self/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


@pytest.fixture(autouse=True)
def leak_check() -> Iterator[None]:
    """Fail a test that leaves threads or sockets behind."""
    threads_before = set(threading.enumerate())
    sockets_before = _open_sockets()
    yield
    extra_threads = [t for t in threading.enumerate() if t not in threads_before]
    for thread in extra_threads:
        thread.join(timeout=1.0)
    alive = [t.name for t in extra_threads if t.is_alive()]
    leaked_sockets = _open_sockets() - sockets_before
    assert not alive, f"test left threads running: {alive}"
    assert not leaked_sockets, f"test left {len(leaked_sockets)} socket(s) open"


@pytest.fixture
def run() -> Callable[[Awaitable[T]], T]:
    """Run a coroutine on a fresh event loop and fail if it leaves tasks pending."""

    def runner(main: Awaitable[T]) -> T:
        loop = asyncio.new_event_loop()
        try:
            result = loop.run_until_complete(main)
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            assert not pending, f"test left tasks pending: {[t.get_name() for t in pending]}"
            return result
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    return runner


@pytest.fixture(scope="session")
def db_url() -> str:
    """The test database, created afresh (with TimescaleDB when installed) and migrated."""
    create_database(TEST_DB_URL)
    return TEST_DB_URL


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection to the migrated test database, closed after the test."""
    conn = psycopg2.connect(db_url, connect_timeout=5)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A Redis client on the test database number, flushed before the test."""
    client: redis.Redis = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()
        client.connection_pool.disconnect()
