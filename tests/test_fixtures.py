"""The shared fixtures themselves: the leak check catches leaks, Redis is isolated."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

CONFTEST = Path(__file__).with_name("conftest.py").read_text(encoding="utf-8")


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    return pytester


def test_leak_check_fails_a_test_that_leaves_a_socket_open(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import socket
        KEEP = []
        def test_leaks():
            KEEP.append(socket.socket())
        """
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    assert "test left 1 socket(s) open" in result.stdout.str()


def test_leak_check_fails_a_test_that_leaves_a_thread_running(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import threading
        STOP = threading.Event()
        def test_leaks():
            threading.Thread(target=STOP.wait, args=(5,), name="stray", daemon=True).start()
        """
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    assert "test left threads running: ['stray']" in result.stdout.str()


def test_run_fixture_fails_on_a_pending_task(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import asyncio
        async def main():
            asyncio.get_running_loop().create_task(asyncio.sleep(30), name="orphan")
        def test_orphan(run):
            run(main())
        """
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert "test left tasks pending: ['orphan']" in result.stdout.str()


def test_redis_fixture_starts_empty(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("parkgrid:probe", "1")
    assert redis_client.get("parkgrid:probe") == b"1"
