"""The alarm engine: detectors on every batch, ISA-18.2 instances, operator actions, queries."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from alarms.detectors import detect_meters, gateway_unreachable
from alarms.instances import InstanceStore
from alarms.kinds import (
    COMMANDED_OPEN_SUPPRESSES,
    GATEWAY_KINDS,
    METER_KINDS,
    AlarmKind,
    row_of,
)
from alarms.lifecycle import InstanceLifecycle
from alarms.limits import LimitColumns
from alarms.records import ActiveAlarm, AlarmComment, AlarmTransition
from alarms.states import LISTED_STATES, AlarmEvent, AlarmState, transition
from alarms.transitions import TransitionBuilder
from config.model import PRIORITIES, Site
from server.clock import Clock
from server.tags import ChangeSet, CommChange, TagTable
from server.tags.quality import is_good

log = logging.getLogger(__name__)

_Record = TypeVar("_Record", AlarmTransition, AlarmComment)

E = AlarmEvent
S = AlarmState

DEFAULT_MAX_SHELVE_S = 8 * 3600
MAX_COMMENT_CHARS = 2000

TransitionListener = Callable[[AlarmTransition], object]
CommentListener = Callable[[AlarmComment], object]


class GatewayLinkEvent(Protocol):
    """A gateway link that went up or down (the acquisition's `GatewayEvent` fits)."""

    @property
    def gateway_id(self) -> str:
        """The gateway's id."""
        ...

    @property
    def online(self) -> bool:
        """Whether the link is up."""
        ...


class AlarmEngine:
    """Evaluates every alarm of the park on each batch and keeps each instance's state."""

    def __init__(
        self,
        site: Site,
        table: TagTable,
        *,
        clock: Clock,
        max_shelve_s: float = DEFAULT_MAX_SHELVE_S,
        chatter_sets: int = 3,
        chatter_window_s: float = 60.0,
    ) -> None:
        if not max_shelve_s > 0:
            raise ValueError(f"max_shelve_s must be positive, got {max_shelve_s}")
        self.table = table
        self.clock = clock
        self.max_shelve_s = float(max_shelve_s)
        self.limits = LimitColumns.from_site(site, table)
        names = table.meters.gateway_names
        self._meters = InstanceStore(
            METER_KINDS, len(table), chatter_sets=chatter_sets, chatter_window_s=chatter_window_s
        )
        self._gateways = InstanceStore(
            GATEWAY_KINDS, len(names), chatter_sets=chatter_sets, chatter_window_s=chatter_window_s
        )
        self._commanded_open = np.zeros(len(table), dtype=np.bool_)
        self._link_down = np.zeros(len(names), dtype=np.bool_)
        self._last_good_realtime = np.full(len(table), np.nan)
        self._started = clock.time()
        self._gateway_row = {name: row for row, name in enumerate(names)}
        gateway_areas = tuple(site.gateway(name).area for name in names)
        self._build = TransitionBuilder(table, self.limits, self._last_good_realtime, gateway_areas)
        self._lifecycle = InstanceLifecycle(self._build)
        self._listeners: list[tuple[TransitionListener | None, CommentListener | None]] = []
        self._failing: set[int] = set()
        self._comments: dict[tuple[AlarmKind, str], list[AlarmComment]] = {}

    def apply_site(self, site: Site) -> None:
        """Take new limits after a settings change (the meters must be the same)."""
        self.limits = LimitColumns.from_site(site, self.table)
        self._build.limits = self.limits

    # --- inputs from the acquisition and the command side -----------------------------

    def on_batch(self, changes: ChangeSet) -> list[AlarmTransition]:
        """A batch was applied to the tag table: note good realtime readings, then evaluate."""
        batch = changes.batch
        if batch.group == "realtime":
            good = is_good(batch.quality)
            self._last_good_realtime[batch.rows[good]] = changes.server_ts
        return self.evaluate()

    def on_comm(self, change: CommChange) -> list[AlarmTransition]:
        """Meters' communication states changed (already in the table): evaluate."""
        return self.evaluate()

    def on_gateway(self, event: GatewayLinkEvent) -> list[AlarmTransition]:
        """A gateway link went up or down; links that are not gateways of the table are ignored."""
        row = self._gateway_row.get(event.gateway_id)
        if row is not None:
            self._link_down[row] = not event.online
        return self.evaluate()

    def set_gateway_link(self, gateway_id: str, up: bool) -> None:
        """Record a gateway's link state (taken into account at the next evaluation)."""
        self._link_down[self._gateway_index(gateway_id)] = not up

    def set_commanded_open(self, rows: npt.ArrayLike, flag: bool | npt.ArrayLike) -> None:
        """Mark meters whose relay is (True) or is no longer (False) open by command."""
        row_array = np.asarray(rows)
        if row_array.ndim != 1 or (row_array.size and row_array.dtype.kind not in "iu"):
            raise ValueError(f"set_commanded_open: rows must be a 1-D integer array, got {rows!r}")
        if row_array.size and not (row_array.min() >= 0 and row_array.max() < len(self.table)):
            raise ValueError(f"set_commanded_open: rows must be in 0..{len(self.table) - 1}")
        self._commanded_open[row_array] = np.asarray(flag, dtype=np.bool_)

    @property
    def commanded_open(self) -> npt.NDArray[np.bool_]:
        """Read-only: which meters' relays are open by command."""
        view = self._commanded_open.view()
        view.flags.writeable = False
        return view

    # --- evaluation ---------------------------------------------------------------------

    def evaluate(self, now: float | None = None) -> list[AlarmTransition]:
        """Run every detector over the whole table and move the instances that changed."""
        at = self.clock.time() if now is None else float(now)
        meters, gateways, limits = self._meters, self._gateways, self.limits
        condition = detect_meters(
            self.table,
            limits,
            meters.condition,
            self._commanded_open,
            self._last_good_realtime,
            self._started,
            at,
        )
        meter_flips = meters.debounce(condition, limits.on_delay, limits.off_delay, at)
        down = gateway_unreachable(self.table, self._link_down)
        gateway_flips = gateways.debounce(
            down[np.newaxis],
            limits.gateway_down_s[np.newaxis],
            limits.gateway_off_delay_s[np.newaxis],
            at,
        )
        records: list[AlarmTransition] = []
        self._lifecycle.follow(gateways, gateway_flips, at, records)
        # While its gateway is (or is about to be) in alarm, a meter's lost comm is by design.
        held = np.append(gateways.active[0] | down, False)[self.table.meters.gateway_codes]
        self._lifecycle.suppress(meters, AlarmKind.LOST_COMM, held, at, records)
        for kind in COMMANDED_OPEN_SUPPRESSES:
            self._lifecycle.suppress(meters, kind, self._commanded_open, at, records)
        self._lifecycle.follow(meters, meter_flips, at, records)
        meters.calm_down(at)
        gateways.calm_down(at)
        self._publish(records)
        return records

    def _store(self, kind: AlarmKind) -> InstanceStore:
        return self._meters if kind.spec.scope == "meter" else self._gateways

    # --- operator actions ---------------------------------------------------------------

    def acknowledge(self, kind: AlarmKind | str, target: str, user: str) -> list[AlarmTransition]:
        """Acknowledge one alarm; `TransitionRefused` says why when there is nothing to ack."""
        return self._operate(kind, target, E.ACK, user)

    def acknowledge_many(
        self, items: Iterable[tuple[AlarmKind | str, str]], user: str
    ) -> tuple[list[AlarmTransition], dict[tuple[str, str], str]]:
        """Acknowledge several alarms; returns the transitions and, per refused one, why."""
        done: list[AlarmTransition] = []
        refused: dict[tuple[str, str], str] = {}
        for kind, target in items:
            try:
                done += self.acknowledge(kind, target, user)
            except ValueError as exc:
                name = kind.label if isinstance(kind, AlarmKind) else str(kind)
                refused[(name, target)] = str(exc)
        return done, refused

    def shelve(
        self,
        kind: AlarmKind | str,
        target: str,
        user: str,
        *,
        until: float | None = None,
        one_shot: bool = False,
    ) -> list[AlarmTransition]:
        """Shelve until a time, or one-shot (until it returns to normal); both within the max."""
        now = self.clock.time()
        if one_shot == (until is not None):
            raise ValueError("shelve: give either until=<Unix seconds> or one_shot=True")
        end = now + self.max_shelve_s if until is None else float(until)
        if not end > now:
            raise ValueError(f"shelve: until ({end}) must be later than now ({now})")
        if end - now > self.max_shelve_s:
            raise ValueError(
                f"shelve: {end - now:.0f} s is longer than the site maximum of"
                f" {self.max_shelve_s:.0f} s"
            )
        records = self._operate(kind, target, E.SHELVE, user, now)
        parsed = AlarmKind.parse(kind)
        self._store(parsed).shelve(row_of(parsed), self._column(parsed, target), end, one_shot)
        return records

    def unshelve(self, kind: AlarmKind | str, target: str, user: str) -> list[AlarmTransition]:
        """Take an alarm off the shelf; it is re-evaluated at once."""
        return self._operate(kind, target, E.UNSHELVE, user)

    def set_out_of_service(
        self, kind: AlarmKind | str, target: str, user: str, out: bool = True
    ) -> list[AlarmTransition]:
        """Take an alarm out of service, or (out=False) return it and re-evaluate it."""
        return self._operate(
            kind, target, E.REMOVE_FROM_SERVICE if out else E.RETURN_TO_SERVICE, user
        )

    def comment(self, kind: AlarmKind | str, target: str, user: str, text: str) -> AlarmComment:
        """Add a comment to an alarm's thread."""
        parsed = AlarmKind.parse(kind)
        self._column(parsed, target)
        _check_user(user)
        body = text.strip() if isinstance(text, str) else ""
        if not body or len(body) > MAX_COMMENT_CHARS:
            raise ValueError(f"comment: text must be 1..{MAX_COMMENT_CHARS} characters")
        entry = AlarmComment(parsed, target, user, self.clock.time(), body)
        self._comments.setdefault((parsed, target), []).append(entry)
        for _, on_comment in self._listeners:
            if on_comment is not None:
                self._call(on_comment, entry)
        return entry

    def set_priority(self, kind: AlarmKind | str, target: str, priority: str) -> None:
        """Change one instance's priority (low, medium, high or urgent)."""
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, got {priority!r}")
        parsed = AlarmKind.parse(kind)
        store = self._store(parsed)
        store.priority[row_of(parsed), self._column(parsed, target)] = PRIORITIES.index(priority)

    def _operate(
        self,
        kind: AlarmKind | str,
        target: str,
        event: AlarmEvent,
        user: str,
        now: float | None = None,
    ) -> list[AlarmTransition]:
        """Apply one operator event to one instance (refusals raise `TransitionRefused`)."""
        _check_user(user)
        parsed = AlarmKind.parse(kind)
        store, row, column = self._store(parsed), row_of(parsed), self._column(parsed, target)
        at = self.clock.time() if now is None else now
        transition(S(int(store.state[row, column])), event)
        kinds, targets = np.array([row], dtype=np.intp), np.array([column], dtype=np.intp)
        records: list[AlarmTransition] = []
        if event is E.UNSHELVE:
            self._lifecycle.unshelve(store, kinds, targets, at, user, records)
        else:
            moves = store.move(event, kinds, targets)
            records += self._build(store, moves, at, user)
            if event is E.REMOVE_FROM_SERVICE:
                store.clear_shelf(kinds, targets)
            elif event is E.RETURN_TO_SERVICE:
                self._lifecycle.settle(store, kinds, targets, at, user, records)
        self._publish(records)
        return records

    # --- queries and subscriptions ------------------------------------------------------

    def state(self, kind: AlarmKind | str, target: str) -> AlarmState:
        """The state of one instance."""
        parsed = AlarmKind.parse(kind)
        return S(int(self._store(parsed).state[row_of(parsed), self._column(parsed, target)]))

    def chattering(self, kind: AlarmKind | str, target: str) -> bool:
        """Whether one instance set `chatter_sets` times or more within the window."""
        parsed = AlarmKind.parse(kind)
        store = self._store(parsed)
        return bool(store.chattering[row_of(parsed), self._column(parsed, target)])

    def shelved_until(self, kind: AlarmKind | str, target: str) -> float | None:
        """When one instance's shelf runs out, or None when it is not shelved."""
        parsed = AlarmKind.parse(kind)
        store = self._store(parsed)
        until = float(store.shelved_until[row_of(parsed), self._column(parsed, target)])
        return until if np.isfinite(until) else None

    def comments(self, kind: AlarmKind | str, target: str) -> tuple[AlarmComment, ...]:
        """The comment thread of one instance, oldest first."""
        parsed = AlarmKind.parse(kind)
        self._column(parsed, target)
        return tuple(self._comments.get((parsed, target), ()))

    def active(self) -> list[ActiveAlarm]:
        """The live alarm list: highest priority first, then the newest first."""
        entries: list[ActiveAlarm] = []
        for store in (self._meters, self._gateways):
            kinds, targets = np.nonzero(np.isin(store.state, list(LISTED_STATES)))
            entries += self._build.entries(store, kinds, targets)
        entries.sort(key=lambda a: (-a.priority, -a.since, a.kind, a.target))
        return entries

    def bell_count(self) -> int:
        """How many alarms wait for an acknowledgement (active or returned)."""
        unacked = [S.UNACKED, S.RTN_UNACKED]
        return sum(int(np.isin(s.state, unacked).sum()) for s in (self._meters, self._gateways))

    def subscribe(
        self,
        on_transition: TransitionListener | None = None,
        on_comment: CommentListener | None = None,
    ) -> Callable[[], None]:
        """Deliver every transition (and comment) to listeners; returns an unsubscribe call."""
        entry = (on_transition, on_comment)
        self._listeners.append(entry)

        def unsubscribe() -> None:
            if entry in self._listeners:
                self._listeners.remove(entry)

        return unsubscribe

    def _publish(self, records: list[AlarmTransition]) -> None:
        for on_transition, _ in list(self._listeners):
            if on_transition is not None:
                for record in records:
                    self._call(on_transition, record)

    def _call(self, listener: Callable[[_Record], object], record: _Record) -> None:
        """Call a listener; a failing one is logged once and never stops the engine."""
        try:
            listener(record)
        except Exception:
            if id(listener) not in self._failing:
                self._failing.add(id(listener))
                log.exception("alarm listener %r failed; it keeps being called", listener)
        else:
            self._failing.discard(id(listener))

    def _column(self, kind: AlarmKind, target: str) -> int:
        if kind.spec.scope == "gateway":
            return self._gateway_index(target)
        try:
            return self.table.meters.row(target)
        except KeyError:
            raise ValueError(f"{kind.label}: unknown meter {target!r}") from None

    def _gateway_index(self, gateway_id: str) -> int:
        row = self._gateway_row.get(gateway_id)
        if row is None:
            raise ValueError(f"unknown gateway {gateway_id!r} (or it has no meters)")
        return row


def _check_user(user: str) -> None:
    if not isinstance(user, str) or not user.strip():
        raise ValueError(f"an operator action needs a user name, got {user!r}")
