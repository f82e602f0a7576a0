"""Which worker polls which gateway: heartbeats, rendezvous hashing and numbered assignments."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from redis import exceptions
from redis.asyncio import Redis

from server.bus.connection import BusConnection
from server.bus.keys import BusKeys, check_part
from server.clock import Clock

log = logging.getLogger(__name__)


def score(gateway: str, worker: str) -> int:
    """The rendezvous weight of `worker` for `gateway`: the same in every process."""
    digest = hashlib.blake2b(f"{gateway}\x1f{worker}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign(gateways: Iterable[str], workers: Iterable[str]) -> dict[str, str]:
    """Each gateway's owner: the worker with the highest weight (HRW hashing).

    Removing a worker moves only the gateways it owned; adding one takes about 1/N of
    the gateways from the others and moves nothing else.
    """
    pool = sorted(set(workers))
    if not pool:
        return {}
    owners: dict[str, str] = {}
    for gateway in gateways:
        owners[gateway] = max(pool, key=lambda worker: (score(gateway, worker), worker))
    return owners


@dataclass(frozen=True, slots=True)
class Assignment:
    """Gateway owners as the coordinator published them; `generation` grows on each change."""

    generation: int
    workers: tuple[str, ...]
    owners: Mapping[str, str] = field(default_factory=dict)

    def gateways_of(self, worker: str) -> frozenset[str]:
        """The gateways `worker` should poll under this assignment."""
        return frozenset(g for g, w in self.owners.items() if w == worker)

    def owner(self, gateway: str) -> str | None:
        """The worker that polls `gateway`, or None when no worker is live."""
        return self.owners.get(gateway)

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(
            {
                "generation": self.generation,
                "workers": list(self.workers),
                "owners": dict(self.owners),
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Assignment:
        """Parse the stored form; a `ValueError` says what is wrong with it."""
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"gateway assignment is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("gateway assignment must be a JSON object")
        generation, workers, owners = (data.get(k) for k in ("generation", "workers", "owners"))
        if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
            raise ValueError(f"gateway assignment: generation {generation!r} is not a count")
        if not isinstance(workers, list) or not all(isinstance(w, str) for w in workers):
            raise ValueError("gateway assignment: workers must be a list of names")
        if not isinstance(owners, dict) or not all(
            isinstance(g, str) and w in workers for g, w in owners.items()
        ):
            raise ValueError("gateway assignment: owners must map gateways to listed workers")
        return cls(generation, tuple(workers), MappingProxyType(dict(owners)))


class Coordinator:
    """Keeps the published assignment in step with the live workers (run by the core).

    A worker is live while the deadline of its last heartbeat is in the future by the
    clock. Checked every `check_interval`, a dead worker's gateways move within
    `ttl + check_interval` of its last heartbeat.
    """

    def __init__(
        self,
        bus: BusConnection,
        keys: BusKeys,
        gateways: Sequence[str],
        *,
        clock: Clock,
        check_interval: float = 2.0,
    ) -> None:
        self.bus = bus
        self.keys = keys
        self.gateways = tuple(dict.fromkeys(gateways))
        self.clock = clock
        self.check_interval = check_interval
        self.assignment: Assignment | None = None

    async def live_workers(self) -> tuple[str, ...]:
        """The workers whose heartbeat has not expired, sorted; forgets the expired ones."""
        now = self.clock.time()

        async def live(redis: Redis) -> list[bytes]:
            await redis.zremrangebyscore(self.keys.workers, "-inf", now)
            names: Any = await redis.zrangebyscore(self.keys.workers, f"({now}", "+inf")
            return list(names)

        return tuple(sorted(n.decode() for n in await self.bus.call("list workers", live)))

    async def check(self) -> Assignment:
        """Publish a new generation when the live workers changed; the current assignment."""
        workers = await self.live_workers()
        owners = assign(self.gateways, workers)
        key = self.keys.assignment

        async def publish(redis: Redis) -> Assignment:
            while True:
                async with redis.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(key)
                        current = _parse_stored(await pipe.get(key))
                        if (
                            current is not None
                            and current.workers == workers
                            and dict(current.owners) == owners
                        ):
                            return current
                        generation = 1 if current is None else current.generation + 1
                        new = Assignment(generation, workers, MappingProxyType(owners))
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(key, new.to_json())
                        await pipe.execute()
                    except exceptions.WatchError:
                        continue
                    log.info("gateway assignment %d: %d live worker(s)", generation, len(workers))
                    return new

        self.assignment = await self.bus.call("publish assignment", publish)
        return self.assignment

    async def run(self, stop: asyncio.Event) -> None:
        """Check every `check_interval` seconds until `stop` is set."""
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.check_interval)


class WorkerHeartbeat:
    """A worker's membership: heartbeat, read the assignment, hold a lease on its gateways.

    The lease runs `ttl` from the start of the last heartbeat that reached Redis. Once
    it runs out, `owned()` is empty, so a worker that stalled or lost Redis for longer
    than `ttl` stops polling before the coordinator can hand its gateways to another.
    """

    def __init__(
        self,
        bus: BusConnection,
        keys: BusKeys,
        worker: str,
        *,
        clock: Clock,
        ttl: float = 10.0,
        interval: float | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"heartbeat ttl must be positive, got {ttl}")
        self.bus = bus
        self.keys = keys
        self.worker = check_part(worker, "worker name")
        self.clock = clock
        self.ttl = ttl
        self.interval = interval if interval is not None else ttl / 3
        if not 0 < self.interval < ttl:
            raise ValueError(f"heartbeat interval must be in (0, ttl={ttl}), got {self.interval}")
        self.assignment: Assignment | None = None
        self.lease_until = float("-inf")

    @property
    def generation(self) -> int:
        """The generation of the assignment this worker acts on; 0 before it has one."""
        return 0 if self.assignment is None else self.assignment.generation

    def is_stale(self, published: int) -> bool:
        """Whether this worker acts on another generation than the `published` one."""
        return published != self.generation

    def owned(self) -> frozenset[str]:
        """The gateways to poll now: none without a live lease or a place in the assignment."""
        if self.assignment is None or self.clock.time() >= self.lease_until:
            return frozenset()
        return self.assignment.gateways_of(self.worker)

    async def beat(self) -> bool:
        """Renew the heartbeat and read the assignment; True when the owned gateways changed.

        Never raises for a Redis outage: the beat is skipped and the lease runs down.
        """
        before = self.owned()
        started = self.clock.time()

        async def renew(redis: Redis) -> list[bytes | None]:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.zadd(self.keys.workers, {self.worker: started + self.ttl})
                pipe.get(self.keys.assignment)
                replies = await pipe.execute()
            return [replies[1]]

        reply = await self.bus.try_call("heartbeat", renew)
        if reply is not None:
            self.lease_until = started + self.ttl
            latest = _parse_stored(reply[0])
            if latest is not None and self.is_stale(latest.generation):
                log.info("%s: assignment %d -> %d", self.worker, self.generation, latest.generation)
                self.assignment = latest
        return self.owned() != before

    async def leave(self) -> None:
        """Leave the pool at once (a clean shutdown), so the gateways move without waiting."""
        await self.bus.call("leave", lambda r: r.zrem(self.keys.workers, self.worker))
        self.lease_until = float("-inf")

    async def run(self, stop: asyncio.Event, changed: asyncio.Event | None = None) -> None:
        """Beat every `interval` seconds until `stop`; set `changed` when the gateways move."""
        while not stop.is_set():
            if await self.beat() and changed is not None:
                changed.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)


def _parse_stored(raw: bytes | str | None) -> Assignment | None:
    """The stored assignment, or None when there is none or it cannot be read (logged)."""
    if raw is None:
        return None
    try:
        return Assignment.from_json(raw)
    except ValueError as exc:
        log.error("ignoring the stored gateway assignment: %s", exc)
        return None
