"""Price columns: TOU buckets, dated versions, tiered steps, overrides and batch changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from config import load_site
from config.tariffs import TouPrices
from server.prepaid.settlement import UNBOUNDED, settle
from server.prepaid.tariff_columns import TariffBook

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "small"
CST = timezone(timedelta(hours=8))
BEFORE = datetime(2025, 6, 30, 23, 59, 59, tzinfo=CST).timestamp()
AFTER = datetime(2025, 7, 1, 0, 0, 0, tzinfo=CST).timestamp()


@pytest.fixture(scope="module")
def site():
    return load_site(EXAMPLE, env={})


def test_tou_prices_follow_the_dated_version(site):
    book = TariffBook(site)
    columns = book.columns(["E0001", "E0001"], [BEFORE, AFTER])
    assert columns.prices_e4.tolist() == [[11850, 10210, 6970, 3720], [12000, 10500, 7000, 3500]]
    assert columns.priced.tolist() == [True, True]
    assert not columns.tiered.any()


def test_tou_buckets_are_priced_from_the_meter_registers(site):
    columns = TariffBook(site).columns(["E0001"], [BEFORE])
    # 1 kWh in each of sharp, peak, flat, valley at the 2024 prices
    result = settle(
        [[0, 0, 0, 0]],
        [[100, 200, 300, 400]],
        modulus=[2**32 * 50],
        limit=[10**9],
        prices_e4=columns.prices_e4,
        carry_e4=[0],
    )
    assert result.amount_e4.tolist() == [100 * 11850 + 200 * 10210 + 300 * 6970 + 400 * 3720]


def test_flat_prices_every_bucket_alike(site):
    columns = TariffBook(site).columns(["E0003"], [AFTER])
    assert columns.prices_e4.tolist() == [[6000] * 4]


def test_no_tariff_or_before_the_first_version_is_unpriced(site):
    early = datetime(2023, 12, 31, tzinfo=CST).timestamp()
    columns = TariffBook(site).columns(["D0002", "E0001"], [AFTER, early])
    assert columns.priced.tolist() == [False, False]


def test_tiered_steps_across_a_month(site):
    columns = TariffBook(site).columns(["D0001"], [AFTER])
    assert columns.tiered.tolist() == [True]
    assert columns.prices_e4.tolist() == [[0, 0, 0, 0]]
    assert columns.step_bounds.tolist() == [[20000, 40000, UNBOUNDED]]
    used = 0
    fen = 0
    carry = 0
    cursor = np.zeros((1, 4), dtype=np.int64)
    # a month of 30 days at 15 kWh a day (450 kWh): crosses both step bounds
    for _ in range(30):
        nxt = cursor + np.asarray([[0, 0, 1500, 0]])
        result = settle(
            cursor,
            nxt,
            modulus=[2**32],
            limit=[10**9],
            prices_e4=columns.prices_e4,
            carry_e4=[carry],
            month_used=[used],
            step_bounds=columns.step_bounds,
            step_prices_e4=columns.step_prices_e4,
        )
        fen += int(result.cost_fen[0])
        carry = int(result.carry_e4[0])
        used += int(result.delta.sum())
        cursor = result.cursor
    expected_e4 = 20000 * 5283 + 20000 * 5783 + 5000 * 8283
    assert fen * 10_000 + carry == expected_e4
    assert (fen, carry) == (26_273, 5000)  # 262.73 yuan, half a fen carried


def test_override_and_batch_change_precedence(site):
    book = TariffBook(site, overrides={"E0001": 5000})
    assert book.columns(["E0001"], [BEFORE]).prices_e4.tolist() == [[5000] * 4]
    changed = book.with_change(["E0001", "D0001"], TouPrices(9, 8, 7, 6), effective=AFTER)
    columns = changed.columns(["E0001", "E0001", "D0001", "D0001"], [BEFORE, AFTER, BEFORE, AFTER])
    assert columns.prices_e4.tolist() == [[5000] * 4, [9, 8, 7, 6], [0] * 4, [9, 8, 7, 6]]
    assert columns.tiered.tolist() == [False, False, True, False]
    assert not columns.step_prices_e4[3].any()
    later = changed.with_change(["E0001"], 4000, effective=AFTER + 60)
    assert later.columns(["E0001"], [AFTER + 60]).prices_e4.tolist() == [[4000] * 4]


def test_bad_overrides_are_refused(site):
    with pytest.raises(KeyError, match="NOPE"):
        TariffBook(site, overrides={"NOPE": 1})
    with pytest.raises(ValueError, match="price"):
        TariffBook(site, overrides={"E0001": -5})
    with pytest.raises(ValueError, match="at least one meter"):
        TariffBook(site).with_change([], 100, effective=AFTER)
