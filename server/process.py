"""One parkgrid process: the database, the tag table, acquisition, alarms, prepaid, commands, web.

Start order: migrate, build the tag table, build acquisition and subscribe the alarm stack,
the prepaid engine and the historian writer to its pipeline (so the first batch is already
evaluated, settled and stored), start acquisition, then the command dispatcher over
acquisition's channels (or the worker pool's), and last the web application (health,
payment callbacks) with its settlement workers, so a recharge only arrives once the relay
close it causes can be carried out. Stop runs the other way round: web (no new payments;
workers finish theirs), commands, acquisition, historian (what is queued is written or
spooled), prepaid (the batch in progress settles), alarms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from redis.exceptions import RedisError

from config import Site
from config.values import Endpoint
from historian.migrate import migrate
from historian.writer import HistorianWriter
from server.acquisition.channels import ChannelDirectory
from server.acquisition.service import Acquisition
from server.alarm_service import AlarmService
from server.clock import Clock, SystemClock
from server.command_service import CommandService
from server.prepaid.ledger import Ledger
from server.prepaid.payments.callbacks import callback_routes
from server.prepaid.payments.keys import MerchantKeys, PaymentKeyError
from server.prepaid.payments.settlement import SettlementWorkers
from server.prepaid_service import PrepaidService, merchant_names
from server.scaleout import WorkerPool, core_gateways
from server.tags import TagTable
from server.web import WebApp

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The process cannot start; the message says why and what to check."""


def redact(url: str) -> str:
    """The URL with any password replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def prepare_database(db_url: str) -> list[str]:
    """Connect, apply pending migrations and return their names."""
    try:
        conn = psycopg2.connect(db_url, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        raise StartupError(
            f"cannot reach PostgreSQL at {redact(db_url)}: {str(exc).strip()}"
            " (set PARKGRID_DB_URL or [services].db_url)"
        ) from exc
    try:
        return [f"{m.version:04d}_{m.name}" for m in migrate(conn)]
    finally:
        conn.close()


def build_tag_table(site: Site, clock: Clock) -> TagTable:
    """The live tag table with one row per configured meter, in meters.csv order."""
    meters = site.meters
    return TagTable(
        [m.id for m in meters],
        areas=[m.area for m in meters],
        gateways=[m.gateway for m in meters],
        three_phase=[m.three_phase for m in meters],
        clock=clock,
    )


class ParkServer:
    """The realtime server for one site; `serve` runs until `stop` is set."""

    def __init__(
        self,
        site: Site,
        *,
        clock: Clock | None = None,
        dialin_listen: Endpoint | None = None,
        gateway_endpoints: Mapping[str, Endpoint] | None = None,
        hmi_listen: Endpoint | None = None,
        acquisition_workers: int = 0,
    ) -> None:
        self.site = site
        self.clock: Clock = clock or SystemClock()
        self.dialin_listen = dialin_listen
        self.hmi_listen = hmi_listen or site.services.hmi_listen
        if acquisition_workers < 0:
            raise ValueError(f"acquisition workers must be 0 or more, got {acquisition_workers}")
        self.acquisition_workers = acquisition_workers
        self.pool: WorkerPool | None = None
        self.historian: HistorianWriter | None = None
        self.gateway_endpoints = dict(gateway_endpoints or {})
        self.tags: TagTable | None = None
        self.acquisition: Acquisition | None = None
        self.alarms: AlarmService | None = None
        self.prepaid: PrepaidService | None = None
        self.commands: CommandService | None = None
        self.payments: SettlementWorkers | None = None
        self.web: WebApp | None = None

    async def start(self) -> None:
        """Migrate, build the tag table, start acquisition, alarms, prepaid, commands and web."""
        applied = await asyncio.to_thread(prepare_database, self.site.services.db_url)
        if applied:
            log.info("database %s: applied %s", redact(self.site.services.db_url), applied)
        else:
            log.info("database %s: schema up to date", redact(self.site.services.db_url))
        self.tags = build_tag_table(self.site, self.clock)
        direct = sum(1 for m in self.site.meters if m.gateway is None)
        log.info(
            "site %s: %d meters (%d on %d gateways, %d direct 4G)",
            self.site.park.name,
            len(self.site.meters),
            len(self.site.meters) - direct,
            len(self.site.gateways),
            direct,
        )
        # With workers, the core keeps the dial-in side; the workers poll Modbus TCP.
        polled = core_gateways(self.site) if self.acquisition_workers else None
        acquisition = Acquisition(
            self.site,
            self.tags,
            clock=self.clock,
            dialin_listen=self.dialin_listen,
            polled_gateways=polled,
        )
        self.alarms = AlarmService(self.site, self.tags, acquisition.pipeline, clock=self.clock)
        self.alarms.start()
        self.prepaid = PrepaidService(self.site, self.tags, acquisition.pipeline, clock=self.clock)
        self.prepaid.start()
        self.historian = HistorianWriter(
            self.site.services.db_url,
            clock=self.clock,
            spool_dir=self.site.services.var_dir / "spool",
            meter_ids=[m.id for m in self.site.meters],
        )
        acquisition.pipeline.subscribe("historian", self.historian, name="historian")
        self.historian.start()
        try:
            await acquisition.start(gateway_endpoints=self.gateway_endpoints)
        except OSError as exc:
            await acquisition.stop()
            await self.stop()
            listen = self.dialin_listen or self.site.services.dialin_listen
            raise StartupError(
                f"cannot listen for dial-in devices on {listen}: {exc.strerror or exc}"
                " (set [services].dialin_listen)"
            ) from exc
        self.acquisition = acquisition
        directory = acquisition.directory
        if self.acquisition_workers:
            directory = await self._start_workers(acquisition)
        self.commands = CommandService(self.site, self.tags, directory, clock=self.clock)
        self.commands.start()
        await self._start_web()

    async def _start_workers(self, acquisition: Acquisition) -> ChannelDirectory:
        """Start the worker processes; commands then reach meters through the pool."""
        assert self.tags is not None
        pool = WorkerPool(
            self.site,
            self.tags,
            acquisition.pipeline,
            workers=self.acquisition_workers,
            redis_url=self.site.services.redis_url,
            clock=self.clock,
            gateway_endpoints=self.gateway_endpoints or None,
            local_directory=lambda: acquisition.directory,
        )
        try:
            await pool.start()
        except (OSError, RedisError) as exc:
            await pool.stop()
            await self.stop()
            raise StartupError(
                f"cannot start {self.acquisition_workers} acquisition worker(s) with Redis at"
                f" {redact(self.site.services.redis_url)}: {exc} (set PARKGRID_REDIS_URL)"
            ) from exc
        self.pool = pool
        return pool.directory

    async def _start_web(self) -> None:
        """The payment settlement workers and the web application serving their callbacks."""
        assert self.tags is not None and self.prepaid is not None
        clock, names = self.clock, merchant_names(self.site)
        try:
            keys = MerchantKeys.from_site(self.site)
        except PaymentKeyError as exc:
            await self.stop()
            raise StartupError(f"payment keys: {exc}") from exc
        self.payments = SettlementWorkers(
            self.site.services.db_url,
            lambda conn: Ledger(conn, clock=clock, merchant_names=names),
            clock=clock,
            follow_up=self.prepaid.follow_up,
        )
        routes = callback_routes(self.site, self.payments, keys=keys, clock=clock)
        web = WebApp(self.hmi_listen, self.site.services.db_url, self.tags, routes)
        try:
            web.start()
        except OSError as exc:
            await self.stop()
            raise StartupError(
                f"cannot listen for the web application on {self.hmi_listen}:"
                f" {exc.strerror or exc} (set [services].hmi_listen)"
            ) from exc
        self.web = web

    async def stop(self) -> None:
        """Stop web and payments, commands, acquisition, the prepaid engine and alarms."""
        if self.web is not None:
            await self.web.stop()
            self.web = None
        if self.payments is not None:
            await asyncio.to_thread(self.payments.close)
            self.payments = None
        if self.commands is not None:
            await self.commands.stop()
            self.commands = None
        if self.pool is not None:
            await self.pool.stop()
            self.pool = None
        if self.acquisition is not None:
            await self.acquisition.stop()
            self.acquisition = None
        if self.historian is not None:
            await asyncio.to_thread(self.historian.stop)
            self.historian = None
        if self.prepaid is not None:
            await self.prepaid.stop()
            self.prepaid = None
        if self.alarms is not None:
            await self.alarms.stop()
            self.alarms = None

    async def serve(self, stop: asyncio.Event) -> None:
        """Start, then run until `stop` is set; stop cleanly."""
        await self.start()
        try:
            await stop.wait()
        finally:
            log.info("stopping")
            await self.stop()
