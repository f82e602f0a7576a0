"""How instances move: condition flips, suppression by design, shelves ending, re-evaluation."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alarms.instances import Flips, Index, InstanceStore
from alarms.kinds import AlarmKind, row_of
from alarms.records import AlarmTransition
from alarms.states import AlarmEvent, AlarmState
from alarms.transitions import TransitionBuilder

E = AlarmEvent
S = AlarmState


class InstanceLifecycle:
    """Applies vectorised events to an instance store and collects the transitions."""

    def __init__(self, build: TransitionBuilder) -> None:
        self.build = build

    def follow(
        self, store: InstanceStore, flips: Flips, at: float, records: list[AlarmTransition]
    ) -> None:
        """Move instances whose condition flipped, then those whose shelf ended."""
        build = self.build
        records += build(store, store.move(E.ACTIVATE, flips.set_kinds, flips.set_targets), at)
        kinds, targets = flips.clear_kinds, flips.clear_targets
        records += build(store, store.move(E.CLEAR, kinds, targets), at)
        # A one-shot shelf ends when its condition returns to normal.
        ended = store.one_shot[kinds, targets] & (store.state[kinds, targets] == S.SHELVED)
        self.unshelve(store, kinds[ended], targets[ended], at, None, records)
        due_kinds, due_targets = store.due_shelves(at)
        self.unshelve(store, due_kinds, due_targets, at, None, records)

    def suppress(
        self,
        store: InstanceStore,
        kind: AlarmKind,
        wanted: npt.NDArray[np.bool_],
        at: float,
        records: list[AlarmTransition],
    ) -> None:
        """Suppress by design, or release, the instances of `kind` where `wanted` changed."""
        row = row_of(kind)
        changed = np.flatnonzero(wanted != store.suppressed[row])
        if not len(changed):
            return
        store.suppressed[row, changed] = wanted[changed]
        entering = changed[wanted[changed]]
        moves = store.move(E.SUPPRESS, np.full(len(entering), row, dtype=np.intp), entering)
        was_shelved = moves.before == S.SHELVED
        store.clear_shelf(moves.kinds[was_shelved], moves.targets[was_shelved])
        records += self.build(store, moves, at)
        leaving = changed[~wanted[changed]]
        moves = store.move(E.UNSUPPRESS, np.full(len(leaving), row, dtype=np.intp), leaving)
        records += self.build(store, moves, at)
        self.settle(store, moves.kinds, moves.targets, at, None, records)

    def unshelve(
        self,
        store: InstanceStore,
        kinds: Index,
        targets: Index,
        at: float,
        user: str | None,
        records: list[AlarmTransition],
    ) -> None:
        """Take instances off the shelf and re-evaluate them."""
        if not len(kinds):
            return
        moves = store.move(E.UNSHELVE, kinds, targets)
        store.clear_shelf(kinds, targets)
        records += self.build(store, moves, at, user)
        self.settle(store, moves.kinds, moves.targets, at, user, records)

    def settle(
        self,
        store: InstanceStore,
        kinds: Index,
        targets: Index,
        at: float,
        user: str | None,
        records: list[AlarmTransition],
    ) -> None:
        """Re-evaluate instances just back in Normal: suppress them, or raise what is active."""
        suppressed = store.suppressed[kinds, targets]
        records += self.build(
            store, store.move(E.SUPPRESS, kinds[suppressed], targets[suppressed]), at, user
        )
        raise_now = store.active[kinds, targets] & ~suppressed
        records += self.build(
            store, store.move(E.ACTIVATE, kinds[raise_now], targets[raise_now]), at, user
        )
