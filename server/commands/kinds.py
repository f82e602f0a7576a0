"""Command kinds, their checked parameters, and the register write each one becomes."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Final

from config.profile import load_profile
from config.tariffs import BUCKETS
from protocols.register_writes import encode_write

KINDS: Final = (
    "relay_open",
    "relay_close",
    "forced_mode_on",
    "forced_mode_off",
    "prepaid_mode",
    "price_set",
    "power_limit_set",
    "tou_day_table_set",
    "time_sync",
    "alarm1_set",
    "alarm2_set",
    "credit_limit_set",
)
RELAY_KINDS: Final = frozenset(
    {"relay_open", "relay_close", "forced_mode_on", "forced_mode_off", "prepaid_mode"}
)
FORCED_RELAY: Final = ("closed", "open")  # closed = power on, open = tripped
PRICE_FIELDS: Final = ("sharp_e4", "peak_e4", "flat_e4", "valley_e4")
MAX_REASON: Final = 200
_U32: Final = 0xFFFFFFFF
_FEN_WRITES: Final = {
    "alarm1_set": "alarm1",
    "alarm2_set": "alarm2",
    "credit_limit_set": "credit_limit",
}

Params = dict[str, object]


def _fields(
    kind: str, params: Mapping[str, object], required: Sequence[str], optional: Sequence[str] = ()
) -> None:
    """Refuse missing and unknown parameters, naming them."""
    missing = [name for name in required if name not in params]
    if missing:
        raise ValueError(f"{kind}: missing parameter(s) {', '.join(missing)}")
    unknown = sorted(set(params) - set(required) - set(optional))
    if unknown:
        raise ValueError(f"{kind}: unknown parameter(s) {', '.join(unknown)}")


def _whole(kind: str, name: str, value: object, low: int = 0, high: int = _U32) -> int:
    """An integer in low..high, or a `ValueError` naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{kind}: {name} must be a whole number, got {value!r}")
    if value < 0 <= low:
        raise ValueError(f"{kind}: {name} must not be negative, got {value}")
    if not low <= value <= high:
        raise ValueError(f"{kind}: {name} must be {low}..{high}, got {value}")
    return value


def _reason(kind: str, value: object, *, required: bool) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{kind}: reason must be text, got {value!r}")
    text = value.strip()
    if required and not text:
        raise ValueError(f"{kind}: reason must not be empty")
    if len(text) > MAX_REASON:
        raise ValueError(f"{kind}: reason must be at most {MAX_REASON} characters")
    return text


def _expiry(kind: str, value: object, now: float) -> float:
    """Unix seconds (a number or an aware datetime) that lie after `now`."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{kind}: expires_at must carry a time zone, got {value!r}")
        seconds = value.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValueError(f"{kind}: expires_at must be Unix seconds or a datetime, got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"{kind}: expires_at must be finite, got {value!r}")
    if seconds <= now:
        raise ValueError(f"{kind}: expires_at {seconds:.0f} is in the past (now {now:.0f})")
    return seconds


def _kw(kind: str, value: object) -> str:
    """A power in kW, > 0 with at most 2 decimals, as exact decimal text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{kind}: kw must be a number of kW like 12.5, got {value!r}")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise ValueError(f"{kind}: kw must be a number of kW like 12.5, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{kind}: kw must be finite, got {value!r}")
    if number <= 0:
        raise ValueError(f"{kind}: kw must be positive, got {value!r}")
    if number != number.quantize(Decimal("0.01")):
        raise ValueError(f"{kind}: kw has at most 2 decimals, got {value!r}")
    return f"{number:.2f}"


def _periods(kind: str, value: object) -> list[list[int]]:
    """Day-table periods [(hour, minute, bucket)], ascending; buckets by index or name."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{kind}: periods must be a non-empty list of (hour, minute, bucket)")
    out: list[list[int]] = []
    for i, period in enumerate(value, start=1):
        where = f"periods[{i}]"
        if isinstance(period, str | bytes) or not isinstance(period, Sequence) or len(period) != 3:
            raise ValueError(f"{kind}: {where} must be (hour, minute, bucket), got {period!r}")
        hour = _whole(kind, f"{where}.hour", period[0], 0, 23)
        minute = _whole(kind, f"{where}.minute", period[1], 0, 59)
        bucket = period[2]
        if isinstance(bucket, str):
            if bucket not in BUCKETS:
                raise ValueError(
                    f"{kind}: {where}.bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}"
                )
            bucket = BUCKETS.index(bucket)
        bucket = _whole(kind, f"{where}.bucket", bucket, 0, len(BUCKETS) - 1)
        if out and (hour, minute) <= (out[-1][0], out[-1][1]):
            raise ValueError(f"{kind}: {where} must start after periods[{i - 1}]")
        out.append([hour, minute, bucket])
    return out


def _no_params(kind: str, params: Mapping[str, object], now: float) -> Params:
    _fields(kind, params, ())
    return {}


def _forced_on(kind: str, params: Mapping[str, object], now: float) -> Params:
    _fields(kind, params, ("relay", "reason", "expires_at"))
    relay = params["relay"]
    if relay not in FORCED_RELAY:
        raise ValueError(f"{kind}: relay must be 'closed' (power on) or 'open', got {relay!r}")
    return {
        "relay": relay,
        "reason": _reason(kind, params["reason"], required=True),
        "expires_at": _expiry(kind, params["expires_at"], now),
    }


def _forced_off(kind: str, params: Mapping[str, object], now: float) -> Params:
    _fields(kind, params, (), ("reason",))
    return {"reason": _reason(kind, params.get("reason", ""), required=False)}


def _prices(kind: str, params: Mapping[str, object], now: float) -> Params:
    _fields(kind, params, PRICE_FIELDS)
    return {name: _whole(kind, name, params[name]) for name in PRICE_FIELDS}


def _power_limit(kind: str, params: Mapping[str, object], now: float) -> Params:
    _fields(kind, params, ("kw",))
    return {"kw": _kw(kind, params["kw"])}


def _day_table(kind: str, params: Mapping[str, object], now: float) -> Params:
    _fields(kind, params, ("table", "periods"))
    return {
        "table": _whole(kind, "table", params["table"], 1, 16),
        "periods": _periods(kind, params["periods"]),
    }


def _fen(kind: str, params: Mapping[str, object], now: float) -> Params:
    _fields(kind, params, ("fen",))
    return {"fen": _whole(kind, "fen", params["fen"])}


_CHECKS: Final[Mapping[str, Callable[[str, Mapping[str, object], float], Params]]] = {
    "relay_open": _no_params,
    "relay_close": _no_params,
    "forced_mode_on": _forced_on,
    "forced_mode_off": _forced_off,
    "prepaid_mode": _no_params,
    "price_set": _prices,
    "power_limit_set": _power_limit,
    "tou_day_table_set": _day_table,
    "time_sync": _no_params,
    "alarm1_set": _fen,
    "alarm2_set": _fen,
    "credit_limit_set": _fen,
}


def check_kind(kind: object) -> str:
    """`kind` if it is a known command kind, else a `ValueError` listing the known ones."""
    if not isinstance(kind, str) or kind not in _CHECKS:
        raise ValueError(f"kind: unknown command kind {kind!r} (known: {', '.join(KINDS)})")
    return kind


def validate_params(kind: str, params: Mapping[str, object], now: float) -> Params:
    """The checked, JSON-ready parameters of `kind`; a `ValueError` names the bad field."""
    check_kind(kind)
    if not isinstance(params, Mapping):
        raise ValueError(f"{kind}: params must be a mapping, got {params!r}")
    return _CHECKS[kind](kind, params, now)


def slot(kind: str, params: Mapping[str, object]) -> str:
    """What a command sets on the meter: a newer pending command of the same slot wins."""
    if kind in RELAY_KINDS:
        return "relay"
    if kind == "tou_day_table_set":
        return f"tou_day_table:{params['table']}"
    return kind


def register_write(kind: str, params: Mapping[str, object], when: datetime) -> tuple[str, Params]:
    """The profile write (`encode_write` command and arguments) that carries out a command.

    `when` is the meter-local time a time sync sets; other kinds ignore it.
    """
    check_kind(kind)
    if kind in ("relay_open", "relay_close"):
        return kind, {}
    if kind == "forced_mode_on":
        return ("relay_close" if params["relay"] == "closed" else "relay_open"), {}
    if kind in ("forced_mode_off", "prepaid_mode"):
        return "relay_auto", {}
    if kind == "price_set":
        return "prices", {name: params[name] for name in PRICE_FIELDS}
    if kind == "power_limit_set":
        return "power_limit", {"kw": float(Decimal(str(params["kw"])))}
    if kind == "tou_day_table_set":
        periods = params["periods"]
        assert isinstance(periods, list)
        return "tou_day_table", {"table": params["table"], "periods": [tuple(p) for p in periods]}
    if kind == "time_sync":
        return "clock", {"when": when}
    return _FEN_WRITES[kind], {"fen": params["fen"]}


def check_writable(kind: str, params: Mapping[str, object], models: Sequence[str]) -> None:
    """Refuse a command that a meter model's register profile cannot encode."""
    sample = datetime(2030, 1, 1)  # only the encoding is checked
    command, arguments = register_write(kind, params, sample)
    for model in sorted(set(models)):
        try:
            encode_write(load_profile(model), command, **arguments)
        except ValueError as exc:
            raise ValueError(f"{kind}: {model} meters cannot take it: {exc}") from None
