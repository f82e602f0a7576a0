"""Property tests: the tag table against a plain-Python model of the same writes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from server.clock import ManualClock
from server.tags import (
    Batch,
    ChangeSet,
    CommChange,
    CommState,
    Severity,
    StatusCode,
    TagTable,
    severity,
)

ROWS = 7
TAGS = {"realtime": {"u_a": "float", "pt": "int", "relay": "bool"}, "energy": {"e_total": "float"}}
CODES = [
    StatusCode.GOOD,
    StatusCode.UNCERTAIN_LAST_USABLE_VALUE,
    StatusCode.BAD_COMMUNICATION_ERROR,
    StatusCode.BAD_OUT_OF_RANGE,
]

floats = st.one_of(st.just(math.nan), st.sampled_from([0.0, 1.5, -2.0, 220.0]))
value_of = {
    "float": floats,
    "int": st.integers(-3, 3),
    "bool": st.integers(0, 1),
}


@st.composite
def batches(draw: st.DrawFn) -> tuple[Any, ...]:
    group = draw(st.sampled_from(sorted(TAGS)))
    rows = draw(st.lists(st.integers(0, ROWS - 1), unique=True, max_size=ROWS))
    names = draw(st.lists(st.sampled_from(sorted(TAGS[group])), unique=True))
    values = {name: [draw(value_of[TAGS[group][name]]) for _ in rows] for name in names}
    quality = [draw(st.sampled_from(CODES)) for _ in rows]
    return ("apply", group, rows, values, quality)


@st.composite
def comm_updates(draw: st.DrawFn) -> tuple[Any, ...]:
    rows = draw(st.lists(st.integers(0, ROWS - 1), unique=True, max_size=ROWS))
    state = draw(st.sampled_from(list(CommState)))
    return ("comm", rows, state)


def same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)


class Model:
    """What the table should hold, kept in dicts."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {
            name: [math.nan if kind == "float" else 0] * ROWS
            for tags in TAGS.values()
            for name, kind in tags.items()
        }
        self.quality = {group: [int(StatusCode.BAD_NO_COMMUNICATION)] * ROWS for group in TAGS}
        self.comm = [0] * ROWS
        self.row_version = [0] * ROWS
        self.version = 0

    def apply(self, group: Any, rows: Any, values: Any, quality: Any) -> set[int]:
        changed = set()
        for position, row in enumerate(rows):
            if self.quality[group][row] != quality[position]:
                changed.add(row)
            self.quality[group][row] = int(quality[position])
            if severity(int(quality[position])) is Severity.BAD:
                continue
            for name, column in values.items():
                new = float(column[position]) if TAGS[group][name] == "float" else column[position]
                if not same(self.values[name][row], new):
                    changed.add(row)
                self.values[name][row] = new
        return self._bump(changed)

    def set_comm(self, rows: Any, state: Any) -> set[int]:
        changed = {row for row in rows if self.comm[row] != state}
        for row in changed:
            self.comm[row] = int(state)
        return self._bump(changed)

    def _bump(self, changed: set[int]) -> set[int]:
        if changed:
            self.version += 1
            for row in changed:
                self.row_version[row] = self.version
        return changed


def make_table(clock: ManualClock) -> TagTable:
    return TagTable(
        [f"M{i}" for i in range(ROWS)],
        areas=["A"] * ROWS,
        gateways=[None] * ROWS,
        three_phase=[True] * ROWS,
        clock=clock,
    )


@given(st.lists(st.one_of(batches(), comm_updates()), max_size=25))
def test_table_matches_the_model(operations: Any) -> None:
    clock = ManualClock(0.0)
    table = make_table(clock)
    model = Model()
    history = [0]
    for operation in operations:
        clock.advance(1.0)
        if operation[0] == "apply":
            _, group, rows, values, quality = operation
            batch = Batch(
                group,
                np.array(rows, dtype=np.int64),
                values,
                quality=quality,
                source_ts=clock.time(),
            )
            change: ChangeSet | CommChange = table.apply(batch)
            expected = model.apply(group, rows, values, quality)
        else:
            _, rows, state = operation
            change = table.set_comm(np.array(rows, dtype=np.int64), state)
            expected = model.set_comm(rows, state)
        assert set(change.rows.tolist()) == expected
        assert change.version == table.version == model.version
        assert table.version >= history[-1]
        history.append(table.version)

    snap = table.snapshot()
    for name, column in model.values.items():
        assert np.array_equal(
            snap.values[name], np.array(column, dtype=snap.values[name].dtype), equal_nan=True
        ), name
    for group, codes in model.quality.items():
        assert snap.quality[group].tolist() == codes
    assert snap.comm.tolist() == model.comm
    assert snap.row_version.tolist() == model.row_version

    for since in sorted(set(history)):
        delta = table.deltas(since)
        expected_rows = [r for r in range(ROWS) if model.row_version[r] > since]
        assert delta.rows.tolist() == expected_rows
        assert delta.version == table.version


@given(st.lists(batches(), min_size=1, max_size=10))
def test_reapplying_the_same_batch_changes_nothing(operations: Any) -> None:
    table = make_table(ManualClock(0.0))
    for _, group, rows, values, quality in operations:
        batch = Batch(group, np.array(rows, dtype=np.int64), values, quality=quality, source_ts=0.0)
        table.apply(batch)
        version = table.version
        again = table.apply(batch)
        assert len(again) == 0
        assert table.version == version


@given(st.data())
def test_snapshot_of_any_rows_matches_the_full_snapshot(data: st.DataObject) -> None:
    table = make_table(ManualClock(0.0))
    for _, group, rows, values, quality in data.draw(st.lists(batches(), max_size=5)):
        table.apply(
            Batch(group, np.array(rows, dtype=np.int64), values, quality=quality, source_ts=1.0)
        )
    rows = data.draw(st.lists(st.integers(0, ROWS - 1), unique=True))
    part = table.snapshot(rows=np.array(rows, dtype=np.int64), tags=["u_a", "e_total"])
    full = table.snapshot()
    assert part.rows.tolist() == rows
    for name in ("u_a", "e_total"):
        assert np.array_equal(part.values[name], full.values[name][rows], equal_nan=True)
    assert set(part.quality) == {"realtime", "energy"}
