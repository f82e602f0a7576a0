"""An acquisition worker process: polls its share of the Modbus TCP gateways, publishes to Redis.

Run by `WorkerPool` as `python -m server.scaleout.worker --site DIR --worker-id W --redis URL`.
The worker heartbeats (`WorkerHeartbeat`), polls exactly the gateways the coordinator's
current assignment gives it while its lease holds, publishes everything its pipeline sees
(`BusForwarder`) and carries out the core's channel commands for those gateways. When its
share changes (a new generation, or its lease ran out) it stops the old poll groups and
starts the new ones; it never polls a gateway it does not own by its latest assignment.
It leaves the pool on SIGTERM, and stops on its own when its parent process is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from config import load_site
from config.model import Site
from server.acquisition.service import Acquisition
from server.bus import (
    BusConnection,
    BusKeys,
    Command,
    CommandReceiver,
    ReadingPublisher,
    WorkerHeartbeat,
    open_redis,
)
from server.clock import Clock, ManualClock, SystemClock
from server.process import build_tag_table
from server.scaleout.options import WorkerOptions, client_name, parse_args
from server.scaleout.remote import carry_out
from server.scaleout.wire import BusForwarder, Outgoing

log = logging.getLogger(__name__)

PUBLISH_CHUNK: Final = 256
STOP_GRACE_S: Final = 5.0


class Worker:
    """One worker: membership, the poll groups of its gateways, publishing and commands."""

    def __init__(self, site: Site, options: WorkerOptions, bus: BusConnection) -> None:
        self.site = site
        self.options = options
        self.bus = bus
        self.keys = BusKeys(park=options.park)
        self.wall: Clock = SystemClock()
        self.scan_clock: Clock = (
            ManualClock(options.frozen_at) if options.frozen_at is not None else self.wall
        )
        self.table = build_tag_table(site, self.scan_clock)
        self.forwarder = BusForwarder(self.table)
        self.heartbeat = WorkerHeartbeat(
            bus, self.keys, options.worker, clock=self.wall, ttl=options.heartbeat_ttl
        )
        self.publisher = ReadingPublisher(bus, self.keys, worker=options.worker)
        self.receiver = CommandReceiver(
            bus,
            self.keys,
            options.worker,
            self._command,
            owns=lambda gateway: gateway in self.polling,
            clock=self.wall,
            generation=lambda: self.heartbeat.generation,
            block_ms=500,
        )
        self.acquisition: Acquisition | None = None
        self.polling: frozenset[str] = frozenset()
        self._scanning: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then leave the pool and flush what is queued."""
        loop = asyncio.get_running_loop()
        tasks = [
            loop.create_task(self._publish(), name="worker:publish"),
            loop.create_task(self.receiver.run(stop), name="worker:commands"),
        ]
        try:
            while not stop.is_set():
                await self.heartbeat.beat()
                await self._follow(self.heartbeat.owned())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.heartbeat.interval)
        finally:
            await self._follow(frozenset())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_GRACE_S):
                    await self.heartbeat.leave()
                    await self.forwarder.queue.join()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, owned: frozenset[str]) -> None:
        """Poll exactly `owned`: stop the old poll groups, start the new ones."""
        if owned == self.polling:
            return
        await self._stop_polling()
        if not owned:
            log.info("%s: polling no gateway", self.options.worker)
            return
        options = self.options
        frozen = options.frozen_at is not None  # every class due at once, on the stopped clock
        acq = Acquisition(
            self.site,
            self.table,
            clock=self.scan_clock,
            polled_gateways=owned,
            dialin=False,
            request_timeout=options.request_timeout,
            intervals=options.intervals,
            phase_spread=0.0 if frozen else 1.0,
            startup_window_s=0.0 if frozen else 5.0,
        )
        acq.pipeline.subscribe("feeds", self.forwarder, name="bus")
        await acq.start(run_loops=options.drive == "schedule", gateway_endpoints=options.endpoints)
        if options.drive == "continuous":
            self._scanning = asyncio.get_running_loop().create_task(
                _scan_back_to_back(acq), name="worker:scan"
            )
        self.acquisition = acq
        self.polling = owned
        log.info(
            "%s: polling %d gateway(s) under assignment %d",
            options.worker,
            len(owned),
            self.heartbeat.generation,
        )

    async def _stop_polling(self) -> None:
        if self._scanning is not None:
            self._scanning.cancel()
            await asyncio.gather(self._scanning, return_exceptions=True)
            self._scanning = None
        if self.acquisition is not None:
            self.polling = frozenset()
            await self.acquisition.stop()
            self.acquisition = None

    async def _publish(self) -> None:
        """Publish queued batches, several per round trip, in the order they were queued."""
        queue = self.forwarder.queue
        while True:
            items: list[Outgoing] = [await queue.get()]
            while len(items) < PUBLISH_CHUNK and not queue.empty():
                items.append(queue.get_nowait())
            try:
                await self.publisher.publish_many(items, generation=self.heartbeat.generation)
            finally:
                for _ in items:
                    queue.task_done()

    async def _command(self, command: Command) -> str:
        acq = self.acquisition
        if acq is None:
            raise ValueError(f"{self.options.worker} polls no gateway")
        return await carry_out(acq.directory, command)


async def _scan_back_to_back(acq: Acquisition) -> None:
    while True:
        await acq.full_scan("realtime")
        await asyncio.sleep(0)


async def serve(site_dir: Path, options: WorkerOptions) -> None:
    """Run one worker until SIGTERM/SIGINT or until its parent process is gone."""
    site = load_site(site_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    parent = os.getppid()

    async def orphaned() -> None:
        while os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if stop.is_set():
                return
        log.warning("%s: parent process gone; stopping", options.worker)
        stop.set()

    bus = BusConnection(
        open_redis(options.redis_url, client_name=client_name(options.park, options.worker)),
        name=f"redis ({options.worker})",
    )
    watcher = loop.create_task(orphaned(), name="worker:parent")
    try:
        await Worker(site, options, bus).run(stop)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await bus.close()


def main(argv: Sequence[str] | None = None) -> None:
    """The worker's entry point."""
    site_dir, options = parse_args(argv)
    form = f"%(asctime)s {options.worker} %(levelname)s %(name)s %(message)s"
    logging.basicConfig(level=logging.INFO, format=form)
    asyncio.run(serve(site_dir, options))


if __name__ == "__main__":
    main()
