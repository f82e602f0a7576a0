"""Historian storage: TimescaleDB hypertables or native monthly partitions, and retention."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final

import psycopg2.extensions
from psycopg2 import sql

from config.catalogue import TagCatalogue

log = logging.getLogger(__name__)

TABLES: Final = ("readings", "energy_intervals", "meter_events")
# Chunk intervals (TimescaleDB), chosen for the data rates of the reference park: the
# realtime group of 5,407 meters every few seconds is ~10^8 rows a day, so one day per
# chunk keeps a chunk's index in memory; 15-minute intervals are ~520k rows a day.
CHUNK_INTERVALS: Final = {
    "readings": dt.timedelta(days=1),
    "energy_intervals": dt.timedelta(days=7),
    "meter_events": dt.timedelta(days=30),
}
MONTHS_AHEAD: Final = 2
_PARTITION = re.compile(r"^(?P<table>[a-z_]+)_p(?P<year>\d{4})(?P<month>\d{2})$")


class StorageMode(Enum):
    """How the historian tables are partitioned by time."""

    TIMESCALE = "timescaledb"
    NATIVE = "native"


@dataclass(frozen=True, slots=True)
class Retention:
    """How many days each table keeps; older chunks or partitions are dropped whole."""

    readings_days: int = 180
    energy_intervals_days: int = 1100
    meter_events_days: int = 400
    every_s: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("readings_days", "energy_intervals_days", "meter_events_days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"retention {name} must be positive, got {getattr(self, name)}")
        if self.every_s <= 0:
            raise ValueError(f"retention every_s must be positive, got {self.every_s}")

    def days(self, table: str) -> int:
        """The days `table` keeps."""
        days: int = getattr(self, f"{table}_days")
        return days


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """What one maintenance pass did: partitions created and chunks or partitions dropped."""

    created: int
    dropped: int


def storage_mode(conn: psycopg2.extensions.connection) -> StorageMode:
    """The mode the migrated `readings` table is in (a partitioned table means native)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table"
            " WHERE partrelid = to_regclass('readings'))"
        )
        row = cur.fetchone()
    conn.commit()
    return StorageMode.NATIVE if row is not None and row[0] else StorageMode.TIMESCALE


def describe(mode: StorageMode) -> str:
    """The start-up line that says how the historian stores its data."""
    if mode is StorageMode.TIMESCALE:
        chunks = ", ".join(f"{t} {CHUNK_INTERVALS[t].days} d" for t in TABLES)
        return f"historian storage: TimescaleDB hypertables (chunk intervals {chunks})"
    return (
        "historian storage: plain PostgreSQL, native monthly partitions"
        " (timescaledb extension not installed when the schema was created)"
    )


def prepare(
    conn: psycopg2.extensions.connection, catalogue: TagCatalogue, now: float
) -> StorageMode:
    """Detect and log the storage mode, record the value layout, create partitions ahead."""
    mode = storage_mode(conn)
    log.info("%s", describe(mode))
    record_layout(conn, catalogue)
    if mode is StorageMode.NATIVE:
        for table in TABLES:
            ensure_partitions(conn, table, months_ahead(now))
    return mode


def record_layout(conn: psycopg2.extensions.connection, catalogue: TagCatalogue) -> None:
    """Write which tag each array position holds, group by group (1-based, as SQL indexes)."""
    with conn.cursor() as cur:
        for group in catalogue.groups:
            for position, tag in enumerate(catalogue.group_tags(group), start=1):
                cur.execute(
                    "INSERT INTO historian_layout (grp, position, tag, kind, unit)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (grp, position) DO UPDATE"
                    " SET tag = EXCLUDED.tag, kind = EXCLUDED.kind, unit = EXCLUDED.unit",
                    (group, position, tag.name, tag.kind, tag.unit),
                )
    conn.commit()


def month_of(unix_s: float) -> int:
    """The UTC month holding `unix_s`, as yyyymm."""
    when = dt.datetime.fromtimestamp(unix_s, dt.UTC)
    return when.year * 100 + when.month


def next_month(month: int) -> int:
    """The month after `month` (yyyymm)."""
    year, mon = divmod(month, 100)
    return (year + 1) * 100 + 1 if mon == 12 else month + 1


def months_between(first_s: float, last_s: float) -> list[int]:
    """Every UTC month (yyyymm) from the one holding `first_s` to the one holding `last_s`."""
    month, last = month_of(first_s), month_of(last_s)
    found = [month]
    while month < last:
        month = next_month(month)
        found.append(month)
    return found


def months_ahead(now: float) -> list[int]:
    """The current month and the `MONTHS_AHEAD` after it."""
    months = [month_of(now)]
    for _ in range(MONTHS_AHEAD):
        months.append(next_month(months[-1]))
    return months


def _month_start(month: int) -> dt.datetime:
    year, mon = divmod(month, 100)
    return dt.datetime(year, mon, 1, tzinfo=dt.UTC)


def ensure_partitions(
    conn: psycopg2.extensions.connection, table: str, months: Iterable[int]
) -> int:
    """Create the monthly partitions of `table` that do not exist yet; return how many."""
    if table not in TABLES:
        raise ValueError(f"unknown historian table {table!r}")
    existing = set(partitions(conn, table))
    created = 0
    with conn.cursor() as cur:
        for month in sorted(set(months) - existing):
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM (%s) TO (%s)"
                ).format(sql.Identifier(f"{table}_p{month}"), sql.Identifier(table)),
                (_month_start(month), _month_start(next_month(month))),
            )
            created += 1
    conn.commit()
    if created:
        log.info("historian: created %d monthly partition(s) of %s", created, table)
    return created


def partitions(conn: psycopg2.extensions.connection, table: str) -> list[int]:
    """The months (yyyymm) that `table` has native partitions for, in order."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(%s)",
            (table,),
        )
        names = [r[0] for r in cur.fetchall()]
    conn.commit()
    months = []
    for name in names:
        match = _PARTITION.match(name)
        if match and match.group("table") == table:
            months.append(int(match.group("year")) * 100 + int(match.group("month")))
    return sorted(months)


def drop_old(
    conn: psycopg2.extensions.connection, mode: StorageMode, table: str, cutoff: float
) -> int:
    """Drop whole chunks or partitions of `table` that end at or before `cutoff`."""
    if table not in TABLES:
        raise ValueError(f"unknown historian table {table!r}")
    limit = dt.datetime.fromtimestamp(cutoff, dt.UTC)
    if mode is StorageMode.TIMESCALE:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM drop_chunks(%s, older_than => %s)", (table, limit))
            row = cur.fetchone()
        conn.commit()
        return int(row[0]) if row else 0
    dropped = 0
    with conn.cursor() as cur:
        for month in partitions(conn, table):
            if _month_start(next_month(month)) <= limit:
                cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(f"{table}_p{month}")))
                dropped += 1
    conn.commit()
    return dropped


class Maintenance:
    """Partitions ahead and retention, run when the clock passes the next due time."""

    def __init__(self, retention: Retention) -> None:
        self.retention = retention
        self.due_at = float("-inf")

    def due(self, now: float) -> bool:
        """Whether a pass is due at `now`."""
        return now >= self.due_at

    def run(
        self, conn: psycopg2.extensions.connection, mode: StorageMode, now: float
    ) -> MaintenanceReport:
        """Create partitions ahead (native), drop what retention no longer keeps."""
        created = dropped = 0
        for table in TABLES:
            if mode is StorageMode.NATIVE:
                created += ensure_partitions(conn, table, months_ahead(now))
            dropped += drop_old(conn, mode, table, now - self.retention.days(table) * 86_400.0)
        self.due_at = now + self.retention.every_s
        if dropped:
            log.info("historian retention: dropped %d old chunk(s) or partition(s)", dropped)
        return MaintenanceReport(created, dropped)
