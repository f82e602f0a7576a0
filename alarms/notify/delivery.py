"""The outbox of notices: each recipient's copy, retried with backoff, every attempt logged."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from alarms.notify.messages import Notice
from alarms.notify.routing import Recipient

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 3600.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at delivering a message: when, whether it went, and why not."""

    at: float
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class OutboxMessage:
    """One notice for one recipient, with its delivery state and attempts."""

    id: int
    recipient: Recipient
    notice: Notice
    created: float
    next_attempt: float
    state: str = "pending"  # pending | sent | failed
    attempts: list[Attempt] = field(default_factory=list)


class OutboxStore(Protocol):
    """Where outbox messages are kept (memory now; the PostgreSQL journal later)."""

    def add(self, recipient: Recipient, notice: Notice, now: float) -> OutboxMessage:
        """Store a new pending message, due at `now`."""
        ...

    def due(self, now: float) -> list[OutboxMessage]:
        """Pending messages due at `now`, oldest first."""
        ...

    def record(self, message: OutboxMessage, attempt: Attempt, state: str, retry_at: float) -> None:
        """Log `attempt` and set the message's state and next attempt time."""
        ...

    def messages(self) -> Iterator[OutboxMessage]:
        """Every message, oldest first."""
        ...


class MemoryOutboxStore:
    """An OutboxStore in memory; sent and failed messages beyond `keep` are forgotten."""

    def __init__(self, keep: int = 1000) -> None:
        """Keep the last `keep` finished messages for status and tests."""
        self._ids = itertools.count(1)
        self._messages: dict[int, OutboxMessage] = {}
        self._keep = keep

    def add(self, recipient: Recipient, notice: Notice, now: float) -> OutboxMessage:
        """Store a new pending message, due at `now`."""
        message = OutboxMessage(next(self._ids), recipient, notice, now, now)
        self._messages[message.id] = message
        return message

    def due(self, now: float) -> list[OutboxMessage]:
        """Pending messages due at `now`, oldest first."""
        return [
            m for m in self._messages.values() if m.state == "pending" and m.next_attempt <= now
        ]

    def record(self, message: OutboxMessage, attempt: Attempt, state: str, retry_at: float) -> None:
        """Log `attempt` and set the message's state and next attempt time."""
        message.attempts.append(attempt)
        message.state = state
        message.next_attempt = retry_at
        finished = [m.id for m in self._messages.values() if m.state != "pending"]
        for old in finished[: max(0, len(finished) - self._keep)]:
            del self._messages[old]

    def messages(self) -> Iterator[OutboxMessage]:
        """Every message, oldest first."""
        return iter(list(self._messages.values()))


def backoff(base_s: float, failures: int) -> float:
    """Seconds to wait after the `failures`-th failure: base, 2·base, 4·base, … up to an hour."""
    return float(min(MAX_BACKOFF_S, base_s * 2 ** max(0, failures - 1)))


class Outbox:
    """Queues messages and judges each attempt: sent, retry later, or given up."""

    def __init__(self, store: OutboxStore, retry_base_s: float, max_attempts: int) -> None:
        """Retry after `retry_base_s`·2ⁿ seconds, at most `max_attempts` tries in all."""
        self.store = store
        self.retry_base_s = retry_base_s
        self.max_attempts = max_attempts
        self.sent = 0
        self.failed = 0
        self.failed_attempts = 0

    def put(self, recipient: Recipient, notice: Notice, now: float) -> OutboxMessage:
        """Queue `notice` for `recipient`, due now."""
        return self.store.add(recipient, notice, now)

    def due(self, now: float) -> list[OutboxMessage]:
        """Messages to try at `now`."""
        return self.store.due(now)

    def succeeded(self, message: OutboxMessage, now: float) -> None:
        """Log a delivered attempt."""
        self.store.record(message, Attempt(now, True), "sent", now)
        self.sent += 1
        log.info(
            "notice %d to %s %s sent (attempt %d)",
            message.id,
            message.recipient.channel,
            message.recipient.address,
            len(message.attempts),
        )

    def failed_attempt(self, message: OutboxMessage, now: float, reason: str) -> None:
        """Log a failed attempt; schedule the retry or, after the last, give the message up."""
        self.failed_attempts += 1
        tries = len(message.attempts) + 1
        who = f"{message.recipient.channel} {message.recipient.address}"
        if tries >= self.max_attempts:
            self.store.record(message, Attempt(now, False, reason), "failed", now)
            self.failed += 1
            log.error("notice %d to %s given up after %d tries: %s", message.id, who, tries, reason)
            return
        retry_at = now + backoff(self.retry_base_s, tries)
        self.store.record(message, Attempt(now, False, reason), "pending", retry_at)
        log.warning(
            "notice %d to %s failed (attempt %d), retry in %.0f s: %s",
            message.id,
            who,
            tries,
            retry_at - now,
            reason,
        )

    def depth(self) -> int:
        """Messages waiting to be sent (including those waiting for a retry)."""
        return sum(1 for m in self.store.messages() if m.state == "pending")

    def next_due(self) -> float | None:
        """When the earliest pending message is due, or None."""
        times = [m.next_attempt for m in self.store.messages() if m.state == "pending"]
        return min(times, default=None)
