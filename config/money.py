"""Exact decimal amounts from site files: money in fen, prices in yuan/10⁴ per kWh."""

from __future__ import annotations

import re
from decimal import Decimal

# Digits, an optional point and decimals; no sign, exponent, spaces or NaN.
_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


def _as_text(value: object, what: str) -> str:
    """The decimal text of a TOML string, integer or (Decimal-parsed) float."""
    if isinstance(value, bool):
        raise ValueError(f"must be {what}, got {value!r}")
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return format(value, "f")
    raise ValueError(f"must be {what}, got {value!r}")


def parse_scaled(value: object, places: int, what: str) -> int:
    """Parse a decimal with at most `places` decimals into an integer of 10^-places units."""
    text = _as_text(value, what)
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise ValueError(f"must be {what}, got {text!r}")
    sign, whole, decimals = match.groups()
    decimals = decimals or ""
    if len(decimals) > places:
        raise ValueError(f"must be {what} (at most {places} decimals), got {text!r}")
    scaled: int = int(whole) * 10**places + int(decimals.ljust(places, "0") or "0")
    return -scaled if sign else scaled


def parse_fen(value: object) -> int:
    """Money ≥ 0 in yuan with at most 2 decimals (`"12.50"`, 12.5, 12) as integer fen."""
    fen = parse_scaled(value, 2, "money in yuan like 12.50")
    if fen < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return fen


def parse_price_e4(value: object) -> int:
    """A price ≥ 0 in yuan/kWh with at most 4 decimals as integer yuan/10⁴."""
    price = parse_scaled(value, 4, "a price in yuan/kWh like 1.0210")
    if price < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return price


def parse_kw(value: object) -> Decimal:
    """A power ≥ 0 in kW with at most 3 decimals."""
    milli = parse_scaled(value, 3, "a power in kW like 12.5")
    if milli < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return Decimal(milli).scaleb(-3)


def format_fen(fen: int) -> str:
    """Integer fen as a yuan string with exactly 2 decimals: 1250 -> "12.50"."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def format_price_e4(price_e4: int) -> str:
    """Integer yuan/10⁴ as a price string with exactly 4 decimals: 10210 -> "1.0210"."""
    sign = "-" if price_e4 < 0 else ""
    whole, rest = divmod(abs(price_e4), 10_000)
    return f"{sign}{whole}.{rest:04d}"
