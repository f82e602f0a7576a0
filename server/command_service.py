"""The command side of one process: the outbox and its dispatcher over the meter channels."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

import psycopg2
import psycopg2.extensions

from config import Site
from server.acquisition.channels import ChannelDirectory
from server.clock import Clock
from server.commands import ChannelExecutor, CommandDispatcher, CommandOutbox
from server.tags import TagTable


class CommandService:
    """Carries outbox commands to the meters through acquisition's channels."""

    def __init__(
        self, site: Site, table: TagTable, directory: ChannelDirectory, *, clock: Clock
    ) -> None:
        url = site.services.db_url

        def connect() -> psycopg2.extensions.connection:
            return psycopg2.connect(url, connect_timeout=5)

        self.outbox = CommandOutbox(connect(), site, clock=clock, tags=table, reconnect=connect)
        executor = ChannelExecutor(directory, clock=clock, tz=ZoneInfo(site.park.timezone))
        self.dispatcher = CommandDispatcher(self.outbox, executor)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Dispatch due commands until stopped (commands left by a crash are resumed)."""
        self._stop.clear()
        self._task = asyncio.create_task(self.dispatcher.run(self._stop), name="commands")

    async def stop(self) -> None:
        """Finish the round in progress and close the connection."""
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.outbox.close()
