"""Meter commands over Redis: one stream per worker in, one outcome stream back to the core."""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, cast

from redis.asyncio import Redis

from server.bus.connection import BusConnection
from server.bus.group import Addition, Fields, GroupConsumer, Rejected, parse_id
from server.bus.keys import CORE_GROUP, WORKER_GROUP, BusKeys, check_part
from server.bus.membership import Assignment
from server.clock import Clock

log = logging.getLogger(__name__)

Status = Literal["done", "failed", "not_owner", "rejected"]
STATUSES: Final = ("done", "failed", "not_owner", "rejected")
ArgValue = str | int | float | bool | None

_ACTION = re.compile(r"[a-z][a-z0-9_]{0,47}")
_BODY = b"c"


class CommandError(ValueError):
    """A command or outcome entry that cannot be read; the message names the field."""


class CommandFailed(Exception):
    """Raised by a command handler when the device refused or did not answer."""


@dataclass(frozen=True, slots=True)
class Command:
    """One command for the meter behind `gateway`, e.g. `relay_open` with its arguments."""

    command_id: str
    gateway: str
    meter_id: str
    action: str
    args: Mapping[str, ArgValue] = field(default_factory=dict)
    generation: int = 0

    def __post_init__(self) -> None:
        check_part(self.command_id, "command id")
        if not self.gateway or not self.meter_id:
            raise CommandError(f"command {self.command_id}: gateway and meter_id are required")
        if not _ACTION.fullmatch(self.action):
            raise CommandError(f"command {self.command_id}: action {self.action!r} is not valid")
        if not isinstance(self.args, Mapping) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str | int | float | bool))
            for k, v in self.args.items()
        ):
            raise CommandError(f"command {self.command_id}: args must map names to scalars")
        object.__setattr__(self, "args", MappingProxyType(dict(self.args)))

    def fields(self) -> Fields:
        """The stream entry."""
        body = {
            "id": self.command_id,
            "gateway": self.gateway,
            "meter": self.meter_id,
            "action": self.action,
            "args": dict(self.args),
            "generation": self.generation,
        }
        return {_BODY: json.dumps(body, separators=(",", ":")).encode()}

    @classmethod
    def from_fields(cls, fields: Fields) -> Command:
        """Read a stream entry; a `CommandError` says what is wrong."""
        data = _json_body(fields, "command")
        try:
            return cls(
                command_id=_text(data, "id"),
                gateway=_text(data, "gateway"),
                meter_id=_text(data, "meter"),
                action=_text(data, "action"),
                args=cast(Mapping[str, ArgValue], data.get("args", {})),
                generation=_count(data, "generation"),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a command on the worker that took it."""

    command_id: str
    worker: str
    status: Status
    detail: str = ""
    generation: int = 0

    def fields(self) -> Fields:
        """The stream entry."""
        body = {
            "id": self.command_id,
            "worker": self.worker,
            "status": self.status,
            "detail": self.detail,
            "generation": self.generation,
        }
        return {_BODY: json.dumps(body, separators=(",", ":")).encode()}

    @classmethod
    def from_fields(cls, fields: Fields) -> Outcome:
        """Read a stream entry; a `CommandError` says what is wrong."""
        data = _json_body(fields, "outcome")
        status = _text(data, "status")
        if status not in STATUSES:
            raise CommandError(f"outcome status {status!r} is not one of {', '.join(STATUSES)}")
        detail = data.get("detail", "")
        if not isinstance(detail, str):
            raise CommandError("outcome detail must be a string")
        return cls(
            _text(data, "id"),
            _text(data, "worker"),
            cast(Status, status),
            detail,
            _count(data, "generation"),
        )


CommandHandler = Callable[[Command], Awaitable[str] | str]
"""Carries out a command and returns a detail for the outcome; raises `CommandFailed`."""
OutcomeHandler = Callable[[Outcome], Awaitable[object] | object]


class CommandSender:
    """The core's side: route commands to the worker that owns the gateway."""

    def __init__(self, bus: BusConnection, keys: BusKeys) -> None:
        self.bus = bus
        self.keys = keys

    async def send(self, worker: str, command: Command) -> bytes:
        """Add `command` to `worker`'s stream; its entry id."""
        stream = self.keys.commands(worker)
        entry = command.fields()

        async def add(redis: Redis) -> bytes:
            added: Any = await redis.xadd(stream, cast(Any, entry))
            return bytes(added)

        return await self.bus.call("send command", add)

    async def send_to_owner(self, assignment: Assignment, command: Command) -> str:
        """Send `command` to its gateway's owner; that worker, or a `LookupError`."""
        worker = assignment.owner(command.gateway)
        if worker is None:
            raise LookupError(f"gateway {command.gateway!r} has no live worker")
        routed = _with_generation(command, assignment.generation)
        await self.send(worker, routed)
        return worker

    async def reroute(self, worker: str, assignment: Assignment) -> int:
        """Move the unfinished commands of a departed `worker` to the gateways' new owners.

        Unfinished means never delivered, or delivered and not acknowledged. The moves
        and their removal from the old stream happen in one transaction (same slot).
        Commands whose gateway has no owner now stay; unreadable ones are dead-lettered.
        Returns how many entries left the old stream.
        """
        stream = self.keys.commands(worker)

        async def move(redis: Redis) -> int:
            if not await redis.exists(stream):
                return 0
            groups: Any = await redis.xinfo_groups(stream)
            last = next((g["last-delivered-id"] for g in groups if _name(g) == WORKER_GROUP), None)
            pending: set[bytes] = set()
            if last is not None:
                rows: Any = await redis.xpending_range(stream, WORKER_GROUP, "-", "+", 10_000)
                pending = {row["message_id"] for row in rows}
            entries: Any = await redis.xrange(stream)
            additions: list[tuple[str, Fields]] = []
            moved: list[bytes] = []
            kept = 0
            for entry_id, fields in entries:
                done = entry_id not in pending and parse_id(entry_id) <= parse_id(last or "0-0")
                if last is not None and done:
                    continue
                try:
                    command = Command.from_fields(fields)
                except CommandError as exc:
                    reason = {b"stream": stream.encode(), b"id": entry_id, b"reason": str(exc)}
                    additions.append((self.keys.dead_letters, cast(Fields, reason)))
                    moved.append(entry_id)
                    continue
                owner = assignment.owner(command.gateway)
                if owner is None or owner == worker:
                    kept += 1
                    continue
                routed = _with_generation(command, assignment.generation)
                additions.append((self.keys.commands(owner), routed.fields()))
                moved.append(entry_id)
            async with redis.pipeline(transaction=True) as pipe:
                for target, fields in additions:
                    pipe.xadd(target, cast(Any, fields))
                if kept:
                    if moved:
                        pipe.xdel(stream, *moved)
                else:
                    pipe.delete(stream)
                await pipe.execute()
            return len(moved)

        return await self.bus.call(f"reroute {stream}", move)


class CommandReceiver(GroupConsumer):
    """A worker's side: carry out each command, then publish its outcome and acknowledge.

    The outcome is added in the same transaction as the acknowledgement, so the core
    hears about every command that was acknowledged. A command for a gateway this worker
    does not own (a stale route) gets the outcome `not_owner` and is not carried out.
    """

    def __init__(
        self,
        bus: BusConnection,
        keys: BusKeys,
        worker: str,
        handler: CommandHandler,
        *,
        owns: Callable[[str], bool],
        clock: Clock,
        generation: Callable[[], int] = lambda: 0,
        block_ms: int = 1000,
        reclaim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
    ) -> None:
        super().__init__(
            bus,
            keys.commands(worker),
            group=WORKER_GROUP,
            consumer=worker,
            dead_letters=keys.dead_letters,
            clock=clock,
            block_ms=block_ms,
            reclaim_idle_ms=reclaim_idle_ms,
            max_deliveries=max_deliveries,
        )
        self.worker = worker
        self.outcomes = keys.outcomes
        self.handler = handler
        self.owns = owns
        self.generation = generation

    async def handle(self, entry_id: bytes, fields: Fields) -> Sequence[Addition]:
        """Carry out one command; its outcome entry."""
        try:
            command = Command.from_fields(fields)
        except CommandError as exc:
            raise Rejected(str(exc)) from None
        status: Status = "done"
        if not self.owns(command.gateway):
            status, detail = "not_owner", f"{self.worker} does not poll {command.gateway}"
        else:
            try:
                result = self.handler(command)
                detail = await result if inspect.isawaitable(result) else result
            except CommandFailed as exc:
                status, detail = "failed", str(exc)
            except ValueError as exc:
                status, detail = "rejected", str(exc)
        outcome = Outcome(command.command_id, self.worker, status, str(detail), self.generation())
        return [(self.outcomes, outcome.fields())]


class OutcomeConsumer(GroupConsumer):
    """The core's side of outcomes: hand each to `handler`, then acknowledge."""

    def __init__(
        self,
        bus: BusConnection,
        keys: BusKeys,
        handler: OutcomeHandler,
        *,
        consumer: str,
        clock: Clock,
        block_ms: int = 1000,
        reclaim_idle_ms: int = 30_000,
    ) -> None:
        super().__init__(
            bus,
            keys.outcomes,
            group=CORE_GROUP,
            consumer=consumer,
            dead_letters=keys.dead_letters,
            clock=clock,
            block_ms=block_ms,
            reclaim_idle_ms=reclaim_idle_ms,
        )
        self.handler = handler

    async def handle(self, entry_id: bytes, fields: Fields) -> Sequence[Addition]:
        """Read one outcome and hand it over."""
        try:
            outcome = Outcome.from_fields(fields)
        except CommandError as exc:
            raise Rejected(str(exc)) from None
        result = self.handler(outcome)
        if inspect.isawaitable(result):
            await result
        return ()


def _with_generation(command: Command, generation: int) -> Command:
    return Command(
        command.command_id,
        command.gateway,
        command.meter_id,
        command.action,
        command.args,
        generation,
    )


def _name(info: Mapping[str, Any]) -> str:
    name = info["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def _json_body(fields: Fields, what: str) -> dict[str, Any]:
    raw = fields.get(_BODY)
    if raw is None:
        raise CommandError(f"{what} entry has no {_BODY.decode()!r} field")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandError(f"{what} entry is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CommandError(f"{what} entry must be a JSON object")
    return data


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise CommandError(f"field {key!r} must be a non-empty string, got {value!r}")
    return value


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CommandError(f"field {key!r} must be a non-negative integer, got {value!r}")
    return value
