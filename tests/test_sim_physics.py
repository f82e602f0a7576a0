"""The simulator's physics: energy, TOU buckets, demand, relay, prepaid, freeze, readings."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.catalogue import default_catalogue
from config.tariffs import Period, Season, TariffVersion
from server.clock import ManualClock
from sim.clock import AcceleratedClock
from sim.daytables import BUCKET_CODE, DayTableError, DayTables, season_grid
from sim.energy import COUNT_MWMS, U32
from sim.fleet import Fleet, RelayAction

SH = ZoneInfo("Asia/Shanghai")
PRICES = (11850, 10210, 6970, 3720)  # sharp, peak, flat, valley, yuan/10⁴ per kWh


def _periods(*spans: tuple[str, str, str]) -> tuple[Period, ...]:
    def minutes(text: str) -> int:
        hours, mins = text.split(":")
        return int(hours) * 60 + int(mins)

    return tuple(Period(minutes(a), minutes(b), bucket) for a, b, bucket in spans)


SUMMER = Season(
    "summer",
    (7, 8),
    _periods(
        ("00:00", "08:00", "valley"),
        ("08:00", "10:00", "peak"),
        ("10:00", "11:00", "sharp"),
        ("11:00", "14:00", "flat"),
        ("14:00", "15:00", "sharp"),
        ("15:00", "21:00", "peak"),
        ("21:00", "24:00", "flat"),
    ),
)
OTHER = Season(
    "other",
    (1, 2, 3, 4, 5, 6, 9, 10, 11, 12),
    _periods(
        ("00:00", "08:00", "valley"),
        ("08:00", "11:30", "peak"),
        ("11:30", "17:00", "flat"),
        ("17:00", "21:00", "peak"),
        ("21:00", "24:00", "flat"),
    ),
    weekend_periods=_periods(("00:00", "09:00", "valley"), ("09:00", "24:00", "flat")),
)
VERSION = TariffVersion(datetime(2024, 1, 1, tzinfo=SH), seasons=(SUMMER, OTHER))


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """Unix time of a wall-clock time in Shanghai."""
    return datetime(year, month, day, hour, minute, second, tzinfo=SH).timestamp()


def make_fleet(
    n: int = 3,
    *,
    three_phase: list[bool] | None = None,
    kind: str = "dormitory",
    ct: list[int] | None = None,
    limits: list[float] | None = None,
    seed: int = 1,
    start: float | None = None,
    clock: ManualClock | None = None,
) -> Fleet:
    return Fleet(
        [f"M{i:03d}" for i in range(n)],
        three_phase if three_phase is not None else [i % 2 == 1 for i in range(n)],
        [kind] * n,
        ct if ct is not None else [1] * n,
        [1] * n,
        limits if limits is not None else [math.nan] * n,
        DayTables.shared(season_grid([SUMMER, OTHER]), n),
        seed,
        220.0,
        "Asia/Shanghai",
        clock=clock,
        start=start,
        gateway_ids=["GW1"],
    )


def oracle_minutes(start: float, end: float, tz: ZoneInfo = SH) -> dict[str, int]:
    """Whole minutes in each bucket between two minute-aligned times, by the tariff itself."""
    counts = dict.fromkeys(BUCKET_CODE, 0)
    t = start
    while t < end:
        counts[VERSION.bucket_at(datetime.fromtimestamp(t, tz))] += 1
        t += 60.0
    return counts


def buckets_of(fleet: Fleet, row: int) -> dict[str, int]:
    return {name: int(fleet.energy.buckets[row, b]) for name, b in BUCKET_CODE.items()}


# -- energy ------------------------------------------------------------------------------


@given(
    load_mw=st.integers(min_value=0, max_value=13_000_000),
    steps_ms=st.lists(st.integers(min_value=1, max_value=7_200_000), min_size=1, max_size=20),
)
def test_constant_load_energy_is_the_exact_integral(load_mw: int, steps_ms: list[int]) -> None:
    fleet = make_fleet(1, three_phase=[False], start=at(2024, 3, 5, 0, 0))
    fleet.set_load(0, load_mw / 1e6)
    t_ms = round(fleet.now * 1000)
    for step in steps_ms:
        t_ms += step
        fleet.step(t_ms / 1000.0)
    integral = load_mw * sum(steps_ms)  # mW·ms
    assert int(fleet.energy.total[0]) == integral // COUNT_MWMS
    assert int(fleet.energy.remainder[0]) == integral % COUNT_MWMS
    assert int(fleet.energy.buckets[0].sum()) == int(fleet.energy.total[0])
    tags = fleet.tags()
    assert tags["e_total"][0] == pytest.approx(integral / 3.6e12, abs=0.01)
    assert tags["e_fwd"][0] == tags["e_total"][0]
    assert tags["e_rev"][0] == 0.0


def test_tou_buckets_follow_the_day_table_across_midnight_and_season_with_hour_steps() -> None:
    base = ManualClock(0.0)
    start = at(2024, 6, 30, 18, 0)  # a Sunday in the "other" season; Monday is July (summer)
    clock = AcceleratedClock(base, 3600.0, origin=start)
    fleet = make_fleet(2, three_phase=[False, True], ct=[1, 50], start=clock.time())
    fleet.set_load(0, 6.0)  # 10 counts per minute
    fleet.set_load(1, 60.0)  # CT 50: 1.2 kW secondary, 2 counts per minute
    for _ in range(22):  # 18:00 Sunday .. 16:00 Monday, one simulated hour per base second
        base.advance(1.0)
        fleet.step(clock.time())
    assert fleet.now == at(2024, 7, 1, 16, 0)
    minutes = oracle_minutes(start, fleet.now)
    assert buckets_of(fleet, 0) == {b: 10 * m for b, m in minutes.items()}
    assert buckets_of(fleet, 1) == {b: 2 * m for b, m in minutes.items()}
    assert minutes["sharp"] == 120  # summer's sharp hours on Monday only
    tags = fleet.tags()
    assert tags["e_total"][1] == pytest.approx(2 * sum(minutes.values()) * 0.01 * 50)
    assert tags["e_sharp"][1] == pytest.approx(120 * 2 * 0.01 * 50)


def test_one_long_step_splits_at_half_hour_periods_and_weekends() -> None:
    start = at(2024, 3, 8, 6, 0)  # Friday; the weekend table has other hours
    fleet = make_fleet(1, three_phase=[False], start=start)
    fleet.set_load(0, 6.0)
    fleet.step(at(2024, 3, 11, 12, 0))
    minutes = oracle_minutes(start, fleet.now)
    assert buckets_of(fleet, 0) == {b: 10 * m for b, m in minutes.items()}
    assert int(fleet.energy.total[0]) == 10 * sum(minutes.values())


def test_buckets_follow_local_time_across_a_daylight_saving_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2024, 3, 30, 20, 0, tzinfo=berlin).timestamp()
    fleet = Fleet(
        ["X"],
        [False],
        ["common"],
        [1],
        [1],
        [math.nan],
        DayTables.shared(season_grid([SUMMER, OTHER]), 1),
        0,
        230.0,
        "Europe/Berlin",
        start=start,
    )
    fleet.set_load(0, 6.0)
    end = datetime(2024, 3, 31, 12, 0, tzinfo=berlin).timestamp()  # 15 real hours
    fleet.step(end)
    minutes = oracle_minutes(start, end, berlin)
    assert sum(minutes.values()) == 15 * 60
    assert buckets_of(fleet, 0) == {b: 10 * m for b, m in minutes.items()}


def test_energy_does_not_depend_on_how_time_is_stepped() -> None:
    start = at(2024, 7, 2, 9, 17)
    one = make_fleet(6, seed=3, start=start)
    many = make_fleet(6, seed=3, start=start)
    for fleet in (one, many):
        fleet.set_prices(range(6), PRICES)
        fleet.set_prepaid(range(6))
    one.step(start + 3 * 3600 + 0.5)
    t = start
    while t < start + 3 * 3600:
        t = min(t + 37.25, start + 3 * 3600 + 0.5)
        many.step(t)
    np.testing.assert_array_equal(one.energy.buckets, many.energy.buckets)
    np.testing.assert_array_equal(one.energy.remainder, many.energy.remainder)
    np.testing.assert_array_equal(one.money.balance_fen, many.money.balance_fen)
    np.testing.assert_array_equal(one.demand.max_energy, many.demand.max_energy)
    np.testing.assert_array_equal(one.demand.max_time, many.demand.max_time)


def test_registers_wrap_at_u32_like_a_meter() -> None:
    fleet = make_fleet(1, three_phase=[False], start=at(2024, 3, 5, 1, 0))
    fleet.preset_energy(0, [[0, 0, 0, U32 - 5]])
    fleet.set_load(0, 6.0)
    fleet.step(at(2024, 3, 5, 1, 1))  # ten counts in the valley
    assert int(fleet.energy.buckets[0, BUCKET_CODE["valley"]]) == 5
    assert int(fleet.energy.total[0]) == (U32 - 5 + 10) % U32 == 5


@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=2 * 86400.0),
            st.sampled_from(["none", "open", "close", "auto"]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_energy_is_monotonic_and_buckets_sum_to_total(steps: list[tuple[float, str]]) -> None:
    fleet = make_fleet(4, seed=11, limits=[math.nan, 2.0, math.nan, 0.5], start=at(2024, 6, 29))
    previous = fleet.energy.total.copy()
    for dt, action in steps:
        if action != "none":
            fleet.relay([0, 1], cast(RelayAction, action))
        fleet.step(fleet.now + dt)
        total = fleet.energy.total
        assert np.all(total >= previous)
        np.testing.assert_array_equal(fleet.energy.buckets.sum(axis=1), total)
        tags = fleet.tags()
        np.testing.assert_allclose(
            tags["e_sharp"] + tags["e_peak"] + tags["e_flat"] + tags["e_valley"],
            tags["e_total"],
        )
        previous = total.copy()


def test_time_cannot_go_back() -> None:
    fleet = make_fleet(start=at(2024, 3, 5))
    with pytest.raises(ValueError, match="time went back"):
        fleet.step(at(2024, 3, 4))


# -- relay and power limit ---------------------------------------------------------------


def test_relay_open_zeroes_current_and_power_and_stops_energy() -> None:
    start = at(2024, 3, 5, 10, 0)
    fleet = make_fleet(2, three_phase=[True, False], start=start)
    fleet.set_load([0, 1], 3.0)
    fleet.relay(0, "open")
    fleet.relay(0, "open")  # already open: no second trip
    fleet.step(start + 3600)
    tags = fleet.tags()
    assert int(fleet.energy.total[0]) == 0 and int(fleet.energy.total[1]) == 300
    assert tags["relay"].tolist() == [0, 1]
    assert tags["trip_count"].tolist() == [1, 0]
    for name in ("p", "p_a", "p_b", "p_c", "i_a", "i_b", "i_c", "q"):
        assert tags[name][0] == 0.0
    assert 215.0 < tags["u_a"][0] < 225.0
    assert tags["status_word"][0] >> 13 == 0
    assert tags["run_mode"][0] & 0x02
    fleet.relay(0, "close")
    fleet.step(start + 7200)
    assert int(fleet.energy.total[0]) == 300
    assert fleet.tags()["status_word"][0] >> 13 == 0b111


def test_power_limit_trips_the_relay_after_a_whole_minute_over() -> None:
    start = at(2024, 3, 5, 10, 0)
    fleet = make_fleet(1, three_phase=[False], limits=[4.0], start=start)
    fleet.set_load(0, 5.0)
    fleet.step(start + 30)
    tags = fleet.tags()
    assert tags["relay"][0] == 1 and tags["p"][0] == pytest.approx(5.0)
    fleet.step(start + 3600)  # the meter trips at the end of the first minute
    tags = fleet.tags()
    assert tags["relay"][0] == 0 and tags["over_limit"][0] == 1
    assert tags["status_word"][0] & 0x10
    assert tags["trip_count"][0] == 1
    assert tags["p"][0] == 0.0
    assert int(fleet.energy.total[0]) == 500 // 60  # one minute at 5 kW: 8.33 counts
    fleet.relay(0, "close")  # forced closed: the meter's own limit does not act
    fleet.step(start + 7200)
    assert fleet.tags()["relay"][0] == 1 and fleet.tags()["over_limit"][0] == 0
    fleet.relay(0, "auto")
    fleet.step(start + 7200 + 60)
    tags = fleet.tags()
    assert tags["relay"][0] == 0 and tags["trip_count"][0] == 2


def test_relay_rejects_an_unknown_action_and_bad_rows() -> None:
    fleet = make_fleet(start=at(2024, 3, 5))
    with pytest.raises(ValueError, match="action"):
        fleet.relay(0, "toggle")  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="rows"):
        fleet.relay(7, "open")


# -- demand --------------------------------------------------------------------------------


def test_demand_is_the_15_minute_average_sliding_every_minute() -> None:
    start = at(2024, 3, 5, 10, 0)
    fleet = make_fleet(1, three_phase=[False], start=start)
    fleet.set_load(0, 1.0)
    fleet.step(start + 30 * 60)
    assert fleet.tags()["demand"][0] == pytest.approx(1.0)
    fleet.set_load(0, 3.0)
    for k in range(1, 16):
        fleet.step(start + (30 + k) * 60)
        tags = fleet.tags()
        assert tags["demand"][0] == pytest.approx(1.0 + 2.0 * k / 15.0)
        assert tags["demand_time"][0] == start + (30 + k) * 60
    fleet.set_load(0, 0.0)
    fleet.step(start + 3 * 3600)
    tags = fleet.tags()
    assert tags["demand"][0] == pytest.approx(3.0)
    assert tags["demand_time"][0] == start + 45 * 60


def test_demand_after_one_big_step_matches_minute_steps() -> None:
    start = at(2024, 7, 3, 17, 0)
    big = make_fleet(4, seed=5, start=start)
    small = make_fleet(4, seed=5, start=start)
    big.step(start + 5 * 3600)
    for minute in range(1, 5 * 60 + 1):
        small.step(start + minute * 60)
    np.testing.assert_array_equal(big.tags()["demand"], small.tags()["demand"])
    np.testing.assert_array_equal(big.tags()["demand_time"], small.tags()["demand_time"])
    assert np.all(big.tags()["demand"] > 0)


# -- monthly freeze --------------------------------------------------------------------------


def test_freeze_at_midnight_on_the_first_in_one_big_step() -> None:
    start = at(2024, 6, 30, 12, 0)
    fleet = make_fleet(1, three_phase=[False], start=start)
    fleet.set_load(0, 6.0)
    fleet.step(at(2024, 6, 30, 23, 0))
    fleet.set_load(0, 3.0)
    fleet.step(at(2024, 7, 1, 6, 0))
    block = fleet.freeze_block(1)
    assert block["month"][0] == 2406
    assert block["time"][0] == at(2024, 7, 1, 0, 0)
    june = oracle_minutes(start, at(2024, 7, 1))
    expected_counts = 10 * (sum(june.values()) - 60) + 5 * 60
    assert block["e_total"][0] == pytest.approx(expected_counts * 0.01)
    assert block["e_valley"][0] == pytest.approx(0.0)
    assert block["demand"][0] == pytest.approx(6.0)
    assert block["demand_time"][0] <= at(2024, 7, 1)
    tags = fleet.tags()
    assert tags["demand"][0] == pytest.approx(3.0)  # restarted at the freeze
    assert tags["demand_time"][0] > at(2024, 7, 1)
    assert fleet.freeze_block(2)["month"][0] == 0


def test_freezes_ring_in_order_across_several_months() -> None:
    fleet = make_fleet(2, start=at(2024, 1, 15))
    fleet.step(at(2024, 4, 2))
    months = [int(fleet.freeze_block(n)["month"][0]) for n in (1, 2, 3, 4)]
    assert months == [2403, 2402, 2401, 0]
    totals = [fleet.freeze_block(n)["e_total"] for n in (3, 2, 1)]
    assert np.all(totals[0] <= totals[1]) and np.all(totals[1] <= totals[2])
    with pytest.raises(ValueError, match="freeze blocks"):
        fleet.freeze_block(13)


# -- prepaid on the meter -----------------------------------------------------------------


def test_prepaid_money_decreases_by_exact_fen() -> None:
    start = at(2024, 7, 1, 6, 0)
    fleet = make_fleet(2, three_phase=[False, True], ct=[1, 50], start=start)
    fleet.set_load(0, 6.0)
    fleet.set_load(1, 60.0)
    fleet.set_prices([0, 1], PRICES)
    fleet.set_prepaid([0, 1], alarm1_fen=20_000, alarm2_fen=5_000, credit_limit_fen=1_000)
    fleet.recharge([0, 1], 50_000)
    fleet.step(at(2024, 7, 1, 10, 30))
    fleet.step(at(2024, 7, 1, 16, 0))
    minutes = oracle_minutes(start, fleet.now)
    price = dict(zip(("sharp", "peak", "flat", "valley"), PRICES, strict=True))
    cost_single = sum(10 * m * price[b] for b, m in minutes.items())  # 10⁻⁴ fen
    cost_ct = sum(2 * m * price[b] * 50 for b, m in minutes.items())
    tags = fleet.tags()
    assert tags["balance_fen"].tolist() == [
        50_000 - cost_single // 10_000,
        50_000 - cost_ct // 10_000,
    ]
    assert tags["purchase_count"].tolist() == [1, 1]
    assert tags["price_sharp_e4"].tolist() == [11850, 11850]
    assert tags["credit_limit_fen"].tolist() == [1_000, 1_000]
    assert tags["run_mode"].tolist() == [1, 1]


def test_arrears_and_alarm_bits_follow_the_balance() -> None:
    start = at(2024, 3, 5, 0, 0)
    fleet = make_fleet(1, three_phase=[False], start=start)
    fleet.set_load(0, 10.0)  # 1 kWh per 6 minutes
    fleet.set_prices(0, (10_000,) * 4)  # 1 yuan/kWh
    fleet.set_prepaid(0, alarm1_fen=1_000, alarm2_fen=500)
    fleet.recharge(0, 1_500)
    states = []
    for hours in (0.25, 1.0, 1.5, 2.0):
        fleet.step(start + hours * 3600)
        tags = fleet.tags()
        word = int(tags["status_word"][0])
        states.append((int(tags["balance_fen"][0]), tags["alm1"][0], tags["alm2"][0], word))
    assert states[0][:3] == (1_500 - 250, 0, 0)
    assert states[1][:3] == (500, 1, 0)
    assert states[2][:3] == (0, 1, 1) and states[2][3] & 0xC0 == 0xC0
    assert states[3][0] == -500 and states[3][3] & 0x20
    assert fleet.tags()["arrears"][0] == 1
    fleet.recharge(0, 2_000)
    tags = fleet.tags()
    assert tags["arrears"][0] == 0 and tags["balance_fen"][0] == 1_500
    assert tags["purchase_count"][0] == 2


def test_recharge_and_settings_reject_bad_amounts() -> None:
    fleet = make_fleet(start=at(2024, 3, 5))
    with pytest.raises(ValueError, match="fen"):
        fleet.recharge(0, 0)
    with pytest.raises(ValueError, match="fen"):
        fleet.recharge(0, 1.5)
    with pytest.raises(ValueError, match="prices_e4"):
        fleet.set_prices(0, (1, 2, 3))
    with pytest.raises(ValueError, match="alarm1_fen"):
        fleet.set_prepaid(0, alarm1_fen=-1)
    with pytest.raises(ValueError, match="power limit"):
        fleet.set_power_limit(0, -1.0)


# -- readings ------------------------------------------------------------------------------


def test_tags_match_the_catalogue_and_are_electrically_consistent() -> None:
    fleet = make_fleet(40, seed=9, start=at(2024, 7, 3, 20, 0))
    fleet.step(at(2024, 7, 3, 20, 30))
    tags = fleet.tags()
    catalogue = default_catalogue()
    assert list(tags) == list(catalogue.names)
    for tag in catalogue:
        assert tags[tag.name].dtype == tag.dtype and tags[tag.name].shape == (40,)
    three = fleet.three_phase
    for phase in "abc":
        rows = three if phase != "a" else np.ones(40, dtype=bool)
        u, i = tags[f"u_{phase}"][rows], tags[f"i_{phase}"][rows]
        p, pf = tags[f"p_{phase}"][rows], tags[f"pf_{phase}"][rows]
        np.testing.assert_allclose(p, u * i * pf / 1000.0, rtol=1e-9)
        assert np.all(np.abs(u / 220.0 - 1.0) <= 0.02)
        assert np.all((pf >= 0.85) & (pf <= 0.99))
        q = tags[f"q_{phase}"][rows]
        np.testing.assert_allclose(q, p * np.sqrt(1 - pf * pf) / pf, rtol=1e-9)
    np.testing.assert_allclose(
        tags["p"][three], (tags["p_a"] + tags["p_b"] + tags["p_c"])[three], rtol=1e-9
    )
    assert np.all(np.abs(tags["f"] - 50.0) <= 0.05)
    assert np.all(tags["p"] > 0)
    assert np.all(np.isnan(tags["power_limit"]))
    assert np.all(tags["pt"] == 1) and np.all(tags["ct"] == 1)


def test_single_phase_meters_report_phase_a_only() -> None:
    fleet = make_fleet(2, three_phase=[False, True], start=at(2024, 7, 3, 20, 0))
    tags = fleet.tags()
    for name in ("u", "i", "p", "q", "pf"):
        assert np.isnan(tags[f"{name}_b"][0]) and np.isnan(tags[f"{name}_c"][0])
        assert not np.isnan(tags[f"{name}_b"][1])
    assert not np.isnan(tags["u_a"][0]) and tags["p"][0] == pytest.approx(tags["p_a"][0])
    assert tags["status_word"][0] >> 13 == 0b001
    assert tags["status_word"][1] >> 13 == 0b111


def test_tags_for_some_rows_and_copies_for_all() -> None:
    fleet = make_fleet(5, start=at(2024, 7, 3, 20, 0))
    some = fleet.tags([3, 1])
    everything = fleet.tags()
    assert some["u_a"].tolist() == [everything["u_a"][3], everything["u_a"][1]]
    everything["u_a"][:] = 0.0
    assert fleet.tags()["u_a"][0] != 0.0


def test_meter_clock_has_an_offset_that_a_time_sync_sets() -> None:
    start = at(2024, 7, 3, 20, 0)
    fleet = make_fleet(200, start=start)
    offsets = fleet.tags()["meter_clock"] - start
    assert np.any(np.abs(offsets) > 30) and np.median(np.abs(offsets)) < 5
    fleet.set_clock(range(200), start)
    assert np.all(fleet.tags()["meter_clock"] == start)
    fleet.step(start + 10 * 86400)
    drift = fleet.tags()["meter_clock"] - fleet.now
    assert np.all(np.abs(drift) <= 20e-6 * 10 * 86400 + 1e-6) and np.any(drift != 0)


def test_the_same_seed_gives_the_same_park() -> None:
    def run(seed: int) -> dict[str, np.ndarray]:
        fleet = make_fleet(30, seed=seed, start=at(2024, 7, 3, 0, 0))
        fleet.step(at(2024, 7, 3, 13, 45, 10))
        return fleet.tags()

    first, again, other = run(4), run(4), run(5)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["u_a"], other["u_a"])
    assert not np.array_equal(first["e_total"], other["e_total"])


@pytest.mark.parametrize(
    ("kind", "high", "low", "ratio"),
    [
        ("dormitory", (2024, 7, 3, 20, 30), (2024, 7, 3, 10, 30), 3.0),
        ("enterprise", (2024, 7, 3, 10, 30), (2024, 7, 3, 3, 0), 2.0),
        ("enterprise", (2024, 7, 3, 10, 30), (2024, 7, 6, 10, 30), 2.0),
        ("common", (2024, 7, 3, 22, 0), (2024, 7, 3, 12, 0), 3.0),
    ],
)
def test_load_profiles_by_area_kind(
    kind: str, high: tuple[int, ...], low: tuple[int, ...], ratio: float
) -> None:
    def mean_power(when: tuple[int, ...]) -> float:
        fleet = make_fleet(300, kind=kind, seed=2, start=at(*when))
        return float(fleet.tags()["p"].mean())

    assert mean_power(high) > ratio * mean_power(low)


def test_rated_power_follows_the_wiring() -> None:
    n = 400
    fleet = Fleet(
        [f"M{i}" for i in range(n)],
        [i % 2 == 0 for i in range(n)],
        ["enterprise"] * n,
        [1 if i % 4 in (1, 3) else 40 for i in range(n)],
        [1] * n,
        [math.nan] * n,
        DayTables.shared(season_grid([SUMMER, OTHER]), n),
        0,
        220.0,
        "Asia/Shanghai",
    )
    rated = fleet.loads.rated_kw
    single_direct = ~fleet.three_phase & (fleet.ct == 1)
    assert rated[single_direct].min() >= 0.2 and rated[single_direct].max() <= 4.0
    three_ct = fleet.three_phase & (fleet.ct == 40)
    assert rated[three_ct].max() <= 0.6 * 220 * math.sqrt(3) * 5 * 40 / 1000 + 1e-9


def test_bad_construction_is_named() -> None:
    def build(**changes: Any) -> Fleet:
        args: dict[str, Any] = {
            "ids": ["A", "B"],
            "three_phase": [True, False],
            "kind": ["enterprise"] * 2,
            "ct": [1, 1],
            "pt": [1, 1],
            "power_limit_kw": [1.0, math.nan],
            "day_tables": DayTables.shared(season_grid([SUMMER, OTHER]), 2),
            "seed": 0,
            "nominal_voltage": 220.0,
            "tz": "UTC",
        }
        return Fleet(**{**args, **changes})

    assert len(build()) == 2
    with pytest.raises(ValueError, match="tz"):
        build(tz="Mars/Olympus")
    with pytest.raises(ValueError, match="kind"):
        build(kind=["factory", "enterprise"])
    with pytest.raises(ValueError, match="ct"):
        build(ct=[0, 1])
    with pytest.raises(ValueError, match="three_phase"):
        build(three_phase=[True])
    with pytest.raises(ValueError, match="power_limit_kw"):
        build(power_limit_kw=[-1.0, 1.0])
    with pytest.raises(ValueError, match="nominal_voltage"):
        build(nominal_voltage=10.0)
    with pytest.raises(ValueError, match="day_tables"):
        build(day_tables=DayTables.shared(season_grid([SUMMER, OTHER]), 3))
    with pytest.raises(DayTableError, match="months"):
        season_grid([SUMMER])
    with pytest.raises(RuntimeError, match="step"):
        make_fleet().tags()
    with pytest.raises(ValueError, match="factor"):
        AcceleratedClock(ManualClock(), 0.0)


def test_accelerated_clock_changes_speed_without_jumping() -> None:
    base = ManualClock(100.0)
    clock = AcceleratedClock(base, 60.0, origin=1_000.0)
    base.advance(2.0)
    assert clock.time() == 1_120.0
    clock.set_factor(3600.0)
    assert clock.time() == 1_120.0 and clock.factor == 3600.0
    base.advance(1.0)
    assert clock.time() == 4_720.0


def test_from_site_maps_the_reference_park(tmp_path: Path) -> None:
    from config.demo import generate_site
    from config.loader import load_site

    generate_site(tmp_path / "site", seed=1)
    site = load_site(tmp_path / "site")
    start = at(2024, 7, 3, 20, 0)
    fleet = Fleet.from_site(site, seed=7, start=start)
    assert len(fleet) == len(site.meters) == 5407
    assert fleet.faults.gateway_ids == tuple(g.id for g in site.gateways)
    rows = {
        "three": next(i for i, m in enumerate(site.meters) if m.three_phase),
        "prepaid": next(i for i, m in enumerate(site.meters) if m.billing == "prepaid"),
        "postpaid": next(i for i, m in enumerate(site.meters) if m.billing != "prepaid"),
    }
    tags = fleet.tags()
    assert not np.isnan(tags["u_b"][rows["three"]])
    meter = site.meters[rows["prepaid"]]
    assert meter.tariff is not None
    version = site.tariff(meter.tariff).version_at(datetime.fromtimestamp(start, SH))
    local = datetime.fromtimestamp(start, SH)
    bucket = version.bucket_at(local) if version.seasons else "flat"
    assert tags[f"price_{bucket}_e4"][rows["prepaid"]] > 0
    assert tags["alarm1_fen"][rows["prepaid"]] == (meter.alarm1_fen or 0)
    assert tags["run_mode"][rows["prepaid"]] & 1 and not tags["run_mode"][rows["postpaid"]] & 1
    limits = [
        math.nan if m.power_limit_kw is None else float(m.power_limit_kw) for m in site.meters
    ]
    np.testing.assert_array_equal(tags["power_limit"], limits)
    np.testing.assert_array_equal(tags["ct"], [m.ct for m in site.meters])
    fleet.step(start + 3600)
    assert np.all(fleet.tags()["e_total"] >= tags["e_total"])
