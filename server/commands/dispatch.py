"""The command dispatcher: claims due commands and carries them out through an executor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from server.commands.outbox import CommandOutbox
from server.commands.states import DONE, FAILED, PENDING, SENDING, SUPERSEDED, Claim, Command
from server.commands.store import LeaseLost
from server.commands.worklist import Worklist

log = logging.getLogger(__name__)

T = TypeVar("T")


class ExecutionError(Exception):
    """A command could not be carried out; `retryable` False means trying again is useless."""

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class Executor(Protocol):
    """Carries a command out over the meter's protocol and reads the value back."""

    async def execute(self, command: Command) -> None:
        """Write the command to the meter; raise `ExecutionError` when it is refused."""
        ...

    async def confirm(self, command: Command) -> bool:
        """Read the meter back: whether it now shows what the command set."""
        ...


@dataclass(frozen=True, slots=True)
class DispatchReport:
    """What one dispatch round did."""

    claimed: int
    done: int
    retried: int
    failed: int
    superseded: int
    lost: int
    errors: int


def default_owner() -> str:
    """A name for this dispatcher that is unique across hosts and processes."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _Timeout(Exception):
    """An executor call that did not finish within the attempt timeout."""


class _Unconfirmable(Exception):
    """The executor can never read this command back: asking again cannot help."""


class CommandDispatcher:
    """Runs due commands: write, acknowledge, read back; retry with backoff; resume crashes.

    A command whose previous attempt may have reached the meter (a retry, or one resumed
    from a dead dispatcher) is read back first and only written again if it does not
    show the new value, so a crash between writing and recording costs no second effect.
    """

    def __init__(
        self,
        outbox: CommandOutbox,
        executor: Executor,
        *,
        owner: str | None = None,
        batch_size: int = 100,
        concurrency: int = 32,
        attempt_timeout_s: float = 10.0,
        lease_s: float | None = None,
    ) -> None:
        for name, value in (("batch_size", batch_size), ("concurrency", concurrency)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number ≥ 1, got {value!r}")
        if not math.isfinite(attempt_timeout_s) or attempt_timeout_s <= 0:
            raise ValueError(f"attempt_timeout_s must be positive, got {attempt_timeout_s!r}")
        # Execute and confirm each get the timeout; the lease must outlast both with margin.
        lease = lease_s if lease_s is not None else 3 * attempt_timeout_s + 5
        if not math.isfinite(lease) or lease <= 2 * attempt_timeout_s:
            raise ValueError(f"lease_s must exceed 2 × attempt_timeout_s, got {lease_s!r}")
        self.outbox = outbox
        self.work = Worklist(outbox)
        self.executor = executor
        self.owner = owner if owner is not None else default_owner()
        self.batch_size = batch_size
        self.attempt_timeout_s = attempt_timeout_s
        self.lease_s = lease
        self._slots = asyncio.Semaphore(concurrency)

    async def run_once(self) -> DispatchReport:
        """Claim the due commands and run each of them through one attempt."""
        claims = await asyncio.to_thread(
            self.work.claim, self.owner, limit=self.batch_size, lease_s=self.lease_s
        )
        outcomes = await asyncio.gather(*(self._guarded(c) for c in claims))
        return DispatchReport(
            claimed=len(claims),
            done=outcomes.count(DONE),
            retried=outcomes.count(PENDING),
            failed=outcomes.count(FAILED),
            superseded=outcomes.count(SUPERSEDED),
            lost=outcomes.count("lost"),
            errors=outcomes.count("error"),
        )

    async def run(self, stop: asyncio.Event, idle_s: float = 1.0) -> None:
        """Dispatch until `stop` is set, waiting `idle_s` between rounds that found nothing."""
        while not stop.is_set():
            try:
                report = await self.run_once()
            except Exception:
                log.exception("command dispatch round failed; trying again in %.1f s", idle_s)
                report = DispatchReport(0, 0, 0, 0, 0, 0, 0)
            if report.claimed < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle_s)

    async def _guarded(self, claim: Claim) -> str:
        async with self._slots:
            try:
                return await self._attempt(claim)
            except LeaseLost as exc:
                log.warning("command %d: %s", claim.command.id, exc)
                return "lost"
            except Exception:
                # E.g. the database went away: the lease runs out and a later round
                # resumes the command, reading it back before any second write.
                log.exception("command %d: attempt broke off", claim.command.id)
                return "error"

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, self.attempt_timeout_s)
        except TimeoutError:
            raise _Timeout(f"no answer within {self.attempt_timeout_s:g} s") from None

    async def _read_back(self, command: Command) -> tuple[bool | None, str]:
        """Whether the meter shows the new value: True, False, or None when unknown."""
        try:
            return bool(await self._call(self.executor.confirm(command))), ""
        except _Timeout as exc:
            return None, f"read-back: {exc}"
        except ExecutionError as exc:
            if not exc.retryable:
                raise _Unconfirmable(f"read-back: {exc.reason}") from None
            return None, f"read-back: {exc.reason}"
        except Exception as exc:
            log.exception("command %d: read-back raised", command.id)
            return None, f"read-back raised {exc!r}"

    async def _settle(self, command: Command, method: Callable[..., Command], *args: object) -> str:
        """Record an outcome through an outbox method (in a thread: psycopg2 blocks)."""
        settled = await asyncio.to_thread(method, command.id, self.owner, *args)
        return settled.state

    async def _attempt(self, claim: Claim) -> str:
        try:
            return await self._try(claim)
        except _Unconfirmable as exc:
            return await self._settle(claim.command, self.work.fail, str(exc))

    async def _try(self, claim: Claim) -> str:
        command = claim.command
        work = self.work
        if claim.resumed or command.attempts > 1:
            shown, why = await self._read_back(command)
            if shown:
                return await self._settle(command, work.mark_done, "read back before re-send")
            if shown is None:
                # Unknown (the meter does not answer): do not write blind, wait and ask again.
                return await self._settle(command, work.retry_or_fail, why)
            if claim.resumed:
                if command.attempts >= command.max_attempts:
                    reason = f"not confirmed after {command.attempts} attempt(s)"
                    return await self._settle(command, work.fail, reason)
                command = await asyncio.to_thread(work.resend, command.id, self.owner, self.lease_s)
                if command.state != SENDING:
                    return command.state  # superseded by a newer command of its slot
        try:
            await self._call(self.executor.execute(command))
        except ExecutionError as exc:
            if not exc.retryable:
                return await self._settle(command, work.fail, exc.reason)
            return await self._settle(command, work.retry_or_fail, exc.reason)
        except _Timeout as exc:
            return await self._settle(command, work.retry_or_fail, str(exc))
        except Exception as exc:
            log.exception("command %d: executor raised", command.id)
            return await self._settle(command, work.retry_or_fail, f"executor raised {exc!r}")
        await asyncio.to_thread(work.mark_sent, command.id, self.owner)
        shown, why = await self._read_back(command)
        if shown:
            return await self._settle(command, work.mark_done)
        reason = why or "read-back does not show the new value"
        return await self._settle(command, work.retry_or_fail, reason)
