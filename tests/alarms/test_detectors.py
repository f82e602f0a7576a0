"""Each detector, table-driven on small tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alarms.detectors import detect_meters, gateway_unreachable
from alarms.kinds import METER_KINDS, AlarmKind
from alarms.limits import LimitColumns
from config.model import AlarmLimits, AlarmOverride
from server.tags import CommState, StatusCode
from tests.alarms.park import Rig, meter, site

K = AlarmKind
NAN = math.nan


def detect(
    rig: Rig, *, commanded_open: bool = False, now: float | None = None
) -> dict[AlarmKind, bool]:
    """The raw conditions of meter M1 as {kind: bool}."""
    count = len(rig.table)
    previous = np.zeros((len(METER_KINDS), count), dtype=np.bool_)
    cond = detect_meters(
        rig.table,
        rig.engine.limits,
        previous,
        np.full(count, commanded_open),
        rig.engine._last_good_realtime,
        rig.engine._started,
        rig.clock.time() if now is None else now,
    )
    return {kind: bool(cond[kind, 0]) for kind in METER_KINDS}


VOLTAGE_CASES = [
    # three_phase, (u_a, u_b, u_c), phase loss, undervoltage, overvoltage
    (True, (220, 220, 220), False, False, False),
    (True, (220, 220, 10), True, True, False),
    (True, (10, 10, 220), True, True, False),
    (True, (10, 10, 10), False, True, False),
    (True, (100, 220, 220), False, True, False),
    (True, (186, 220, 220), False, True, False),
    (True, (188, 220, 220), False, False, False),
    (True, (220, 243, 220), False, False, True),
    (True, (220, 241, 220), False, False, False),
    (True, (NAN, NAN, NAN), False, False, False),
    (False, (220, 0, 0), False, False, False),
    (False, (10, 0, 0), False, True, False),
    (False, (250, 0, 0), False, False, True),
]


@pytest.mark.parametrize(("three", "volts", "loss", "under", "over"), VOLTAGE_CASES)
def test_voltage_detectors(
    three: bool, volts: tuple[float, float, float], loss: bool, under: bool, over: bool
) -> None:
    rig = Rig(site([meter("M1", three_phase=three)]))
    rig.realtime(dict(zip(("u_a", "u_b", "u_c"), volts, strict=True)))
    cond = detect(rig)
    assert (cond[K.PHASE_LOSS], cond[K.UNDERVOLTAGE], cond[K.OVERVOLTAGE]) == (loss, under, over)


def test_area_and_meter_overrides_move_the_limits() -> None:
    overrides = (
        AlarmOverride("DORM", None, (("undervoltage_ratio", 0.80),)),
        AlarmOverride(None, "M3", (("undervoltage_ratio", 0.90),)),
    )
    park = site(
        [meter("M1"), meter("M2", area="DORM"), meter("M3", area="DORM")], overrides=overrides
    )
    limits = LimitColumns.from_site(park, Rig(park).table)
    assert limits.undervoltage_v.tolist() == pytest.approx([187.0, 176.0, 198.0])


@pytest.mark.parametrize(
    ("values", "quality", "commanded", "kind", "expected"),
    [
        ({"relay": 0}, StatusCode.GOOD, False, K.UNEXPECTED_TRIP, True),
        ({"relay": 0}, StatusCode.GOOD, True, K.UNEXPECTED_TRIP, False),
        ({"relay": 1}, StatusCode.GOOD, False, K.UNEXPECTED_TRIP, False),
        ({"fault": 1}, StatusCode.GOOD, False, K.METER_FAULT, True),
        ({"fault": 0}, StatusCode.GOOD, False, K.METER_FAULT, False),
        ({"p": 31.0}, StatusCode.GOOD, False, K.OVER_POWER, True),
        ({"p": 29.0}, StatusCode.GOOD, False, K.OVER_POWER, False),
        ({"p": 1.0, "over_limit": 1}, StatusCode.GOOD, False, K.OVER_POWER, True),
        ({"u_a": 10.0}, StatusCode.UNCERTAIN, False, K.UNDERVOLTAGE, False),
        ({"u_a": 10.0}, StatusCode.BAD_TIMEOUT, False, K.UNDERVOLTAGE, False),
    ],
)
def test_bit_and_power_detectors(
    values: dict[str, float], quality: int, commanded: bool, kind: AlarmKind, expected: bool
) -> None:
    rig = Rig(site([meter("M1", power_limit_kw="30")]))
    rig.realtime(values, quality=quality)
    assert detect(rig, commanded_open=commanded)[kind] is expected


def test_a_bad_first_reading_never_raises_a_value_alarm() -> None:
    rig = Rig(site([meter("M1", power_limit_kw="30")]))
    rig.realtime({"relay": 0, "fault": 1, "p": 99.0, "u_a": 0.0}, quality=StatusCode.BAD_TIMEOUT)
    cond = detect(rig)
    assert not any(cond[k] for k in METER_KINDS if k is not K.LOST_COMM)


def test_no_power_limit_means_no_over_power() -> None:
    rig = Rig(site([meter("M1")]))
    rig.realtime({"p": 1e6})
    assert detect(rig)[K.OVER_POWER] is False


BALANCE_CASES = [
    # billing, balance, arrears, low 1, low 2
    ("prepaid", 5_000, False, False, False),
    ("prepaid", 999, False, True, False),
    ("prepaid", 199, False, False, True),
    ("prepaid", -1, True, False, False),
    ("postpaid", -1, False, False, True),
    ("none", -500, False, False, False),
]


@pytest.mark.parametrize(("billing", "fen", "arrears", "low1", "low2"), BALANCE_CASES)
def test_balance_detectors(billing: str, fen: int, arrears: bool, low1: bool, low2: bool) -> None:
    rig = Rig(site([meter("M1", billing=billing, alarm1_fen=1_000, alarm2_fen=200)]))
    rig.balance(fen)
    cond = detect(rig)
    assert (cond[K.ARREARS], cond[K.LOW_BALANCE_1], cond[K.LOW_BALANCE_2]) == (arrears, low1, low2)


def test_no_alarm_levels_means_no_low_balance() -> None:
    rig = Rig(site([meter("M1")]))
    rig.balance(-5)
    cond = detect(rig)
    assert cond[K.ARREARS] and not cond[K.LOW_BALANCE_1] and not cond[K.LOW_BALANCE_2]


def test_lost_comm_by_comm_state_and_by_missed_polls() -> None:
    rig = Rig(site([meter("M1")]))
    rig.realtime()
    assert detect(rig)[K.LOST_COMM] is False
    period = 3 * 60
    assert detect(rig, now=rig.clock.time() + period - 1)[K.LOST_COMM] is False
    assert detect(rig, now=rig.clock.time() + period + 1)[K.LOST_COMM] is True
    rig.realtime(quality=StatusCode.BAD_TIMEOUT)
    assert detect(rig, now=rig.clock.time() + period - 1)[K.LOST_COMM] is False
    rig.table.set_comm([0], CommState.OFFLINE)
    assert detect(rig)[K.LOST_COMM] is True


def test_never_read_meters_get_a_grace_period_from_start() -> None:
    rig = Rig(site([meter("M1")], limits=AlarmLimits(lost_comm_polls=2)))
    assert detect(rig, now=rig.clock.time() + 119)[K.LOST_COMM] is False
    assert detect(rig, now=rig.clock.time() + 121)[K.LOST_COMM] is True


def test_gateway_unreachable_needs_every_meter() -> None:
    park = site([meter("A1"), meter("A2"), meter("B1", gateway="GW2"), meter("D1", gateway=None)])
    rig = Rig(park)
    rig.realtime()
    no_link = np.zeros(2, dtype=np.bool_)
    assert gateway_unreachable(rig.table, no_link).tolist() == [False, False]
    rig.realtime(ids=["A1"], quality=StatusCode.BAD_TIMEOUT)
    assert gateway_unreachable(rig.table, no_link).tolist() == [False, False]
    rig.table.set_comm(rig.table.rows_for(["A2", "D1"]), CommState.OFFLINE)
    assert gateway_unreachable(rig.table, no_link).tolist() == [True, False]
    assert gateway_unreachable(rig.table, np.array([False, True])).tolist() == [True, True]
