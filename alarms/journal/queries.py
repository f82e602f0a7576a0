"""Alarm history and comment threads from the journal: filtered, paged, JSON-ready."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from alarms.kinds import AlarmKind
from alarms.states import AlarmEvent, AlarmState
from config.model import PRIORITIES

MAX_PAGE = 1000

_COLUMNS = (
    "id, kind, target, scope, area, gateway, priority, extract(epoch FROM at)::float8, seq,"
    " event, from_state, to_state, value, limit_value, actor"
)
_KEYS = (
    "id", "kind", "target", "scope", "area", "gateway", "priority", "at", "seq",
    "event", "from_state", "to_state", "value", "limit", "user",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of alarm history and how many rows match in all."""

    items: tuple[dict[str, Any], ...]
    total: int
    limit: int
    offset: int

    def as_dict(self) -> dict[str, Any]:
        """The page as JSON-ready data."""
        return {
            "items": list(self.items),
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
        }


def parse_names(field: str, given: str | Iterable[str] | None) -> list[str]:
    """A filter of one or more names as a list (empty when not given)."""
    if given is None:
        return []
    values = [given] if isinstance(given, str) else list(given)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"{field}: give one or more non-empty names, got {given!r}")
    return values


def parse_labels(field: str, given: str | Iterable[str] | None, known: Iterable[str]) -> list[str]:
    """A filter of names that must each be one of `known`."""
    values = parse_names(field, given)
    allowed = list(known)
    for value in values:
        if value not in allowed:
            raise ValueError(f"{field}: unknown {value!r} (known: {', '.join(allowed)})")
    return values


def _time(field: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field} must be Unix seconds, got {value!r}")
    return float(value)


def history(
    conn: psycopg2.extensions.connection,
    *,
    area: str | Iterable[str] | None = None,
    priority: str | Iterable[str] | None = None,
    state: str | Iterable[str] | None = None,
    kind: str | Iterable[str] | None = None,
    event: str | Iterable[str] | None = None,
    target: str | Iterable[str] | None = None,
    gateway: str | Iterable[str] | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
    offset: int = 0,
    newest_first: bool = True,
) -> HistoryPage:
    """Transitions matching every filter given, in time order, one page at a time.

    `state` matches the state a transition led to; `gateway` matches a gateway's own
    alarms and those of its meters; `since` is inclusive and `until` exclusive.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be 0 or more, got {offset!r}")
    start, end = _time("since", since), _time("until", until)
    if start is not None and end is not None and not start < end:
        raise ValueError(f"since ({start}) must be earlier than until ({end})")
    kinds = [AlarmKind.parse(k).label for k in parse_names("kind", kind)]
    ranks = [PRIORITIES.index(p) for p in parse_labels("priority", priority, PRIORITIES)]
    filters: list[tuple[str, object]] = [
        ("area = ANY(%s)", parse_names("area", area)),
        ("priority = ANY(%s)", ranks),
        ("to_state = ANY(%s)", parse_labels("state", state, (s.label for s in AlarmState))),
        ("kind = ANY(%s)", kinds),
        ("event = ANY(%s)", parse_labels("event", event, (e.label for e in AlarmEvent))),
        ("target = ANY(%s)", parse_names("target", target)),
        ("gateway = ANY(%s)", parse_names("gateway", gateway)),
    ]
    clauses = [clause for clause, values in filters if values]
    params: list[object] = [values for _, values in filters if values]
    if start is not None:
        clauses.append("at >= to_timestamp(%s)")
        params.append(start)
    if end is not None:
        clauses.append("at < to_timestamp(%s)")
        params.append(end)
    where: sql.Composable = sql.SQL("")
    if clauses:
        where = sql.SQL(" WHERE {}").format(sql.SQL(" AND ").join(sql.SQL(c) for c in clauses))
    direction = sql.SQL("DESC" if newest_first else "ASC")
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM alarm_transitions{}").format(where), params)
        counted = cur.fetchone()
        cur.execute(
            sql.SQL(
                "SELECT {} FROM alarm_transitions{} ORDER BY at {d}, id {d} LIMIT %s OFFSET %s"
            ).format(sql.SQL(_COLUMNS), where, d=direction),
            [*params, limit, offset],
        )
        rows = cur.fetchall()
    items = tuple(_transition(row) for row in rows)
    return HistoryPage(items, int(counted[0]) if counted else 0, limit, offset)


def _transition(row: tuple[Any, ...]) -> dict[str, Any]:
    item = dict(zip(_KEYS, row, strict=True))
    item["priority"] = PRIORITIES[item["priority"]]
    return item


def comment_thread(
    conn: psycopg2.extensions.connection, kind: AlarmKind | str, target: str
) -> list[dict[str, Any]]:
    """Every comment ever written on one instance, oldest first."""
    label = AlarmKind.parse(kind).label
    if not isinstance(target, str) or not target:
        raise ValueError(f"target must be a meter or gateway id, got {target!r}")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT extract(epoch FROM at)::float8, actor, body FROM alarm_comments"
            " WHERE kind = %s AND target = %s ORDER BY at, seq, id",
            (label, target),
        )
        rows = cur.fetchall()
    return [
        {"kind": label, "target": target, "at": at, "user": user, "text": text}
        for at, user, text in rows
    ]


def actions(
    conn: psycopg2.extensions.connection,
    *,
    target: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Operator actions on alarms (the audit), newest first, optionally for one target."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}, got {limit!r}")
    clauses, params = ["true"], []  # type: list[str], list[object]
    if target is not None:
        clauses.append("target = %s")
        params.append(parse_names("target", target)[0])
    start, end = _time("since", since), _time("until", until)
    if start is not None:
        clauses.append("at >= to_timestamp(%s)")
        params.append(start)
    if end is not None:
        clauses.append("at < to_timestamp(%s)")
        params.append(end)
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT extract(epoch FROM at)::float8, actor, channel, action, kind, target,"
                " detail FROM alarm_actions WHERE {} ORDER BY at DESC, id DESC LIMIT %s"
            ).format(sql.SQL(" AND ").join(sql.SQL(c) for c in clauses)),
            [*params, limit],
        )
        rows = cur.fetchall()
    keys = ("at", "user", "channel", "action", "kind", "target", "detail")
    return [dict(zip(keys, row, strict=True)) for row in rows]
