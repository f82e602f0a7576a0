"""The register profiles: shipped files load, and broken files fail naming file and field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from config.catalogue import default_catalogue
from config.profile import (
    MAX_READ,
    PROFILE_DIR,
    ProfileError,
    load_profile,
    load_profile_file,
)

MODELS = ("DTSY1352", "DDSY1352")
SCAN_CLASSES = ("realtime", "energy", "demand", "prepaid", "poll_block", "freeze")
DTSY_TEXT = (PROFILE_DIR / "DTSY1352.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize("model", MODELS)
def test_shipped_profiles_load_and_respect_limits(model: str) -> None:
    profile = load_profile(model)
    assert profile.model == model
    assert load_profile(model) is profile  # cached
    catalogue = default_catalogue()
    for name in SCAN_CLASSES:
        plan = profile.read_plan(name)
        assert profile.plan(name) == plan.blocks
        assert all(1 <= b.count <= MAX_READ for b in plan.blocks)
        assert plan.width == sum(b.count for b in plan.blocks)
        for f in plan.fields:
            assert f.tag in catalogue
            assert f.column >= 0 and f.column + f.count <= plan.width
    assert profile.read_plan("poll_block").width == 48
    assert profile.read_plan("freeze").width == 60


def test_plans_cover_the_domain_addresses() -> None:
    profile = load_profile("DTSY1352")
    realtime = {f.tag: f for f in profile.read_plan("realtime").fields}
    assert (realtime["u_a"].address, realtime["u_a"].scale, realtime["u_a"].ratio) == (
        0x0061,
        0.1,
        "pt",
    )
    assert realtime["relay"].bits == (13, 14, 15) and realtime["relay"].all_bits
    assert realtime["p"].type == "i32" and realtime["p"].ratio == "ptct"
    assert [(b.start, b.count) for b in profile.plan("realtime")] == [(0x61, 47), (0x164, 28)]
    prepaid = {f.tag: f for f in profile.read_plan("prepaid").fields}
    assert prepaid["balance_fen"].kind == "int" and prepaid["balance_fen"].scale == 1
    assert profile.write("relay_open").values == (1, 1)
    assert profile.write("relay_close").values == (1, 0)
    assert profile.write("relay_auto").values == (0, 0)
    assert profile.write("prices").address == 0x0059
    assert profile.write("power_limit").address == 0x0061
    assert profile.freeze.address(1) == 0x1001
    assert profile.freeze.address(12) == 0x100C
    with pytest.raises(ValueError, match=r"outside 1\.\.12"):
        profile.freeze.address(13)


def test_single_phase_profile_lists_phase_b_and_c_as_absent() -> None:
    profile = load_profile("DDSY1352")
    assert profile.phases == 1 and profile.poll_type == 7
    for name in ("realtime", "poll_block"):
        plan = profile.read_plan(name)
        assert {"u_b", "u_c", "i_b", "i_c", "p_b", "p_c", "pf_b", "pf_c"} <= set(plan.absent)
        assert not any(f.tag.endswith(("_b", "_c")) for f in plan.fields)
        relay = next(f for f in plan.fields if f.tag == "relay")
        assert relay.bits == (13,)


def test_unknown_model_and_scan_class_are_named() -> None:
    with pytest.raises(ProfileError, match=r"NOPE.*known: DDSY1352, DTSY1352"):
        load_profile("NOPE")
    with pytest.raises(KeyError, match="no read plan 'hourly'"):
        load_profile("DTSY1352").plan("hourly")
    with pytest.raises(KeyError, match="no write 'explode'"):
        load_profile("DTSY1352").write("explode")


def test_pdu_address_follows_address_base() -> None:
    profile = load_profile("DTSY1352")
    assert profile.pdu(0x0057) == 0x0057
    assert dataclasses.replace(profile, address_base=1).pdu(0x0057) == 0x0056


BROKEN = [
    ('tag = "u_a", address = 0x0061', 'tag = "u_x", address = 0x0061', r"u_x.*not in the tag"),
    ('tag = "f", address = 0x0077', 'tag = "f", address = 0x0090', r"0x0090 is outside every"),
    ('tag = "u_b", address = 0x0062', 'tag = "u_b", address = 0x0061', r"0x0061 is also u_a"),
    ("{ start = 0x0000, count = 0x16 }", "{ start = 0x0000, count = 0x15 }", r"cross the block"),
    ("{ start = 0x0061, count = 0x2F }", "{ start = 0x0061, count = 126 }", r"outside 1..125"),
    ('tag = "f", address = 0x0077', 'tag = "e_fwd", address = 0x0077', r"group 'energy'"),
    (
        'tag = "pt", address = 0x008D, type = "u16", scale = 1',
        'tag = "pt", address = 0x008D, type = "u16", scale = 0.5',
        r"pt is an integer tag",
    ),
    ('scale = 1, unit = "fen" },', 'scale = 1, unit = "yuan" },', r"unit.*'yuan'"),
    ("bits = [4] }", "bits = [8] }", r"bits overlap"),
    ("[plans.demand]", "[plans.demands]", r"plans.demands: unknown scan class"),
    ('word_order = "big"', 'word_order = "middle"', r"word_order: 'middle' is not one of"),
    ("values = [1, 1]", "values = [1, 70000]", r"writes.relay_open.values"),
    ("values = [0, 0]", "values = [1, 1]", r"writes.relay_auto: same registers as"),
    ('tag = "u_a", address = 0x0801', 'tag = "u_a", address = 0x0800', r"first register is"),
    ('{ name = "hour", type = "u8"', '{ name = "hour", type = "u16"', r"hour must start a"),
    ('tag = "fault", address = 0x008F', 'tag = "f", address = 0x008F', r"bits field cannot"),
    ("address_base = 0", "address_base = 1", r"blocks\[0\].start: 0 is outside 1..65535"),
    ('type = "u32", scale = 0.01', 'type = "u64", scale = 0.01', r"'u64' is not one of"),
    ('layout = ["MM", "DD", "hh", "mm"] }', 'layout = ["MM", "DD"] }', r"needs at least MM"),
    ("poll_type = 5", 'poll_type = "5"', r"poll_type: must be an integer"),
    ("phases = 3", "phases = 2", r"phases: must be 1 or 3"),
    ("depth = 12", "depth = 0", r"freeze.depth: 0 is outside"),
    ('scale = 0.1, ratio = "pt"', 'scale = 0.1, ratio = "kv"', r"ratio: 'kv' is not one"),
    ('model = "DTSY1352"\n', 'model = "DTSY1352"\ncolour = 1\n', r"unknown key\(s\) colour"),
    ("periods = 14", "periods = 0", r"periods: 0 is outside"),
    ("absent = []", 'absent = ["u_a"]', r"absent\[0\]: 'u_a' is not a catalogue tag or is"),
]


@pytest.mark.parametrize(("old", "new", "message"), BROKEN)
def test_broken_profile_names_file_and_field(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in DTSY_TEXT, old
    path = tmp_path / "broken.toml"
    path.write_text(DTSY_TEXT.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ProfileError, match=message) as caught:
        load_profile_file(path)
    assert str(caught.value).startswith(str(path))


def test_unreadable_and_invalid_toml_files(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile_file(tmp_path / "missing.toml")
    path = tmp_path / "bad.toml"
    path.write_text(DTSY_TEXT + "\n= =\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="invalid TOML"):
        load_profile_file(path)


def test_unchanged_copy_loads(tmp_path: Path) -> None:
    path = tmp_path / "copy.toml"
    path.write_text(DTSY_TEXT, encoding="utf-8")
    copy = load_profile_file(path)
    assert copy == load_profile("DTSY1352")
