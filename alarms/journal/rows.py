"""The journal's rows (transitions, comments, operator actions) and the SQL that writes them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import execute_values

from alarms.kinds import AlarmKind
from alarms.records import AlarmComment, AlarmTransition
from config.model import Site

CHANNELS = ("hmi", "opcua", "api", "system", "cli")
"""Where an operator action came from (the same names as the command audit)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an alarm instance sits in the park: its area and gateway (None when unknown)."""

    area: str | None
    gateway: str | None


def placement(site: Site | None, kind: AlarmKind, target: str) -> Placement:
    """The area and gateway of an instance's target, from the site (None when not found)."""
    if site is None:
        return Placement(None, None)
    try:
        if kind.spec.scope == "gateway":
            return Placement(site.gateway(target).area, target)
        found = site.meter(target)
    except KeyError:
        return Placement(None, None)
    return Placement(found.area, found.gateway)


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """One transition as the journal stores it, under its unique key (kind, target, at, seq)."""

    kind: str
    target: str
    scope: str
    area: str | None
    gateway: str | None
    priority: int
    at: float
    seq: int
    event: str
    from_state: str
    to_state: str
    value: float | None
    limit: float | None
    user: str | None

    @classmethod
    def of(
        cls, record: AlarmTransition, seq: int, where: Placement, priority: int
    ) -> TransitionRow:
        """The row of an engine transition."""
        return cls(
            kind=record.kind.label,
            target=record.target,
            scope=record.kind.spec.scope,
            area=where.area,
            gateway=where.gateway,
            priority=priority,
            at=record.at,
            seq=seq,
            event=record.event.label,
            from_state=record.from_state.label,
            to_state=record.to_state.label,
            value=record.value,
            limit=record.limit,
            user=record.user,
        )


@dataclass(frozen=True, slots=True)
class CommentRow:
    """One comment as the journal stores it, under its unique key (kind, target, at, seq)."""

    kind: str
    target: str
    area: str | None
    at: float
    seq: int
    user: str
    text: str

    @classmethod
    def of(cls, comment: AlarmComment, seq: int, where: Placement) -> CommentRow:
        """The row of an engine comment."""
        return cls(
            comment.kind.label, comment.target, where.area, comment.at, seq, comment.user,
            comment.text,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ActionRow:
    """One operator action for the audit, under a key drawn when it was taken."""

    key: str
    at: float
    user: str
    channel: str
    action: str
    kind: str | None
    target: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)


JournalRow = TransitionRow | CommentRow | ActionRow

_TRANSITIONS = (
    "INSERT INTO alarm_transitions (kind, target, scope, area, gateway, priority, at, seq,"
    " event, from_state, to_state, value, limit_value, actor) VALUES %s"
    " ON CONFLICT ON CONSTRAINT alarm_transitions_key DO NOTHING"
)
_COMMENTS = (
    "INSERT INTO alarm_comments (kind, target, area, at, seq, actor, body) VALUES %s"
    " ON CONFLICT ON CONSTRAINT alarm_comments_key DO NOTHING"
)
# The audit_log copy is made only for actions this statement really added, so a replay
# of the same batch adds nothing to either table.
_ACTIONS = (
    "WITH added AS ("
    " INSERT INTO alarm_actions (key, at, actor, channel, action, kind, target, detail)"
    " VALUES %s ON CONFLICT (key) DO NOTHING"
    " RETURNING id, at, actor, channel, action, kind, target, detail)"
    " INSERT INTO audit_log (at, actor, channel, action, target, detail)"
    " SELECT at, actor, channel, action, target,"
    " detail || jsonb_strip_nulls(jsonb_build_object('kind', kind)) FROM added ORDER BY id"
)


def write_rows(cur: Cursor, rows: Sequence[JournalRow]) -> None:
    """Insert rows in their order (each table keeps it), skipping any already stored."""
    transitions = [
        (r.kind, r.target, r.scope, r.area, r.gateway, r.priority, r.at, r.seq, r.event,
         r.from_state, r.to_state, r.value, r.limit, r.user)
        for r in rows if isinstance(r, TransitionRow)
    ]  # fmt: skip
    comments = [
        (r.kind, r.target, r.area, r.at, r.seq, r.user, r.text)
        for r in rows
        if isinstance(r, CommentRow)
    ]
    actions = [
        (r.key, r.at, r.user, r.channel, r.action, r.kind, r.target,
         json.dumps(dict(r.detail), default=str))
        for r in rows if isinstance(r, ActionRow)
    ]  # fmt: skip
    if transitions:
        execute_values(
            cur,
            _TRANSITIONS,
            transitions,
            template="(%s, %s, %s, %s, %s, %s, to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s)",
            page_size=1000,
        )
    if comments:
        execute_values(
            cur,
            _COMMENTS,
            comments,
            template="(%s, %s, %s, to_timestamp(%s), %s, %s, %s)",
            page_size=1000,
        )
    if actions:
        execute_values(
            cur,
            _ACTIONS,
            actions,
            template="(%s, to_timestamp(%s), %s, %s, %s, %s, %s, %s::jsonb)",
            page_size=1000,
        )
