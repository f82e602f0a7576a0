"""Batches: broadcasting of quality and timestamps, shape checks, failed polls, dtypes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from config.catalogue import default_catalogue
from server.tags import Batch, StatusCode


def test_scalars_are_broadcast_per_row() -> None:
    batch = Batch("realtime", [3, 1, 2], {"u_a": [1.0, 2.0, 3.0]}, source_ts=10.0)
    assert len(batch) == 3
    assert batch.rows.dtype == np.int64
    assert batch.quality.tolist() == [0, 0, 0]
    assert batch.quality.dtype == np.uint32
    assert batch.source_ts.tolist() == [10.0, 10.0, 10.0]


def test_per_row_quality_and_timestamps_are_kept() -> None:
    quality = [StatusCode.GOOD, StatusCode.BAD_TIMEOUT]
    batch = Batch("energy", [0, 1], {}, quality=quality, source_ts=[1.0, 2.0])
    assert batch.quality.tolist() == [0, 0x800A0000]
    assert batch.source_ts.tolist() == [1.0, 2.0]


def test_values_are_read_only() -> None:
    batch = Batch("realtime", [0], {"u_a": [1.0]}, source_ts=0.0)
    with pytest.raises(TypeError):
        batch.values["u_b"] = np.zeros(1)  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": [[0, 1]]}, "1-D array of row indices"),
        ({"rows": [0.5]}, "rows must be integers"),
        ({"values": {"u_a": [1.0, 2.0]}}, r"tag 'u_a' has shape \(2,\), expected \(1,\)"),
        ({"values": {"u_a": 1.0}}, r"tag 'u_a' has shape \(\)"),
        ({"quality": [0, 0]}, r"quality has shape \(2,\)"),
        ({"quality": 1.5}, "quality must be integer"),
        ({"quality": -1}, "fit in 32 bits"),
        ({"source_ts": [1.0, 2.0]}, r"source_ts has shape \(2,\)"),
        ({"source_ts": "noon"}, "source_ts must be Unix seconds"),
    ],
)
def test_malformed_batches_are_rejected(kwargs: Any, message: Any) -> None:
    arguments = {"rows": [0], "values": {"u_a": [1.0]}, "source_ts": 0.0} | kwargs
    rows = arguments.pop("rows")
    values = arguments.pop("values")
    with pytest.raises(ValueError, match=message):
        Batch("realtime", rows, values, **arguments)


def test_empty_batch_is_allowed() -> None:
    batch = Batch("realtime", [], {"u_a": []}, source_ts=0.0)
    assert len(batch) == 0
    assert batch.rows.dtype == np.int64


def test_bad_batch_has_no_values_and_the_code() -> None:
    batch = Batch.bad("prepaid", np.array([4, 5]), StatusCode.BAD_COMMUNICATION_ERROR, 99.0)
    assert dict(batch.values) == {}
    assert batch.quality.tolist() == [0x80050000] * 2
    assert batch.source_ts.tolist() == [99.0, 99.0]


@pytest.mark.parametrize("code", [StatusCode.GOOD, StatusCode.UNCERTAIN_LAST_USABLE_VALUE])
def test_bad_batch_needs_a_bad_code(code: Any) -> None:
    with pytest.raises(ValueError, match="needs a bad StatusCode"):
        Batch.bad("realtime", [0], code, 0.0)


@pytest.mark.parametrize(
    ("tag", "values", "expected", "dtype"),
    [
        ("u_a", np.array([1, 2], dtype=np.int16), [1.0, 2.0], np.float64),
        ("u_a", np.array([True, False]), [1.0, 0.0], np.float64),
        ("pt", np.array([1, 2], dtype=np.uint16), [1, 2], np.int64),
        ("relay", np.array([True, False]), [1, 0], np.uint8),
        ("relay", np.array([0, 7], dtype=np.int32), [0, 1], np.uint8),
    ],
)
def test_column_converts_to_the_tag_dtype(tag: Any, values: Any, expected: Any, dtype: Any) -> None:
    definition = default_catalogue().tag(tag)
    batch = Batch(definition.group, [0, 1], {tag: values}, source_ts=0.0)
    column = batch.column(definition)
    assert column.dtype == np.dtype(dtype)
    assert column.tolist() == expected


@pytest.mark.parametrize(
    ("tag", "values", "message"),
    [
        ("pt", np.array([1.0, 2.0]), r"tag 'pt' \(int\) needs integers"),
        ("relay", np.array([0.0, 1.0]), r"tag 'relay' \(bool\) needs integers"),
        ("u_a", np.array(["1", "2"]), r"tag 'u_a' \(float\) needs numbers"),
        ("pt", np.array([1, 2**63], dtype=np.uint64), "does not fit in int64"),
    ],
)
def test_column_rejects_values_that_do_not_fit(tag: Any, values: Any, message: Any) -> None:
    definition = default_catalogue().tag(tag)
    batch = Batch(definition.group, [0, 1], {tag: values}, source_ts=0.0)
    with pytest.raises(ValueError, match=message):
        batch.column(definition)


def test_empty_lists_fit_any_tag() -> None:
    batch = Batch("realtime", [], {"pt": [], "relay": []}, quality=[], source_ts=[])
    assert batch.quality.dtype == np.uint32
    assert batch.column(default_catalogue().tag("pt")).dtype == np.int64
    assert batch.column(default_catalogue().tag("relay")).dtype == np.uint8
