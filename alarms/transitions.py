"""Turn vectorised instance moves into `AlarmTransition` records and live-list entries."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from alarms.detectors import observed
from alarms.instances import Index, InstanceStore, Moves
from alarms.kinds import METER_KINDS, AlarmKind
from alarms.limits import LimitColumns
from alarms.records import ActiveAlarm, AlarmTransition
from alarms.states import AlarmState
from server.tags import TagTable

Floats = npt.NDArray[np.float64]


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


class TransitionBuilder:
    """Builds records for moved instances, with the value and limit each condition saw."""

    def __init__(
        self,
        table: TagTable,
        limits: LimitColumns,
        last_good_realtime: Floats,
        gateway_areas: tuple[str, ...],
    ) -> None:
        self.table = table
        self.limits = limits
        self._last_good = last_good_realtime
        self._gateway_names = table.meters.gateway_names
        self._gateway_areas = gateway_areas

    def __call__(
        self, store: InstanceStore, moves: Moves, at: float, user: str | None = None
    ) -> list[AlarmTransition]:
        """One record per move, in order."""
        if not len(moves):
            return []
        values, limits = self._observed(store, moves.kinds, moves.targets, at)
        names = self._names(store, moves.targets)
        kinds = store.kinds
        return [
            AlarmTransition(
                kind=kinds[kind],
                target=name,
                from_state=AlarmState(before),
                to_state=AlarmState(after),
                event=moves.event,
                at=at,
                value=_number(value),
                limit=_number(limit),
                user=user,
            )
            for kind, name, before, after, value, limit in zip(
                moves.kinds.tolist(),
                names,
                moves.before.tolist(),
                moves.after.tolist(),
                values.tolist(),
                limits.tolist(),
                strict=True,
            )
        ]

    def entries(self, store: InstanceStore, kinds: Index, targets: Index) -> list[ActiveAlarm]:
        """Live-list entries of the given instances."""
        names = self._names(store, targets)
        if store.kinds == METER_KINDS:
            areas = self.table.meters.area_of(targets.astype(np.int64))
        else:
            areas = [self._gateway_areas[t] for t in targets.tolist()]
        return [
            ActiveAlarm(
                kind=store.kinds[kind],
                target=name,
                area=area,
                state=AlarmState(state),
                priority=priority,
                since=since,
                chattering=chattering,
            )
            for kind, name, area, state, priority, since, chattering in zip(
                kinds.tolist(),
                names,
                areas,
                store.state[kinds, targets].tolist(),
                store.priority[kinds, targets].tolist(),
                store.since[kinds, targets].tolist(),
                store.chattering[kinds, targets].tolist(),
                strict=True,
            )
        ]

    def _names(self, store: InstanceStore, targets: Index) -> list[str]:
        if store.kinds == METER_KINDS:
            names: list[str] = self.table.ids[targets].tolist()
            return names
        return [self._gateway_names[t] for t in targets.tolist()]

    def _observed(
        self, store: InstanceStore, kinds: Index, targets: Index, at: float
    ) -> tuple[Floats, Floats]:
        values = np.full(len(kinds), np.nan)
        limits = np.full(len(kinds), np.nan)
        if store.kinds != METER_KINDS:
            limits[:] = self.limits.gateway_down_s[targets]
            return values, limits
        for row in np.unique(kinds).tolist():
            where = kinds == row
            rows = targets[where].astype(np.int64)
            kind: AlarmKind = store.kinds[row]
            values[where], limits[where] = observed(
                kind, rows, self.table, self.limits, self._last_good, at
            )
        return values, limits
