"""The columnar alarm instance store: one (kinds × targets) matrix per instance attribute."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alarms.kinds import AlarmKind
from alarms.states import NEXT, REFUSED, AlarmEvent, AlarmState

Index = npt.NDArray[np.intp]
Matrix = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]

_EMPTY = np.zeros(0, dtype=np.intp)


@dataclass(frozen=True, slots=True, eq=False)
class Moves:
    """Instances that one vectorised event moved: (kind row, target) pairs, old and new state."""

    event: AlarmEvent
    kinds: Index
    targets: Index
    before: npt.NDArray[np.uint8]
    after: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.kinds)


@dataclass(frozen=True, slots=True, eq=False)
class Flips:
    """Instances whose debounced condition changed: those that set and those that cleared."""

    set_kinds: Index
    set_targets: Index
    clear_kinds: Index
    clear_targets: Index


class InstanceStore:
    """Every alarm instance of one scope (meters or gateways) as columns.

    Rows are kinds, columns are targets. `condition` is the raw detector output (kept for
    hysteresis), `active` the condition after on-delay and off-delay, `pending` since when
    the two have differed (inf when they agree), `since` when the instance last activated.
    """

    def __init__(
        self,
        kinds: Sequence[AlarmKind],
        targets: int,
        *,
        chatter_sets: int = 3,
        chatter_window_s: float = 60.0,
    ) -> None:
        if chatter_sets < 2:
            raise ValueError(f"chatter_sets must be at least 2, got {chatter_sets}")
        if not chatter_window_s > 0:
            raise ValueError(f"chatter_window_s must be positive, got {chatter_window_s}")
        shape = (len(kinds), targets)
        self.kinds = tuple(kinds)
        self.state = np.full(shape, AlarmState.NORMAL, dtype=np.uint8)
        self.condition = np.zeros(shape, dtype=np.bool_)
        self.active = np.zeros(shape, dtype=np.bool_)
        self.pending = np.full(shape, np.inf)
        self.since = np.full(shape, np.nan)
        self.shelved_until = np.full(shape, np.inf)
        self.one_shot = np.zeros(shape, dtype=np.bool_)
        self.suppressed = np.zeros(shape, dtype=np.bool_)
        self.chattering = np.zeros(shape, dtype=np.bool_)
        self.set_times = np.full((*shape, chatter_sets), -np.inf)
        self.chatter_window_s = float(chatter_window_s)
        self.priority = np.empty(shape, dtype=np.int8)
        for row, kind in enumerate(kinds):
            self.priority[row] = kind.spec.priority_rank
        self._any_pending = False
        self._any_shelved = False

    @property
    def shape(self) -> tuple[int, int]:
        """(kinds, targets)."""
        kinds, targets = self.state.shape
        return kinds, targets

    def debounce(self, condition: Matrix, on_delay: Floats, off_delay: Floats, now: float) -> Flips:
        """Take a new raw condition; flip `active` where it has differed for the delay."""
        self.condition = condition
        differ = condition != self.active
        if not differ.any():
            if self._any_pending:
                self.pending.fill(np.inf)
                self._any_pending = False
            return Flips(_EMPTY, _EMPTY, _EMPTY, _EMPTY)
        kinds, targets = np.nonzero(differ)
        started = np.minimum(self.pending[kinds, targets], now)
        if self._any_pending:
            self.pending.fill(np.inf)
        wanted = condition[kinds, targets]
        delay = np.where(wanted, on_delay[kinds, targets], off_delay[kinds, targets])
        due = started <= now - delay
        waiting = ~due
        self.pending[kinds[waiting], targets[waiting]] = started[waiting]
        self._any_pending = bool(waiting.any())
        kinds, targets, wanted = kinds[due], targets[due], wanted[due]
        self.active[kinds, targets] = wanted
        up = wanted
        down = ~wanted
        self._count_sets(kinds[up], targets[up], now)
        return Flips(kinds[up], targets[up], kinds[down], targets[down])

    def _count_sets(self, kinds: Index, targets: Index, now: float) -> None:
        """Remember set times; flag an instance that set `chatter_sets` times in the window."""
        if len(kinds):
            times = self.set_times[kinds, targets]
            times[:, :-1] = times[:, 1:]
            times[:, -1] = now
            self.set_times[kinds, targets] = times
            self.since[kinds, targets] = now
            self.chattering[kinds, targets] |= times[:, 0] >= now - self.chatter_window_s

    def calm_down(self, now: float) -> None:
        """Clear the chattering flag where fewer than `chatter_sets` sets lie in the window."""
        if self.chattering.any():
            kinds, targets = np.nonzero(self.chattering)
            oldest = self.set_times[kinds, targets, 0]
            calm = oldest < now - self.chatter_window_s
            self.chattering[kinds[calm], targets[calm]] = False

    def due_shelves(self, now: float) -> tuple[Index, Index]:
        """Shelved instances whose shelf time has run out."""
        if not self._any_shelved:
            return _EMPTY, _EMPTY
        kinds, targets = np.nonzero(self.shelved_until <= now)
        return kinds, targets

    def shelve(self, kind: int, target: int, until: float, one_shot: bool) -> None:
        """Record the shelf of one instance (the state change is done by `move`)."""
        self.shelved_until[kind, target] = until
        self.one_shot[kind, target] = one_shot
        self._any_shelved = True

    def clear_shelf(self, kinds: Index, targets: Index) -> None:
        """Forget the shelf of some instances."""
        self.shelved_until[kinds, targets] = np.inf
        self.one_shot[kinds, targets] = False
        self._any_shelved = bool(np.isfinite(self.shelved_until).any())

    def move(self, event: AlarmEvent, kinds: Index, targets: Index) -> Moves:
        """Apply `event` to the given instances through the table; refused pairs stay put."""
        before = self.state[kinds, targets]
        after = NEXT[before, event]
        accepted = after != REFUSED
        if not accepted.all():
            kinds, targets = kinds[accepted], targets[accepted]
            before, after = before[accepted], after[accepted]
        self.state[kinds, targets] = after
        return Moves(event, kinds, targets, before, after)

    def in_states(self, states: Sequence[AlarmState], kinds: Index, targets: Index) -> Index:
        """Positions (into `kinds`/`targets`) of the instances in any of `states`."""
        return np.flatnonzero(np.isin(self.state[kinds, targets], list(states)))
