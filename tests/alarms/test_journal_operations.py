"""The HMI / OPC UA operations: validation, batch ack, shelving, and the live list and bell."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg2.extensions import connection

from alarms.journal.operations import MAX_BATCH
from alarms.journal.queries import actions
from alarms.kinds import AlarmKind
from alarms.states import AlarmState
from tests.alarms.journal_rig import JournalRig

UV = AlarmKind.UNDERVOLTAGE
S = AlarmState
LOW_M1_D1 = {"u_a": [150.0, 220.0, 150.0], "u_b": [150.0, 220.0, 220.0],
             "u_c": [150.0, 220.0, 220.0]}  # fmt: skip


@pytest.fixture
def rig(db_url: str) -> Iterator[JournalRig]:
    made = JournalRig(db_url)
    made.realtime(LOW_M1_D1)
    yield made
    made.close()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda o: o.ack("nope", "M1", user="a", channel="hmi"), "kind: unknown alarm kind"),
        (lambda o: o.ack(42, "M1", user="a", channel="hmi"), "kind: expected an alarm kind"),
        (lambda o: o.ack(UV, "M9", user="a", channel="hmi"), "target: .*unknown meter 'M9'"),
        (
            lambda o: o.ack("gateway_lost_comm", "M1", user="a", channel="hmi"),
            "target: unknown gateway 'M1'",
        ),
        (lambda o: o.ack(UV, "", user="a", channel="hmi"), "target: expected a meter"),
        (lambda o: o.ack(UV, "M1", user=" ", channel="hmi"), "user: an operator action needs"),
        (lambda o: o.ack(UV, "M1", user="a", channel="telnet"), "channel: must be one of"),
        (lambda o: o.ack(UV, "M2", user="a", channel="hmi"), "nothing to acknowledge"),
        (
            lambda o: o.comment(UV, "M1", "   ", user="a", channel="hmi"),
            "text: a comment must not be empty",
        ),
        (
            lambda o: o.comment(UV, "M1", None, user="a", channel="hmi"),
            "text: a comment must not be empty",
        ),
        (
            lambda o: o.comment(UV, "M1", "x" * 2001, user="a", channel="hmi"),
            "text: 2001 characters is over the 2000 allowed",
        ),
        (
            lambda o: o.shelve(UV, "M1", user="a", channel="hmi", duration_s=3601),
            "duration_s: 3601 s is past the maximum shelve time of 3600 s",
        ),
        (
            lambda o: o.shelve(UV, "M1", user="a", channel="hmi", duration_s=-5),
            "duration_s: must be a positive number",
        ),
        (
            lambda o: o.shelve(UV, "M1", user="a", channel="hmi", duration_s="1h"),
            "duration_s: expected seconds",
        ),
        (
            lambda o: o.shelve(UV, "M1", user="a", channel="hmi"),
            "duration_s: give either duration_s or one_shot",
        ),
        (
            lambda o: o.shelve(UV, "M1", user="a", channel="hmi", duration_s=60, one_shot=True),
            "duration_s: give either duration_s or one_shot",
        ),
        (
            lambda o: o.shelve(UV, "M1", user="a", channel="hmi", one_shot=True, reason=7),
            "reason: must be text",
        ),
        (lambda o: o.unshelve(UV, "M1", user="a", channel="hmi"), "not shelved"),
        (
            lambda o: o.set_out_of_service(UV, "M1", user="a", channel="hmi", out="yes"),
            "out: must be true or false",
        ),
        (lambda o: o.ack_many([], user="a", channel="hmi"), f"items: give 1..{MAX_BATCH}"),
        (lambda o: o.live(priority="extreme"), "priority: unknown 'extreme'"),
        (lambda o: o.live(state="shelved"), "state: unknown 'shelved'"),
    ],
)
def test_bad_operations_are_refused_with_the_field_named(
    rig: JournalRig, call: object, message: str
) -> None:
    pending = rig.journal.pending
    with pytest.raises(ValueError, match=message):
        call(rig.ops)  # type: ignore[operator]
    assert rig.journal.pending == pending  # nothing audited or journaled
    assert rig.state(UV, "M1") is S.UNACKED


def test_batch_ack_returns_a_result_per_item(rig: JournalRig, db: connection) -> None:
    results = rig.ops.ack_many(
        [("undervoltage", "M1"), {"kind": "undervoltage", "target": "M2"}, (UV, "D1"),
         ("bogus", "M1"), ("undervoltage", "M9"), "M1"],  # type: ignore[list-item]
        user="alice", channel="opcua",
    )  # fmt: skip
    assert [(r["target"], r["ok"]) for r in results] == [
        ("M1", True), ("M2", False), ("D1", True), ("M1", False), ("M9", False), (None, False),
    ]  # fmt: skip
    reasons = [r["reason"] for r in results]
    assert reasons[0] is None and reasons[2] is None
    assert "nothing to acknowledge" in reasons[1]
    assert "unknown alarm kind 'bogus'" in reasons[3]
    assert "unknown meter 'M9'" in reasons[4]
    assert reasons[5].startswith("kind:")
    assert results[0]["transitions"][0]["to_state"] == "acked"
    assert rig.state(UV, "M1") is S.ACKED and rig.state(UV, "D1") is S.ACKED
    rig.journal.flush()
    since, until = rig.window
    done = actions(db, since=since, until=until)
    assert sorted((a["target"], a["action"], a["channel"]) for a in done) == [
        ("D1", "alarm.ack", "opcua"),
        ("M1", "alarm.ack", "opcua"),
    ]
    assert done[0]["detail"]["batch"] == done[1]["detail"]["batch"]


def test_one_shot_shelve_and_out_of_service_round_trip(rig: JournalRig) -> None:
    [shelved] = rig.ops.shelve(UV, "D1", user="bob", channel="hmi", one_shot=True)
    assert (shelved["to_state"], shelved["user"]) == ("shelved", "bob")
    rig.ops.unshelve(UV, "D1", user="bob", channel="hmi")
    assert rig.state(UV, "D1") is S.UNACKED  # re-evaluated at once: still low
    rig.ops.set_out_of_service(UV, "D1", user="bob", channel="hmi", reason="rewiring")
    assert rig.state(UV, "D1") is S.OUT_OF_SERVICE
    back = rig.ops.set_out_of_service(UV, "D1", user="bob", channel="hmi", out=False)
    assert [t["to_state"] for t in back][-1] == "unacked"
    rig.ops.shelve(UV, "D1", user="bob", channel="hmi", duration_s=600)
    assert rig.engine.shelved_until(UV, "D1") == rig.clock.time() + 600


def test_live_list_entries_and_filters(rig: JournalRig) -> None:
    rig.clock.advance(10)
    rig.balance([500, -100, 500])
    rig.ops.comment(UV, "M1", "looking", user="alice", channel="hmi")
    rig.ops.ack(UV, "M1", user="alice", channel="hmi")
    live = rig.ops.live()
    assert [(e["kind"], e["target"]) for e in live] == [
        ("undervoltage", "D1"), ("undervoltage", "M1"), ("arrears", "M2"),
    ]  # fmt: skip
    m1 = live[1]
    assert {k: m1[k] for k in ("area", "gateway", "room", "owner", "state", "priority")} == {
        "area": "ENT", "gateway": "GW1", "room": "101", "owner": "owner", "state": "acked",
        "priority": "high",
    }  # fmt: skip
    assert (m1["since"], m1["value"], m1["comments"], m1["chattering"]) == (
        rig.start,
        150.0,
        1,
        False,
    )
    assert m1["limit"] == pytest.approx(187.0)
    assert [e["target"] for e in rig.ops.live(area="DORM")] == ["D1"]
    assert [e["target"] for e in rig.ops.live(priority="medium")] == ["M2"]
    assert [e["target"] for e in rig.ops.live(state="unacked")] == ["D1", "M2"]
    assert [e["target"] for e in rig.ops.live(meter=["M1", "M2"])] == ["M1", "M2"]
    assert [e["target"] for e in rig.ops.live(gateway="GW2")] == ["D1"]
    assert [e["target"] for e in rig.ops.live(kind="arrears", area="ENT")] == ["M2"]


def test_bell_counts_what_waits_for_an_ack(rig: JournalRig) -> None:
    bell = rig.ops.bell()
    assert bell["count"] == 2 and [a["target"] for a in bell["alarms"]] == ["D1", "M1"]
    rig.ops.ack(UV, "M1", user="alice", channel="hmi")
    rig.clock.advance(5)
    rig.realtime()  # D1 returns to normal unacknowledged: still on the bell
    bell = rig.ops.bell()
    assert bell["count"] == 1 and [(a["target"], a["state"]) for a in bell["alarms"]] == [
        ("D1", "rtn_unacked"),
    ]
    assert bell["alarms"][0]["value"] == 150.0  # the value that raised it
