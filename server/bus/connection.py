"""A Redis client that rides out outages: retry with backoff, one log line per transition."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from redis import exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean "Redis is away or changing master", not "the command is wrong":
# a refused or dropped connection, a timeout, a restarting server still loading its
# data, and a write that reached a replica during a Sentinel failover.
OUTAGE_ERRORS: Final = (
    exceptions.ConnectionError,
    exceptions.TimeoutError,
    exceptions.BusyLoadingError,
    exceptions.ReadOnlyError,
    exceptions.TryAgainError,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential delays between attempts, capped, with jitter so workers do not stampede."""

    initial: float = 0.05
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {self}")
        if self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"backoff needs factor >= 1 and 0 <= jitter < 1, got {self}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0 for the first retry)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1 - self.jitter * random.random())


def open_redis(url: str, *, client_name: str | None = None) -> Redis:
    """An asyncio client for `url` that returns bytes (stream payloads are binary).

    redis-py's own retry is kept short: `BusConnection` does the patient retrying, so
    an outage is logged and backed off in one place.
    """
    client: Redis = Redis.from_url(
        url,
        decode_responses=False,
        client_name=client_name,
        socket_connect_timeout=5.0,
        socket_keepalive=True,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), 1),
    )
    return client


class BusConnection:
    """One Redis client shared by the bus parts, with outage handling around every call.

    `call` retries an operation until Redis answers, so a restart or failover of Redis
    stalls the caller instead of raising into its loop. Errors that are not outages
    (a wrong command, a missing consumer group) are raised at once.
    """

    def __init__(
        self,
        client: Redis,
        *,
        name: str = "redis",
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.name = name
        self.backoff = backoff if backoff is not None else Backoff()
        self._sleep = sleep
        self.healthy = True
        self.outages = 0
        self.last_error: str | None = None
        self._down_since = 0.0

    async def call(self, what: str, operation: Callable[[Redis], Awaitable[T]]) -> T:
        """Run `operation(client)` until it succeeds; `what` names it in the outage log."""
        attempt = 0
        while True:
            try:
                result = await operation(self.client)
            except OUTAGE_ERRORS as exc:
                self._failed(what, exc)
                await self._sleep(self.backoff.delay(attempt))
                attempt += 1
                continue
            if not self.healthy:
                self._recovered(what)
            return result

    async def try_call(self, what: str, operation: Callable[[Redis], Awaitable[T]]) -> T | None:
        """Run `operation` once; None (and the outage bookkeeping) when Redis is away."""
        try:
            result = await operation(self.client)
        except OUTAGE_ERRORS as exc:
            self._failed(what, exc)
            return None
        if not self.healthy:
            self._recovered(what)
        return result

    async def close(self) -> None:
        """Close the client and every pooled connection."""
        await self.client.aclose()
        await self.client.connection_pool.disconnect()

    def _failed(self, what: str, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.healthy:
            self.healthy = False
            self.outages += 1
            self._down_since = time.monotonic()
            log.warning("%s unreachable during %s (%s); retrying", self.name, what, self.last_error)

    def _recovered(self, what: str) -> None:
        self.healthy = True
        log.warning(
            "%s reachable again at %s after %.1f s",
            self.name,
            what,
            time.monotonic() - self._down_since,
        )
