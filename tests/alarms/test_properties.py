"""Property: random conditions and operator events keep every instance valid and in the table."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alarms.kinds import GATEWAY_KINDS, METER_KINDS, AlarmKind
from alarms.states import ACTIVE_STATES, ALARM_STATES, TABLE, AlarmState
from config.model import AlarmLimits
from server.tags import CommState, StatusCode
from tests.alarms.park import Rig, meter, site

S = AlarmState
METERS = ("M1", "M2", "D1")
# Operator events go to few instances, so that sequences of them meet.
OPERATED = (AlarmKind.UNDERVOLTAGE, AlarmKind.LOST_COMM, AlarmKind.GATEWAY_LOST_COMM)

meter_index = st.integers(0, len(METERS) - 1)
conditions = st.one_of(
    st.tuples(st.just("volts"), meter_index, st.sampled_from([0.0, 50.0, 150.0, 186.0, 220.0])),
    st.tuples(st.just("bad"), meter_index, st.just(0)),
    st.tuples(st.just("balance"), meter_index, st.sampled_from([-100, 50, 500, 10_000])),
    st.tuples(st.just("advance"), st.just(0), st.sampled_from([1.0, 9.0, 30.0, 61.0, 200.0])),
    st.tuples(st.just("commanded"), meter_index, st.booleans()),
    st.tuples(st.just("comm"), meter_index, st.sampled_from([CommState.ONLINE, CommState.OFFLINE])),
)
operations = st.tuples(
    st.sampled_from(["ack", "shelve", "one_shot", "unshelve", "out", "back"]),
    st.tuples(st.sampled_from(OPERATED), st.integers(0, 1)),
    st.just(0),
)
steps = st.one_of(conditions, operations)


def apply_step(rig: Rig, step: tuple[Any, ...]) -> None:
    action, who, value = step
    engine = rig.engine
    if action == "volts":
        rig.realtime({"u_a": value, "u_b": 220.0, "u_c": 220.0}, ids=[METERS[who]])
    elif action == "bad":
        rig.realtime(ids=[METERS[who]], quality=StatusCode.BAD_TIMEOUT)
    elif action == "balance":
        rig.balance(value, ids=[METERS[who]])
    elif action == "advance":
        rig.advance(value)
    elif action == "commanded":
        engine.set_commanded_open(np.array([who]), value)
        engine.evaluate()
    elif action == "comm":
        engine.on_comm(rig.table.set_comm([who], value))
    else:
        kind, index = who
        target = "GW1" if kind is AlarmKind.GATEWAY_LOST_COMM else METERS[index]
        operations = {
            "ack": lambda: engine.acknowledge(kind, target, "ops"),
            "shelve": lambda: engine.shelve(kind, target, "ops", until=rig.clock.time() + 120),
            "one_shot": lambda: engine.shelve(kind, target, "ops", one_shot=True),
            "unshelve": lambda: engine.unshelve(kind, target, "ops"),
            "out": lambda: engine.set_out_of_service(kind, target, "ops"),
            "back": lambda: engine.set_out_of_service(kind, target, "ops", out=False),
        }
        with contextlib.suppress(ValueError):  # TransitionRefused is a ValueError
            operations[action]()


def check_invariants(rig: Rig) -> None:
    for record in rig.log:
        assert TABLE[(record.from_state, record.event)] is record.to_state
    last: dict[tuple[AlarmKind, str], AlarmState] = {}
    for record in rig.log:
        key = (record.kind, record.target)
        assert record.from_state is last.get(key, S.NORMAL), record
        last[key] = record.to_state
    engine = rig.engine
    for (kind, target), state in last.items():
        assert engine.state(kind, target) is state
    for store, names, kinds in (
        (engine._meters, METERS, METER_KINDS),
        (engine._gateways, ("GW1",), GATEWAY_KINDS),
    ):
        assert store.state.shape == (len(kinds), len(names))
        for row in range(len(kinds)):
            for column in range(len(names)):
                state = S(int(store.state[row, column]))
                if state in ALARM_STATES:
                    assert store.active[row, column] == (state in ACTIVE_STATES)
                    assert not store.suppressed[row, column]
                if state is S.SUPPRESSED:
                    assert store.suppressed[row, column]
                assert np.isfinite(store.shelved_until[row, column]) == (state is S.SHELVED)


@settings(max_examples=400)
@given(st.lists(steps, min_size=5, max_size=60))
def test_random_sequences_stay_valid(sequence: list[tuple[Any, ...]]) -> None:
    limits = AlarmLimits(undervoltage_delay_s=10, phase_loss_delay_s=0, off_delay_s=5)
    park = site(
        [meter("M1"), meter("M2", three_phase=False), meter("D1", gateway=None)], limits=limits
    )
    rig = Rig(park, max_shelve_s=300)
    for step in sequence:
        apply_step(rig, step)
        check_invariants(rig)
