"""The alarm operations the HMI and OPC UA call: validated, applied, audited and journaled."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from alarms.engine import MAX_COMMENT_CHARS, AlarmEngine
from alarms.journal.queries import parse_labels, parse_names
from alarms.journal.rows import CHANNELS, placement
from alarms.journal.store import AlarmJournal
from alarms.kinds import AlarmKind
from alarms.records import ActiveAlarm, AlarmTransition
from alarms.states import LISTED_STATES, AlarmEvent, AlarmState
from config.model import PRIORITIES, Site

MAX_BATCH = 10_000
MAX_REASON_CHARS = 500

Item = tuple[AlarmKind | str, str] | Mapping[str, Any]


def transition_dict(record: AlarmTransition) -> dict[str, Any]:
    """A transition as JSON-ready data."""
    return {
        "kind": record.kind.label,
        "target": record.target,
        "event": record.event.label,
        "from_state": record.from_state.label,
        "to_state": record.to_state.label,
        "at": record.at,
        "value": record.value,
        "limit": record.limit,
        "user": record.user,
    }


class AlarmOperations:
    """Ack, shelve, unshelve, comment and service changes; the live list and the bell.

    Each call checks its input and raises a `ValueError` naming the bad field (a state
    machine refusal is a `TransitionRefused`, also a `ValueError`), applies it to the
    engine, and queues an audit row with the user and channel; the engine's transitions
    and comments reach the journal through its subscription.
    """

    def __init__(
        self, engine: AlarmEngine, journal: AlarmJournal, *, site: Site | None = None
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.site = site if site is not None else journal.site
        journal.attach(engine)
        # The value and limit that raised each listed alarm, for the live list.
        self._raised: dict[tuple[AlarmKind, str], tuple[float | None, float | None]] = {}
        self._unsubscribe = engine.subscribe(self._note)

    def close(self) -> None:
        """Stop following the engine."""
        self._unsubscribe()

    def _note(self, record: AlarmTransition) -> None:
        key = (record.kind, record.target)
        if record.event is AlarmEvent.ACTIVATE:
            self._raised[key] = (record.value, record.limit)
        elif record.to_state not in LISTED_STATES:
            self._raised.pop(key, None)

    # --- validation ---------------------------------------------------------------------

    def _instance(self, kind: object, target: object) -> AlarmKind:
        if not isinstance(kind, AlarmKind | str):
            raise ValueError(f"kind: expected an alarm kind name, got {kind!r}")
        try:
            parsed = AlarmKind.parse(kind)
        except ValueError as exc:
            raise ValueError(f"kind: {exc}") from None
        if not isinstance(target, str) or not target:
            raise ValueError(f"target: expected a meter or gateway id, got {target!r}")
        try:
            self.engine.state(parsed, target)
        except ValueError as exc:
            raise ValueError(f"target: {exc}") from None
        return parsed

    @staticmethod
    def _who(user: object, channel: object) -> str:
        if not isinstance(user, str) or not user.strip():
            raise ValueError(f"user: an operator action needs a user name, got {user!r}")
        if channel not in CHANNELS:
            raise ValueError(f"channel: must be one of {', '.join(CHANNELS)}, got {channel!r}")
        return user.strip()

    @staticmethod
    def _reason(reason: object) -> str | None:
        if reason is None:
            return None
        if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
            raise ValueError(f"reason: must be text of at most {MAX_REASON_CHARS} characters")
        return reason.strip() or None

    # --- operations ---------------------------------------------------------------------

    def ack(
        self, kind: AlarmKind | str, target: str, *, user: str, channel: str
    ) -> list[dict[str, Any]]:
        """Acknowledge one alarm; returns its transitions."""
        name = self._who(user, channel)
        parsed = self._instance(kind, target)
        records = self.engine.acknowledge(parsed, target, name)
        self.journal.audit("alarm.ack", user=name, channel=channel, kind=parsed, target=target)
        return [transition_dict(r) for r in records]

    def ack_many(self, items: Iterable[Item], *, user: str, channel: str) -> list[dict[str, Any]]:
        """Acknowledge several alarms; one result per item, in order, with a reason if refused."""
        name = self._who(user, channel)
        wanted = list(items)
        if not 1 <= len(wanted) <= MAX_BATCH:
            raise ValueError(f"items: give 1..{MAX_BATCH} alarms, got {len(wanted)}")
        batch = uuid.uuid4().hex
        results: list[dict[str, Any]] = []
        for item in wanted:
            kind, target = _pair(item)
            result: dict[str, Any] = {"kind": str(getattr(kind, "label", kind)), "target": target}
            try:
                parsed = self._instance(kind, target)
                records = self.engine.acknowledge(parsed, str(target), name)
            except ValueError as exc:
                results.append({**result, "ok": False, "reason": str(exc)})
                continue
            self.journal.audit(
                "alarm.ack", user=name, channel=channel, kind=parsed, target=str(target),
                detail={"batch": batch},
            )  # fmt: skip
            transitions = [transition_dict(r) for r in records]
            results.append({**result, "ok": True, "reason": None, "transitions": transitions})
        return results

    def shelve(
        self,
        kind: AlarmKind | str,
        target: str,
        *,
        user: str,
        channel: str,
        duration_s: float | None = None,
        one_shot: bool = False,
        reason: str | None = None,
    ) -> list[dict[str, Any]]:
        """Shelve for `duration_s` (at most the site maximum) or one-shot until it clears."""
        name = self._who(user, channel)
        parsed = self._instance(kind, target)
        why = self._reason(reason)
        if one_shot not in (True, False):
            raise ValueError(f"one_shot: must be true or false, got {one_shot!r}")
        if one_shot == (duration_s is not None):
            raise ValueError("duration_s: give either duration_s or one_shot=True")
        until = None
        if duration_s is not None:
            until = self.engine.clock.time() + self._duration(duration_s)
        records = self.engine.shelve(parsed, target, name, until=until, one_shot=one_shot)
        self.journal.audit(
            "alarm.shelve", user=name, channel=channel, kind=parsed, target=target,
            detail={"until": self.engine.shelved_until(parsed, target), "one_shot": one_shot,
                    "reason": why},
        )  # fmt: skip
        return [transition_dict(r) for r in records]

    def _duration(self, duration_s: object) -> float:
        if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
            raise ValueError(f"duration_s: expected seconds, got {duration_s!r}")
        seconds = float(duration_s)
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"duration_s: must be a positive number of seconds, got {duration_s}")
        if seconds > self.engine.max_shelve_s:
            raise ValueError(
                f"duration_s: {seconds:.0f} s is past the maximum shelve time of"
                f" {self.engine.max_shelve_s:.0f} s"
            )
        return seconds

    def unshelve(
        self, kind: AlarmKind | str, target: str, *, user: str, channel: str
    ) -> list[dict[str, Any]]:
        """Take an alarm off the shelf (it is re-evaluated at once)."""
        name = self._who(user, channel)
        parsed = self._instance(kind, target)
        records = self.engine.unshelve(parsed, target, name)
        self.journal.audit("alarm.unshelve", user=name, channel=channel, kind=parsed, target=target)
        return [transition_dict(r) for r in records]

    def set_out_of_service(
        self,
        kind: AlarmKind | str,
        target: str,
        *,
        user: str,
        channel: str,
        out: bool = True,
        reason: str | None = None,
    ) -> list[dict[str, Any]]:
        """Take an alarm out of service, or (out=False) return it to service."""
        name = self._who(user, channel)
        parsed = self._instance(kind, target)
        why = self._reason(reason)
        if out not in (True, False):
            raise ValueError(f"out: must be true or false, got {out!r}")
        records = self.engine.set_out_of_service(parsed, target, name, out)
        action = "alarm.out_of_service" if out else "alarm.return_to_service"
        self.journal.audit(
            action, user=name, channel=channel, kind=parsed, target=target,
            detail={"reason": why},
        )  # fmt: skip
        return [transition_dict(r) for r in records]

    def comment(
        self, kind: AlarmKind | str, target: str, text: str, *, user: str, channel: str
    ) -> dict[str, Any]:
        """Add a comment to an alarm's thread."""
        name = self._who(user, channel)
        parsed = self._instance(kind, target)
        body = text.strip() if isinstance(text, str) else ""
        if not body:
            raise ValueError("text: a comment must not be empty")
        if len(body) > MAX_COMMENT_CHARS:
            raise ValueError(
                f"text: {len(body)} characters is over the {MAX_COMMENT_CHARS} allowed"
            )
        entry = self.engine.comment(parsed, target, name, body)
        self.journal.audit(
            "alarm.comment", user=name, channel=channel, kind=parsed, target=target,
            detail={"text": body}, at=entry.at,
        )  # fmt: skip
        return {"kind": parsed.label, "target": target, "at": entry.at, "user": name, "text": body}

    # --- queries ------------------------------------------------------------------------

    def live(
        self,
        *,
        area: str | Iterable[str] | None = None,
        priority: str | Iterable[str] | None = None,
        state: str | Iterable[str] | None = None,
        kind: str | Iterable[str] | None = None,
        meter: str | Iterable[str] | None = None,
        gateway: str | Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The live alarm list (highest priority, then newest, first), filtered."""
        areas = set(parse_names("area", area))
        priorities = {PRIORITIES.index(p) for p in parse_labels("priority", priority, PRIORITIES)}
        listed = sorted(LISTED_STATES)
        states = {AlarmState[s.upper()] for s in parse_labels("state", state, _labels(listed))}
        kinds = {AlarmKind.parse(k) for k in parse_names("kind", kind)}
        meters = set(parse_names("meter", meter))
        gateways = set(parse_names("gateway", gateway))
        found = []
        for entry in self.engine.active():
            item = self._entry(entry)
            if (
                (areas and entry.area not in areas)
                or (priorities and entry.priority not in priorities)
                or (states and entry.state not in states)
                or (kinds and entry.kind not in kinds)
                or (meters and (item["scope"] != "meter" or entry.target not in meters))
                or (gateways and item["gateway"] not in gateways)
            ):
                continue
            found.append(item)
        return found

    def bell(self) -> dict[str, Any]:
        """The bell: how many alarms wait for an ack, and those alarms."""
        waiting = self.live(state=["unacked", "rtn_unacked"])
        return {"count": self.engine.bell_count(), "alarms": waiting}

    def _entry(self, entry: ActiveAlarm) -> dict[str, Any]:
        where = placement(self.site, entry.kind, entry.target)
        room = owner = None
        if self.site is not None and entry.kind.spec.scope == "meter":
            try:
                found = self.site.meter(entry.target)
            except KeyError:
                pass
            else:
                room, owner = found.room, found.owner
        value, limit = self._raised.get((entry.kind, entry.target), (None, None))
        return {
            "kind": entry.kind.label,
            "text": entry.kind.spec.text,
            "target": entry.target,
            "scope": entry.kind.spec.scope,
            "area": entry.area,
            "gateway": where.gateway,
            "room": room,
            "owner": owner,
            "state": entry.state.label,
            "acknowledged": entry.acknowledged,
            "priority": entry.priority_name,
            "since": entry.since,
            "value": value,
            "limit": limit,
            "chattering": entry.chattering,
            "comments": len(self.engine.comments(entry.kind, entry.target)),
        }


def _labels(states: Iterable[AlarmState]) -> list[str]:
    return [s.label for s in states]


def _pair(item: object) -> tuple[object, object]:
    """(kind, target) from a pair or a mapping with those keys; anything else is refused."""
    if isinstance(item, Mapping):
        return item.get("kind"), item.get("target")
    if isinstance(item, tuple | list) and len(item) == 2:
        return item[0], item[1]
    return item, None
