"""Readings on Redis Streams: workers publish decoded batches, the core applies them."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from redis.asyncio import Redis

from server.bus.codec import CodecError, MeterBatch, decode_batch, encode_batch
from server.bus.connection import BusConnection
from server.bus.group import Addition, Fields, GroupConsumer, Rejected, next_id, parse_id
from server.bus.keys import READINGS_GROUP, BusKeys, check_part
from server.clock import Clock
from server.tags import Batch

log = logging.getLogger(__name__)

PAYLOAD = b"b"
WORKER = b"w"
GENERATION = b"g"

ReadingHandler = Callable[[MeterBatch], Awaitable[object] | object]
"""Applies one batch (typically `table.apply(batch.to_batch(table))`); a `ValueError`
means the batch can never apply (unknown meter or tag) and dead-letters it."""


@dataclass(frozen=True, slots=True)
class StreamSizing:
    """How long the readings stream may grow: enough for the core to be away `outage_s`.

    XADD trims with `MAXLEN ~ maxlen`, and trimming does not look at acknowledgements:
    it drops the oldest entries. Approximate trimming only removes whole nodes of old
    entries, so the stream always keeps at least the newest `maxlen`; an entry can be
    trimmed unacknowledged only after `maxlen` newer ones were added, that is when the
    core has been behind for longer than `outage_s` at `entries_per_s`. 224 gateways
    scanned every second plus the slower groups make about 300 entries/s; two minutes
    of that (~6 KB per gateway batch) is about 200 MB of Redis memory at worst. In
    normal running the core trims far below the cap (`ReadingConsumer.trim`, by MINID
    up to the oldest entry any group still needs), so the cap only bounds an outage.
    """

    entries_per_s: float = 300.0
    outage_s: float = 120.0

    @property
    def maxlen(self) -> int:
        """The MAXLEN for XADD."""
        return max(1, math.ceil(self.entries_per_s * self.outage_s))


class ReadingPublisher:
    """A worker's side: encode batches and add them to the readings stream."""

    def __init__(
        self,
        bus: BusConnection,
        keys: BusKeys,
        *,
        worker: str,
        sizing: StreamSizing | None = None,
    ) -> None:
        self.bus = bus
        self.keys = keys
        self.worker = check_part(worker, "worker name")
        self.maxlen = (sizing if sizing is not None else StreamSizing()).maxlen
        self.published = 0

    def entry(
        self, batch: Batch, meter_ids: Sequence[str] | npt.NDArray[np.str_], generation: int
    ) -> Fields:
        """The stream fields of one batch."""
        return {
            PAYLOAD: encode_batch(batch, meter_ids),
            WORKER: self.worker.encode(),
            GENERATION: str(generation).encode(),
        }

    async def publish(
        self,
        batch: Batch,
        meter_ids: Sequence[str] | npt.NDArray[np.str_],
        *,
        generation: int = 0,
    ) -> bytes:
        """Add one batch (rows belong to `meter_ids`); waits out a Redis outage. The entry id."""
        ids = await self.publish_many([(batch, meter_ids)], generation=generation)
        return ids[0]

    async def publish_many(
        self,
        batches: Iterable[tuple[Batch, Sequence[str] | npt.NDArray[np.str_]]],
        *,
        generation: int = 0,
    ) -> list[bytes]:
        """Add several batches in one round trip, in order; their entry ids.

        If the connection drops after Redis ran the pipeline but before the reply, the
        retry adds the batches again; applying a batch twice changes nothing.
        """
        entries = [self.entry(b, ids, generation) for b, ids in batches]
        if not entries:
            return []

        async def add(redis: Redis) -> list[bytes]:
            async with redis.pipeline(transaction=False) as pipe:
                for fields in entries:
                    pipe.xadd(
                        self.keys.readings, cast(Any, fields), maxlen=self.maxlen, approximate=True
                    )
                result: list[bytes] = await pipe.execute()
                return result

        added = await self.bus.call("publish readings", add)
        self.published += len(added)
        return added


class ReadingConsumer(GroupConsumer):
    """The core's side: decode each reading entry, hand it to `handler`, then acknowledge.

    Entries that do not decode, or that the handler rejects with a `ValueError`, go to
    the dead-letter stream with the reason and are acknowledged.
    """

    def __init__(
        self,
        bus: BusConnection,
        keys: BusKeys,
        handler: ReadingHandler,
        *,
        consumer: str,
        clock: Clock,
        group: str = READINGS_GROUP,
        count: int = 64,
        block_ms: int = 1000,
        reclaim_idle_ms: int = 30_000,
        reclaim_interval: float = 10.0,
        max_deliveries: int = 5,
    ) -> None:
        super().__init__(
            bus,
            keys.readings,
            group=group,
            consumer=consumer,
            dead_letters=keys.dead_letters,
            clock=clock,
            count=count,
            block_ms=block_ms,
            reclaim_idle_ms=reclaim_idle_ms,
            reclaim_interval=reclaim_interval,
            max_deliveries=max_deliveries,
        )
        self.handler = handler

    async def handle(self, entry_id: bytes, fields: Fields) -> Sequence[Addition]:
        """Decode and apply one reading entry."""
        payload = fields.get(PAYLOAD)
        if payload is None:
            raise Rejected(f"reading entry has no {PAYLOAD.decode()!r} field")
        try:
            batch = decode_batch(payload)
        except CodecError as exc:
            raise Rejected(str(exc)) from None
        try:
            result = self.handler(batch)
            if inspect.isawaitable(result):
                await result
        except ValueError as exc:
            raise Rejected(f"rejected by the handler: {exc}") from None
        return ()

    async def trim(self, *, approximate: bool = True) -> int:
        """Drop the entries every group has acknowledged; how many were removed.

        The floor is the oldest id any group still needs: its oldest pending entry, or
        the one after its last delivered entry. Entries below it were delivered and
        acknowledged by every group, so trimming by MINID there loses nothing.
        """
        stream = self.stream

        async def floor(redis: Redis) -> str | None:
            groups = await redis.xinfo_groups(stream)
            if not groups:
                return None
            needed: list[str] = []
            for info in groups:
                needed.append(next_id(info["last-delivered-id"]))
                if int(info["pending"]):
                    summary = await redis.xpending(stream, info["name"])
                    needed.append(summary["min"].decode())
            return min(needed, key=parse_id)

        threshold = await self._group_call("trim", floor)
        if threshold is None:
            return 0
        removed: int = await self.bus.call(
            f"xtrim {stream}",
            lambda r: r.xtrim(stream, minid=threshold, approximate=approximate),
        )
        return removed
