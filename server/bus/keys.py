"""The Redis key names of the bus, all in one cluster hash slot per park."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_PART = re.compile(r"[A-Za-z0-9_.-]{1,64}")

READINGS_GROUP: Final = "core"
"""The consumer group the core reads readings with."""

WORKER_GROUP: Final = "worker"
"""The consumer group a worker reads its command stream with."""

CORE_GROUP: Final = "core"
"""The consumer group the core reads command outcomes with."""


def check_part(text: str, what: str) -> str:
    """`text` if it may be part of a key (park, worker, consumer names); else a `ValueError`."""
    if not isinstance(text, str) or not _PART.fullmatch(text):
        raise ValueError(f"{what} {text!r} must be 1-64 of A-Z a-z 0-9 _ . -")
    return text


@dataclass(frozen=True, slots=True)
class BusKeys:
    """Key names for one park; the `{park}` hash tag puts them all in one cluster slot.

    One slot lets a transaction touch two streams (dead-letter a reading and acknowledge
    it; publish an outcome and acknowledge its command) even on a Redis Cluster.
    """

    park: str = "park"

    def __post_init__(self) -> None:
        check_part(self.park, "park name")

    @property
    def prefix(self) -> str:
        """The common start of every key: `parkgrid:{park}:`."""
        return f"parkgrid:{{{self.park}}}:"

    @property
    def readings(self) -> str:
        """The stream of reading batches from every worker."""
        return f"{self.prefix}readings"

    @property
    def dead_letters(self) -> str:
        """Readings and commands that could not be used, with the reason."""
        return f"{self.prefix}dead-letters"

    def commands(self, worker: str) -> str:
        """The command stream of one worker."""
        return f"{self.prefix}commands:{check_part(worker, 'worker name')}"

    @property
    def outcomes(self) -> str:
        """The stream of command outcomes from every worker."""
        return f"{self.prefix}outcomes"

    @property
    def workers(self) -> str:
        """Sorted set of live workers, scored by the deadline of their last heartbeat."""
        return f"{self.prefix}workers"

    @property
    def assignment(self) -> str:
        """The current gateway assignment with its generation (JSON)."""
        return f"{self.prefix}assignment"
