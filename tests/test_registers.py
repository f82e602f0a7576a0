"""The vectorised register codec and the write commands, against hand-computed registers."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.profile import RegisterProfile, load_profile
from protocols.errors import EncodeError
from protocols.register_writes import (
    IllegalWriteAddress,
    IllegalWriteValue,
    decode_write,
    encode_write,
)
from protocols.registers import (
    RegisterDecodeError,
    decode_blocks,
    decode_freeze_block,
    decode_poll_block,
    encode_blocks,
    encode_freeze_block,
    encode_poll_block,
    poll_block_matches,
)

TZ = ZoneInfo("Asia/Shanghai")
DTSY = load_profile("DTSY1352")
DDSY = load_profile("DDSY1352")
PROFILES = (DTSY, DDSY)
NOW = datetime(2024, 5, 20, 12, 0, tzinfo=TZ).timestamp()


def _raw(profile: RegisterProfile, scan_class: str, words: dict[int, int], n: int = 1) -> Any:
    """A plan's raw array with the given register numbers set (the same on every row)."""
    plan = profile.read_plan(scan_class)
    raw = np.zeros((n, plan.width), np.uint16)
    for address, value in words.items():
        column = 0
        for block in plan.blocks:
            if block.start <= address < block.end:
                raw[:, column + address - block.start] = value
            column += block.count
    return raw


DECODE_CASES = [
    ("realtime", {0x0061: 2200}, 1, 1, "u_a", 220.0),
    ("realtime", {0x0061: 2200}, 10, 1, "u_a", 2200.0),
    ("realtime", {0x0064: 1234}, 1, 20, "i_a", 246.8),
    ("realtime", {0x0077: 5000}, 1, 1, "f", 50.0),
    ("realtime", {0x0164: 0xFFFF, 0x0165: 0xFC18}, 1, 20, "p_a", -20.0),
    ("realtime", {0x016A: 0x0001, 0x016B: 0x86A0}, 2, 3, "p", 600.0),
    ("realtime", {0x017F: 0xFC18}, 1, 1, "pf", -1.0),
    ("realtime", {0x008D: 10, 0x008E: 40}, 1, 1, "ct", 40),
    ("realtime", {0x008F: 0xE000}, 1, 1, "relay", 1),
    ("realtime", {0x008F: 0x6000}, 1, 1, "relay", 0),
    ("realtime", {0x008F: 0x0100}, 1, 1, "fault", 1),
    ("realtime", {0x008F: 0x0010}, 1, 1, "over_limit", 1),
    ("realtime", {0x008F: 0x0020}, 1, 1, "arrears", 1),
    ("realtime", {0x008F: 0x0040}, 1, 1, "alm1", 1),
    ("realtime", {0x008F: 0x0080}, 1, 1, "alm2", 1),
    ("realtime", {0x008F: 0xE1F0}, 1, 1, "status_word", 0xE1F0),
    ("energy", {0x0000: 0x0001, 0x0001: 0x86A0}, 1, 20, "e_total", 20000.0),
    ("energy", {0x0014: 0x0000, 0x0015: 0x0457}, 1, 1, "e_rev", 11.11),
    ("prepaid", {0x004F: 0x0001, 0x0050: 0x0000}, 1, 1, "balance_fen", 65536),
    ("prepaid", {0x0059: 0x0000, 0x005A: 11850}, 1, 1, "price_sharp_e4", 11850),
    ("prepaid", {0x004A: 0x000F, 0x004B: 0x4240}, 1, 1, "credit_limit_fen", 1_000_000),
    ("prepaid", {0x004E: 7}, 1, 1, "purchase_count", 7),
    ("demand", {0x007B: 12500}, 2, 10, "demand", 250.0),
]


@pytest.mark.parametrize(("scan_class", "words", "pt", "ct", "tag", "expected"), DECODE_CASES)
def test_decode_hand_computed(
    scan_class: str, words: dict[int, int], pt: int, ct: int, tag: str, expected: float
) -> None:
    raw = _raw(DTSY, scan_class, words, n=3)
    got = decode_blocks(DTSY, scan_class, raw, np.full(3, pt), np.full(3, ct), TZ, now=NOW)[tag]
    assert got.shape == (3,)
    if isinstance(expected, int):
        assert got.dtype in (np.int64, np.uint8)
        assert got.tolist() == [expected] * 3  # exact: money never passes through float
    else:
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_pt_and_ct_are_per_meter() -> None:
    raw = _raw(DTSY, "energy", {0x0000: 0x0001, 0x0001: 0x86A0}, n=3)
    got = decode_blocks(DTSY, "energy", raw, np.array([1, 1, 10]), np.array([1, 20, 20]), TZ)
    np.testing.assert_allclose(got["e_total"], [1000.0, 20000.0, 200000.0])


def test_little_word_order_swaps_the_words() -> None:
    little = dataclasses.replace(DTSY, word_order="little")
    raw = _raw(little, "energy", {0x0000: 0x86A0, 0x0001: 0x0001})
    assert decode_blocks(little, "energy", raw, 1, 1, TZ)["e_total"][0] == pytest.approx(1000.0)


def test_single_phase_leaves_b_and_c_nan_and_uses_l1_for_relay() -> None:
    raw = _raw(DDSY, "realtime", {0x0061: 2301, 0x008F: 0x2000})
    got = decode_blocks(DDSY, "realtime", raw, 1, 1, TZ)
    assert got["u_a"][0] == pytest.approx(230.1)
    for tag in ("u_b", "u_c", "i_b", "i_c", "p_b", "p_c", "q_b", "q_c", "pf_b", "pf_c"):
        assert np.isnan(got[tag][0]), tag
    assert got["relay"][0] == 1
    blocks = decode_poll_block(DDSY, encode_poll_block(DDSY, _zeros("poll_block", DDSY), TZ), TZ)
    assert np.isnan(blocks["u_c"][0])


def test_bad_raw_arrays_are_refused() -> None:
    width = DTSY.read_plan("realtime").width
    with pytest.raises(RegisterDecodeError, match=r"must be \(meters, 75\)"):
        decode_blocks(DTSY, "realtime", np.zeros((2, width - 1), np.uint16), 1, 1, TZ)
    with pytest.raises(RegisterDecodeError, match="uint16"):
        decode_blocks(DTSY, "realtime", np.zeros((2, width), np.int32), 1, 1, TZ)
    with pytest.raises(RegisterDecodeError, match="needs a reference time"):
        decode_blocks(DTSY, "demand", np.zeros((1, 3), np.uint16), 1, 1, TZ)


def test_demand_time_takes_the_latest_year_not_in_the_future() -> None:
    new_year = datetime(2025, 1, 2, 9, 0, tzinfo=TZ).timestamp()
    raw = _raw(DTSY, "demand", {0x007C: 12 << 8 | 31, 0x007D: 23 << 8 | 45})
    got = decode_blocks(DTSY, "demand", raw, 1, 1, TZ, now=new_year)["demand_time"][0]
    assert got == datetime(2024, 12, 31, 23, 45, tzinfo=TZ).timestamp()
    raw = _raw(DTSY, "demand", {0x007C: 1 << 8 | 2, 0x007D: 8 << 8 | 15})
    got = decode_blocks(DTSY, "demand", raw, 1, 1, TZ, now=new_year)["demand_time"][0]
    assert got == datetime(2025, 1, 2, 8, 15, tzinfo=TZ).timestamp()
    raw = _raw(DTSY, "demand", {0x007C: 2 << 8 | 30, 0x007D: 8 << 8 | 15})  # 30 February
    assert np.isnan(decode_blocks(DTSY, "demand", raw, 1, 1, TZ, now=new_year)["demand_time"][0])


def _poll_row() -> Any:
    row = np.zeros((1, 48), np.uint16)
    row[0, [0, 1, 4, 7, 19, 20]] = [5, 2200, 150, 0xFF9C, 10, 40]
    row[0, 21:23] = [0x0001, 0x86A0]
    row[0, 31:33] = [0x0000, 12345]
    row[0, 36] = 0xE000 | 0x0020
    row[0, 40:44] = [24 << 8 | 5, 6 << 8 | 7, 8 << 8 | 9, 1 << 8 | 0]
    row[0, 44:47] = [1500, 5 << 8 | 1, 12 << 8 | 30]
    return row


def test_poll_block_uses_its_own_pt_ct_and_clock() -> None:
    got = decode_poll_block(DTSY, _poll_row(), TZ)
    assert got["u_a"][0] == pytest.approx(2200.0)
    assert got["i_a"][0] == pytest.approx(60.0)
    assert got["p_a"][0] == pytest.approx(-40.0)
    assert got["e_total"][0] == pytest.approx(400000.0)
    assert got["balance_fen"].tolist() == [12345]
    assert (got["relay"][0], got["arrears"][0], got["fault"][0]) == (1, 1, 0)
    assert got["meter_clock"][0] == datetime(2024, 5, 6, 7, 8, 9, tzinfo=TZ).timestamp()
    assert got["demand_time"][0] == datetime(2024, 5, 1, 12, 30, tzinfo=TZ).timestamp()
    assert got["demand"][0] == pytest.approx(600.0)
    assert poll_block_matches(DTSY, _poll_row()).tolist() == [True]
    assert poll_block_matches(DDSY, _poll_row()).tolist() == [False]


def test_bcd_clock_and_invalid_bcd() -> None:
    bcd = dataclasses.replace(DTSY, time_code="bcd")
    row = _poll_row()
    row[0, 40:44] = [0x2405, 0x0607, 0x0809, 0x0100]
    assert (
        decode_poll_block(bcd, row, TZ)["meter_clock"][0]
        == datetime(2024, 5, 6, 7, 8, 9, tzinfo=TZ).timestamp()
    )
    row[0, 40] = 0x2A05
    assert np.isnan(decode_poll_block(bcd, row, TZ)["meter_clock"][0])
    tags = _zeros("poll_block") | {"meter_clock": [NOW]}
    assert decode_poll_block(bcd, encode_poll_block(bcd, tags, TZ), TZ)["meter_clock"][0] == NOW


def test_clock_in_a_daylight_saving_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    summer = datetime(2024, 7, 1, 12, 0, 5, tzinfo=berlin).timestamp()
    winter = datetime(2024, 1, 1, 12, 0, 5, tzinfo=berlin).timestamp()
    tags = _zeros("poll_block", n=2) | {"meter_clock": [summer, winter]}
    raw = encode_poll_block(DTSY, tags, berlin)
    assert raw[0, 41] >> 8 == 1 and raw[0, 41] & 0xFF == 12  # local wall time, not UTC
    got = decode_poll_block(DTSY, raw, berlin)["meter_clock"]
    assert got.tolist() == [summer, winter]
    before = datetime(2024, 3, 31, 1, 30, tzinfo=berlin).timestamp()  # the day clocks go forward
    after = datetime(2024, 3, 31, 3, 30, tzinfo=berlin).timestamp()
    assert after - before == 3600
    tags = _zeros("poll_block", n=2) | {"meter_clock": [before, after]}
    got = decode_poll_block(DTSY, encode_poll_block(DTSY, tags, berlin), berlin)["meter_clock"]
    assert got.tolist() == [before, after]


def test_freeze_block_hand_computed_and_december_year() -> None:
    raw = np.zeros((2, 60), np.uint16)
    raw[:, 0] = [24 << 8 | 3, 24 << 8 | 12]
    raw[:, 1:3] = [0x0001, 0x86A0]
    raw[:, 11] = 2000
    raw[:, 12:14] = [[3 << 8 | 15, 10 << 8 | 45], [12 << 8 | 31, 23 << 8 | 59]]
    got = decode_freeze_block(DTSY, raw, np.array([1, 1]), np.array([20, 1]), TZ)
    assert got["yymm"].tolist() == [2403, 2412]
    np.testing.assert_allclose(got["e_total"], [20000.0, 1000.0])
    np.testing.assert_allclose(got["demand"], [40.0, 2.0])
    assert got["demand_time"].tolist() == [
        datetime(2024, 3, 15, 10, 45, tzinfo=TZ).timestamp(),
        datetime(2024, 12, 31, 23, 59, tzinfo=TZ).timestamp(),
    ]
    raw[0, 0] = 24 << 8 | 13
    assert decode_freeze_block(DTSY, raw, 1, 1, TZ)["yymm"][0] == 0
    assert np.isnan(decode_freeze_block(DTSY, raw, 1, 1, TZ)["demand_time"][0])


def test_encode_errors_name_the_tag() -> None:
    with pytest.raises(EncodeError, match=r"realtime.u_a: 1 value\(s\) outside the u16 range"):
        encode_blocks(DTSY, "realtime", _zeros("realtime") | {"u_a": [7000.0]}, 1, 1, TZ)
    with pytest.raises(EncodeError, match=r"no values for tag\(s\) e_sharp, .*e_rev"):
        encode_blocks(DTSY, "energy", {"e_total": [1.0]}, 1, 1, TZ)
    with pytest.raises(EncodeError, match="balance_fen: values must be whole"):
        encode_blocks(DTSY, "prepaid", _zeros("prepaid") | {"balance_fen": [1.5]}, 1, 1, TZ)
    with pytest.raises(EncodeError, match="NaN"):
        encode_blocks(DTSY, "energy", _zeros("energy") | {"e_total": [np.nan]}, 1, 1, TZ)
    with pytest.raises(EncodeError, match="yymm"):
        encode_freeze_block(DTSY, [2413], _zeros("freeze"), 1, 1, TZ)


def _zeros(scan_class: str, profile: RegisterProfile = DTSY, n: int = 1) -> dict[str, Any]:
    """Every tag of the plan at zero (times unknown), PT and CT 1."""
    plan = profile.read_plan(scan_class)
    tags = {f.tag: np.full(n, np.nan if f.type == "time" else 0.0) for f in plan.fields}
    return tags | {"pt": np.ones(n, np.int64), "ct": np.ones(n, np.int64)}


# --- property-based round trips -------------------------------------------------------

_RANGES = {
    "u16": (0, 0xFFFF),
    "i16": (-0x8000, 0x7FFF),
    "u32": (0, 2**32 - 1),
    "i32": (-(2**31), 2**31 - 1),
}
_Y2000, _Y2099 = 946_800_000, 4_102_300_000


@st.composite
def _plan_values(draw: st.DrawFn, profile: RegisterProfile, scan_class: str) -> tuple[Any, ...]:
    """Tag values exactly representable by the plan, with per-meter PT and CT."""
    n = draw(st.integers(1, 6))
    pt = np.array(draw(st.lists(st.integers(1, 9999), min_size=n, max_size=n)), np.float64)
    ct = np.array(draw(st.lists(st.integers(1, 9999), min_size=n, max_size=n)), np.float64)
    ratios: dict[str, Any] = {"": 1.0, "pt": pt, "ct": ct, "ptct": pt * ct}
    plan = profile.read_plan(scan_class)
    ref = np.array(draw(st.lists(st.integers(_Y2000 + 10**8, _Y2099), min_size=n, max_size=n)))
    tags: dict[str, Any] = {}
    for f in sorted(plan.fields, key=lambda g: "YY" not in g.layout):
        if f.type == "bits":
            tags[f.tag] = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.uint8)
        elif f.type == "time" and "YY" in f.layout:
            ref = np.array(draw(st.lists(st.integers(_Y2000, _Y2099), min_size=n, max_size=n)))
            tags[f.tag] = ref.astype(np.float64)
        elif f.type == "time":
            back = draw(st.lists(st.integers(0, 300 * 1440), min_size=n, max_size=n))
            tags[f.tag] = (ref // 60 - np.array(back)) * 60.0
        elif f.tag == "status_word":
            continue  # composed from the bit tags
        else:
            lo, hi = _RANGES[f.type]
            raw = np.array(draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)))
            tags[f.tag] = raw * f.scale if f.kind == "int" else raw * (f.scale * ratios[f.ratio])
    return n, pt, ct, ref, tags


def _assert_same(plan_tags: dict[str, Any], got: dict[str, Any]) -> None:
    for tag, want in plan_tags.items():
        if np.asarray(want).dtype.kind == "f":
            np.testing.assert_allclose(got[tag], want, rtol=1e-12, equal_nan=True, err_msg=tag)
        else:
            assert got[tag].tolist() == np.asarray(want).tolist(), tag


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.model)
@pytest.mark.parametrize("scan_class", ["realtime", "energy", "prepaid"])
@given(data=st.data())
def test_round_trip_blocks(profile: RegisterProfile, scan_class: str, data: st.DataObject) -> None:
    _n, pt, ct, _, tags = data.draw(_plan_values(profile, scan_class))
    raw = encode_blocks(profile, scan_class, tags, pt, ct, TZ)
    got = decode_blocks(profile, scan_class, raw, pt, ct, TZ)
    _assert_same(tags, got)
    assert set(got) == set(profile.read_plan(scan_class).tags)
    assert np.array_equal(encode_blocks(profile, scan_class, got, pt, ct, TZ), raw)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.model)
@given(data=st.data())
def test_round_trip_demand(profile: RegisterProfile, data: st.DataObject) -> None:
    _n, pt, ct, ref, tags = data.draw(_plan_values(profile, "demand"))
    now = float(data.draw(st.integers(_Y2000 + 10**8, _Y2099)))
    tags["demand_time"] = tags["demand_time"] - (ref // 60) * 60 + (now // 60) * 60
    raw = encode_blocks(profile, "demand", tags, pt, ct, TZ)
    _assert_same(tags, decode_blocks(profile, "demand", raw, pt, ct, TZ, now=now))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.model)
@given(data=st.data())
def test_round_trip_poll_block(profile: RegisterProfile, data: st.DataObject) -> None:
    _n, pt, ct, _, tags = data.draw(_plan_values(profile, "poll_block"))
    tags["pt"], tags["ct"] = pt.astype(np.int64), ct.astype(np.int64)
    raw = encode_poll_block(profile, tags, TZ)
    assert poll_block_matches(profile, raw).all()
    _assert_same(tags, decode_poll_block(profile, raw, TZ))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.model)
@given(data=st.data(), yy=st.integers(0, 98), mm=st.integers(1, 12))
def test_round_trip_freeze(profile: RegisterProfile, data: st.DataObject, yy: int, mm: int) -> None:
    n, pt, ct, _, tags = data.draw(_plan_values(profile, "freeze"))
    start = datetime(2000 + yy, mm, 1, tzinfo=TZ)
    end = (start + timedelta(days=32)).replace(day=1)
    minutes = data.draw(
        st.lists(
            st.integers(0, int((end - start).total_seconds()) // 60 - 1), min_size=n, max_size=n
        )
    )
    tags["demand_time"] = start.timestamp() + np.array(minutes) * 60.0
    tags["demand_time"][0] = np.nan  # no demand recorded that month
    raw = encode_freeze_block(profile, np.full(n, yy * 100 + mm), tags, pt, ct, TZ)
    got = decode_freeze_block(profile, raw, pt, ct, TZ)
    assert got["yymm"].tolist() == [yy * 100 + mm] * n
    _assert_same(tags, got)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.model)
@pytest.mark.parametrize("scan_class", ["realtime", "energy", "demand", "prepaid", "poll_block"])
@given(seed=st.integers(0, 2**32 - 1))
def test_decoders_accept_any_registers(
    profile: RegisterProfile, scan_class: str, seed: int
) -> None:
    width = profile.read_plan(scan_class).width
    raw = np.random.default_rng(seed).integers(0, 0x10000, (8, width)).astype(np.uint16)
    if scan_class == "poll_block":
        got = decode_poll_block(profile, raw, TZ, now=NOW)
    else:
        got = decode_blocks(profile, scan_class, raw, np.ones(8), np.ones(8), TZ, now=NOW)
    assert all(column.shape == (8,) for column in got.values())
    freeze = decode_freeze_block(profile, raw[:, :1].repeat(60, axis=1), 1, 1, TZ)
    assert freeze["yymm"].shape == (8,)


# --- writes ----------------------------------------------------------------------------

WRITE_CASES = [
    ("relay_open", {}, [(0x0057, [1, 1])]),
    ("relay_close", {}, [(0x0057, [1, 0])]),
    ("relay_auto", {}, [(0x0057, [0, 0])]),
    (
        "prices",
        {"sharp_e4": 11850, "peak_e4": 10210, "flat_e4": 6970, "valley_e4": 70000},
        [(0x0059, [0, 11850, 0, 10210, 0, 6970, 1, 4464])],
    ),
    ("power_limit", {"kw": 12.5}, [(0x0061, [1250])]),
    ("alarm1", {"fen": 5000}, [(0x0046, [0, 5000])]),
    ("alarm2", {"fen": 100_000}, [(0x0048, [1, 34464])]),
    ("credit_limit", {"fen": 0}, [(0x004A, [0, 0])]),
    ("freeze_time", {"day": 1, "hour": 0}, [(0x0122, [0x0100])]),
    (
        "tou_day_table",
        {"table": 2, "periods": [(0, 0, 3), (8, 0, 1)]},
        [(0x0320, [0x0000, 4, 0x0800, 2] + [0x0800, 2] * 12)],
    ),
    ("clock", {"when": datetime(2024, 5, 6, 7, 8, 9)}, [(0x0040, [0x1805, 0x0607, 0x0809])]),
]


@pytest.mark.parametrize(("command", "params", "expected"), WRITE_CASES)
def test_write_encodings(command: str, params: dict[str, Any], expected: Any) -> None:
    assert encode_write(DTSY, command, **params) == expected
    (address, values) = expected[0]
    assert decode_write(DTSY, address, values) == (command, params)


def test_write_addresses_follow_the_address_base() -> None:
    shifted = dataclasses.replace(DTSY, address_base=1)
    assert encode_write(shifted, "relay_open") == [(0x0056, [1, 1])]
    assert decode_write(shifted, 0x0056, [1, 1]) == ("relay_open", {})


BAD_WRITES = [
    ("prices", {"sharp_e4": -1, "peak_e4": 0, "flat_e4": 0, "valley_e4": 0}, "sharp_e4 must be"),
    ("prices", {"sharp_e4": 2**32, "peak_e4": 0, "flat_e4": 0, "valley_e4": 0}, "0..4294967295"),
    ("prices", {"sharp_e4": 1}, "takes sharp_e4, peak_e4, flat_e4, valley_e4"),
    ("alarm1", {"fen": 12.5}, "fen must be a whole multiple"),
    ("alarm1", {"fen": True}, "fen must be a number"),
    ("power_limit", {"kw": -1.0}, "kw must be"),
    ("power_limit", {"kw": float("nan")}, "kw must be finite"),
    ("freeze_time", {"day": 29, "hour": 0}, "day must be 1..28"),
    ("relay_open", {"now": True}, "takes no parameters"),
    ("explode", {}, "no write 'explode'"),
    ("tou_day_table", {"table": 3, "periods": [(0, 0, 0)]}, "table must be 1..2"),
    ("tou_day_table", {"table": 1, "periods": []}, "1..14 periods, got 0"),
    ("tou_day_table", {"table": 1, "periods": [(0, 0, 0)] * 15}, "1..14 periods, got 15"),
    ("tou_day_table", {"table": 1, "periods": [(8, 0, 0), (7, 0, 1)]}, "must start after"),
    ("tou_day_table", {"table": 1, "periods": [(0, 0, 4)]}, "bucket 0..3"),
    ("tou_day_table", {"table": 1, "periods": [(24, 0, 0)]}, "hour 0..23"),
    ("clock", {"when": datetime(1999, 12, 31)}, "2000..2099"),
    ("clock", {}, "when=datetime only"),
]


@pytest.mark.parametrize(("command", "params", "message"), BAD_WRITES)
def test_bad_write_parameters_are_refused(command: str, params: Any, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode_write(DTSY, command, **params)


def test_decode_write_maps_unknown_to_modbus_exceptions() -> None:
    with pytest.raises(IllegalWriteAddress, match="no write of 2 register") as caught:
        decode_write(DTSY, 0x0123, [0, 0])
    assert caught.value.exception_code == 2
    with pytest.raises(IllegalWriteValue, match=r"values \[2, 2\]") as bad:
        decode_write(DTSY, 0x0057, [2, 2])
    assert bad.value.exception_code == 3
    with pytest.raises(IllegalWriteValue, match=r"0\.\.65535"):
        decode_write(DTSY, 0x0057, [1, 70000])
    with pytest.raises(IllegalWriteValue, match="not a valid time"):
        decode_write(DTSY, 0x0040, [0x180D, 0x0101, 0x0000])
    with pytest.raises(IllegalWriteValue, match=r"hour 0\.\.23"):
        decode_write(DTSY, 0x0300, [0x1900, 1] * 14)


_periods = st.lists(
    st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 3)),
    min_size=1,
    max_size=14,
    unique_by=lambda p: p[:2],
).map(sorted)


@given(table=st.integers(1, 2), periods=_periods)
def test_day_table_round_trip(table: int, periods: list[tuple[int, int, int]]) -> None:
    [(address, values)] = encode_write(DDSY, "tou_day_table", table=table, periods=periods)
    assert len(values) == 28
    assert decode_write(DDSY, address, values) == (
        "tou_day_table",
        {"table": table, "periods": periods},
    )


@given(
    prices=st.lists(st.integers(0, 2**32 - 1), min_size=4, max_size=4),
    when=st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59)),
)
def test_price_and_clock_round_trip(prices: list[int], when: datetime) -> None:
    params = dict(zip(("sharp_e4", "peak_e4", "flat_e4", "valley_e4"), prices, strict=True))
    [(address, values)] = encode_write(DTSY, "prices", **params)
    assert decode_write(DTSY, address, values) == ("prices", params)
    when = when.replace(microsecond=0)
    [(address, values)] = encode_write(DTSY, "clock", when=when)
    assert decode_write(DTSY, address, values) == ("clock", {"when": when})


@given(address=st.integers(0, 0xFFFF), values=st.lists(st.integers(0, 0xFFFF), max_size=30))
def test_decode_write_fuzz(address: int, values: list[int]) -> None:
    try:
        command, params = decode_write(DTSY, address, values)
    except (IllegalWriteAddress, IllegalWriteValue):
        return
    assert encode_write(DTSY, command, **params) == [(address, values)]
