"""Command rows in SQL: reading them into records, locking one, and moving its state."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final

from psycopg2 import sql
from psycopg2.extras import execute_values

from server.commands.events import Cursor, NewEvent
from server.commands.kinds import slot
from server.commands.states import (
    CANCELLED,
    FINAL_STATES,
    IN_FLIGHT,
    PENDING,
    TRANSITIONS,
    Command,
    next_state,
)

COMMAND_COLUMNS: Final = (
    "id, request_id, meter, kind, params, state, attempts, max_attempts,"
    " extract(epoch FROM next_attempt_at)::float8, lease_owner,"
    " extract(epoch FROM lease_until)::float8, last_error, reissue_of, actor, channel,"
    " extract(epoch FROM created_at)::float8, extract(epoch FROM updated_at)::float8,"
    " extract(epoch FROM finished_at)::float8"
)

COLUMNS: Final = sql.SQL(COMMAND_COLUMNS)

# Keyword for `change`: leave a column as it is.
KEEP: Final = object()


class CommandNotFound(LookupError):
    """No command has this id."""


class LeaseLost(RuntimeError):
    """A dispatcher acted on a command whose lease another dispatcher has taken over."""


def _float(value: object) -> float:
    return float(str(value))


def _optional_float(value: object) -> float | None:
    return None if value is None else float(str(value))


def command_from_row(row: Sequence[object]) -> Command:
    """A `Command` from a row selected with `COMMAND_COLUMNS`."""
    params = row[4]
    return Command(
        id=int(str(row[0])),
        request_id=int(str(row[1])),
        meter=str(row[2]),
        kind=str(row[3]),
        params=dict(params) if isinstance(params, Mapping) else {},
        state=str(row[5]),
        attempts=int(str(row[6])),
        max_attempts=int(str(row[7])),
        next_attempt_at=_float(row[8]),
        lease_owner=None if row[9] is None else str(row[9]),
        lease_until=_optional_float(row[10]),
        last_error=None if row[11] is None else str(row[11]),
        reissue_of=None if row[12] is None else int(str(row[12])),
        actor=str(row[13]),
        channel=str(row[14]),
        created_at=_float(row[15]),
        updated_at=_float(row[16]),
        finished_at=_optional_float(row[17]),
    )


def fetch_command(cur: Cursor, command_id: int, *, lock: bool = False) -> Command:
    """One command by id (row-locked with `lock`); `CommandNotFound` when there is none."""
    if isinstance(command_id, bool) or not isinstance(command_id, int):
        raise ValueError(f"command_id must be a whole number, got {command_id!r}")
    query = sql.SQL("SELECT {} FROM commands WHERE id = %s{}").format(
        COLUMNS, sql.SQL(" FOR UPDATE" if lock else "")
    )
    cur.execute(query, (command_id,))
    row = cur.fetchone()
    if row is None:
        raise CommandNotFound(f"no command {command_id}")
    return command_from_row(row)


def event_for(
    command: Command,
    event: str,
    from_state: str | None,
    actor: str,
    detail: Mapping[str, object] | None = None,
) -> NewEvent:
    """The event record of a state change that left `command` as it now is."""
    return NewEvent(
        command_id=command.id,
        request_id=command.request_id,
        meter=command.meter,
        kind=command.kind,
        event=event,
        from_state=from_state,
        to_state=command.state,
        attempt=command.attempts,
        actor=actor,
        detail=dict(detail or {}),
    )


def change(
    cur: Cursor,
    command: Command,
    event: str,
    *,
    at: float,
    actor: str,
    detail: Mapping[str, object] | None = None,
    attempts: int | object = KEEP,
    next_attempt_at: float | object = KEEP,
    lease: tuple[str, float] | object | None = KEEP,
    last_error: str | object | None = KEEP,
) -> tuple[Command, NewEvent]:
    """Apply `event` to a locked command row; the state machine decides the new state."""
    new_state = next_state(command.state, event, command.id)
    sets = ["state = %s", "updated_at = to_timestamp(%s)"]
    values: list[object] = [new_state, at]
    if new_state in FINAL_STATES:
        sets.append("finished_at = to_timestamp(%s)")
        values.append(at)
    if attempts is not KEEP:
        sets.append("attempts = %s")
        values.append(attempts)
    if next_attempt_at is not KEEP:
        sets.append("next_attempt_at = to_timestamp(%s)")
        values.append(next_attempt_at)
    if lease is not KEEP:
        owner, until = lease if isinstance(lease, tuple) else (None, None)
        sets += ["lease_owner = %s", "lease_until = to_timestamp(%s)"]
        values += [owner, until]
    if last_error is not KEEP:
        sets.append("last_error = %s")
        values.append(last_error)
    query = sql.SQL("UPDATE commands SET {} WHERE id = %s AND state = %s RETURNING {}").format(
        sql.SQL(", ").join(sql.SQL(s) for s in sets), COLUMNS
    )
    cur.execute(query, (*values, command.id, command.state))
    row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"command {command.id} changed under a row lock")
    updated = command_from_row(row)
    return updated, event_for(updated, event, command.state, actor, detail)


def owned(cur: Cursor, command_id: int, owner: str) -> Command:
    """Lock a command that `owner` holds the lease of; `LeaseLost` if it does not."""
    command = fetch_command(cur, command_id, lock=True)
    if command.lease_owner != owner or command.finished:
        holder = command.lease_owner or "nobody"
        raise LeaseLost(
            f"command {command_id} is {command.state} and leased by {holder}, not {owner}"
        )
    return command


def as_json(params: Mapping[str, object]) -> str:
    """Parameters as canonical JSON text (sorted keys), for storage and fingerprints."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))


def insert_commands(
    cur: Cursor,
    request_id: int,
    meters: Sequence[str],
    kind: str,
    params: Mapping[str, object],
    *,
    max_attempts: int,
    at: float,
    actor: str,
    channel: str,
    reissue_of: int | None = None,
) -> tuple[Command, ...]:
    """Insert one pending command per meter, due at once; return them in id order."""
    own_slot, text = slot(kind, params), as_json(params)
    rows = [
        (request_id, m, kind, own_slot, text, max_attempts, at, reissue_of, actor, channel, at, at)
        for m in meters
    ]
    stored = execute_values(
        cur,
        sql.SQL(
            "INSERT INTO commands (request_id, meter, kind, slot, params, state, max_attempts,"
            " next_attempt_at, reissue_of, actor, channel, created_at, updated_at)"
            " VALUES %s RETURNING {}"
        ).format(COLUMNS),
        rows,
        template=f"(%s, %s, %s, %s, %s::jsonb, '{PENDING}', %s, to_timestamp(%s), %s, %s, %s,"
        " to_timestamp(%s), to_timestamp(%s))",
        page_size=1000,
        fetch=True,
    )
    return tuple(sorted((command_from_row(r) for r in stored), key=lambda c: c.id))


def supersede_pending(cur: Cursor, meters: Sequence[str], of_slot: str, at: float) -> list[Command]:
    """Mark the pending commands of `of_slot` for `meters` superseded; return them."""
    cur.execute(
        sql.SQL(
            "UPDATE commands SET state = %s, updated_at = to_timestamp(%s),"
            " finished_at = to_timestamp(%s) WHERE meter = ANY(%s) AND slot = %s"
            " AND state = %s RETURNING {}"
        ).format(COLUMNS),
        (TRANSITIONS[(PENDING, "supersede")], at, at, list(meters), of_slot, PENDING),
    )
    return sorted((command_from_row(r) for r in cur.fetchall()), key=lambda c: c.id)


def _qualify(column: str, alias: str) -> str:
    if column.startswith("extract(epoch FROM "):
        return column.replace("extract(epoch FROM ", f"extract(epoch FROM {alias}.", 1)
    return f"{alias}.{column}"


# The command columns qualified by the alias `c` (for UPDATE ... FROM ... RETURNING).
_PREFIXED: Final = sql.SQL(
    ", ".join(_qualify(part.strip(), "c") for part in COMMAND_COLUMNS.split(","))
)


def claim_stale(
    cur: Cursor, owner: str, now: float, until: float, limit: int
) -> list[tuple[str | None, Command]]:
    """Lease to `owner` the commands in flight whose lease ran out: (dead owner, command)."""
    cur.execute(
        sql.SQL(
            "UPDATE commands c SET lease_owner = %s, lease_until = to_timestamp(%s),"
            " updated_at = to_timestamp(%s) FROM (SELECT id, lease_owner AS dead"
            " FROM commands WHERE state = ANY(%s) AND lease_until < to_timestamp(%s)"
            " ORDER BY lease_until, id LIMIT %s FOR UPDATE SKIP LOCKED) stale"
            " WHERE c.id = stale.id RETURNING stale.dead, {}"
        ).format(_PREFIXED),
        (owner, until, now, list(IN_FLIGHT), now, limit),
    )
    return [(None if r[0] is None else str(r[0]), command_from_row(r[1:])) for r in cur.fetchall()]


def claim_due(cur: Cursor, owner: str, now: float, until: float, limit: int) -> list[Command]:
    """Lease to `owner` the due pending commands, each the oldest open one of its slot."""
    if limit <= 0:
        return []
    cur.execute(
        sql.SQL(
            "UPDATE commands c SET state = %s, attempts = c.attempts + 1,"
            " lease_owner = %s, lease_until = to_timestamp(%s), updated_at ="
            " to_timestamp(%s) FROM (SELECT id FROM commands p WHERE p.state = %s"
            " AND p.next_attempt_at <= to_timestamp(%s) AND NOT EXISTS (SELECT 1"
            " FROM commands o WHERE o.meter = p.meter AND o.slot = p.slot AND o.id < p.id"
            " AND o.state = ANY(%s)) ORDER BY p.next_attempt_at, p.id LIMIT %s"
            " FOR UPDATE SKIP LOCKED) due WHERE c.id = due.id RETURNING {}"
        ).format(_PREFIXED),
        (
            *(TRANSITIONS[(PENDING, "claim")], owner, until, now, PENDING, now),
            *([PENDING, *IN_FLIGHT], limit),
        ),
    )
    return sorted((command_from_row(r) for r in cur.fetchall()), key=lambda c: c.id)


def insert_request(
    cur: Cursor,
    key: str,
    fingerprint: str,
    kind: str,
    params_json: str,
    target_json: str,
    meter_count: int,
    *,
    actor: str,
    channel: str,
    at: float,
) -> int | None:
    """Insert a request under its idempotency key: its id, or None when the key is taken."""
    cur.execute(
        "INSERT INTO command_requests (key, fingerprint, kind, params, target, meter_count,"
        " actor, channel, created_at) VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s,"
        " to_timestamp(%s)) ON CONFLICT (key) DO NOTHING RETURNING id",
        (key, fingerprint, kind, params_json, target_json, meter_count, actor, channel, at),
    )
    row = cur.fetchone()
    return None if row is None else int(row[0])


def request_by_key(cur: Cursor, key: str) -> tuple[int, str, str]:
    """The id, fingerprint and kind of the request under `key`."""
    cur.execute("SELECT id, fingerprint, kind FROM command_requests WHERE key = %s", (key,))
    row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"request key {key!r} conflicted but cannot be read")
    return int(row[0]), str(row[1]), str(row[2])


def request_commands(cur: Cursor, request_id: int) -> tuple[Command, ...]:
    """The commands a request created (re-issues left out), in id order."""
    cur.execute(
        sql.SQL(
            "SELECT {} FROM commands WHERE request_id = %s AND reissue_of IS NULL ORDER BY id"
        ).format(COLUMNS),
        (request_id,),
    )
    return tuple(command_from_row(r) for r in cur.fetchall())


def reissue_of(cur: Cursor, command_id: int) -> Command:
    """The command that re-issued `command_id`."""
    cur.execute(
        sql.SQL("SELECT {} FROM commands WHERE reissue_of = %s").format(COLUMNS), (command_id,)
    )
    row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"command {command_id} is reissued but has no re-issue")
    return command_from_row(row)


def newer_in_slot(cur: Cursor, command: Command) -> Command | None:
    """The newest command after `command` that sets the same thing on its meter, if any."""
    cur.execute(
        sql.SQL(
            "SELECT {} FROM commands WHERE meter = %s AND slot = %s AND id > %s"
            " AND state <> %s ORDER BY id DESC LIMIT 1"
        ).format(COLUMNS),
        (command.meter, slot(command.kind, command.params), command.id, CANCELLED),
    )
    row = cur.fetchone()
    return None if row is None else command_from_row(row)
