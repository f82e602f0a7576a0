"""One parkgrid process: the site, the migrated database and the live tag table."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from config import Site
from historian.migrate import migrate
from server.clock import Clock, SystemClock
from server.tags import TagTable

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

    def __init__(self, site: Site, *, clock: Clock | None = None) -> None:
        self.site = site
        self.clock: Clock = clock or SystemClock()
        self.tags: TagTable | None = None

    async def start(self) -> None:
        """Migrate the database and build the tag table."""
        applied = await asyncio.to_thread(prepare_database, self.site.services.db_url)
        if applied:
            log.info("database %s: applied %s", redact(self.site.services.db_url), applied)
        else:
            log.info("database %s: schema up to date", redact(self.site.services.db_url))
        self.tags = build_tag_table(self.site, self.clock)
        direct = sum(1 for m in self.site.meters if m.gateway is None)
        log.info(
            "site %s: %d meters (%d on %d gateways, %d direct 4G); acquisition idle",
            self.site.park.name,
            len(self.site.meters),
            len(self.site.meters) - direct,
            len(self.site.gateways),
            direct,
        )

    async def serve(self, stop: asyncio.Event) -> None:
        """Start, then run until `stop` is set."""
        await self.start()
        await stop.wait()
        log.info("stopping")
