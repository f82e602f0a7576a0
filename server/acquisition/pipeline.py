"""The batch pipeline: apply a batch to the tag table, then hand it to each consumer in order.

Stages run in a fixed order, `alarms`, `prepaid`, `historian`, `feeds`, as DESIGN.md's data
flow has them: alarms see a reading before money moves on it, and the historian has it
before the feeds publish it. A consumer subscribes to one stage with any of `on_batch`
(a `ChangeSet`), `on_comm` (a `CommChange`), `on_gateway` (a `GatewayEvent`) and
`on_freeze` (a `FreezeReadings`); each may be plain or async. A consumer that raises is
logged once when it starts failing and once when it recovers, its failures are counted,
and the next consumer still runs: a historian whose database is away must not stop the
alarms or the scan.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from server.tags import Batch, ChangeSet, CommChange, CommState, TagTable
from server.tags.quality import is_good

log = logging.getLogger(__name__)

STAGES: Final = ("alarms", "prepaid", "historian", "feeds")
HOOKS: Final = ("on_batch", "on_comm", "on_gateway", "on_freeze")


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """A gateway or dial-in link went online or offline at `at`."""

    gateway_id: str
    kind: str
    online: bool
    at: float


@dataclass(frozen=True, slots=True, eq=False)
class FreezeReadings:
    """Monthly freeze blocks read from some meters: `yymm` and the decoded columns per row."""

    rows: npt.NDArray[np.int64]
    yymm: npt.NDArray[np.int64]
    values: dict[str, npt.NDArray[Any]]
    read_at: float


@dataclass(slots=True)
class _Subscriber:
    stage: str
    consumer: object
    name: str
    failures: int = 0
    failing: bool = False
    hooks: dict[str, Callable[[Any], object]] = field(default_factory=dict)


@dataclass(slots=True)
class PipelineStats:
    """What passed through the pipeline: batches, rows and tag values written."""

    batches: int = 0
    rows: int = 0
    values: int = 0
    comm_changes: int = 0
    consumer_failures: int = 0


class Subscription:
    """A consumer's place in the pipeline; `cancel()` takes it out."""

    def __init__(self, pipeline: BatchPipeline, subscriber: _Subscriber) -> None:
        self._pipeline = pipeline
        self._subscriber = subscriber

    def cancel(self) -> None:
        """Stop handing batches to this consumer."""
        self._pipeline._remove(self._subscriber)


class BatchPipeline:
    """Writes batches and comm states into the tag table and fans them out stage by stage."""

    def __init__(self, table: TagTable) -> None:
        self.table = table
        self.stats = PipelineStats()
        self._subscribers: list[_Subscriber] = []

    def subscribe(self, stage: str, consumer: object, *, name: str | None = None) -> Subscription:
        """Add `consumer` to `stage`; it must have at least one of the hooks (see module doc)."""
        if stage not in STAGES:
            raise ValueError(f"unknown pipeline stage {stage!r} (stages: {', '.join(STAGES)})")
        hooks = {h: getattr(consumer, h) for h in HOOKS if callable(getattr(consumer, h, None))}
        if not hooks:
            raise TypeError(f"{consumer!r} has none of the consumer hooks {', '.join(HOOKS)}")
        subscriber = _Subscriber(stage, consumer, name or type(consumer).__name__, hooks=hooks)
        self._subscribers.append(subscriber)
        self._subscribers.sort(key=lambda s: STAGES.index(s.stage))  # stable within a stage
        return Subscription(self, subscriber)

    def _remove(self, subscriber: _Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def consumers(self, stage: str | None = None) -> list[str]:
        """Names of the consumers, in the order they are called (optionally of one stage)."""
        return [s.name for s in self._subscribers if stage in (None, s.stage)]

    def failures(self) -> dict[str, int]:
        """Failures counted per consumer name."""
        return {s.name: s.failures for s in self._subscribers}

    async def submit(self, batch: Batch) -> ChangeSet:
        """Apply `batch` to the tag table, then call every consumer's `on_batch` in stage order."""
        changes = self.table.apply(batch)
        good = int(np.count_nonzero(is_good(batch.quality)))
        self.stats.batches += 1
        self.stats.rows += len(batch)
        self.stats.values += good * len(batch.values)
        await self._fan_out("on_batch", changes)
        return changes

    async def set_comm(
        self, rows: npt.ArrayLike, state: CommState | npt.ArrayLike, ts: float | npt.ArrayLike
    ) -> CommChange:
        """Set meters' comm state in the table; consumers see the rows that changed."""
        change = self.table.set_comm(rows, state, ts)
        if change:
            self.stats.comm_changes += len(change)
            await self._fan_out("on_comm", change)
        return change

    async def gateway_changed(self, event: GatewayEvent) -> None:
        """Tell consumers that a gateway or dial-in link changed state."""
        await self._fan_out("on_gateway", event)

    async def freeze_read(self, readings: FreezeReadings) -> None:
        """Hand monthly freeze blocks to the consumers (the historian keeps them)."""
        await self._fan_out("on_freeze", readings)

    async def _fan_out(self, hook: str, payload: object) -> None:
        for subscriber in list(self._subscribers):
            method = subscriber.hooks.get(hook)
            if method is None:
                continue
            try:
                result = method(payload)
                if inspect.isawaitable(result):
                    await _awaited(result)
            except Exception as exc:
                self._failed(subscriber, hook, exc)
            else:
                if subscriber.failing:
                    subscriber.failing = False
                    log.info(
                        "pipeline consumer %s (%s) recovered after %d failure(s)",
                        subscriber.name,
                        subscriber.stage,
                        subscriber.failures,
                    )

    def _failed(self, subscriber: _Subscriber, hook: str, exc: Exception) -> None:
        subscriber.failures += 1
        self.stats.consumer_failures += 1
        if subscriber.failing:
            return
        subscriber.failing = True
        log.error(
            "pipeline consumer %s (%s) failed in %s; the pipeline goes on without it: %r",
            subscriber.name,
            subscriber.stage,
            hook,
            exc,
            exc_info=exc,
        )


async def _awaited(result: Awaitable[object]) -> None:
    await result
