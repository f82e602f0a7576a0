"""Applies the numbered SQL files in `historian/migrations/` in order, once each."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg2
import psycopg2.extensions

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same in every parkgrid process.
_LOCK_KEY = 0x7061726B  # "park"


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file: its version number, name and text."""

    version: int
    name: str
    sql: str


class MigrationError(RuntimeError):
    """A migration file is misnamed or numbered twice, or its SQL failed."""


def available() -> list[Migration]:
    """The migrations shipped with parkgrid, in version order."""
    found: dict[int, Migration] = {}
    for entry in resources.files("historian.migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"migration version {version} appears twice")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def applied(conn: psycopg2.extensions.connection) -> set[int]:
    """The versions recorded in the database's schema_version table."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_version') IS NOT NULL")
        row = cur.fetchone()
        if row is None or not row[0]:
            return set()
        cur.execute("SELECT version FROM schema_version")
        return {int(r[0]) for r in cur.fetchall()}


def migrate(conn: psycopg2.extensions.connection) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; return those applied."""
    done: list[Migration] = []
    old_autocommit = conn.autocommit
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            # A session lock: two processes starting together apply each file once.
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        conn.commit()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
            conn.commit()
            have = applied(conn)
            for migration in available():
                if migration.version in have:
                    continue
                try:
                    with conn.cursor() as cur:
                        cur.execute(migration.sql)
                        cur.execute(
                            "INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                            (migration.version, migration.name),
                        )
                    conn.commit()
                except psycopg2.Error as exc:
                    conn.rollback()
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name}.sql failed: "
                        f"{str(exc).strip()}"
                    ) from exc
                log.info("applied migration %04d_%s", migration.version, migration.name)
                done.append(migration)
        finally:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            conn.commit()
    finally:
        conn.autocommit = old_autocommit
    return done
