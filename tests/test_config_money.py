"""Money and price parsing: exact integers from yuan text, TOML numbers and Decimals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.money import format_fen, format_price_e4, parse_fen, parse_kw, parse_price_e4


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        ("12.50", 1250),
        ("12.5", 1250),
        ("12", 1200),
        ("0", 0),
        ("0.01", 1),
        ("000.10", 10),
        (12, 1200),
        (Decimal("12.5"), 1250),
        (Decimal("1E+2"), 10000),
        ("99999999999.99", 9999999999999),
    ],
)
def test_parse_fen(value: object, fen: int) -> None:
    assert parse_fen(value) == fen


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.234", "at most 2 decimals"),
        ("-1", "must not be negative"),
        ("1e3", "money in yuan"),
        ("NaN", "money in yuan"),
        ("12.", "money in yuan"),
        (".5", "money in yuan"),
        (" 12", "money in yuan"),
        ("+12", "money in yuan"),
        ("1,000", "money in yuan"),
        ("١٢", "money in yuan"),  # Arabic-Indic digits are not money
        ("", "money in yuan"),
        (True, "money in yuan"),
        (1.5, "money in yuan"),  # a binary float is never money
        (Decimal("NaN"), "money in yuan"),
        (Decimal("1.005"), "at most 2 decimals"),
    ],
)
def test_parse_fen_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fen(value)


@pytest.mark.parametrize(
    ("value", "price"),
    [("1.0210", 10210), ("1.021", 10210), ("0.3720", 3720), (1, 10000), (Decimal("1.05"), 10500)],
)
def test_parse_price(value: object, price: int) -> None:
    assert parse_price_e4(value) == price


def test_parse_price_rejects_five_decimals() -> None:
    with pytest.raises(ValueError, match="at most 4 decimals"):
        parse_price_e4("1.02101")


def test_parse_kw() -> None:
    assert parse_kw("80.5") == Decimal("80.500")
    with pytest.raises(ValueError, match="at most 3 decimals"):
        parse_kw("1.0001")


@pytest.mark.parametrize(
    ("fen", "text"), [(0, "0.00"), (1, "0.01"), (1250, "12.50"), (-5, "-0.05"), (-100, "-1.00")]
)
def test_format_fen(fen: int, text: str) -> None:
    assert format_fen(fen) == text


@given(st.integers(min_value=0, max_value=10**15))
def test_fen_round_trip(fen: int) -> None:
    text = format_fen(fen)
    assert parse_fen(text) == fen
    assert parse_fen(Decimal(text)) == fen
    assert Decimal(text) * 100 == fen


@given(st.integers(min_value=0, max_value=10**13), st.integers(min_value=0, max_value=2))
def test_yuan_text_round_trip(fen: int, places: int) -> None:
    """Any yuan text with 0..2 decimals parses to the fen it means and formats back."""
    if places < 2:
        fen -= fen % 10 ** (2 - places)
    whole, cents = divmod(fen, 100)
    text = f"{whole}" if places == 0 else f"{whole}.{cents:02d}"[: len(str(whole)) + 1 + places]
    assert parse_fen(text) == fen
    assert Decimal(format_fen(parse_fen(text))) == Decimal(text)


@given(st.integers(min_value=0, max_value=10**12))
def test_price_round_trip(price: int) -> None:
    assert parse_price_e4(format_price_e4(price)) == price


@given(st.text(max_size=12))
def test_parse_fen_never_raises_anything_but_value_error(text: str) -> None:
    try:
        fen = parse_fen(text)
    except ValueError:
        return
    assert fen >= 0 and Decimal(text) * 100 == fen
