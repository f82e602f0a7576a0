"""Per-recipient rate limits and flood folding: one digest instead of a message storm."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from alarms.notify.events import AlarmEvent

HOUR = 3600.0


class RecipientRateLimit:
    """At most `per_hour` messages to one address in any sliding hour; the rest are counted."""

    def __init__(self, per_hour: int) -> None:
        """Allow `per_hour` messages per address per hour (at least 1)."""
        if per_hour < 1:
            raise ValueError(f"per_hour must be at least 1, got {per_hour}")
        self.per_hour = per_hour
        self._sent: dict[str, deque[float]] = {}
        self._withheld: dict[str, int] = {}

    def take(self, address: str, now: float) -> bool:
        """Whether a message to `address` may go at `now` (and count it); else count it withheld."""
        sent = self._sent.setdefault(address, deque())
        while sent and sent[0] <= now - HOUR:
            sent.popleft()
        if len(sent) >= self.per_hour:
            self._withheld[address] = self._withheld.get(address, 0) + 1
            return False
        sent.append(now)
        return True

    def withheld(self, address: str) -> int:
        """How many messages to `address` were held back since the last one told of them."""
        return self._withheld.get(address, 0)

    def told(self, address: str) -> None:
        """The withheld count of `address` has been told in a message that went out."""
        self._withheld.pop(address, None)

    def total_withheld(self) -> int:
        """Messages held back and not yet told, over every address."""
        return sum(self._withheld.values())


def flood_key(event: AlarmEvent) -> str:
    """What floods together: a gateway and its meters, or the direct 4G meters of an area."""
    if event.target_kind == "gateway":
        return f"gateway:{event.target}"
    if event.gateway is not None:
        return f"gateway:{event.gateway}"
    return f"area:{event.area}"


@dataclass(slots=True)
class Flood:
    """Alarms folded together under one key: behind a standing gateway alarm, or a burst."""

    key: str
    gateway_alarm: AlarmEvent | None
    ends: float | None
    folded: dict[tuple[str, str], AlarmEvent] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Digest:
    """One message that stands for a burst of alarms under one flood key."""

    key: str
    events: tuple[AlarmEvent, ...]
    start: float
    end: float


class FloodGuard:
    """Decides which raised alarms are sent alone and which are folded into a digest.

    While a gateway alarm stands, every raised or suppressed meter alarm behind that
    gateway is folded into it. Otherwise, once more than `threshold` alarms are raised
    under one key within `window_s`, the rest of that window is folded into one digest.
    """

    def __init__(self, window_s: float, threshold: int) -> None:
        """Fold beyond `threshold` raises per key within `window_s` seconds."""
        self.window_s = window_s
        self.threshold = threshold
        self._recent: dict[str, deque[float]] = {}
        self._floods: dict[str, Flood] = {}

    def gateway_raised(self, event: AlarmEvent) -> int:
        """A gateway alarm now stands: fold its meters from here on; how many were already."""
        key = flood_key(event)
        flood = self._floods.get(key)
        if flood is None:
            flood = self._floods[key] = Flood(key, event, None)
        flood.gateway_alarm, flood.ends = event, None
        return len(flood.folded)

    def gateway_cleared(self, event: AlarmEvent) -> tuple[AlarmEvent, ...]:
        """The gateway alarm is gone: stop folding and return what was folded behind it."""
        flood = self._floods.get(flood_key(event))
        if flood is None or flood.gateway_alarm is None:
            return ()
        del self._floods[flood.key]
        return tuple(flood.folded.values())

    def fold(self, event: AlarmEvent, now: float) -> bool:
        """Whether a raised or suppressed meter alarm is folded rather than sent alone."""
        key = flood_key(event)
        flood = self._floods.get(key)
        if flood is not None:
            flood.folded.setdefault(event.key, event)
            return True
        if event.state != "raised":
            return False
        recent = self._recent.setdefault(key, deque())
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        recent.append(now)
        if len(recent) <= self.threshold:
            return False
        flood = self._floods[key] = Flood(key, None, recent[0] + self.window_s)
        flood.folded[event.key] = event
        return True

    def standing(self, key: str) -> bool:
        """Whether alarms under `key` are being folded now."""
        return key in self._floods

    def due(self, now: float) -> list[Digest]:
        """The bursts whose window has ended, each as one digest (their folding stops)."""
        digests: list[Digest] = []
        for key, flood in list(self._floods.items()):
            if flood.ends is None or flood.ends > now:
                continue
            del self._floods[key]
            events = tuple(flood.folded.values())
            digests.append(Digest(key, events, flood.ends - self.window_s, flood.ends))
        return digests

    def next_due(self) -> float | None:
        """When the earliest burst window ends, or None."""
        return min((f.ends for f in self._floods.values() if f.ends is not None), default=None)

    def folded_count(self) -> int:
        """Alarms folded into floods that still stand."""
        return sum(len(flood.folded) for flood in self._floods.values())
