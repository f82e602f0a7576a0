"""Command events: every state change as a `command_events` row, published to listeners."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import execute_values

log = logging.getLogger(__name__)

CHANNELS = ("hmi", "opcua", "api", "system", "cli")

Cursor = psycopg2.extensions.cursor
Listener = Callable[["CommandEvent"], None]


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """One state change of one command: `from_state` is None when it was created."""

    id: int
    command_id: int
    request_id: int
    meter: str
    kind: str
    at: float
    event: str
    from_state: str | None
    to_state: str
    attempt: int
    actor: str
    detail: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A state change about to be written (the database gives it its id)."""

    command_id: int
    request_id: int
    meter: str
    kind: str
    event: str
    from_state: str | None
    to_state: str
    attempt: int
    actor: str
    detail: Mapping[str, object] = field(default_factory=dict)


EVENT_COLUMNS = (
    "id, command_id, request_id, meter, kind, extract(epoch FROM at)::float8, event,"
    " from_state, to_state, attempt, actor, detail"
)


def event_from_row(row: Sequence[object]) -> CommandEvent:
    """A `CommandEvent` from a row selected with `EVENT_COLUMNS`."""
    detail = row[11]
    return CommandEvent(
        id=int(str(row[0])),
        command_id=int(str(row[1])),
        request_id=int(str(row[2])),
        meter=str(row[3]),
        kind=str(row[4]),
        at=float(str(row[5])),
        event=str(row[6]),
        from_state=None if row[7] is None else str(row[7]),
        to_state=str(row[8]),
        attempt=int(str(row[9])),
        actor=str(row[10]),
        detail=dict(detail) if isinstance(detail, Mapping) else {},
    )


def record_events(cur: Cursor, events: Sequence[NewEvent], at: float) -> list[CommandEvent]:
    """Insert the events (all at time `at`) and return them with their ids, in order."""
    if not events:
        return []
    rows = [
        (
            e.command_id,
            e.request_id,
            e.meter,
            e.kind,
            at,
            e.event,
            e.from_state,
            e.to_state,
            e.attempt,
            e.actor,
            json.dumps(dict(e.detail)),
        )
        for e in events
    ]
    stored = execute_values(
        cur,
        sql.SQL(
            "INSERT INTO command_events (command_id, request_id, meter, kind, at, event,"
            " from_state, to_state, attempt, actor, detail) VALUES %s RETURNING {}"
        ).format(sql.SQL(EVENT_COLUMNS)),
        rows,
        template="(%s, %s, %s, %s, to_timestamp(%s), %s, %s, %s, %s, %s, %s::jsonb)",
        page_size=1000,
        fetch=True,
    )
    return sorted((event_from_row(r) for r in stored), key=lambda e: e.id)


def write_audit(
    cur: Cursor,
    *,
    at: float,
    actor: str,
    channel: str,
    action: str,
    target: str,
    detail: Mapping[str, object],
) -> None:
    """Append one row to the audit log (in the caller's transaction)."""
    cur.execute(
        "INSERT INTO audit_log (at, actor, channel, action, target, detail)"
        " VALUES (to_timestamp(%s), %s, %s, %s, %s, %s::jsonb)",
        (at, actor, channel, action, target, json.dumps(dict(detail), default=str)),
    )


def check_actor(actor: object, channel: object) -> tuple[str, str]:
    """The actor and channel of a request, or a `ValueError` naming the bad one."""
    if not isinstance(actor, str) or not actor.strip():
        raise ValueError(f"actor must be a non-empty name, got {actor!r}")
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
    return actor.strip(), str(channel)


class CommandEvents:
    """Fans committed command events out to in-process listeners (HMI feed, OPC UA).

    Listeners run in the thread that committed the change (the dispatcher commits in
    worker threads): an asyncio consumer hands over with `loop.call_soon_threadsafe`.
    """

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every event published from now on; returns an unsubscribe."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, events: Iterable[CommandEvent]) -> None:
        """Hand each event, in order, to every listener; a failing listener is logged only."""
        with self._lock:
            listeners = list(self._listeners)
        for event in events:
            for listener in listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("command event listener %r failed on %s", listener, event)
