"""The core's side of scale-out: worker processes, the coordinator, readings in, commands out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from config.model import Site
from config.values import Endpoint
from server.acquisition.channels import ChannelDirectory
from server.acquisition.pipeline import BatchPipeline
from server.bus import (
    BusConnection,
    BusKeys,
    CommandSender,
    Coordinator,
    OutcomeConsumer,
    ReadingConsumer,
    open_redis,
)
from server.clock import Clock
from server.scaleout.options import DRIVES, WORKER_MODULE, WorkerOptions, client_name
from server.scaleout.remote import AssignmentWatch, OutcomeWaiter, RemoteDirectory
from server.scaleout.wire import CoreApplier
from server.tags import TagTable

log = logging.getLogger(__name__)

SUPERVISE_S: Final = 0.2
TRIM_S: Final = 10.0


def worker_gateways(site: Site) -> tuple[str, ...]:
    """The gateways workers poll: every Modbus TCP gateway (the dial-in side stays in the core)."""
    return tuple(g.id for g in site.gateways if g.kind == "modbus_tcp")


def core_gateways(site: Site) -> tuple[str, ...]:
    """The gateways the core polls itself with workers running: the dial-in (DTU) ones."""
    return tuple(g.id for g in site.gateways if g.kind != "modbus_tcp")


@dataclass
class WorkerProcess:
    """One worker's OS process and its restart bookkeeping."""

    name: str
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    exit_code: int | None = None
    restart_at: float = 0.0


class WorkerPool:
    """N worker processes polling the Modbus TCP gateways; their readings go through `pipeline`."""

    def __init__(
        self,
        site: Site,
        table: TagTable,
        pipeline: BatchPipeline,
        *,
        workers: int,
        redis_url: str,
        clock: Clock,
        park: str = "park",
        gateway_endpoints: Mapping[str, Endpoint] | None = None,
        heartbeat_ttl: float = 10.0,
        check_interval: float = 2.0,
        command_timeout: float = 5.0,
        request_timeout: float | None = None,
        intervals: Mapping[str, float] | None = None,
        frozen_at: float | None = None,
        drive: str = "schedule",
        restart: bool = True,
        restart_delay: float = 1.0,
        local_directory: Callable[[], ChannelDirectory | None] = lambda: None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"acquisition workers must be at least 1, got {workers}")
        if drive not in DRIVES:
            raise ValueError(f"drive must be one of {', '.join(DRIVES)}, got {drive!r}")
        self.site = site
        self.table = table
        self.pipeline = pipeline
        self.redis_url = redis_url
        self.clock = clock
        self.keys = BusKeys(park=park)
        self.endpoints = dict(gateway_endpoints or {})
        self.heartbeat_ttl = heartbeat_ttl
        self.request_timeout = request_timeout
        self.intervals = dict(intervals or {})
        self.frozen_at = frozen_at
        self.drive = drive
        self.restart = restart
        self.restart_delay = restart_delay
        self.gateways = worker_gateways(site)
        self.workers = [WorkerProcess(f"w{i}") for i in range(workers)]
        self.bus = BusConnection(
            open_redis(redis_url, client_name=client_name(park, "core")), name="redis (core)"
        )
        self.coordinator = Coordinator(
            self.bus, self.keys, self.gateways, clock=clock, check_interval=check_interval
        )
        self.applier = CoreApplier(table, pipeline, link_kind="modbus_tcp")
        self.readings = ReadingConsumer(
            self.bus, self.keys, self.applier, consumer="core", clock=clock, block_ms=200
        )
        self.waiter = OutcomeWaiter()
        self.outcomes = OutcomeConsumer(
            self.bus, self.keys, self.waiter, consumer="core", clock=clock, block_ms=200
        )
        self.watch = AssignmentWatch()
        self.sender = CommandSender(self.bus, self.keys)
        self.directory = RemoteDirectory(
            site,
            self.gateways,
            self.sender,
            self.waiter,
            self.watch,
            timeout=command_timeout,
            local=local_directory,
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the groups, start consuming, coordinating and the worker processes."""
        if self._tasks:
            raise RuntimeError("worker pool already started")
        self._stop = asyncio.Event()
        await self.readings.start()
        await self.outcomes.start()
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            self._spawn(worker)
        self._tasks = [
            loop.create_task(self._consume(self.readings), name="pool:readings"),
            loop.create_task(self._consume(self.outcomes), name="pool:outcomes"),
            loop.create_task(self._coordinate(), name="pool:coordinator"),
            loop.create_task(self._supervise(), name="pool:supervisor"),
            loop.create_task(self._trim(), name="pool:trim"),
        ]
        log.info(
            "worker pool started: %d worker(s) for %d Modbus TCP gateway(s)",
            len(self.workers),
            len(self.gateways),
        )

    async def stop(self) -> None:
        """Stop the workers (they flush what they queued), apply what is left, close Redis."""
        self._stop.set()
        for task in self._tasks:
            if task.get_name() in ("pool:supervisor", "pool:trim", "pool:coordinator"):
                task.cancel()
        await self._terminate_all()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self.drain()
        await self.bus.close()
        log.info("worker pool stopped")

    async def drain(self) -> int:
        """Apply every reading already on the stream (without waiting for new ones)."""
        handled = 0
        block, self.readings.block_ms = self.readings.block_ms, 1
        try:
            while count := await self.readings.poll():
                handled += count
        finally:
            self.readings.block_ms = block
        return handled

    def status(self) -> dict[str, Any]:
        """Workers, the assignment and what the core applied."""
        assignment = self.watch.current
        counts = self.applier.counts
        return {
            "workers": {
                w.name: {
                    "pid": w.process.pid if w.process is not None else None,
                    "alive": w.process is not None and w.process.poll() is None,
                    "restarts": w.restarts,
                    "gateways": len(assignment.gateways_of(w.name)) if assignment else 0,
                }
                for w in self.workers
            },
            "generation": assignment.generation if assignment else 0,
            "unassigned": sum(
                1 for g in self.gateways if assignment is None or assignment.owner(g) is None
            ),
            "readings": {
                "applied": self.readings.done,
                "dead_lettered": self.readings.dead,
                "lost": self.readings.lost,
                "batches": counts.batches,
                "comm": counts.comm,
                "freeze": counts.freeze,
                "links": counts.links,
            },
            "redis": {"healthy": self.bus.healthy, "outages": self.bus.outages},
        }

    # -- processes -----------------------------------------------------------------------------

    def command_line(self, worker: str) -> list[str]:
        """The command that starts worker `worker`."""
        options = WorkerOptions(
            worker=worker,
            redis_url=self.redis_url,
            park=self.keys.park,
            endpoints=self.endpoints,
            heartbeat_ttl=self.heartbeat_ttl,
            frozen_at=self.frozen_at,
            drive=self.drive,
            intervals=self.intervals,
            request_timeout=self.request_timeout,
        )
        return [sys.executable, "-m", WORKER_MODULE, *options.argv(self.site.folder)]

    def _spawn(self, worker: WorkerProcess) -> None:
        argv = self.command_line(worker.name)  # our own interpreter and module, no shell
        worker.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)  # noqa: S603
        worker.exit_code = None
        log.info("worker %s started (pid %d)", worker.name, worker.process.pid)

    async def _supervise(self) -> None:
        """Restart a worker that died, after `restart_delay` seconds."""
        loop = asyncio.get_running_loop()
        while True:
            for worker in self.workers:
                process = worker.process
                if process is None or worker.exit_code is not None:
                    if self.restart and process is not None and loop.time() >= worker.restart_at:
                        worker.restarts += 1
                        self._spawn(worker)
                    continue
                code = process.poll()
                if code is not None:
                    worker.exit_code = code
                    worker.restart_at = loop.time() + self.restart_delay
                    log.error("worker %s (pid %d) exited with %d", worker.name, process.pid, code)
            await asyncio.sleep(SUPERVISE_S)

    async def _terminate_all(self) -> None:
        running = [w.process for w in self.workers if w.process and w.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        # A child's exit has no awaitable here (Popen, to start no watcher thread): poll it.
        while any(p.poll() is None for p in running) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for process in running:
            if process.poll() is None:
                log.error("worker pid %d ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.wait()

    def kill(self, worker: str) -> int:
        """Kill one worker at once (SIGKILL), as a crash would; its pid."""
        process = next(w.process for w in self.workers if w.name == worker)
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)
        return process.pid

    # -- core loops ----------------------------------------------------------------------------

    async def _consume(self, consumer: ReadingConsumer | OutcomeConsumer) -> None:
        while True:
            await consumer.poll()

    async def _coordinate(self) -> None:
        """Keep the assignment current; move the commands of workers that left."""
        while True:
            before = self.watch.current
            assignment = await self.coordinator.check()
            self.watch.publish(assignment)
            if before is not None and before.generation != assignment.generation:
                for gone in set(before.workers) - set(assignment.workers):
                    moved = await self.sender.reroute(gone, assignment)
                    if moved:
                        log.info("moved %d command(s) of departed worker %s", moved, gone)
            await asyncio.sleep(self.coordinator.check_interval)

    async def _trim(self) -> None:
        while True:
            await asyncio.sleep(TRIM_S)
            await self.readings.trim()
