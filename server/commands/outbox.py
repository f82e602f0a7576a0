"""The durable command outbox in PostgreSQL: enqueue, re-issue, cancel, and the queries."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions

from config.model import Site
from server.clock import Clock, SystemClock
from server.commands import queries
from server.commands.events import (
    CommandEvent,
    CommandEvents,
    Cursor,
    check_actor,
    record_events,
    write_audit,
)
from server.commands.kinds import check_kind, check_writable, slot, validate_params
from server.commands.states import (
    PENDING,
    REISSUED,
    Command,
    RetryPolicy,
    next_state,
)
from server.commands.store import (
    as_json,
    change,
    event_for,
    fetch_command,
    insert_commands,
    insert_request,
    newer_in_slot,
    reissue_of,
    request_by_key,
    request_commands,
    supersede_pending,
)
from server.commands.targets import Target, resolve
from server.tags import TagTable

MAX_KEY = 200


class IdempotencyConflict(ValueError):
    """An idempotency key reused for a different command."""


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The outcome of an enqueue: `created` is False when the key was already used."""

    request_id: int
    key: str
    created: bool
    commands: tuple[Command, ...]
    events: tuple[CommandEvent, ...]


@dataclass(frozen=True, slots=True)
class Reissued:
    """The outcome of a re-issue: the new command, and whether this call created it."""

    original: Command
    command: Command
    created: bool
    events: tuple[CommandEvent, ...]


def derived_key(*parts: object) -> str:
    """An idempotency key derived from what makes a request unique (e.g. a posting id)."""
    if not parts:
        raise ValueError("derived_key needs at least one part")
    return "k:" + hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:40]


class CommandOutbox:
    """Meter commands as PostgreSQL rows: each survives a restart and ends done or failed.

    Every method takes an optional `cur`: given, it works inside the caller's transaction
    and neither commits nor publishes (call `publish(result.events)` after your commit);
    without it, it runs in its own transaction on `conn` and publishes after the commit.
    With `reconnect`, a connection lost to a database restart is replaced on the next call
    (the call that met the loss still fails, so its caller retries as for any error).
    """

    def __init__(
        self,
        conn: psycopg2.extensions.connection,
        site: Site,
        *,
        clock: Clock | None = None,
        tags: TagTable | None = None,
        policy: RetryPolicy | None = None,
        events: CommandEvents | None = None,
        reconnect: Callable[[], psycopg2.extensions.connection] | None = None,
    ) -> None:
        self._conn = conn
        self._reconnect = reconnect
        self.site = site
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.tags = tags
        self.policy = policy if policy is not None else RetryPolicy()
        self.events = events if events is not None else CommandEvents()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the outbox's own connection (the one in use after any reconnect)."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self, cur: Cursor | None = None) -> Iterator[Cursor]:
        """`cur` as it is, or a cursor in a new transaction on the outbox's connection."""
        if cur is not None:
            yield cur
            return
        with self._lock:
            if self._conn.closed and self._reconnect is not None:
                self._conn = self._reconnect()
            try:
                with self._conn, self._conn.cursor() as own:
                    yield own
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                if self._reconnect is not None:
                    self._conn.close()
                raise

    def _finish(self, cur: Cursor | None, events: Sequence[CommandEvent]) -> None:
        if cur is None:
            self.events.publish(events)

    def publish(self, events: Iterable[CommandEvent]) -> None:
        """Publish events of a change made in a caller's transaction, after its commit."""
        self.events.publish(events)

    def enqueue(
        self,
        kind: str,
        params: Mapping[str, object],
        target: Target | str,
        *,
        actor: str,
        channel: str,
        key: str | None = None,
        cur: Cursor | None = None,
    ) -> Enqueued:
        """Queue `kind` for every meter of `target`, one row each, under one request.

        The same `key` twice is one request: the second call returns the first's commands
        (a different command under a used key is an `IdempotencyConflict`). Without a key
        every call is a new request. Older pending commands of the same slot (e.g. a relay
        command) for these meters are superseded.
        """
        actor, channel = check_actor(actor, channel)
        kind = check_kind(kind)
        now = self.clock.time()
        checked = validate_params(kind, params, now)
        meters = resolve(target, self.site, self.tags)
        check_writable(kind, checked, [self.site.meter(m).model for m in meters])
        if key is None:
            key = f"auto:{uuid.uuid4().hex}"
        elif not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY:
            raise ValueError(f"key must be non-empty text of at most {MAX_KEY} characters")
        described = target.describe() if isinstance(target, Target) else {"ids": [target]}
        fingerprint = hashlib.sha256(
            as_json({"kind": kind, "params": checked, "meters": list(meters)}).encode()
        ).hexdigest()
        with self.transaction(cur) as tx:
            request_id = insert_request(
                tx,
                key,
                fingerprint,
                kind,
                as_json(checked),
                as_json(described),
                len(meters),
                actor=actor,
                channel=channel,
                at=now,
            )
            if request_id is None:
                return self._existing(tx, key, fingerprint)
            superseded = [
                event_for(c, "supersede", PENDING, actor)
                for c in supersede_pending(tx, meters, slot(kind, checked), now)
            ]
            commands = insert_commands(
                tx,
                request_id,
                meters,
                kind,
                checked,
                max_attempts=self.policy.max_attempts,
                at=now,
                actor=actor,
                channel=channel,
            )
            new = [event_for(c, "enqueue", None, actor, {"key": key}) for c in commands]
            events = record_events(tx, superseded + new, now)
            write_audit(
                tx,
                at=now,
                actor=actor,
                channel=channel,
                action=f"command.{kind}",
                target=meters[0] if len(meters) == 1 else f"batch:{request_id}",
                detail={
                    "request_id": request_id,
                    "key": key,
                    "params": checked,
                    "target": described,
                    "meters": len(meters),
                    "command_ids": [c.id for c in commands],
                },
            )
        self._finish(cur, events)
        return Enqueued(request_id, key, True, commands, tuple(events))

    def _existing(self, tx: Cursor, key: str, fingerprint: str) -> Enqueued:
        request_id, used_for, kind = request_by_key(tx, key)
        if used_for != fingerprint:
            raise IdempotencyConflict(
                f"key {key!r} was already used for another command ({kind}, request"
                f" {request_id}); a different command needs a different key"
            )
        return Enqueued(request_id, key, False, request_commands(tx, request_id), ())

    def reissue(
        self, command_id: int, *, actor: str, channel: str, cur: Cursor | None = None
    ) -> Reissued:
        """Send a failed command again as a new command; a second call returns the same one."""
        actor, channel = check_actor(actor, channel)
        now = self.clock.time()
        with self.transaction(cur) as tx:
            original = fetch_command(tx, command_id, lock=True)
            if original.state == REISSUED:
                return Reissued(original, reissue_of(tx, command_id), False, ())
            next_state(original.state, "reissue", command_id)
            checked = validate_params(original.kind, original.params, now)
            newer = newer_in_slot(tx, original)
            if newer is not None:
                raise ValueError(
                    f"cannot reissue command {command_id}: command {newer.id} ({newer.kind},"
                    f" {newer.state}) for meter {original.meter} is newer and sets the same thing"
                )
            marked, reissued_event = change(
                tx, original, "reissue", at=now, actor=actor, detail={"channel": channel}
            )
            (created,) = insert_commands(
                tx,
                original.request_id,
                [original.meter],
                original.kind,
                checked,
                max_attempts=self.policy.max_attempts,
                at=now,
                actor=actor,
                channel=channel,
                reissue_of=command_id,
            )
            enqueued = event_for(created, "enqueue", None, actor, {"reissue_of": command_id})
            events = record_events(tx, [reissued_event, enqueued], now)
            write_audit(
                tx,
                at=now,
                actor=actor,
                channel=channel,
                action="command.reissue",
                target=original.meter,
                detail={
                    "command_id": command_id,
                    "new_command_id": created.id,
                    "kind": original.kind,
                    "last_error": original.last_error,
                },
            )
        self._finish(cur, events)
        return Reissued(marked, created, True, tuple(events))

    def cancel(
        self,
        command_id: int,
        *,
        actor: str,
        channel: str,
        reason: str = "",
        cur: Cursor | None = None,
    ) -> Command:
        """Withdraw a pending command; one in flight or finished is refused."""
        actor, channel = check_actor(actor, channel)
        if not isinstance(reason, str) or len(reason) > MAX_KEY:
            raise ValueError(f"reason must be text of at most {MAX_KEY} characters")
        now = self.clock.time()
        with self.transaction(cur) as tx:
            command = fetch_command(tx, command_id, lock=True)
            cancelled, event = change(
                tx, command, "cancel", at=now, actor=actor, detail={"reason": reason}
            )
            events = record_events(tx, [event], now)
            write_audit(
                tx,
                at=now,
                actor=actor,
                channel=channel,
                action="command.cancel",
                target=command.meter,
                detail={"command_id": command_id, "kind": command.kind, "reason": reason},
            )
        self._finish(cur, events)
        return cancelled

    def get(self, command_id: int, *, cur: Cursor | None = None) -> Command:
        """One command by id (`CommandNotFound` if none)."""
        with self.transaction(cur) as tx:
            return fetch_command(tx, command_id)

    def find(self, *, cur: Cursor | None = None, **filters: object) -> queries.Page:
        """A page of commands by meter, state, request, kind and time (see `find_commands`)."""
        with self.transaction(cur) as tx:
            return queries.find_commands(tx, **filters)  # type: ignore[arg-type]

    def history(self, *, cur: Cursor | None = None, **filters: object) -> list[CommandEvent]:
        """Command events by command, meter or request, oldest first (see `find_events`)."""
        with self.transaction(cur) as tx:
            return queries.find_events(tx, **filters)  # type: ignore[arg-type]

    def request(self, request_id: int, *, cur: Cursor | None = None) -> queries.RequestSummary:
        """A request and how its commands stand."""
        with self.transaction(cur) as tx:
            return queries.request_summary(tx, request_id)

    def forced_modes(
        self, meters: Iterable[str] | None = None, *, cur: Cursor | None = None
    ) -> dict[str, queries.ForcedMode]:
        """The meters in forced mode now (by the clock), for the prepaid engine to respect."""
        with self.transaction(cur) as tx:
            return queries.active_forced_modes(tx, self.clock.time(), meters)
