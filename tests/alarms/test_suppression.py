"""Suppression by design: a gateway flood and a relay opened by command."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alarms.kinds import AlarmKind
from alarms.states import AlarmState
from config.model import AlarmLimits
from server.tags import CommState, StatusCode
from tests.alarms.park import Rig, meter, of_kind, site

K = AlarmKind
S = AlarmState
FLOOD = [f"A{i:02d}" for i in range(19)]


def flood_rig() -> Rig:
    meters = [meter(m) for m in FLOOD]
    meters += [meter("B1", gateway="GW2"), meter("B2", gateway="GW2"), meter("D1", gateway=None)]
    return Rig(site(meters))


def lost_comm_states(rig: Rig) -> list[AlarmState]:
    return [rig.state(K.LOST_COMM, m) for m in FLOOD]


def test_a_gateway_down_raises_one_alarm_and_suppresses_its_meters() -> None:
    rig = flood_rig()
    rig.realtime()
    for _ in range(6):  # six failed polls of GW1, a minute apart; the others answer
        rig.clock.advance(60)
        rig.realtime(ids=FLOOD, quality=StatusCode.BAD_TIMEOUT)
        rig.realtime(ids=["B1", "B2", "D1"])
    active = rig.engine.active()
    assert [(a.kind, a.target) for a in active] == [(K.GATEWAY_LOST_COMM, "GW1")]
    assert lost_comm_states(rig) == [S.SUPPRESSED] * 19
    assert rig.engine.bell_count() == 1
    [raised] = [r for r in rig.log if r.kind is K.GATEWAY_LOST_COMM]
    assert raised.at == rig.clock.time() - 5 * 60 + 60 and raised.limit == 60.0
    assert not any(r.to_state is S.UNACKED for r in of_kind(rig.log, K.LOST_COMM))

    rig.clock.advance(60)
    rig.realtime()
    assert rig.state(K.GATEWAY_LOST_COMM, "GW1") is S.RTN_UNACKED
    assert lost_comm_states(rig) == [S.NORMAL] * 19


def test_comm_state_offline_for_the_whole_gateway_is_one_alarm() -> None:
    rig = flood_rig()
    rig.realtime()
    change = rig.table.set_comm(rig.table.rows_for(FLOOD), CommState.OFFLINE)
    rig.engine.on_comm(change)
    assert lost_comm_states(rig) == [S.SUPPRESSED] * 19
    rig.clock.advance(59)
    rig.engine.evaluate()
    assert rig.state(K.GATEWAY_LOST_COMM, "GW1") is S.NORMAL
    rig.advance(1)
    assert rig.state(K.GATEWAY_LOST_COMM, "GW1") is S.UNACKED
    assert sum(a.kind is K.LOST_COMM for a in rig.engine.active()) == 0


def test_one_meter_answering_means_no_gateway_alarm() -> None:
    rig = flood_rig()
    rig.realtime()
    for _ in range(4):
        rig.clock.advance(60)
        rig.realtime(ids=FLOOD[1:], quality=StatusCode.BAD_TIMEOUT)
        rig.realtime(ids=[FLOOD[0], "B1", "B2", "D1"])
    assert rig.state(K.GATEWAY_LOST_COMM, "GW1") is S.NORMAL
    assert lost_comm_states(rig) == [S.NORMAL] + [S.UNACKED] * 18


@dataclass(frozen=True)
class LinkEvent:
    gateway_id: str
    online: bool


def test_gateway_link_event_raises_the_gateway_alarm() -> None:
    rig = flood_rig()
    rig.realtime()
    rig.engine.on_gateway(LinkEvent("GW2", online=False))
    rig.advance(60)
    assert rig.state(K.GATEWAY_LOST_COMM, "GW2") is S.UNACKED
    assert rig.state(K.LOST_COMM, "B1") is S.SUPPRESSED
    rig.engine.on_gateway(LinkEvent("NOT-A-GATEWAY", online=False))
    rig.engine.on_gateway(LinkEvent("GW2", online=True))
    assert rig.state(K.GATEWAY_LOST_COMM, "GW2") is S.RTN_UNACKED


def relay_rig() -> Rig:
    limits = AlarmLimits(undervoltage_delay_s=0, phase_loss_delay_s=0)
    return Rig(site([meter("M1"), meter("M2")], limits=limits))


def test_commanded_open_suppresses_undervoltage_and_phase_loss() -> None:
    rig = relay_rig()
    rig.realtime()
    rig.engine.set_commanded_open(np.array([0]), True)
    rig.realtime({"relay": 0, "u_a": 0.0, "u_b": 0.0, "u_c": 220.0})
    for kind in (K.UNDERVOLTAGE, K.PHASE_LOSS):
        assert rig.state(kind, "M1") is S.SUPPRESSED
        assert rig.state(kind, "M2") is S.UNACKED
    assert rig.state(K.UNEXPECTED_TRIP, "M1") is S.NORMAL
    assert rig.state(K.UNEXPECTED_TRIP, "M2") is S.UNACKED

    rig.engine.set_commanded_open(np.array([0]), False)
    rig.realtime()
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.NORMAL
    assert rig.engine.commanded_open.tolist() == [False, False]


def test_release_from_suppression_raises_a_standing_condition() -> None:
    rig = relay_rig()
    rig.engine.set_commanded_open(np.array([0, 1]), True)
    rig.realtime({"relay": 0, "u_a": 150.0})
    rig.engine.set_commanded_open(np.array([0]), False)
    records = rig.realtime({"relay": 0, "u_a": 150.0})
    moved = [(r.kind, r.target, r.to_state) for r in records]
    assert (K.UNDERVOLTAGE, "M1", S.NORMAL) in moved
    assert (K.UNDERVOLTAGE, "M1", S.UNACKED) in moved
    assert (K.UNEXPECTED_TRIP, "M1", S.UNACKED) in moved
    assert rig.state(K.UNDERVOLTAGE, "M2") is S.SUPPRESSED


def test_suppression_takes_a_shelved_alarm_off_the_shelf() -> None:
    rig = relay_rig()
    rig.realtime({"u_a": 150.0})
    rig.engine.shelve(K.UNDERVOLTAGE, "M1", "ops", until=rig.clock.time() + 600)
    rig.engine.set_commanded_open(np.array([0]), True)
    rig.realtime({"u_a": 150.0, "relay": 0})
    assert rig.state(K.UNDERVOLTAGE, "M1") is S.SUPPRESSED
    assert rig.engine.shelved_until(K.UNDERVOLTAGE, "M1") is None
