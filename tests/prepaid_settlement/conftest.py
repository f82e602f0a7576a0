"""A prepaid rig: the example site with meters no other test uses, on real PostgreSQL."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from config import Site, load_site
from server.clock import ManualClock
from server.commands import Command, CommandOutbox
from server.prepaid.engine import PrepaidEngine, SettlementReport
from server.prepaid.ledger import Ledger
from server.prepaid.records import Posted
from server.tags import Batch, TagTable
from tests.commands.fake_meters import POLICY

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "small"
CST = timezone(timedelta(hours=8))
START = datetime(2025, 8, 4, 9, 0, tzinfo=CST).timestamp()
# The ledger refuses DELETE and TRUNCATE: each rig gets meter ids of its own.
_RUN = uuid.uuid4().hex[:6]
_COUNTER = itertools.count()


@dataclass
class Rig:
    """The engine and what it talks to; `id("E0003")` is the rig's name for a meter."""

    site: Site
    table: TagTable
    clock: ManualClock
    engine: PrepaidEngine
    outbox: CommandOutbox
    ledger: Ledger
    conns: list[psycopg2.extensions.connection]
    suffix: str

    def id(self, short: str) -> str:
        return f"{short}{self.suffix}"

    def reading(
        self,
        short: str,
        *,
        flat: float = 0.0,
        sharp: float = 0.0,
        peak: float = 0.0,
        valley: float = 0.0,
        at: float | None = None,
    ) -> SettlementReport:
        """Apply one energy reading (primary kWh) to the table and settle it."""
        row = self.table.rows_for([self.id(short)])
        values = {
            "e_sharp": [sharp],
            "e_peak": [peak],
            "e_flat": [flat],
            "e_valley": [valley],
        }
        batch = Batch("energy", row, values, source_ts=self.clock.time() if at is None else at)
        return self.engine.on_batch(self.table.apply(batch))

    def commands(self, short: str) -> list[Command]:
        return list(self.outbox.find(meter=self.id(short)).items)

    def fund(self, short: str, fen: int) -> Posted | None:
        self.ledger.open_wallet(self.id(short), "M2")
        if fen:
            return self.ledger.post(
                "counter_recharge",
                meter=self.id(short),
                amount_fen=fen,
                operator="t",
                channel="hmi",
            )
        return None

    def connect(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(self.conns[0].dsn, connect_timeout=5)
        self.conns.append(conn)
        return conn

    def build_engine(self) -> PrepaidEngine:
        """A new process: new connections, outbox, ledger and engine over the same site."""
        self.outbox = CommandOutbox(
            self.connect(), self.site, clock=self.clock, tags=self.table, policy=POLICY
        )
        self.ledger = Ledger(self.connect(), clock=self.clock)
        self.engine = PrepaidEngine(
            self.site, self.table, self.connect(), self.outbox, self.ledger, clock=self.clock
        )
        return self.engine


@pytest.fixture(scope="session")
def example() -> Site:
    return load_site(EXAMPLE, env={})


@pytest.fixture
def rig(db_url: str, example: Site) -> Iterator[Rig]:
    suffix = f"x{_RUN}{next(_COUNTER)}"
    meters = tuple(replace(m, id=f"{m.id}{suffix}") for m in example.meters)
    site = replace(example, meters=meters)
    clock = ManualClock(START)
    table = TagTable(
        [m.id for m in meters],
        areas=[m.area for m in meters],
        gateways=[m.gateway for m in meters],
        three_phase=[m.three_phase for m in meters],
        clock=clock,
    )
    first = psycopg2.connect(db_url, connect_timeout=5)
    rig = Rig(site, table, clock, None, None, None, [first], suffix)  # type: ignore[arg-type]
    rig.build_engine()
    try:
        yield rig
    finally:
        for conn in rig.conns:
            if not conn.closed:
                conn.rollback()
                conn.close()
