"""Schema migrations: applied once, recorded, and the audit log is append-only."""

from __future__ import annotations

import psycopg2
import pytest
from psycopg2.extensions import connection

from historian.migrate import available, migrate


def test_every_shipped_migration_is_recorded(db: connection) -> None:
    with db.cursor() as cur:
        cur.execute("SELECT version, name FROM schema_version ORDER BY version")
        recorded = cur.fetchall()
    assert recorded == [(m.version, m.name) for m in available()]


def test_migrate_again_applies_nothing(db: connection) -> None:
    assert migrate(db) == []


def test_versions_are_consecutive_from_one() -> None:
    versions = [m.version for m in available()]
    assert versions == list(range(1, len(versions) + 1))


def test_audit_log_accepts_inserts_and_refuses_changes(db: connection) -> None:
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO audit_log (actor, channel, action, target, detail)"
            " VALUES ('admin', 'cli', 'test.insert', 'M0001', '{\"n\": 1}') RETURNING id"
        )
        row = cur.fetchone()
        assert row is not None
        new_id = row[0]
    db.commit()
    for statement in (
        "UPDATE audit_log SET actor = 'mallory' WHERE id = %s",
        "DELETE FROM audit_log WHERE id = %s",
    ):
        with db.cursor() as cur, pytest.raises(psycopg2.Error, match="append-only"):
            cur.execute(statement, (new_id,))
        db.rollback()
    with db.cursor() as cur:
        cur.execute("SELECT actor FROM audit_log WHERE id = %s", (new_id,))
        assert cur.fetchone() == ("admin",)
