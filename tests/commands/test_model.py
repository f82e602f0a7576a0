"""Command kinds, parameters, the state machine, the retry policy and targets (pure logic)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config import Site
from config.profile import load_profile
from protocols.register_writes import decode_write, encode_write
from server.clock import ManualClock
from server.commands import (
    KINDS,
    STATES,
    TRANSITIONS,
    RetryPolicy,
    Target,
    TransitionRefused,
    next_state,
    register_write,
    resolve,
    slot,
    validate_params,
)
from server.commands.states import EVENTS
from server.tags import Batch, TagTable

NOW = 1_700_000_000.0

# Every (state, event) pair that is allowed, and where it leads; all others are refused.
EXPECTED = {
    ("pending", "claim"): "sending",
    ("pending", "fail"): "failed",
    ("pending", "cancel"): "cancelled",
    ("pending", "supersede"): "superseded",
    ("sending", "resume"): "sending",
    ("sending", "resend"): "sending",
    ("sending", "sent"): "sent",
    ("sending", "confirm"): "done",
    ("sending", "retry"): "pending",
    ("sending", "fail"): "failed",
    ("sending", "supersede"): "superseded",
    ("sent", "resume"): "sent",
    ("sent", "resend"): "sending",
    ("sent", "confirm"): "done",
    ("sent", "retry"): "pending",
    ("sent", "fail"): "failed",
    ("sent", "supersede"): "superseded",
    ("failed", "reissue"): "reissued",
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(STATES, EVENTS)))
def test_every_state_and_event(state: str, event: str) -> None:
    if (state, event) in EXPECTED:
        assert next_state(state, event) == EXPECTED[(state, event)]
    else:
        with pytest.raises(TransitionRefused) as refused:
            next_state(state, event, 7)
        assert f"cannot {event} command 7: it is {state}" in str(refused.value)


def test_the_table_is_exactly_the_expected_one() -> None:
    assert dict(TRANSITIONS) == EXPECTED


def test_reissue_of_a_done_command_is_refused_clearly() -> None:
    with pytest.raises(TransitionRefused, match="only a failed command can be re-issued"):
        next_state("done", "reissue", 3)


def test_final_states_have_no_way_out_but_reissue_of_failed() -> None:
    for state in ("done", "cancelled", "superseded", "reissued"):
        assert not [e for (s, e) in TRANSITIONS if s == state]


@given(st.integers(1, 10_000))
def test_backoff_grows_and_is_capped(attempts: int) -> None:
    policy = RetryPolicy(max_attempts=5, base_s=5.0, factor=2.0, cap_s=300.0)
    delay = policy.delay(attempts)
    assert 5.0 <= delay <= 300.0
    assert policy.delay(attempts + 1) >= delay


def test_backoff_values() -> None:
    policy = RetryPolicy(max_attempts=9, base_s=10.0, factor=2.0, cap_s=25.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [10.0, 20.0, 25.0, 25.0]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"base_s": -1.0}, "base_s must be a positive number"),
        ({"factor": 0.5}, "factor must be at least 1"),
        ({"cap_s": float("inf")}, "cap_s must be a positive number"),
    ],
)
def test_bad_retry_policy(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**fields)  # type: ignore[arg-type]


GOOD: dict[str, dict[str, object]] = {
    "relay_open": {},
    "relay_close": {},
    "forced_mode_on": {"relay": "closed", "reason": " 医院保电 ", "expires_at": NOW + 3600},
    "forced_mode_off": {"reason": "done"},
    "prepaid_mode": {},
    "price_set": {"sharp_e4": 15000, "peak_e4": 12000, "flat_e4": 8000, "valley_e4": 4000},
    "power_limit_set": {"kw": "80.5"},
    "tou_day_table_set": {"table": 1, "periods": [[0, 0, "valley"], [8, 0, 1], [22, 0, 3]]},
    "time_sync": {},
    "alarm1_set": {"fen": 50_000},
    "alarm2_set": {"fen": 10_000},
    "credit_limit_set": {"fen": 0},
}


def test_every_kind_has_a_good_example() -> None:
    assert set(GOOD) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_good_params_encode_on_both_profiles(kind: str) -> None:
    params = validate_params(kind, GOOD[kind], NOW)
    when = datetime(2024, 5, 6, 7, 8, 9)
    command, arguments = register_write(kind, params, when)
    for model in ("DTSY1352", "DDSY1352"):
        profile = load_profile(model)
        ((address, values),) = encode_write(profile, command, **arguments)
        decoded, back = decode_write(profile, address, values)
        assert decoded == command
        for name, value in arguments.items():
            if isinstance(value, int):
                assert back[name] == value


def test_params_are_canonical() -> None:
    assert validate_params("forced_mode_on", GOOD["forced_mode_on"], NOW)["reason"] == "医院保电"
    assert validate_params("power_limit_set", {"kw": 80.5}, NOW) == {"kw": "80.50"}
    table = validate_params("tou_day_table_set", GOOD["tou_day_table_set"], NOW)
    assert table["periods"] == [[0, 0, 3], [8, 0, 1], [22, 0, 3]]
    aware = datetime.fromtimestamp(NOW + 60, UTC)
    on = {"relay": "open", "reason": "r", "expires_at": aware}
    assert validate_params("forced_mode_on", on, NOW)["expires_at"] == NOW + 60


def test_register_writes_of_relay_kinds() -> None:
    when = datetime(2024, 1, 1)
    on = validate_params("forced_mode_on", {**GOOD["forced_mode_on"], "relay": "open"}, NOW)
    assert register_write("forced_mode_on", on, when) == ("relay_open", {})
    assert register_write("forced_mode_off", {}, when) == ("relay_auto", {})
    assert register_write("prepaid_mode", {}, when) == ("relay_auto", {})
    assert register_write("time_sync", {}, when) == ("clock", {"when": when})


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("relay_flip", {}, "kind: unknown command kind 'relay_flip'"),
        ("relay_open", {"now": True}, "relay_open: unknown parameter"),
        ("price_set", {**GOOD["price_set"], "peak_e4": -1}, "peak_e4 must not be negative"),
        ("price_set", {**GOOD["price_set"], "flat_e4": 1.5}, "flat_e4 must be a whole number"),
        ("price_set", {"sharp_e4": 1}, "missing parameter.*peak_e4"),
        ("forced_mode_on", {**GOOD["forced_mode_on"], "expires_at": NOW - 1}, "in the past"),
        ("forced_mode_on", {**GOOD["forced_mode_on"], "reason": "  "}, "reason must not be"),
        ("forced_mode_on", {**GOOD["forced_mode_on"], "relay": "on"}, "relay must be"),
        (
            "forced_mode_on",
            {**GOOD["forced_mode_on"], "expires_at": datetime(2030, 1, 1)},
            "expires_at must carry a time zone",
        ),
        ("power_limit_set", {"kw": "-3"}, "kw must be positive"),
        ("power_limit_set", {"kw": "1.234"}, "kw has at most 2 decimals"),
        ("power_limit_set", {"kw": "lots"}, "kw must be a number"),
        ("tou_day_table_set", {"table": 0, "periods": [[0, 0, 0]]}, "table must be 1..16"),
        ("tou_day_table_set", {"table": 1, "periods": []}, "periods must be a non-empty"),
        (
            "tou_day_table_set",
            {"table": 1, "periods": [[8, 0, 0], [7, 0, 1]]},
            r"periods\[2\] must start after",
        ),
        ("tou_day_table_set", {"table": 1, "periods": [[24, 0, 0]]}, r"periods\[1\].hour"),
        ("tou_day_table_set", {"table": 1, "periods": [[1, 0, "peek"]]}, "bucket must be one"),
        ("alarm1_set", {"fen": True}, "fen must be a whole number"),
    ],
)
def test_bad_params_name_the_field(kind: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_params(kind, params, NOW)


def test_slots() -> None:
    assert slot("relay_open", {}) == slot("forced_mode_on", {}) == "relay"
    assert slot("tou_day_table_set", {"table": 2}) == "tou_day_table:2"
    assert slot("price_set", {}) == "price_set"


def test_targets_resolve_in_site_order(site: Site) -> None:
    assert resolve("E0002", site) == ("E0002",)
    assert resolve(Target.meters(["G0001", "E0001", "E0001"]), site) == ("E0001", "G0001")
    assert resolve(Target.in_area("ENT"), site) == ("E0001", "E0002", "E0003", "G0001")
    assert resolve(Target.in_area("ENT", "ENT-02"), site) == ("E0003", "G0001")
    prepaid_dorm = Target.matching(area="DORM", billing="prepaid")
    assert resolve(prepaid_dorm, site) == ("D0001", "G0002")
    assert resolve(Target.matching(gateway="GW001", model="DDSY1352"), site) == ("E0003",)
    assert resolve(Target(ids=("E0001", "D0001"), area="ENT"), site) == ("E0001",)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (Target.meters(["E0001", "X9", "Y9"]), "target.ids: unknown meter.*'X9', 'Y9'"),
        (Target.meters([]), "target.ids: the list of meters is empty"),
        (Target.in_area("MOON"), "target.area: no area 'MOON'"),
        (Target.in_area("ENT", "DORM-A"), "target.building: area 'ENT' has no building"),
        (Target.matching(gateway="GW9"), "target.gateway: no gateway 'GW9'"),
        (Target.matching(billing="free"), "target.billing: must be one of"),
        (Target.matching(model="X1"), "target.model: must be one of"),
        (Target(), "target: give meter ids or at least one of"),
        (Target.matching(area="PUB", billing="none"), "target: no meter matches"),
        (Target.matching(area="ENT", flags={"relay": True}), "needs the tag table"),
    ],
)
def test_bad_targets(site: Site, target: Target, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve(target, site)


def test_target_flags_filter_on_the_live_tag_table(site: Site) -> None:
    tags = TagTable(
        [m.id for m in site.meters],
        areas=[m.area for m in site.meters],
        gateways=[m.gateway for m in site.meters],
        three_phase=[m.three_phase for m in site.meters],
        clock=ManualClock(),
    )
    ent = [site.meter_row(m) for m in ("E0001", "E0002", "E0003", "G0001")]
    tags.apply(Batch("realtime", ent, {"relay": [1, 0, 1, 0]}, quality=[0] * 4, source_ts=1.0))
    tripped = Target.matching(area="ENT", flags={"relay": False})
    assert resolve(tripped, site, tags) == ("E0002", "G0001")
    assert tripped.describe() == {"area": "ENT", "flags": {"relay": False}}
