"""Shelving (timed, one-shot, maximum), out of service, and re-evaluation when they end."""

from __future__ import annotations

from typing import Any

import pytest

from alarms.kinds import AlarmKind
from alarms.states import AlarmEvent, AlarmState, TransitionRefused
from config.model import AlarmLimits
from tests.alarms.park import Rig, meter, of_kind, site

K = AlarmKind
S = AlarmState
UV = K.UNDERVOLTAGE


@pytest.fixture
def rig() -> Rig:
    park = site([meter("M1", three_phase=False)], limits=AlarmLimits(undervoltage_delay_s=0))
    return Rig(park, max_shelve_s=3600)


def test_timed_shelf_expires_and_re_raises_an_active_condition(rig: Rig) -> None:
    rig.realtime({"u_a": 150.0})
    now = rig.clock.time()
    [shelved] = rig.engine.shelve(UV, "M1", "ops", until=now + 600)
    assert (shelved.to_state, shelved.user, shelved.event) == (S.SHELVED, "ops", AlarmEvent.SHELVE)
    assert rig.engine.shelved_until(UV, "M1") == now + 600
    assert rig.engine.active() == [] and rig.engine.bell_count() == 0
    rig.realtime({"u_a": 220.0})
    rig.realtime({"u_a": 150.0})
    assert rig.state(UV, "M1") is S.SHELVED
    assert of_kind(rig.advance(599), UV) == []
    unshelved, raised = of_kind(rig.advance(1), UV)
    assert (unshelved.from_state, unshelved.to_state) == (S.SHELVED, S.NORMAL)
    assert (raised.from_state, raised.to_state) == (S.NORMAL, S.UNACKED)
    assert rig.engine.shelved_until(UV, "M1") is None


def test_timed_shelf_expiry_with_a_cleared_condition_stays_normal(rig: Rig) -> None:
    rig.realtime({"u_a": 150.0})
    rig.engine.shelve(UV, "M1", "ops", until=rig.clock.time() + 60)
    rig.realtime({"u_a": 220.0})
    [unshelved] = of_kind(rig.advance(60), UV)
    assert unshelved.to_state is S.NORMAL
    assert rig.state(UV, "M1") is S.NORMAL


def test_one_shot_shelf_ends_when_the_condition_returns_to_normal(rig: Rig) -> None:
    rig.realtime({"u_a": 150.0})
    rig.engine.shelve(UV, "M1", "ops", one_shot=True)
    rig.clock.advance(100)
    assert rig.realtime({"u_a": 150.0}) == []
    [unshelved] = rig.realtime({"u_a": 220.0})
    assert (unshelved.from_state, unshelved.to_state) == (S.SHELVED, S.NORMAL)
    [raised] = rig.realtime({"u_a": 150.0})
    assert raised.to_state is S.UNACKED


def test_one_shot_shelf_is_bounded_by_the_maximum(rig: Rig) -> None:
    rig.realtime({"u_a": 150.0})
    rig.engine.shelve(UV, "M1", "ops", one_shot=True)
    assert of_kind(rig.advance(3599), UV) == []
    unshelved, raised = of_kind(rig.advance(1), UV)
    assert unshelved.to_state is S.NORMAL and raised.to_state is S.UNACKED


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"until_in": 3601}, "longer than the site maximum of 3600 s"),
        ({"until_in": 0}, "must be later than now"),
        ({}, "either until"),
        ({"until_in": 60, "one_shot": True}, "either until"),
    ],
)
def test_bad_shelf_requests_are_refused(rig: Rig, kwargs: dict[str, Any], message: str) -> None:
    rig.realtime({"u_a": 150.0})
    options = dict(kwargs)
    if "until_in" in options:
        options["until"] = rig.clock.time() + options.pop("until_in")
    with pytest.raises(ValueError, match=message):
        rig.engine.shelve(UV, "M1", "ops", **options)
    assert rig.state(UV, "M1") is S.UNACKED


def test_shelf_of_exactly_the_maximum_is_accepted(rig: Rig) -> None:
    rig.engine.shelve(UV, "M1", "ops", until=rig.clock.time() + 3600)
    assert rig.state(UV, "M1") is S.SHELVED


def test_unshelve_refused_when_not_shelved(rig: Rig) -> None:
    with pytest.raises(TransitionRefused, match="not shelved"):
        rig.engine.unshelve(UV, "M1", "ops")


def test_manual_unshelve_re_evaluates(rig: Rig) -> None:
    rig.realtime({"u_a": 150.0})
    rig.engine.acknowledge(UV, "M1", "ops")
    rig.engine.shelve(UV, "M1", "ops", until=rig.clock.time() + 60)
    unshelved, raised = rig.engine.unshelve(UV, "M1", "ops")
    assert unshelved.to_state is S.NORMAL and raised.to_state is S.UNACKED
    assert raised.user == "ops"
    assert rig.engine.shelved_until(UV, "M1") is None


def test_out_of_service_hides_and_return_re_evaluates(rig: Rig) -> None:
    rig.realtime({"u_a": 150.0})
    [removed] = rig.engine.set_out_of_service(UV, "M1", "ops")
    assert removed.to_state is S.OUT_OF_SERVICE
    rig.realtime({"u_a": 220.0})
    rig.realtime({"u_a": 150.0})
    assert rig.state(UV, "M1") is S.OUT_OF_SERVICE
    with pytest.raises(TransitionRefused, match="out of service"):
        rig.engine.acknowledge(UV, "M1", "ops")
    back, raised = rig.engine.set_out_of_service(UV, "M1", "ops", out=False)
    assert back.to_state is S.NORMAL and raised.to_state is S.UNACKED


def test_out_of_service_drops_a_shelf(rig: Rig) -> None:
    rig.engine.shelve(UV, "M1", "ops", until=rig.clock.time() + 60)
    rig.engine.set_out_of_service(UV, "M1", "ops")
    assert rig.engine.shelved_until(UV, "M1") is None
    assert of_kind(rig.advance(120), UV) == []
    assert rig.state(UV, "M1") is S.OUT_OF_SERVICE
