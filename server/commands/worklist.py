"""The dispatcher's side of the outbox: claim due commands, record each outcome under a lease."""

from __future__ import annotations

from collections.abc import Callable

from server.commands.events import Cursor, record_events
from server.commands.outbox import CommandOutbox
from server.commands.states import PENDING, Claim, Command
from server.commands.store import (
    change,
    claim_due,
    claim_stale,
    event_for,
    newer_in_slot,
    owned,
)

SYSTEM = "system"

Decided = tuple[str, dict[str, object], dict[str, object]]
Decision = Callable[[Cursor, Command, float], Decided]


class Worklist:
    """Claims commands for one dispatcher and moves them on, refusing a lost lease."""

    def __init__(self, outbox: CommandOutbox) -> None:
        self.outbox = outbox

    def claim(self, owner: str, *, limit: int = 100, lease_s: float = 60.0) -> list[Claim]:
        """Take up to `limit` due commands for `owner` for `lease_s` seconds.

        First commands in flight whose lease ran out (their owner died: `resumed`), then
        due pending ones, each the oldest open command of its meter and slot, so that what
        sets one register goes in order. `FOR UPDATE SKIP LOCKED` keeps claimers apart.
        """
        now = self.outbox.clock.time()
        until = now + lease_s
        with self.outbox.transaction() as tx:
            stale = claim_stale(tx, owner, now, until, limit)
            fresh = claim_due(tx, owner, now, until, limit - len(stale))
            new = [event_for(c, "resume", c.state, owner, {"dead_owner": d}) for d, c in stale]
            new += [event_for(c, "claim", PENDING, owner) for c in fresh]
            events = record_events(tx, new, now)
        self.outbox.publish(events)
        claims = [Claim(c, True) for _, c in stale] + [Claim(c, False) for c in fresh]
        return sorted(claims, key=lambda claim: claim.command.id)

    def _settle(self, command_id: int, owner: str, decide: Decision) -> Command:
        """Apply the event `decide` picks to a command `owner` holds the lease of."""
        now = self.outbox.clock.time()
        with self.outbox.transaction() as tx:
            command = owned(tx, command_id, owner)
            event, changes, detail = decide(tx, command, now)
            settled, new = change(
                tx, command, event, at=now, actor=SYSTEM, detail=detail, **changes
            )
            events = record_events(tx, [new], now)
        self.outbox.publish(events)
        return settled

    def mark_sent(self, command_id: int, owner: str) -> Command:
        """The meter acknowledged the write."""
        return self._settle(command_id, owner, lambda tx, c, now: ("sent", {}, {}))

    def mark_done(self, command_id: int, owner: str, how: str = "read back") -> Command:
        """The read-back shows the new value: the command is done."""
        changes: dict[str, object] = {"lease": None, "last_error": None}
        return self._settle(
            command_id, owner, lambda tx, c, now: ("confirm", changes, {"how": how})
        )

    def resend(self, command_id: int, owner: str, lease_s: float = 60.0) -> Command:
        """A resumed command did not read back: write it again as a new attempt.

        When a newer command for the same slot waits, this one is superseded instead.
        """

        def decide(tx: Cursor, command: Command, now: float) -> Decided:
            superseded = _superseded(tx, command)
            if superseded is not None:
                return superseded
            changes = {"attempts": command.attempts + 1, "lease": (owner, now + lease_s)}
            return "resend", changes, {}

        return self._settle(command_id, owner, decide)

    def retry_or_fail(self, command_id: int, owner: str, reason: str) -> Command:
        """The attempt failed: retry after the backoff, or fail after the last attempt.

        When a newer command for the same slot waits, this one is superseded instead.
        """
        policy = self.outbox.policy

        def decide(tx: Cursor, command: Command, now: float) -> Decided:
            superseded = _superseded(tx, command, reason)
            if superseded is not None:
                return superseded
            if command.attempts >= command.max_attempts:
                why = f"gave up after {command.attempts} attempt(s): {reason}"
                return "fail", {"lease": None, "last_error": why}, {"reason": why}
            due = now + policy.delay(max(command.attempts, 1))
            changes: dict[str, object] = {
                "lease": None,
                "last_error": reason,
                "next_attempt_at": due,
            }
            return "retry", changes, {"reason": reason, "next_attempt_at": due}

        return self._settle(command_id, owner, decide)

    def fail(self, command_id: int, owner: str, reason: str) -> Command:
        """Give up on a command, with the reason."""
        changes: dict[str, object] = {"lease": None, "last_error": reason}
        return self._settle(
            command_id, owner, lambda tx, c, now: ("fail", changes, {"reason": reason})
        )


def _superseded(tx: Cursor, command: Command, reason: str | None = None) -> Decided | None:
    """The supersede decision when a newer command of the same slot is waiting."""
    newer = newer_in_slot(tx, command)
    if newer is None or newer.state != PENDING:
        return None
    detail: dict[str, object] = {"by": newer.id}
    if reason:
        detail["reason"] = reason
    return "supersede", {"lease": None, "last_error": reason}, detail
