"""A small park with an engine, a journal on the test database and the operations on top."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import psycopg2
import psycopg2.extensions

from alarms.engine import AlarmEngine
from alarms.journal.operations import AlarmOperations
from alarms.journal.store import AlarmJournal
from alarms.records import AlarmTransition
from config.model import AlarmLimits, Site
from server.clock import ManualClock
from tests.alarms.park import Rig, meter, site, table_for

# Every rig gets its own stretch of time, so tests sharing the session database never
# see each other's rows when they query a time window.
_WINDOWS = itertools.count()
WINDOW_S = 10_000_000.0


def small_park() -> Site:
    return site(
        [
            meter("M1", area="ENT", gateway="GW1"),
            meter("M2", area="ENT", gateway="GW1"),
            meter("D1", area="DORM", gateway="GW2", three_phase=False),
        ],
        limits=AlarmLimits(undervoltage_delay_s=0, phase_loss_delay_s=0),
    )


class JournalRig(Rig):
    """`Rig` with its own time window, a journal and the operations."""

    def __init__(
        self,
        db_url: str,
        park_site: Site | None = None,
        *,
        connect: Callable[[], psycopg2.extensions.connection] | None = None,
        max_pending: int = 200_000,
        batch_size: int = 5_000,
    ) -> None:
        self.site = park_site or small_park()
        self.start = 1_800_000_000.0 + next(_WINDOWS) * WINDOW_S
        self.clock = ManualClock(self.start)
        self.table = table_for(self.site, self.clock)
        self.engine = AlarmEngine(self.site, self.table, clock=self.clock, max_shelve_s=3600)
        self.log: list[AlarmTransition] = []
        self.engine.subscribe(self.log.append)
        self.journal = AlarmJournal(
            connect or db_url,
            clock=self.clock,
            site=self.site,
            max_pending=max_pending,
            batch_size=batch_size,
            retry_s=5.0,
        )
        self.ops = AlarmOperations(self.engine, self.journal)

    @property
    def window(self) -> tuple[float, float]:
        return self.start, self.start + WINDOW_S

    def close(self) -> None:
        self.ops.close()
        self.journal.close()


class SwitchableDatabase:
    """A connection factory the test can turn off, as if PostgreSQL went away."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.up = True
        self.attempts = 0

    def __call__(self) -> psycopg2.extensions.connection:
        self.attempts += 1
        if not self.up:
            raise psycopg2.OperationalError("connection refused (database switched off by test)")
        return psycopg2.connect(self.db_url, connect_timeout=5)
