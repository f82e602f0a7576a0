"""On-delay, off-delay, deadband hysteresis and chattering, with a manual clock."""

from __future__ import annotations

import pytest

from alarms.kinds import AlarmKind
from alarms.states import AlarmEvent, AlarmState
from config.model import AlarmLimits
from server.tags import StatusCode
from tests.alarms.park import Rig, meter, site

K = AlarmKind
S = AlarmState


def under_rig(**limits: float) -> Rig:
    return Rig(site([meter("M1", three_phase=False)], limits=AlarmLimits(**limits)))  # type: ignore[arg-type]


def test_on_delay_needs_the_condition_to_hold() -> None:
    rig = under_rig(undervoltage_delay_s=60)
    rig.realtime({"u_a": 150.0})
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.NORMAL
    assert rig.advance(59) == []
    [raised] = rig.advance(1)
    assert (raised.kind, raised.target, raised.event) == (K.UNDERVOLTAGE, "M1", AlarmEvent.ACTIVATE)
    assert raised.to_state is S.UNACKED
    assert raised.value == 150.0 and raised.limit == pytest.approx(187.0)


def test_a_dip_shorter_than_the_on_delay_restarts_it() -> None:
    rig = under_rig(undervoltage_delay_s=60)
    rig.realtime({"u_a": 150.0})
    rig.clock.advance(50)
    rig.realtime({"u_a": 220.0})
    rig.clock.advance(5)
    rig.realtime({"u_a": 150.0})
    assert rig.advance(50) == []
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.NORMAL
    rig.advance(10)
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.UNACKED


def test_off_delay_holds_the_alarm() -> None:
    rig = under_rig(undervoltage_delay_s=0, off_delay_s=30)
    rig.realtime({"u_a": 150.0})
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.UNACKED
    rig.realtime({"u_a": 220.0})
    assert rig.advance(29) == []
    [cleared] = rig.advance(1)
    assert cleared.to_state is S.RTN_UNACKED and cleared.event is AlarmEvent.CLEAR


def test_deadband_hysteresis() -> None:
    # Limit 187 V, deadband 0.02 × 220 = 4.4 V: it clears only at 191.4 V or above.
    rig = under_rig(undervoltage_delay_s=0)
    rig.realtime({"u_a": 186.0})
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.UNACKED
    rig.realtime({"u_a": 188.0})
    rig.realtime({"u_a": 191.0})
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.UNACKED
    rig.realtime({"u_a": 191.5})
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.RTN_UNACKED
    rig.realtime({"u_a": 188.0})
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.RTN_UNACKED


def test_bad_quality_neither_raises_nor_clears() -> None:
    rig = under_rig(undervoltage_delay_s=0)
    rig.realtime({"u_a": 150.0})
    rig.realtime({"u_a": 220.0}, quality=StatusCode.BAD_TIMEOUT)
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.UNACKED
    rig.realtime({"u_a": 220.0})
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.RTN_UNACKED


def square_wave(rig: Rig, low: float, high: float, half_period_s: float, cycles: int) -> None:
    for _ in range(cycles):
        rig.realtime({"u_a": low})
        rig.clock.advance(half_period_s)
        rig.realtime({"u_a": high})
        rig.clock.advance(half_period_s)


def test_square_wave_across_the_deadband_chatters() -> None:
    rig = under_rig(undervoltage_delay_s=0)
    square_wave(rig, 180.0, 200.0, 5.0, 2)
    assert not rig.engine.chattering(K.UNDERVOLTAGE, "M1")
    square_wave(rig, 180.0, 200.0, 5.0, 1)
    assert rig.engine.chattering(K.UNDERVOLTAGE, "M1")
    [entry] = rig.engine.active()
    assert entry.chattering
    rig.advance(60)
    assert not rig.engine.chattering(K.UNDERVOLTAGE, "M1")


def test_slow_square_wave_does_not_chatter() -> None:
    rig = under_rig(undervoltage_delay_s=0)
    square_wave(rig, 180.0, 200.0, 15.0, 5)
    assert not rig.engine.chattering(K.UNDERVOLTAGE, "M1")


def test_square_wave_inside_the_deadband_never_flips() -> None:
    rig = under_rig(undervoltage_delay_s=0)
    rig.realtime({"u_a": 180.0})
    rig.log.clear()
    square_wave(rig, 185.0, 189.0, 5.0, 6)
    assert rig.log == []
    assert not rig.engine.chattering(K.UNDERVOLTAGE, "M1")


def test_on_delay_filters_a_fast_square_wave() -> None:
    rig = under_rig(undervoltage_delay_s=60)
    square_wave(rig, 180.0, 200.0, 5.0, 10)
    assert rig.log == []
