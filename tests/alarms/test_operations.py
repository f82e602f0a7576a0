"""Acknowledgement, the live list and its ordering, the bell, comments and listeners."""

from __future__ import annotations

import numpy as np
import pytest

from alarms.kinds import AlarmKind
from alarms.records import AlarmComment, AlarmTransition
from alarms.states import AlarmState, TransitionRefused
from config.model import AlarmLimits
from tests.alarms.park import Rig, meter, site

K = AlarmKind
S = AlarmState


@pytest.fixture
def rig() -> Rig:
    park = site(
        [meter("M1", power_limit_kw="10"), meter("M2", power_limit_kw="10"), meter("M3")],
        limits=AlarmLimits(undervoltage_delay_s=0, phase_loss_delay_s=0),
    )
    return Rig(park)


def test_full_cycle_unacked_acked_normal(rig: Rig) -> None:
    rig.realtime({"fault": 1}, ids=["M1"])
    [acked] = rig.engine.acknowledge("meter_fault", "M1", "ops")
    assert (acked.from_state, acked.to_state, acked.user) == (S.UNACKED, S.ACKED, "ops")
    with pytest.raises(TransitionRefused):
        rig.engine.acknowledge(K.METER_FAULT, "M1", "ops")
    [cleared] = rig.realtime({"fault": 0}, ids=["M1"])
    assert cleared.to_state is S.NORMAL


def test_return_unacked_then_ack_or_reactivate(rig: Rig) -> None:
    rig.realtime({"fault": 1}, ids=["M1"])
    rig.realtime({"fault": 0}, ids=["M1"])
    assert rig.state(K.METER_FAULT, "M1") is S.RTN_UNACKED
    assert rig.engine.bell_count() == 1
    [again] = rig.realtime({"fault": 1}, ids=["M1"])
    assert (again.from_state, again.to_state) == (S.RTN_UNACKED, S.UNACKED)
    rig.realtime({"fault": 0}, ids=["M1"])
    [done] = rig.engine.acknowledge(K.METER_FAULT, "M1", "ops")
    assert done.to_state is S.NORMAL and rig.engine.active() == []


def test_ack_in_normal_is_refused(rig: Rig) -> None:
    with pytest.raises(TransitionRefused, match="nothing to acknowledge"):
        rig.engine.acknowledge(K.METER_FAULT, "M1", "ops")


@pytest.mark.parametrize(
    ("kind", "target", "user", "message"),
    [
        ("no_such_kind", "M1", "ops", "unknown alarm kind"),
        (K.METER_FAULT, "M9", "ops", "unknown meter"),
        (K.GATEWAY_LOST_COMM, "GW9", "ops", "unknown gateway"),
        (K.METER_FAULT, "M1", " ", "needs a user name"),
    ],
)
def test_bad_operator_input_is_named(
    rig: Rig, kind: AlarmKind | str, target: str, user: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        rig.engine.acknowledge(kind, target, user)


def test_acknowledge_many_reports_refusals(rig: Rig) -> None:
    rig.realtime({"fault": 1}, ids=["M1", "M2"])
    done, refused = rig.engine.acknowledge_many(
        [(K.METER_FAULT, "M1"), ("meter_fault", "M2"), (K.METER_FAULT, "M3"), ("bogus", "M1")],
        "ops",
    )
    assert [(r.target, r.to_state) for r in done] == [("M1", S.ACKED), ("M2", S.ACKED)]
    assert set(refused) == {("meter_fault", "M3"), ("bogus", "M1")}
    assert "nothing to acknowledge" in refused[("meter_fault", "M3")]


def test_active_sorts_by_priority_then_newest(rig: Rig) -> None:
    rig.realtime({"p": 20.0}, ids=["M1"])  # over power: medium
    rig.clock.advance(10)
    rig.realtime({"fault": 1}, ids=["M2"])  # meter fault: high
    rig.clock.advance(10)
    rig.realtime({"p": 20.0}, ids=["M2"])  # over power: medium, newer
    rig.clock.advance(10)
    rig.realtime({"u_a": 220.0, "u_b": 220.0, "u_c": 0.0}, ids=["M3"])  # phase loss: urgent
    listed = [(a.kind, a.target, a.priority_name) for a in rig.engine.active()]
    assert listed == [
        (K.PHASE_LOSS, "M3", "urgent"),
        (K.UNDERVOLTAGE, "M3", "high"),
        (K.METER_FAULT, "M2", "high"),
        (K.OVER_POWER, "M2", "medium"),
        (K.OVER_POWER, "M1", "medium"),
    ]
    rig.engine.set_priority(K.OVER_POWER, "M1", "urgent")
    # Now tied with the phase loss on priority; the phase loss is newer.
    assert [(a.kind, a.target) for a in rig.engine.active()[:2]] == [
        (K.PHASE_LOSS, "M3"),
        (K.OVER_POWER, "M1"),
    ]
    with pytest.raises(ValueError, match="priority must be one of"):
        rig.engine.set_priority(K.OVER_POWER, "M1", "critical")


def test_bell_counts_only_unacknowledged(rig: Rig) -> None:
    rig.realtime({"fault": 1})
    assert rig.engine.bell_count() == 3
    rig.engine.acknowledge(K.METER_FAULT, "M1", "ops")
    assert rig.engine.bell_count() == 2
    entries = {a.target: a.acknowledged for a in rig.engine.active()}
    assert entries == {"M1": True, "M2": False, "M3": False}
    assert {a.area for a in rig.engine.active()} == {"ENT"}


def test_comment_thread(rig: Rig) -> None:
    heard: list[AlarmComment] = []
    rig.engine.subscribe(on_comment=heard.append)
    first = rig.engine.comment(K.UNDERVOLTAGE, "M1", "ops", "  checking the feeder ")
    rig.clock.advance(5)
    rig.engine.comment("undervoltage", "M1", "lead", "fixed")
    thread = rig.engine.comments(K.UNDERVOLTAGE, "M1")
    assert [(c.user, c.text) for c in thread] == [("ops", "checking the feeder"), ("lead", "fixed")]
    assert thread[1].at - first.at == 5
    assert heard == list(thread)
    with pytest.raises(ValueError, match=r"1\.\.2000 characters"):
        rig.engine.comment(K.UNDERVOLTAGE, "M1", "ops", "   ")
    with pytest.raises(ValueError, match=r"1\.\.2000 characters"):
        rig.engine.comment(K.UNDERVOLTAGE, "M1", "ops", "x" * 2001)


def test_listeners_get_every_transition_and_a_failing_one_is_contained(rig: Rig) -> None:
    calls: list[AlarmTransition] = []

    def broken(record: AlarmTransition) -> None:
        calls.append(record)
        raise RuntimeError("journal down")

    unsubscribe = rig.engine.subscribe(broken)
    rig.realtime({"fault": 1}, ids=["M1"])
    rig.engine.acknowledge(K.METER_FAULT, "M1", "ops")
    assert [r.to_state for r in calls] == [S.UNACKED, S.ACKED]
    assert [r.to_state for r in rig.log] == [S.UNACKED, S.ACKED]
    unsubscribe()
    rig.realtime({"fault": 0}, ids=["M1"])
    assert len(calls) == 2 and len(rig.log) == 3


def test_set_commanded_open_checks_rows(rig: Rig) -> None:
    with pytest.raises(ValueError, match=r"rows must be in 0\.\.2"):
        rig.engine.set_commanded_open(np.array([3]), True)
    with pytest.raises(ValueError, match="1-D integer array"):
        rig.engine.set_commanded_open(np.array([0.5]), True)


def test_engine_refuses_a_table_that_is_not_the_site(rig: Rig) -> None:
    from alarms.engine import AlarmEngine

    other = site([meter("X1")])
    with pytest.raises(ValueError, match="not the site's meters"):
        AlarmEngine(other, rig.table, clock=rig.clock)


def test_apply_site_takes_new_limits(rig: Rig) -> None:
    rig.realtime({"u_a": 200.0})
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.NORMAL
    stricter = site(
        list(rig.site.meters),
        limits=AlarmLimits(undervoltage_ratio=0.95, undervoltage_delay_s=0),
    )
    rig.engine.apply_site(stricter)
    rig.realtime({"u_a": 200.0})
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.UNACKED
    assert rig.log[-1].limit == pytest.approx(209.0)
