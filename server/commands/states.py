"""The command state machine, the retry policy, and the command record."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

PENDING: Final = "pending"  # waiting for its next attempt (next_attempt_at)
SENDING: Final = "sending"  # claimed by a dispatcher; the write may be on its way
SENT: Final = "sent"  # the meter acknowledged the write; not yet read back
DONE: Final = "done"  # read back and confirmed
FAILED: Final = "failed"  # gave up, with the reason in last_error
CANCELLED: Final = "cancelled"  # withdrawn by an operator before it was sent
SUPERSEDED: Final = "superseded"  # a newer command of the same slot replaced it
REISSUED: Final = "reissued"  # failed, and an operator sent it again as a new command

STATES: Final = (PENDING, SENDING, SENT, DONE, FAILED, CANCELLED, SUPERSEDED, REISSUED)
OPEN_STATES: Final = (PENDING, SENDING, SENT)
IN_FLIGHT: Final = (SENDING, SENT)
FINAL_STATES: Final = (DONE, FAILED, CANCELLED, SUPERSEDED, REISSUED)

# Events: what moves a command from one state to the next ("enqueue" creates it).
EVENTS: Final = (
    "claim",  # a dispatcher takes a due pending command for an attempt
    "resume",  # a dispatcher takes over a command whose owner's lease ran out
    "resend",  # a resumed command that did not read back is written again
    "sent",  # the write was acknowledged
    "confirm",  # the read-back shows the new value
    "retry",  # the attempt failed; try again after a backoff
    "fail",  # give up
    "cancel",  # an operator withdraws it
    "supersede",  # a newer command of the same slot replaces it (pending, or unconfirmed)
    "reissue",  # an operator sends a failed command again
)

TRANSITIONS: Final[Mapping[tuple[str, str], str]] = MappingProxyType(
    {
        (PENDING, "claim"): SENDING,
        (PENDING, "fail"): FAILED,
        (PENDING, "cancel"): CANCELLED,
        (PENDING, "supersede"): SUPERSEDED,
        (SENDING, "resume"): SENDING,
        (SENDING, "resend"): SENDING,
        (SENDING, "sent"): SENT,
        (SENDING, "confirm"): DONE,
        (SENDING, "retry"): PENDING,
        (SENDING, "fail"): FAILED,
        (SENDING, "supersede"): SUPERSEDED,
        (SENT, "resume"): SENT,
        (SENT, "resend"): SENDING,
        (SENT, "confirm"): DONE,
        (SENT, "retry"): PENDING,
        (SENT, "fail"): FAILED,
        (SENT, "supersede"): SUPERSEDED,
        (FAILED, "reissue"): REISSUED,
    }
)

_WHY_REFUSED: Final = {
    "claim": "only a pending command can be claimed",
    "resume": "only a command in flight (sending or sent) can be resumed",
    "resend": "only a command in flight can be sent again",
    "sent": "only a command being sent can be marked sent",
    "confirm": "only a command in flight can be confirmed",
    "retry": "only a command in flight can be retried",
    "fail": "a finished command cannot fail",
    "cancel": "only a pending command can be cancelled; one in flight must finish first",
    "supersede": "only an unfinished command can be superseded",
    "reissue": "only a failed command can be re-issued",
}


class TransitionRefused(ValueError):
    """A state change the state machine does not allow, e.g. re-issuing a done command."""

    def __init__(self, command_id: int | None, state: str, event: str) -> None:
        what = "command" if command_id is None else f"command {command_id}"
        reason = _WHY_REFUSED.get(event, f"unknown event {event!r}")
        super().__init__(f"cannot {event} {what}: it is {state} ({reason})")
        self.command_id = command_id
        self.state = state
        self.event = event


def next_state(state: str, event: str, command_id: int | None = None) -> str:
    """The state after `event`, or `TransitionRefused` saying why not."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise TransitionRefused(command_id, state, event) from None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how soon a command is tried again: exponential backoff with a cap."""

    max_attempts: int = 5
    base_s: float = 5.0
    factor: float = 2.0
    cap_s: float = 300.0

    def __post_init__(self) -> None:
        """Check the numbers."""
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValueError(f"max_attempts must be a whole number, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("base_s", "factor", "cap_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.factor < 1:
            raise ValueError(f"factor must be at least 1, got {self.factor!r}")

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1, 2, ...)."""
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        # Compare exponents rather than computing factor ** (attempts - 1), which overflows.
        steps = attempts - 1
        if self.factor > 1 and steps * math.log(self.factor) >= math.log(self.cap_s / self.base_s):
            return self.cap_s
        return min(self.cap_s, self.base_s * self.factor**steps)


@dataclass(frozen=True, slots=True)
class Command:
    """One command to one meter, as stored in the outbox."""

    id: int
    request_id: int
    meter: str
    kind: str
    params: Mapping[str, object]
    state: str
    attempts: int
    max_attempts: int
    next_attempt_at: float
    lease_owner: str | None
    lease_until: float | None
    last_error: str | None
    reissue_of: int | None
    actor: str
    channel: str
    created_at: float
    updated_at: float
    finished_at: float | None

    @property
    def finished(self) -> bool:
        """Whether the command reached a final state."""
        return self.state in FINAL_STATES


@dataclass(frozen=True, slots=True)
class Claim:
    """A command a dispatcher took; `resumed` means a dead owner may have sent it already."""

    command: Command
    resumed: bool
