"""Repetition until acknowledged and escalation after N minutes, driven by a clock."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from alarms.notify.events import AlarmEvent
from config.model import Route

MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class Reminder:
    """A notice now due for an open alarm: a repeat on a route, or an escalation to one."""

    event: AlarmEvent
    route: Route
    reason: str  # "repeat" | "escalation"
    count: int  # the repeat's number (1 for the first), or the minutes before escalating


@dataclass(slots=True)
class _Leg:
    """One route an open alarm has gone to, with its next repeat and escalation times."""

    route: Route
    next_repeat: float | None
    escalate_at: float | None
    repeats: int = 0


@dataclass(slots=True)
class _OpenAlarm:
    event: AlarmEvent
    legs: dict[str, _Leg] = field(default_factory=dict)


def _leg(route: Route, start: float) -> _Leg:
    repeat = start + route.repeat_min * MINUTE if route.repeat_min else None
    escalate = start + route.escalate_after_min * MINUTE if route.escalate_after_min else None
    return _Leg(route, repeat, escalate)


class ReminderSchedule:
    """The alarms notified and not yet acknowledged or cleared, with what each owes next."""

    def __init__(self, route_by_id: Callable[[str], Route]) -> None:
        """Look escalation targets up with `route_by_id`."""
        self._route_by_id = route_by_id
        self._open: dict[tuple[str, str], _OpenAlarm] = {}

    def __len__(self) -> int:
        """How many alarms are open."""
        return len(self._open)

    def is_open(self, key: tuple[str, str]) -> bool:
        """Whether the alarm (kind, target) is open."""
        return key in self._open

    def open(self, event: AlarmEvent, routes: Iterable[Route], now: float) -> None:
        """Start repeats and escalation of `event` on `routes`, counted from `now`.

        An alarm already open keeps its schedule (a raise again is not a new alarm).
        """
        if event.key in self._open:
            return
        alarm = _OpenAlarm(event)
        for route in routes:
            alarm.legs.setdefault(route.id, _leg(route, now))
        if any(leg.next_repeat or leg.escalate_at for leg in alarm.legs.values()):
            self._open[event.key] = alarm

    def close(self, key: tuple[str, str]) -> bool:
        """Stop everything owed for alarm `key` (acknowledged or cleared); whether it was open."""
        return self._open.pop(key, None) is not None

    def next_due(self) -> float | None:
        """The earliest time anything is owed, or None."""
        times = [
            moment
            for alarm in self._open.values()
            for leg in alarm.legs.values()
            for moment in (leg.next_repeat, leg.escalate_at)
            if moment is not None
        ]
        return min(times, default=None)

    def due(self, now: float) -> list[Reminder]:
        """Everything owed at `now`; a repeat missed several times over is sent once."""
        found: list[Reminder] = []
        for alarm in self._open.values():
            for leg in list(alarm.legs.values()):
                if leg.escalate_at is not None and leg.escalate_at <= now:
                    found.extend(self._escalate(alarm, leg, now))
                if leg.next_repeat is not None and leg.next_repeat <= now:
                    period = (leg.route.repeat_min or 1) * MINUTE
                    while leg.next_repeat <= now:
                        leg.next_repeat += period
                    leg.repeats += 1
                    found.append(Reminder(alarm.event, leg.route, "repeat", leg.repeats))
        return found

    def _escalate(self, alarm: _OpenAlarm, leg: _Leg, now: float) -> list[Reminder]:
        leg.escalate_at = None
        if leg.route.escalate_to is None:
            return []
        try:
            target = self._route_by_id(leg.route.escalate_to)
        except KeyError:
            return []
        if target.id not in alarm.legs:
            alarm.legs[target.id] = _leg(target, now)
        minutes = leg.route.escalate_after_min or 0
        return [Reminder(alarm.event, target, "escalation", minutes)]
