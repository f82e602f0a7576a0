"""Creating and dropping whole parkgrid databases: for tests, benchmarks and first installs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql

from historian.migrate import migrate


def _admin(url: str) -> tuple[psycopg2.extensions.connection, str]:
    """An autocommit connection to the server's `postgres` database, and the name in `url`."""
    parts = urlsplit(url)
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")), connect_timeout=5)
    admin.autocommit = True
    return admin, parts.path.lstrip("/")


def drop_database(url: str) -> None:
    """Drop the database `url` names, closing its sessions; nothing when it does not exist."""
    admin, name = _admin(url)
    try:
        with admin.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        admin.close()


def create_database(url: str, *, timescale: bool = True) -> bool:
    """Create the database `url` names afresh and migrate it; True when TimescaleDB is in it.

    An existing database of that name is dropped first. With `timescale`, the extension is
    created when the server offers it; without, the schema falls back to native partitions.
    """
    drop_database(url)
    admin, name = _admin(url)
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
            available = cur.fetchone() is not None
    finally:
        admin.close()
    conn = psycopg2.connect(url, connect_timeout=5)
    try:
        if timescale and available:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.autocommit = False
        migrate(conn)
    finally:
        conn.close()
    return timescale and available


@contextmanager
def scratch_database(url: str, *, timescale: bool = True) -> Iterator[str]:
    """A fresh, migrated database at `url` for the duration of the block, dropped after."""
    create_database(url, timescale=timescale)
    try:
        yield url
    finally:
        drop_database(url)
