"""Read-side queries over the outbox for the HMI and the prepaid engine."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from psycopg2 import sql

from server.commands.events import EVENT_COLUMNS, CommandEvent, Cursor, event_from_row
from server.commands.states import DONE, OPEN_STATES, STATES, Command
from server.commands.store import COLUMNS, command_from_row

MAX_PAGE: Final = 1000
# A forced mode counts from the moment it is asked for until it is ended or expires.
_FORCED_LIVE_STATES: Final = (*OPEN_STATES, DONE)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of commands, newest first, and how many match in all."""

    items: tuple[Command, ...]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """A request (one meter or a batch): who asked what, and how its commands stand."""

    id: int
    key: str
    kind: str
    params: Mapping[str, object]
    target: Mapping[str, object]
    meter_count: int
    actor: str
    channel: str
    created_at: float
    states: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class ForcedMode:
    """A meter held closed or open whatever its balance, until `expires_at`."""

    meter: str
    relay: str
    reason: str
    expires_at: float
    command_id: int
    actor: str


def _all(conditions: list[str]) -> sql.Composed:
    """Fixed SQL conditions (values go in as parameters) joined with AND."""
    return sql.SQL(" AND ").join(sql.SQL(c) for c in conditions)


def _page_bounds(offset: int, limit: int) -> None:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a whole number ≥ 0, got {offset!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}, got {limit!r}")


def _states(state: str | Iterable[str]) -> list[str]:
    wanted = [state] if isinstance(state, str) else list(state)
    unknown = [s for s in wanted if s not in STATES]
    if unknown or not wanted:
        raise ValueError(f"state must be among {', '.join(STATES)}, got {state!r}")
    return wanted


def find_commands(
    cur: Cursor,
    *,
    meter: str | None = None,
    state: str | Iterable[str] | None = None,
    request_id: int | None = None,
    kind: str | None = None,
    since: float | None = None,
    until: float | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Page:
    """Commands matching every filter given (created in [since, until)), newest first."""
    _page_bounds(offset, limit)
    where: list[str] = []
    values: list[object] = []
    if meter is not None:
        where.append("meter = %s")
        values.append(meter)
    if state is not None:
        where.append("state = ANY(%s)")
        values.append(_states(state))
    if request_id is not None:
        where.append("request_id = %s")
        values.append(request_id)
    if kind is not None:
        where.append("kind = %s")
        values.append(kind)
    if since is not None:
        where.append("created_at >= to_timestamp(%s)")
        values.append(since)
    if until is not None:
        where.append("created_at < to_timestamp(%s)")
        values.append(until)
    clause = sql.SQL(" WHERE {}").format(_all(where)) if where else sql.SQL("")
    cur.execute(sql.SQL("SELECT count(*) FROM commands{}").format(clause), values)
    count_row = cur.fetchone()
    total = int(count_row[0]) if count_row else 0
    cur.execute(
        sql.SQL("SELECT {} FROM commands{} ORDER BY id DESC OFFSET %s LIMIT %s").format(
            COLUMNS, clause
        ),
        (*values, offset, limit),
    )
    items = tuple(command_from_row(r) for r in cur.fetchall())
    return Page(items=items, total=total, offset=offset, limit=limit)


def find_events(
    cur: Cursor,
    *,
    command_id: int | None = None,
    meter: str | None = None,
    request_id: int | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[CommandEvent]:
    """Events matching the filters with ids after `after_id`, oldest first (for follow-up)."""
    _page_bounds(0, limit)
    where = ["id > %s"]
    values: list[object] = [after_id]
    for column, value in (("command_id", command_id), ("meter", meter), ("request_id", request_id)):
        if value is not None:
            where.append(f"{column} = %s")
            values.append(value)
    cur.execute(
        sql.SQL("SELECT {} FROM command_events WHERE {} ORDER BY id LIMIT %s").format(
            sql.SQL(EVENT_COLUMNS), _all(where)
        ),
        (*values, limit),
    )
    return [event_from_row(r) for r in cur.fetchall()]


def request_summary(cur: Cursor, request_id: int) -> RequestSummary:
    """A request and the count of its commands in each state (re-issues included)."""
    cur.execute(
        "SELECT id, key, kind, params, target, meter_count, actor, channel,"
        " extract(epoch FROM created_at)::float8 FROM command_requests WHERE id = %s",
        (request_id,),
    )
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"no command request {request_id}")
    cur.execute(
        "SELECT state, count(*) FROM commands WHERE request_id = %s GROUP BY state",
        (request_id,),
    )
    states = {str(s): int(n) for s, n in cur.fetchall()}
    return RequestSummary(
        id=int(row[0]),
        key=str(row[1]),
        kind=str(row[2]),
        params=dict(row[3]),
        target=dict(row[4]),
        meter_count=int(row[5]),
        actor=str(row[6]),
        channel=str(row[7]),
        created_at=float(row[8]),
        states=states,
    )


def active_forced_modes(
    cur: Cursor, now: float, meters: Iterable[str] | None = None
) -> dict[str, ForcedMode]:
    """The meters in forced mode at `now`: their latest forced command is an unexpired "on".

    Forced-mode commands count while pending, in flight or done; a failed, cancelled,
    superseded or re-issued one does not (a re-issue carries the request on).
    """
    values: list[object] = [list(_FORCED_LIVE_STATES)]
    only = ""
    if meters is not None:
        only = " AND meter = ANY(%s)"
        values.append(list(meters))
    cur.execute(
        sql.SQL(
            "SELECT DISTINCT ON (meter) id, meter, kind, params, actor FROM commands"
            " WHERE kind IN ('forced_mode_on', 'forced_mode_off') AND state = ANY(%s)"
            "{} ORDER BY meter, id DESC"
        ).format(sql.SQL(only)),
        values,
    )
    active: dict[str, ForcedMode] = {}
    for command_id, meter, kind, params, actor in cur.fetchall():
        if kind != "forced_mode_on" or float(params["expires_at"]) <= now:
            continue
        active[str(meter)] = ForcedMode(
            meter=str(meter),
            relay=str(params["relay"]),
            reason=str(params["reason"]),
            expires_at=float(params["expires_at"]),
            command_id=int(command_id),
            actor=str(actor),
        )
    return active
