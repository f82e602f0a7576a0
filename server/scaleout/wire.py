"""What a worker's pipeline sees, carried to the core's pipeline as reading batches.

A worker runs an ordinary `Acquisition` with its own tag table; `BusForwarder`, subscribed
to that pipeline, queues every tag batch, comm change, freeze read and link event for the
`ReadingPublisher`. Besides the catalogue's tag groups, three reserved groups travel on
the readings stream: `bus_comm` (meter comm states), `bus_freeze` (monthly freeze blocks)
and `bus_link` (a gateway link went on- or offline; its "meter id" is the gateway id).
`CoreApplier` on the core turns each back into the same pipeline call the worker made,
so the core's consumers see what they would see in one process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from server.acquisition.pipeline import BatchPipeline, FreezeReadings, GatewayEvent
from server.bus import MeterBatch
from server.tags import Batch, ChangeSet, CommChange, TagTable

COMM_GROUP: Final = "bus_comm"
FREEZE_GROUP: Final = "bus_freeze"
LINK_GROUP: Final = "bus_link"
RESERVED_GROUPS: Final = frozenset({COMM_GROUP, FREEZE_GROUP, LINK_GROUP})

Outgoing = tuple[Batch, npt.NDArray[np.str_]]
"""A batch to publish and the meter id of each of its rows."""


def _no_quality(count: int) -> npt.NDArray[np.uint32]:
    return np.zeros(count, np.uint32)


def comm_batch(change: CommChange) -> Batch:
    """A comm change as a `bus_comm` batch: the new state per row at its `since`."""
    rows = np.asarray(change.rows, np.int64)
    return Batch(
        COMM_GROUP,
        rows,
        {"state": np.asarray(change.state, np.uint8)},
        quality=_no_quality(len(rows)),
        source_ts=np.asarray(change.since, np.float64),
    )


def freeze_batch(readings: FreezeReadings) -> Batch:
    """Freeze blocks as a `bus_freeze` batch: the decoded columns plus `yymm`."""
    rows = np.asarray(readings.rows, np.int64)
    values = {tag: np.asarray(column) for tag, column in readings.values.items()}
    values["yymm"] = np.asarray(readings.yymm, np.int64)
    return Batch(
        FREEZE_GROUP,
        rows,
        values,
        quality=_no_quality(len(rows)),
        source_ts=np.full(len(rows), readings.read_at, np.float64),
    )


def link_entry(event: GatewayEvent) -> Outgoing:
    """A link event as a one-row `bus_link` batch whose meter id is the gateway id."""
    batch = Batch(
        LINK_GROUP,
        np.zeros(1, np.int64),
        {"online": np.array([event.online], np.bool_)},
        quality=_no_quality(1),
        source_ts=np.array([event.at], np.float64),
    )
    return batch, np.array([event.gateway_id])


class BusForwarder:
    """A worker's pipeline consumer: queues what the pipeline sees for the publisher.

    The queue is bounded, so while Redis is away the poll groups wait in `submit` instead
    of the worker's memory growing without end.
    """

    def __init__(self, table: TagTable, *, capacity: int = 2048) -> None:
        self.ids = np.asarray(table.ids)
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=capacity)

    async def on_batch(self, changes: ChangeSet) -> None:
        """Queue the batch as applied (every row, changed or not)."""
        batch = changes.batch
        await self.queue.put((batch, self.ids[batch.rows]))

    async def on_comm(self, change: CommChange) -> None:
        """Queue the rows whose comm state changed."""
        if len(change):
            await self.queue.put((comm_batch(change), self.ids[change.rows]))

    async def on_freeze(self, readings: FreezeReadings) -> None:
        """Queue monthly freeze blocks."""
        if len(readings.rows):
            await self.queue.put((freeze_batch(readings), self.ids[readings.rows]))

    async def on_gateway(self, event: GatewayEvent) -> None:
        """Queue a link going on- or offline."""
        await self.queue.put(link_entry(event))


@dataclass(slots=True)
class AppliedCounts:
    """What the core applied from the readings stream, by kind of entry."""

    batches: int = 0
    comm: int = 0
    freeze: int = 0
    links: int = 0
    skipped_rows: int = 0


class CoreApplier:
    """The core's reading handler: each entry becomes the pipeline call the worker made.

    A `ValueError` (unknown meter, tag or group) makes the `ReadingConsumer` dead-letter it.
    """

    def __init__(self, table: TagTable, pipeline: BatchPipeline, *, link_kind: str) -> None:
        self.table = table
        self.pipeline = pipeline
        self.link_kind = link_kind
        self.counts = AppliedCounts()

    async def __call__(self, batch: MeterBatch) -> None:
        """Apply one decoded entry through the core's pipeline."""
        if batch.group == LINK_GROUP:
            online = batch.values.get("online")
            if online is None or len(batch) != 1:
                raise ValueError("a bus_link entry needs one row and an 'online' column")
            event = GatewayEvent(
                batch.meter_ids[0], self.link_kind, bool(online[0]), float(batch.source_ts[0])
            )
            self.counts.links += 1
            await self.pipeline.gateway_changed(event)
            return
        rows = self.table.rows_for(batch.meter_ids)
        if batch.group == COMM_GROUP:
            state = batch.values.get("state")
            if state is None:
                raise ValueError("a bus_comm entry needs a 'state' column")
            self.counts.comm += 1
            await self.pipeline.set_comm(rows, state, batch.source_ts)
        elif batch.group == FREEZE_GROUP:
            yymm = batch.values.get("yymm")
            if yymm is None or not len(batch):
                raise ValueError("a bus_freeze entry needs rows and a 'yymm' column")
            values = {tag: column for tag, column in batch.values.items() if tag != "yymm"}
            readings = FreezeReadings(
                rows, np.asarray(yymm, np.int64), values, float(batch.source_ts[0])
            )
            self.counts.freeze += 1
            await self.pipeline.freeze_read(readings)
        else:
            applied = batch.to_batch(self.table)
            self.counts.skipped_rows += len(batch) - len(applied)
            self.counts.batches += 1
            if len(applied):
                await self.pipeline.submit(applied)
