"""The tag table: apply, versions, quality handling, comm state, snapshots and deltas."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from server.clock import ManualClock, SystemClock
from server.tags import Batch, CommState, StatusCode, TagTable

NAN = math.nan


def make_table(clock: ManualClock | None = None, count: int = 6) -> TagTable:
    return TagTable(
        [f"M{i}" for i in range(count)],
        areas=["A" if i % 2 == 0 else "B" for i in range(count)],
        gateways=["G1" if i < count // 2 else None for i in range(count)],
        three_phase=[i % 3 == 0 for i in range(count)],
        clock=clock or ManualClock(1000.0),
    )


def realtime(rows: Any, ts: Any = 1.0, quality: Any = StatusCode.GOOD, **values: Any) -> Batch:
    return Batch("realtime", rows, values, quality=quality, source_ts=ts)


def test_new_table_is_never_read() -> None:
    table = make_table()
    assert len(table) == 6
    assert table.version == 0
    assert np.isnan(table.column("u_a")).all()
    assert (table.column("pt") == 0).all()
    assert table.column("relay").dtype == np.uint8
    assert (table.quality("realtime") == StatusCode.BAD_NO_COMMUNICATION).all()
    assert np.isnan(table.source_ts("energy")).all()
    assert (table.comm == CommState.UNKNOWN).all()
    assert np.isnan(table.last_good).all()
    assert (table.row_version == 0).all()


def test_apply_then_snapshot_returns_what_was_written() -> None:
    clock = ManualClock(5000.0)
    table = make_table(clock)
    change = table.apply(
        realtime([1, 3], ts=4999.5, u_a=[230.1, 229.9], pt=[1, 10], relay=[True, False])
    )
    assert change.version == table.version == 1
    assert change.rows.tolist() == [1, 3]
    assert change.server_ts == 5000.0
    snap = table.snapshot(rows=[1, 3], tags=["u_a", "pt", "relay"])
    assert snap.ids.tolist() == ["M1", "M3"]
    assert snap.values["u_a"].tolist() == [230.1, 229.9]
    assert snap.values["pt"].tolist() == [1, 10]
    assert snap.values["relay"].tolist() == [1, 0]
    assert list(snap.quality) == ["realtime"]
    assert snap.quality["realtime"].tolist() == [0, 0]
    assert snap.source_ts["realtime"].tolist() == [4999.5, 4999.5]
    assert snap.server_ts.tolist() == [5000.0, 5000.0]
    assert snap.last_good.tolist() == [5000.0, 5000.0]
    assert snap.row_version.tolist() == [1, 1]
    assert snap.version == 1
    assert snap.epoch == table.epoch


def test_snapshot_is_a_copy() -> None:
    table = make_table()
    table.apply(realtime([0], u_a=[1.0]))
    snap = table.snapshot()
    snap.values["u_a"][0] = 99.0
    assert table.column("u_a")[0] == 1.0
    assert set(snap.values) == set(table.catalogue.names)
    assert set(snap.quality) == set(table.catalogue.groups)


def test_columns_are_read_only_views() -> None:
    table = make_table()
    with pytest.raises(ValueError, match="read-only"):
        table.column("u_a")[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        table.comm[0] = 1


def test_unchanged_reapply_does_not_bump_the_version_but_stamps_time() -> None:
    clock = ManualClock(100.0)
    table = make_table(clock)
    batch = realtime([0, 1], u_a=[1.0, NAN], relay=[1, 0])
    assert table.apply(batch).version == 1
    clock.advance(60)
    again = table.apply(batch)
    assert again.version == 1
    assert len(again) == 0 and not again
    assert table.server_ts[[0, 1]].tolist() == [160.0, 160.0]
    assert table.last_good[[0, 1]].tolist() == [160.0, 160.0]
    assert table.row_version[[0, 1]].tolist() == [1, 1]


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        (NAN, NAN, False),
        (NAN, 1.0, True),
        (1.0, NAN, True),
        (1.0, 1.0, False),
        (0.0, -0.0, False),
        (1.0, 1.0000001, True),
    ],
)
def test_nan_safe_change_detection(old: Any, new: Any, changed: Any) -> None:
    table = make_table()
    table.apply(realtime([0], u_a=[old]))
    before = table.version
    change = table.apply(realtime([0], u_a=[new]))
    assert (table.version > before) == changed
    assert change.rows_of("u_a").tolist() == ([0] if changed else [])


def test_change_set_says_which_tags_and_qualities_changed() -> None:
    table = make_table()
    table.apply(realtime([0, 1, 2], u_a=[1.0, 2.0, 3.0], u_b=[1.0, 2.0, 3.0]))
    change = table.apply(
        realtime(
            [0, 1, 2],
            quality=[StatusCode.GOOD, StatusCode.UNCERTAIN_LAST_USABLE_VALUE, StatusCode.GOOD],
            u_a=[1.0, 2.0, 9.0],
            u_b=[1.0, 2.0, 3.0],
        )
    )
    assert change.group == "realtime"
    assert change.rows.tolist() == [1, 2]
    assert change.quality.tolist() == [True, False]
    assert change.values["u_a"].tolist() == [False, True]
    assert change.values["u_b"].tolist() == [False, False]
    assert change.tags == ("u_a",)
    assert change.rows_of("u_b").tolist() == []
    assert change.rows_of("not_in_batch").tolist() == []
    assert change.batch.rows.tolist() == [0, 1, 2]


def test_failed_poll_keeps_last_values_and_marks_them_bad() -> None:
    clock = ManualClock(10.0)
    table = make_table(clock)
    table.apply(realtime([0, 1], ts=10.0, u_a=[220.0, 221.0], relay=[1, 1]))
    clock.advance(60)
    change = table.apply(Batch.bad("realtime", [0, 1], StatusCode.BAD_COMMUNICATION_ERROR, 70.0))
    assert change.version == 2
    assert change.quality.tolist() == [True, True]
    snap = table.snapshot(rows=[0, 1], tags=["u_a", "relay"])
    assert snap.values["u_a"].tolist() == [220.0, 221.0]
    assert snap.values["relay"].tolist() == [1, 1]
    assert snap.quality["realtime"].tolist() == [0x80050000] * 2
    assert snap.source_ts["realtime"].tolist() == [70.0, 70.0]
    assert snap.server_ts.tolist() == [70.0, 70.0]
    assert snap.last_good.tolist() == [10.0, 10.0]  # the last good reading stays


def test_bad_rows_in_a_mixed_batch_keep_their_values() -> None:
    table = make_table()
    table.apply(realtime([0, 1, 2], u_a=[1.0, 2.0, 3.0]))
    quality = [StatusCode.GOOD, StatusCode.BAD_TIMEOUT, StatusCode.UNCERTAIN_SENSOR_NOT_ACCURATE]
    change = table.apply(realtime([2, 1, 0], quality=quality[::-1], u_a=[30.0, 20.0, 10.0]))
    assert table.column("u_a")[[0, 1, 2]].tolist() == [10.0, 2.0, 30.0]
    assert change.rows.tolist() == [2, 1, 0]
    assert change.values["u_a"].tolist() == [True, False, True]
    assert change.quality.tolist() == [True, True, False]


def test_a_group_only_touches_its_own_quality_and_versions() -> None:
    table = make_table()
    table.apply(Batch("energy", [0], {"e_total": [12.5]}, source_ts=3.0))
    assert table.quality("energy")[0] == StatusCode.GOOD
    assert table.quality("realtime")[0] == StatusCode.BAD_NO_COMMUNICATION
    assert table.group_version("energy")[0] == 1
    assert table.group_version("realtime")[0] == 0
    assert np.isnan(table.source_ts("realtime")[0])


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (Batch("fast", [0], {}, source_ts=0.0), "unknown tag group 'fast'"),
        (Batch("realtime", [0], {"volts": [1.0]}, source_ts=0.0), "unknown tag.*'volts'"),
        (Batch("realtime", [0], {"e_total": [1.0]}, source_ts=0.0), "'e_total' \\(group energy\\)"),
        (Batch("realtime", [6], {"u_a": [1.0]}, source_ts=0.0), r"must be in 0\.\.5, got 6\.\.6"),
        (Batch("realtime", [-1], {"u_a": [1.0]}, source_ts=0.0), r"got -1\.\.-1"),
        (Batch("realtime", [2, 1, 2], {"u_a": [1.0] * 3}, source_ts=0.0), "1 row.*more than once"),
        (Batch("realtime", [1, 1], {"u_a": [1.0] * 2}, source_ts=0.0), "more than once"),
        (Batch("realtime", [0], {"pt": [1.5]}, source_ts=0.0), r"'pt' \(int\) needs integers"),
    ],
)
def test_invalid_batches_change_nothing(batch: Any, message: Any) -> None:
    table = make_table()
    table.apply(realtime([0, 1, 2], u_a=[5.0, 5.0, 5.0]))
    before = table.snapshot()
    with pytest.raises(ValueError, match=message):
        table.apply(batch)
    after = table.snapshot()
    assert after.version == before.version
    assert after.values["u_a"].tolist()[:3] == [5.0, 5.0, 5.0]
    assert (after.quality["realtime"] == before.quality["realtime"]).all()
    assert np.array_equal(after.server_ts, before.server_ts, equal_nan=True)


def test_set_comm_changes_state_once_and_records_since() -> None:
    clock = ManualClock(50.0)
    table = make_table(clock)
    change = table.set_comm([0, 1, 2], CommState.ONLINE)
    assert change.version == 1
    assert change.rows.tolist() == [0, 1, 2]
    assert change.previous.tolist() == [CommState.UNKNOWN] * 3
    assert table.comm_since[[0, 1, 2]].tolist() == [50.0] * 3
    clock.advance(10)
    again = table.set_comm([0, 1, 2], [CommState.ONLINE, CommState.OFFLINE, CommState.ONLINE])
    assert again.version == 2
    assert again.rows.tolist() == [1]
    assert again.previous.tolist() == [CommState.ONLINE]
    assert again.state.tolist() == [CommState.OFFLINE]
    assert table.comm_since[[0, 1]].tolist() == [50.0, 60.0]
    assert table.row_version[[0, 1]].tolist() == [1, 2]
    unchanged = table.set_comm([1], CommState.OFFLINE, ts=99.0)
    assert not unchanged and table.version == 2


@pytest.mark.parametrize(
    ("rows", "state", "message"),
    [
        ([0], 7, "state must be a CommState"),
        ([0], 1.0, "state must be a CommState"),
        ([9], CommState.ONLINE, r"must be in 0\.\.5"),
        ([[0]], CommState.ONLINE, "1-D"),
    ],
)
def test_set_comm_rejects_bad_arguments(rows: Any, state: Any, message: Any) -> None:
    with pytest.raises(ValueError, match=message):
        make_table().set_comm(rows, state)


def test_deltas_return_rows_changed_after_a_version() -> None:
    table = make_table()
    table.apply(realtime([0, 1], u_a=[1.0, 2.0]))
    mark = table.version
    table.apply(realtime([1, 2], u_a=[2.0, 3.0]))  # row 1 unchanged
    table.apply(Batch("energy", [4], {"e_total": [7.0]}, source_ts=0.0))
    table.set_comm([5], CommState.OFFLINE)
    delta = table.deltas(mark)
    assert delta.rows.tolist() == [2, 4, 5]
    assert delta.version == table.version == mark + 3
    assert delta.ids.tolist() == ["M2", "M4", "M5"]
    realtime_only = table.deltas(mark, tags=["u_a"])
    assert realtime_only.rows.tolist() == [2, 5]  # comm changes go with every tag filter
    assert set(realtime_only.values) == {"u_a"}
    assert set(realtime_only.quality) == {"realtime"}
    assert len(table.deltas(table.version)) == 0


@pytest.mark.parametrize("since", [-1, 99])
def test_deltas_reject_versions_outside_the_table(since: Any) -> None:
    with pytest.raises(ValueError, match="since_version must be between 0 and"):
        make_table().deltas(since)


def test_snapshot_and_deltas_reject_unknown_tags_and_rows() -> None:
    table = make_table()
    with pytest.raises(ValueError, match=r"unknown tag.*'volts'"):
        table.snapshot(tags=["volts"])
    with pytest.raises(ValueError, match=r"unknown tag.*'volts'"):
        table.deltas(0, tags=["volts"])
    with pytest.raises(ValueError, match="snapshot: row indices"):
        table.snapshot(rows=[10])
    with pytest.raises(ValueError, match="unknown tag 'volts'"):
        table.column("volts")
    with pytest.raises(ValueError, match="unknown tag group"):
        table.quality("fast")


def test_rows_for_maps_ids_and_names_unknown_ones() -> None:
    table = make_table()
    assert table.rows_for(["M3", "M0"]).tolist() == [3, 0]
    with pytest.raises(ValueError, match="unknown meter ids: 'X1', 'X2'"):
        table.rows_for(["M1", "X1", "X2"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"areas": ["A"]}, "areas has 1 entries, expected one per meter"),
        ({"meter_ids": ["M0", "M0"]}, "'M0' already used by row 0"),
        ({"meter_ids": ["M0", ""]}, r"meter_ids\[1\]: must be a non-empty string"),
        ({"gateways": ["G1", ""]}, r"gateways\[1\]"),
        ({"areas": ["A", 3]}, r"areas\[1\]"),
    ],
)
def test_construction_is_validated(kwargs: Any, message: Any) -> None:
    arguments = {
        "meter_ids": ["M0", "M1"],
        "areas": ["A", "A"],
        "gateways": ["G1", None],
        "three_phase": [True, False],
    } | kwargs
    ids = arguments.pop("meter_ids")
    with pytest.raises(ValueError, match=message):
        TagTable(ids, **arguments)


def test_version_is_monotonic_over_mixed_writes() -> None:
    clock = ManualClock()
    table = make_table(clock)
    seen = [table.version]
    for step in range(20):
        clock.advance(1)
        if step % 3 == 0:
            table.set_comm([step % 6], CommState(step % 3))
        else:
            table.apply(realtime([step % 6], u_a=[float(step // 2)]))
        seen.append(table.version)
    assert seen == sorted(seen)
    assert table.row_version.max() == table.version


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(10.0)
    assert clock.time() == 10.0
    assert clock.advance(2.5) == 12.5
    clock.set(5.0)
    assert clock.time() == 5.0
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="finite"):
        clock.set(math.inf)


def test_system_clock_is_the_default() -> None:
    table = TagTable(["M0"], areas=["A"], gateways=[None], three_phase=[False])
    assert isinstance(table.clock, SystemClock)
    before = SystemClock().time()
    table.apply(realtime([0], u_a=[1.0]))
    assert table.server_ts[0] >= before
