"""Reading a Redis stream in a consumer group: acknowledge after the work, reclaim, dead-letter."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeVar, cast

from redis import exceptions
from redis.asyncio import Redis

from server.bus.connection import BusConnection
from server.bus.keys import check_part
from server.clock import Clock

log = logging.getLogger(__name__)

T = TypeVar("T")

Fields = dict[bytes, bytes]
Entry = tuple[bytes, Fields | None]
Addition = tuple[str, Mapping[Any, bytes | str | int]]
"""An entry to add to a stream in the same transaction as an acknowledgement."""

DEAD_LETTER_MAXLEN: Final = 10_000


class Rejected(Exception):
    """An entry that can never be used (corrupt, foreign, unknown meter): dead-letter it."""


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    """A stream id `ms-seq` as a pair of integers, for ordering."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def next_id(entry_id: bytes | str) -> str:
    """The smallest stream id after `entry_id`."""
    ms, seq = parse_id(entry_id)
    return f"{ms}-{seq + 1}"


class GroupConsumer(ABC):
    """Hands each entry of a stream to `handle`, acknowledging it only once that returns.

    An entry whose `handle` raises `Rejected` goes to the dead-letter stream with the
    reason and is acknowledged, so it never blocks the stream. Any other error leaves it
    pending; it is retried when reclaimed and dead-lettered after `max_deliveries`.
    Entries left pending by a consumer that died are taken over with XAUTOCLAIM once
    they have been idle for `reclaim_idle_ms`, at start and every `reclaim_interval`
    seconds of the clock. Delivery is at least once: `handle` must be idempotent.
    """

    def __init__(
        self,
        bus: BusConnection,
        stream: str,
        *,
        group: str,
        consumer: str,
        dead_letters: str,
        clock: Clock,
        count: int = 64,
        block_ms: int = 1000,
        reclaim_idle_ms: int = 30_000,
        reclaim_interval: float = 10.0,
        max_deliveries: int = 5,
    ) -> None:
        if count < 1 or block_ms < 1 or reclaim_idle_ms < 0 or max_deliveries < 1:
            raise ValueError("count, block_ms and max_deliveries must be positive")
        self.bus = bus
        self.stream = stream
        self.group = check_part(group, "group name")
        self.consumer = check_part(consumer, "consumer name")
        self.dead_letters = dead_letters
        self.clock = clock
        self.count = count
        self.block_ms = block_ms
        self.reclaim_idle_ms = reclaim_idle_ms
        self.reclaim_interval = reclaim_interval
        self.max_deliveries = max_deliveries
        self.done = 0
        self.dead = 0
        self.reclaimed = 0
        self.failures = 0
        self.lost = 0
        self._next_reclaim = 0.0

    @abstractmethod
    async def handle(self, entry_id: bytes, fields: Fields) -> Sequence[Addition]:
        """Do the work of one entry; return entries to add atomically with its ack."""

    async def ensure_group(self) -> None:
        """Create the stream and group when missing; the group starts at the first entry."""

        async def create(redis: Redis) -> None:
            try:
                await redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            except exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

        await self.bus.call(f"create group {self.group} on {self.stream}", create)

    async def start(self) -> int:
        """Create the group, finish this consumer's own pending entries, reclaim dead ones."""
        await self.ensure_group()
        handled = 0
        after = "0"
        while True:
            batch = await self._read(after, block=False)
            if not batch:
                break
            counts = await self._delivery_counts(batch)
            handled += await self._process(batch, counts)
            after = batch[-1][0].decode()
        return handled + await self.reclaim()

    async def poll(self) -> int:
        """Read and handle new entries, waiting up to `block_ms` for some; the count handled."""
        handled = await self._process(await self._read(">", block=True), None)
        if self.clock.time() >= self._next_reclaim:
            handled += await self.reclaim()
        return handled

    async def reclaim(self, min_idle_ms: int | None = None) -> int:
        """Take over and handle entries pending longer than `min_idle_ms` on any consumer."""
        idle = self.reclaim_idle_ms if min_idle_ms is None else min_idle_ms
        self._next_reclaim = self.clock.time() + self.reclaim_interval
        handled = 0
        start = "0-0"
        while True:

            async def claim(redis: Redis, after: str = start) -> list[Any]:
                reply: Any = await redis.xautoclaim(
                    self.stream, self.group, self.consumer, idle, after, count=self.count
                )
                return list(reply)

            reply = await self._group_call("xautoclaim", claim)
            if reply is None:
                return handled
            cursor, entries = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            if deleted:
                # Trimmed while pending: only the MAXLEN cap does that (see streams.py).
                self.lost += len(deleted)
                log.error(
                    "%s: %d pending entries were trimmed before use", self.stream, len(deleted)
                )
            if entries:
                self.reclaimed += len(entries)
                handled += await self._process(entries, await self._delivery_counts(entries))
            if parse_id(cursor) == (0, 0):
                return handled
            start = cursor.decode()

    async def run(self, stop: asyncio.Event) -> None:
        """Start, then poll until `stop` is set; Redis outages stall the loop, never end it."""
        await self.start()
        while not stop.is_set():
            await self.poll()

    async def _read(self, after: str, *, block: bool) -> list[Entry]:

        async def read(redis: Redis) -> Any:
            return await redis.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: after},
                count=self.count,
                block=self.block_ms if block else None,
            )

        reply = await self._group_call("xreadgroup", read)
        if not reply:
            return []
        entries: list[Entry] = reply[0][1]
        return entries

    async def _group_call(self, what: str, op: Callable[[Redis], Awaitable[T]]) -> T | None:
        """Call through the bus; a group lost with the stream (Redis restarted empty) is remade."""
        try:
            return await self.bus.call(f"{what} {self.stream}", op)
        except exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
        log.warning("%s: consumer group %s is gone; creating it again", self.stream, self.group)
        await self.ensure_group()
        return None

    async def _delivery_counts(self, entries: list[Entry]) -> dict[bytes, int]:
        first, last = entries[0][0], entries[-1][0]

        async def pending(redis: Redis) -> list[dict[str, Any]]:
            rows: Any = await redis.xpending_range(
                self.stream, self.group, first, last, len(entries)
            )
            return list(rows)

        rows = await self.bus.call(f"xpending {self.stream}", pending)
        return {row["message_id"]: int(row["times_delivered"]) for row in rows}

    async def _process(self, entries: list[Entry], deliveries: dict[bytes, int] | None) -> int:
        acks: list[bytes] = []
        additions: list[Addition] = []
        for entry_id, fields in entries:
            acks.append(entry_id)
            if fields is None:
                self.lost += 1
                continue
            try:
                additions.extend(await self.handle(entry_id, fields))
                self.done += 1
            except Rejected as exc:
                additions.append(self._dead_letter(entry_id, fields, str(exc)))
            except Exception as exc:
                self.failures += 1
                delivered = 1 if deliveries is None else deliveries.get(entry_id, 1)
                if delivered < self.max_deliveries:
                    log.exception("%s: entry %s failed; it stays pending", self.stream, entry_id)
                    acks.pop()
                    continue
                reason = f"failed {delivered} times, last: {type(exc).__name__}: {exc}"
                additions.append(self._dead_letter(entry_id, fields, reason))
        if acks:
            await self._commit(acks, additions)
        return len(acks)

    def _dead_letter(self, entry_id: bytes, fields: Fields, reason: str) -> Addition:
        self.dead += 1
        log.warning("%s: entry %s dead-lettered: %s", self.stream, entry_id, reason)
        entry: dict[str | bytes, bytes | str | int] = {
            "stream": self.stream,
            "id": entry_id,
            "reason": reason,
            "consumer": self.consumer,
        }
        entry.update({b"field:" + key: value for key, value in fields.items()})
        return (self.dead_letters, entry)

    async def _commit(self, acks: list[bytes], additions: list[Addition]) -> None:
        """Acknowledge `acks`, adding `additions` in the same transaction when there are any."""
        if not additions:
            await self.bus.call(
                f"xack {self.stream}", lambda r: r.xack(self.stream, self.group, *acks)
            )
            return

        async def transaction(redis: Redis) -> None:
            async with redis.pipeline(transaction=True) as pipe:
                for stream, entry in additions:
                    maxlen = DEAD_LETTER_MAXLEN if stream == self.dead_letters else None
                    pipe.xadd(stream, cast(Any, entry), maxlen=maxlen, approximate=True)
                pipe.xack(self.stream, self.group, *acks)
                await pipe.execute()

        await self.bus.call(f"xack {self.stream}", transaction)
