"""`FakeMeters`: the test double for the protocol side of the command dispatcher.

The Modbus/DL/T 645 executor comes with the acquisition core; the outbox under this
double runs against real PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg2.extensions

from server.commands import Command, ExecutionError, RetryPolicy, slot

Connection = psycopg2.extensions.connection
Run = Callable[[Awaitable[Any]], Any]
POLICY = RetryPolicy(max_attempts=3, base_s=10.0, factor=2.0, cap_s=25.0)


class FakeMeters:
    """Meters that remember what was written and answer read-backs; faults on request.

    Plans per meter, one entry consumed per call (then "ok"):
    execute: "ok", "drop" (acknowledged, not applied), "refuse" (retryable error),
    "reject" (not retryable), "hang" (never answers), "raise" (an unexpected exception);
    confirm: "ok", "hang", "error", "never" (the meter cannot show it: not retryable).
    """

    def __init__(self) -> None:
        self.shown: dict[tuple[str, str], tuple[str, dict[str, object]]] = {}
        self.writes: list[int] = []
        self.reads: list[int] = []
        self.execute_plan: dict[str, list[str]] = defaultdict(list)
        self.confirm_plan: dict[str, list[str]] = defaultdict(list)
        self.in_flight = 0
        self.most_in_flight = 0
        self.after_write: Callable[[Command], None] | None = None

    def apply(self, command: Command) -> None:
        """Make the meter show what `command` sets (as if an earlier write had landed)."""
        key = (command.meter, slot(command.kind, command.params))
        self.shown[key] = (command.kind, dict(command.params))

    async def execute(self, command: Command) -> None:
        self.writes.append(command.id)
        plan = self.execute_plan[command.meter]
        outcome = plan.pop(0) if plan else "ok"
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let other attempts interleave
            if outcome == "hang":
                await asyncio.Event().wait()
            if outcome == "refuse":
                raise ExecutionError("meter busy")
            if outcome == "reject":
                raise ExecutionError("illegal data value", retryable=False)
            if outcome == "raise":
                raise RuntimeError("link closed")
            if outcome == "ok":
                self.apply(command)
            if self.after_write is not None:
                self.after_write(command)
        finally:
            self.in_flight -= 1

    async def confirm(self, command: Command) -> bool:
        self.reads.append(command.id)
        plan = self.confirm_plan[command.meter]
        outcome = plan.pop(0) if plan else "ok"
        if outcome == "hang":
            await asyncio.Event().wait()
        if outcome == "error":
            raise ExecutionError("no reply to the read")
        if outcome == "never":
            raise ExecutionError("register reads as another quantity", retryable=False)
        key = (command.meter, slot(command.kind, command.params))
        return self.shown.get(key) == (command.kind, dict(command.params))
