"""Fault injection: voltage faults in the physics, and the flags the protocol servers consult."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.clock import ManualClock
from sim.daytables import DayTables, flat_grid
from sim.faults import FaultError, FaultTable
from sim.fleet import Fleet

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2024, 3, 5, 10, 0, tzinfo=SH).timestamp()
UN = 220.0


def make_fleet(clock: ManualClock, n: int = 4) -> Fleet:
    fleet = Fleet(
        [f"M{i}" for i in range(n)],
        [i % 2 == 0 for i in range(n)],
        ["enterprise"] * n,
        [1] * n,
        [1] * n,
        [math.nan] * n,
        DayTables.shared(flat_grid(), n),
        3,
        UN,
        "Asia/Shanghai",
        gateway_ids=["GW1", "GW2"],
        clock=clock,
        start=clock.time(),
    )
    fleet.set_load(range(n), 3.0)
    return fleet


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def test_phase_loss_shows_in_voltages_and_power(clock: ManualClock) -> None:
    fleet = make_fleet(clock)
    fleet.faults.phase_loss(0, "B")
    fleet.faults.phase_loss(2, "AC", residual=0.0)
    tags = fleet.tags()
    assert tags["u_b"][0] < 0.03 * UN and 0.98 * UN <= tags["u_a"][0] <= 1.02 * UN
    assert tags["u_a"][2] == 0.0 and tags["u_c"][2] == 0.0 and tags["u_b"][2] > 0.9 * UN
    assert tags["i_a"][2] == 0.0 and tags["p_c"][2] == 0.0
    assert tags["p_b"][0] < 0.001 * tags["p_a"][0]
    assert tags["p"][2] == pytest.approx(1.0)  # one phase of three left
    assert 0.98 * UN <= tags["u_a"][1] <= 1.02 * UN  # other meters untouched
    assert np.isnan(tags["u_b"][1])  # single-phase


def test_undervoltage_and_its_expiry_inside_one_step(clock: ManualClock) -> None:
    fleet = make_fleet(clock)
    fleet.faults.undervoltage([0, 1], 0.8, duration_s=1800)
    tags = fleet.tags()
    for phase in "abc":
        assert np.all(np.abs(tags[f"u_{phase}"][0] / (0.8 * UN) - 1) <= 0.02)
    assert np.all(np.abs(tags["u_a"][1] / (0.8 * UN) - 1) <= 0.02)
    assert tags["p"][0] == pytest.approx(3.0 * 0.64)  # constant impedance: P ∝ U²
    fleet.step(START + 3600)  # half an hour low, half an hour normal
    assert int(fleet.energy.total[0]) == round(100 * 3.0 * (0.5 * 0.64 + 0.5))
    assert int(fleet.energy.total[2]) == 300
    tags = fleet.tags()
    assert 0.98 * UN <= tags["u_a"][0] <= 1.02 * UN


def test_phase_loss_expiry_in_a_long_step(clock: ManualClock) -> None:
    fleet = make_fleet(clock)
    fleet.faults.phase_loss(0, "B", residual=0.0, duration_s=1800)
    fleet.step(START + 3600)
    assert int(fleet.energy.total[0]) == 100 + 150  # 2 kW for 30 min, then 3 kW


def test_meter_fault_bit(clock: ManualClock) -> None:
    fleet = make_fleet(clock)
    fleet.faults.meter_fault(1, duration_s=60)
    tags = fleet.tags()
    assert tags["fault"].tolist() == [0, 1, 0, 0]
    assert tags["status_word"][1] & 0x100
    clock.advance(61)
    fleet.step(clock.time())
    assert fleet.tags()["fault"][1] == 0


def test_silent_meter_with_expiry(clock: ManualClock) -> None:
    faults = FaultTable(["A", "B"], clock=clock)
    faults.silence(faults.rows_of(["B"]), duration_s=120)
    assert not faults.is_silent(0) and faults.is_silent(1)
    clock.advance(119)
    assert faults.is_silent(1)
    clock.advance(1)
    assert not faults.is_silent(1)
    faults.silence(0)
    assert faults.is_silent(0, now=START + 10 * 365 * 86400)


def test_gateway_down_and_flapping(clock: ManualClock) -> None:
    faults = FaultTable(["A"], ["GW1", "GW2"], clock=clock)
    faults.gateway_outage("GW1", duration_s=300)
    faults.gateway_outage("GW2", period_s=60, down_s=20)
    assert faults.gateway_down("GW1", START + 299) and not faults.gateway_down("GW1", START + 300)
    pattern = [faults.gateway_down("GW2", START + t) for t in (0, 19, 20, 59, 60, 79, 80)]
    assert pattern == [True, True, False, False, True, True, False]
    assert not faults.gateway_down("GW2", START - 1)
    faults.clear("gateway_down", gateways=["GW2"])
    assert not faults.gateway_down("GW2", START) and faults.gateway_down("GW1", START)
    with pytest.raises(FaultError, match="unknown gateway"):
        faults.gateway_down("GW9", START)
    with pytest.raises(FaultError, match="period_s"):
        faults.gateway_outage("GW1", period_s=60)
    with pytest.raises(FaultError, match="down_s"):
        faults.gateway_outage("GW1", period_s=60, down_s=60)


def test_corrupt_frames_and_slow_replies(clock: ManualClock) -> None:
    faults = FaultTable(["A", "B", "C"], clock=clock, seed=5)
    faults.corrupt_frames(0, 1.0)
    faults.corrupt_frames(1, 0.5, duration_s=10)
    faults.slow_replies(2, 250.0)
    assert all(faults.corrupt(0) for _ in range(20))
    draws = [faults.corrupt(1) for _ in range(400)]
    assert 120 < sum(draws) < 280
    assert not faults.corrupt(2)
    assert faults.delay_s(2) == pytest.approx(0.25) and faults.delay_s(0) == 0.0
    clock.advance(10)
    assert not any(faults.corrupt(1) for _ in range(50))
    again = FaultTable(["A", "B", "C"], clock=ManualClock(START), seed=5)
    again.corrupt_frames([0, 1], 1.0)
    assert all(again.corrupt(0) for _ in range(20))
    again.corrupt_frames(1, 0.5, duration_s=10)
    assert [again.corrupt(1) for _ in range(400)] == draws


def test_clear_by_kind_rows_and_everything(clock: ManualClock) -> None:
    faults = FaultTable(["A", "B"], ["GW1"], clock=clock)
    faults.silence([0, 1])
    faults.slow_replies([0, 1], 100)
    faults.gateway_outage("GW1")
    faults.clear("silent", rows=[0])
    assert not faults.is_silent(0) and faults.is_silent(1) and faults.delay_s(0) > 0
    faults.clear(rows=[1])
    assert not faults.is_silent(1) and faults.delay_s(1) == 0 and faults.delay_s(0) > 0
    assert faults.gateway_down("GW1")
    faults.clear()
    assert faults.describe() == []
    with pytest.raises(FaultError, match="kind"):
        faults.clear("lightning")  # type: ignore[arg-type]


def test_describe_is_json_ready(clock: ManualClock) -> None:
    faults = FaultTable(["A", "B"], ["GW1"], clock=clock)
    faults.phase_loss(1, "bc", duration_s=60)
    faults.undervoltage(0, 0.75)
    faults.gateway_outage("GW1", period_s=30, down_s=5)
    records = json.loads(json.dumps(faults.describe()))
    assert {
        "kind": "phase_loss",
        "meter": "B",
        "until": START + 60,
        "phases": "BC",
        "residual": 0.02,
    } in records
    assert {"kind": "undervoltage", "meter": "A", "until": None, "ratio": 0.75} in records
    assert {
        "kind": "gateway_down",
        "gateway": "GW1",
        "until": None,
        "period_s": 30.0,
        "down_s": 5.0,
    } in records


@pytest.mark.parametrize(
    ("inject", "message"),
    [
        (lambda f: f.phase_loss(0, "ABC"), "phases"),
        (lambda f: f.phase_loss(0, "X"), "phases"),
        (lambda f: f.phase_loss(0, "A", residual=0.5), "residual"),
        (lambda f: f.undervoltage(0, 1.2), "ratio"),
        (lambda f: f.corrupt_frames(0, 0.0), "probability"),
        (lambda f: f.slow_replies(0, -5), "delay_ms"),
        (lambda f: f.silence(0, duration_s=0), "duration_s"),
        (lambda f: f.silence(0, duration_s=math.nan), "duration_s"),
        (lambda f: f.silence(5), "meters"),
        (lambda f: f.rows_of(["nope"]), "unknown meter"),
    ],
)
def test_bad_requests_are_named(
    clock: ManualClock, inject: Callable[[FaultTable], object], message: str
) -> None:
    faults = FaultTable(["A", "B"], clock=clock)
    with pytest.raises(FaultError, match=message):
        inject(faults)


@given(
    lost=st.sets(st.sampled_from("ABC"), min_size=1, max_size=2),
    ratio=st.floats(min_value=0.3, max_value=0.99),
    order=st.booleans(),
)
def test_voltage_factors_combine_phase_loss_and_undervoltage(
    lost: set[str], ratio: float, order: bool
) -> None:
    faults = FaultTable(["A", "B"], clock=ManualClock(START))
    phases = "".join(sorted(lost))
    if order:
        faults.phase_loss(0, phases, residual=0.01)
        faults.undervoltage(0, ratio)
    else:
        faults.undervoltage(0, ratio)
        faults.phase_loss(0, phases, residual=0.01)
    rows, factors = faults.voltage_factors(np.array([START]))
    assert rows.tolist() == [0]
    expected = [0.01 if p in lost else ratio for p in "ABC"]
    np.testing.assert_allclose(factors[0, 0], expected)
