"""Receipt amounts in yuan (exact, no float) and the printable HTML page."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.prepaid.receipts import format_yuan


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "0.00"),
        (1, "0.01"),
        (10, "0.10"),
        (100, "1.00"),
        (123_456, "1,234.56"),
        (-5, "-0.05"),
        (-123_456_789, "-1,234,567.89"),
        (2**53 + 1, "90,071,992,547,409.93"),
    ],
)
def test_format_yuan_table(fen, text):
    assert format_yuan(fen) == text


@given(st.integers(-(10**15), 10**15))
def test_format_yuan_round_trips(fen):
    text = format_yuan(fen)
    assert int(text.replace(",", "").replace(".", "")) == fen
    assert text.split(".")[1].isdigit() and len(text.split(".")[1]) == 2


@pytest.mark.parametrize("bad", [1.0, True, "100"])
def test_format_yuan_refuses_non_integers(bad):
    with pytest.raises(TypeError, match="integer fen"):
        format_yuan(bad)


def test_receipt_html_shows_the_amounts_in_yuan(ledger, fresh):
    meter = fresh("E")
    ledger.open_wallet(meter, "M1")
    recharge = ledger.post(
        "counter_recharge", meter=meter, amount_fen=123_456, operator="张<b>", channel="hmi"
    )
    posted = ledger.post(
        "energy_deduction",
        meter=meter,
        amount_fen=7,
        operator="s",
        channel="system",
        reason="六月电费",
    )
    ledger.mark_invoiced(posted.transaction_id, "finance")
    html = ledger.receipt_html(posted.transaction_id)
    assert '<meta charset="utf-8">' in html
    assert "一期物业" in html and "电费扣费" in html and "六月电费" in html
    assert ">-0.07<" in html and ">1,234.49<" in html
    assert posted.receipt_no in html and "已开票" in html
    recharge_html = ledger.receipt_html(recharge.transaction_id)
    assert ">1,234.56<" in recharge_html and "张&lt;b&gt;" in recharge_html
