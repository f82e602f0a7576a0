"""Selecting rows by area, gateway, id, comm state, quality, flags and predicates."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from server.clock import ManualClock
from server.tags import Batch, CommState, Severity, StatusCode, TagTable

# row:       0      1      2      3     4     5
AREAS = ["ENT", "ENT", "DORM", "DORM", "ENT", "COMMON"]
GATEWAYS = ["G1", "G1", "G2", "G2", None, None]


@pytest.fixture
def table() -> TagTable:
    tags = TagTable(
        [f"M{i}" for i in range(6)],
        areas=AREAS,
        gateways=GATEWAYS,
        three_phase=[True, False, True, False, True, False],
        clock=ManualClock(),
    )
    tags.apply(
        Batch(
            "realtime",
            [0, 1, 2, 3],
            {"relay": [1, 0, 1, 0], "p": [5.0, 0.0, 12.0, 1.0]},
            quality=[0, 0, StatusCode.UNCERTAIN_LAST_USABLE_VALUE, StatusCode.BAD_TIMEOUT],
            source_ts=1.0,
        )
    )
    tags.set_comm([0, 1, 2], CommState.ONLINE)
    tags.set_comm([3], CommState.OFFLINE)
    return tags


@pytest.mark.parametrize(
    ("kwargs", "rows"),
    [
        ({}, [0, 1, 2, 3, 4, 5]),
        ({"area": "ENT"}, [0, 1, 4]),
        ({"area": ["DORM", "COMMON"]}, [2, 3, 5]),
        ({"gateway": "G2"}, [2, 3]),
        ({"gateway": ["G1", "G2"], "area": "DORM"}, [2, 3]),
        ({"direct": True}, [4, 5]),
        ({"direct": False}, [0, 1, 2, 3]),
        ({"ids": ["M5", "M1"]}, [1, 5]),
        ({"comm": CommState.OFFLINE}, [3]),
        ({"comm": [CommState.UNKNOWN, CommState.OFFLINE]}, [3, 4, 5]),
        ({"quality": ("realtime", Severity.BAD)}, [3, 4, 5]),
        ({"quality": ("realtime", Severity.UNCERTAIN)}, [2]),
        ({"quality": ("realtime", Severity.GOOD)}, [0, 1]),
        ({"quality": ("energy", Severity.BAD)}, [0, 1, 2, 3, 4, 5]),
        ({"flags": {"relay": True}}, [0, 2]),
        ({"flags": {"relay": False}, "quality": ("realtime", Severity.GOOD)}, [1]),
        ({"predicate": lambda t: t.column("p") > 4.0}, [0, 2]),
        ({"predicate": lambda t: t.meters.three_phase, "area": "ENT"}, [0, 4]),
    ],
)
def test_select(table: TagTable, kwargs: Any, rows: Any) -> None:
    selected = table.select(**kwargs)
    assert selected.dtype == np.int64
    assert selected.tolist() == rows


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"area": "NOWHERE"}, r"unknown area\(s\): 'NOWHERE'"),
        ({"gateway": ["G1", "G9"]}, r"unknown gateway\(s\): 'G9'"),
        ({"ids": ["M9"]}, "unknown meter ids: 'M9'"),
        ({"quality": ("fast", Severity.BAD)}, "unknown tag group 'fast'"),
        ({"flags": {"p": True}}, "tag 'p' is float, not bool"),
        ({"flags": {"volts": True}}, "unknown tag"),
        ({"predicate": lambda t: t.column("p")}, "predicate must return a bool mask"),
        ({"predicate": lambda t: np.ones(2, dtype=bool)}, "predicate must return a bool mask"),
    ],
)
def test_select_rejects_unknown_filters(table: TagTable, kwargs: Any, message: Any) -> None:
    with pytest.raises(ValueError, match=message):
        table.select(**kwargs)


def test_meter_attributes_per_row(table: TagTable) -> None:
    rows = np.array([0, 2, 4])
    assert table.meters.area_of(rows) == ["ENT", "DORM", "ENT"]
    assert table.meters.gateway_of(rows) == ["G1", "G2", None]
    assert table.meters.area_names == ("ENT", "DORM", "COMMON")
    assert table.meters.gateway_names == ("G1", "G2")
    assert table.meters.row("M3") == 3
    with pytest.raises(KeyError, match="unknown meter id 'M9'"):
        table.meters.row("M9")
