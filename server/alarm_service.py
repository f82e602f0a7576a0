"""The alarm stack of one process: engine on the pipeline, journal, notifications, timers."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from alarms.engine import AlarmEngine
from alarms.journal.operations import AlarmOperations
from alarms.journal.store import AlarmJournal
from alarms.notify.events import from_transition
from alarms.notify.notifier import Notifier
from alarms.records import AlarmTransition
from config import Site
from server.acquisition.pipeline import BatchPipeline
from server.clock import Clock
from server.tags import TagTable

log = logging.getLogger(__name__)

# Delays, off-delays and shelf expiry must fire even when no batch arrives.
EVALUATE_EVERY_S = 1.0


class AlarmService:
    """Evaluates alarms on every batch, journals and notifies each transition."""

    def __init__(self, site: Site, table: TagTable, pipeline: BatchPipeline, *, clock: Clock):
        self.site = site
        self.clock = clock
        self.engine = AlarmEngine(site, table, clock=clock)
        self.journal = AlarmJournal(site.services.db_url, clock=clock, site=site)
        self.journal.attach(self.engine)
        self.notifier = Notifier(site, clock=clock)
        self.operations = AlarmOperations(self.engine, self.journal, site=site)
        self.engine.subscribe(on_transition=self._notify)
        pipeline.subscribe("alarms", self.engine, name="alarm engine")
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _notify(self, transition: AlarmTransition) -> None:
        event = from_transition(transition, self.site)
        if event is not None:
            self.notifier.submit(event)

    async def _evaluate(self) -> None:
        while not self._stop.is_set():
            try:
                self.engine.evaluate()
            except Exception:
                log.exception("alarm evaluation failed; retrying on the next tick")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), EVALUATE_EVERY_S)

    def start(self) -> None:
        """Run the evaluation timer, the journal writer and the notifier."""
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(self._evaluate(), name="alarm-timers"),
            asyncio.create_task(self.journal.run(self._stop), name="alarm-journal"),
            asyncio.create_task(self.notifier.run(self._stop), name="alarm-notifier"),
        ]

    async def stop(self) -> None:
        """Stop the tasks (the journal flushes once more) and close the journal."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.journal.close()
