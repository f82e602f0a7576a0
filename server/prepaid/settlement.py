"""Energy settlement, pure and vectorised: register deltas per TOU bucket, priced in fen.

Registers are exact integers in primary centi-kWh (0.01 kWh). The meter counts 0.01 kWh
on the secondary side in a U32, and the primary value is that count × PT × CT, so one
step of the primary register is PT × CT centi-kWh and it wraps at 2³² × PT × CT.

A delta that goes backwards is a rollover only when the wrapped delta is one the meter
could have drawn in the time since the last settled reading; otherwise it is flagged
NEGATIVE. A forward delta larger than that is flagged IMPLAUSIBLE. Flagged buckets are
never charged and keep their cursor, so the next good reading is charged from it.

Money: centi-kWh × price_e4 (yuan/10⁴ per kWh) is in units of 10⁻⁴ fen. Each meter
carries the sub-fen remainder to its next settlement, so nothing is lost and nothing is
rounded twice: over any sequence, fen charged × 10⁴ + final carry = first carry + Σ amounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from config.tariffs import BUCKETS

Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Flags = npt.NDArray[np.uint8]

BUCKET_COUNT: Final = len(BUCKETS)
REGISTER_STEPS: Final = 2**32  # the U32 secondary counter
UNBOUNDED: Final = 2**62  # a step bound no month's energy reaches
E4_PER_FEN: Final = 10_000  # centi-kWh × yuan/10⁴ per kWh = 10⁻⁴ fen
MAX_PRICE_E4: Final = 1_000_000  # 100 yuan/kWh: far above any real tariff
RATING_MARGIN: Final = 1.5
DIRECT_MAX_A: Final = 100.0  # the most a direct-connected (CT 1) meter carries
TRANSFORMER_MAX_A: Final = 6.0  # 1.5(6) A meters behind a current transformer


class Flag(IntEnum):
    """What settlement made of one bucket of one reading."""

    OK = 0
    ROLLOVER = 1  # wrapped at the register modulus; charged
    NEGATIVE = 2  # went backwards with no rollover evidence; not charged
    IMPLAUSIBLE = 3  # more than the meter could draw in the time; not charged


CHARGED_FLAGS: Final = (Flag.OK, Flag.ROLLOVER)


@dataclass(frozen=True, slots=True, eq=False)
class Settled:
    """The outcome of settling n readings: arrays aligned with the input rows.

    `delta` (n, 4) is the charged energy per bucket (0 where flagged), `flags` (n, 4) a
    `Flag` per bucket, `cursor` (n, 4) the registers to settle from next time (the old
    ones where flagged), `amount_e4` (n,) the priced energy in 10⁻⁴ fen, `cost_fen` (n,)
    the whole fen to deduct now and `carry_e4` (n,) the remainder carried forward.
    """

    delta: Int64s
    flags: Flags
    cursor: Int64s
    amount_e4: Int64s
    cost_fen: Int64s
    carry_e4: Int64s

    @property
    def flagged(self) -> npt.NDArray[np.bool_]:
        """(n, 4): the buckets that were not charged."""
        return self.flags >= Flag.NEGATIVE


def register_modulus(pt: npt.ArrayLike, ct: npt.ArrayLike) -> Int64s:
    """Where each meter's primary register wraps, in centi-kWh: 2³² × PT × CT."""
    pt_array = np.asarray(pt, dtype=np.int64)
    ct_array = np.asarray(ct, dtype=np.int64)
    if pt_array.size and (pt_array.min() < 1 or ct_array.min() < 1):
        raise ValueError("PT and CT ratios must be whole numbers ≥ 1")
    return np.asarray(REGISTER_STEPS * pt_array * ct_array, dtype=np.int64)


def centi_kwh(values: npt.ArrayLike) -> Int64s:
    """Primary kWh floats from the tag table as exact integer centi-kWh."""
    array = np.asarray(values, dtype=np.float64)
    if array.size and not np.isfinite(array).all():
        raise ValueError("energy registers must be finite numbers (never-read rows are NaN)")
    return np.asarray(np.rint(array * 100.0), dtype=np.int64)


def rated_kw(
    three_phase: npt.ArrayLike, pt: npt.ArrayLike, ct: npt.ArrayLike, nominal_v: float
) -> Floats:
    """The most each meter's wiring could draw, in primary kW (the plausibility bound)."""
    phases = np.where(np.asarray(three_phase, dtype=bool), 3.0, 1.0)
    ct_array = np.asarray(ct, dtype=np.float64)
    amps = np.where(ct_array > 1, TRANSFORMER_MAX_A * ct_array, DIRECT_MAX_A)
    volts = nominal_v * np.asarray(pt, dtype=np.float64)
    return np.asarray(phases * volts * amps / 1000.0, dtype=np.float64)


def max_delta(rated: npt.ArrayLike, elapsed_s: npt.ArrayLike, step: npt.ArrayLike) -> Int64s:
    """The largest plausible delta per meter in centi-kWh: rating × time × margin + 1 step."""
    elapsed = np.maximum(np.asarray(elapsed_s, dtype=np.float64), 0.0)
    energy = np.asarray(rated, dtype=np.float64) * elapsed / 3600.0 * 100.0 * RATING_MARGIN
    return np.asarray(np.ceil(energy), dtype=np.int64) + np.asarray(step, dtype=np.int64)


def bucket_deltas(
    previous: npt.ArrayLike, current: npt.ArrayLike, modulus: npt.ArrayLike, limit: npt.ArrayLike
) -> tuple[Int64s, Flags]:
    """Per-bucket deltas (n, 4) and their flags; flagged buckets get a delta of 0."""
    prev = _registers(previous, "previous")
    new = _registers(current, "current")
    if prev.shape != new.shape:
        raise ValueError(f"previous {prev.shape} and current {new.shape} registers differ")
    mod = np.asarray(modulus, dtype=np.int64).reshape(-1, 1)
    bound = np.asarray(limit, dtype=np.int64).reshape(-1, 1)
    raw = new - prev
    wrapped = raw + mod
    backwards = raw < 0
    rollover = backwards & (wrapped <= bound)
    delta = np.where(rollover, wrapped, raw)
    flags = np.full(delta.shape, Flag.OK, dtype=np.uint8)
    flags[rollover] = Flag.ROLLOVER
    flags[backwards & ~rollover] = Flag.NEGATIVE
    flags[~backwards & (raw > bound)] = Flag.IMPLAUSIBLE
    charged = flags < Flag.NEGATIVE
    return np.where(charged, delta, 0), flags


def tiered_amount_e4(
    used: npt.ArrayLike, energy: npt.ArrayLike, bounds: npt.ArrayLike, prices: npt.ArrayLike
) -> Int64s:
    """The price of `energy` centi-kWh on top of `used` this month, over monthly steps.

    `bounds` (n, K) are each step's upper bound in cumulative centi-kWh (increasing, the
    last one unbounded in practice); `prices` (n, K) their prices in yuan/10⁴ per kWh.
    """
    start = np.asarray(used, dtype=np.int64).reshape(-1, 1)
    end = start + np.asarray(energy, dtype=np.int64).reshape(-1, 1)
    upper = np.asarray(bounds, dtype=np.int64)
    lower = np.concatenate([np.zeros((upper.shape[0], 1), dtype=np.int64), upper[:, :-1]], axis=1)
    overlap = np.clip(np.minimum(end, upper) - np.maximum(start, lower), 0, None)
    return np.asarray((overlap * np.asarray(prices, dtype=np.int64)).sum(axis=1), dtype=np.int64)


def settle(
    previous: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    modulus: npt.ArrayLike,
    limit: npt.ArrayLike,
    prices_e4: npt.ArrayLike,
    carry_e4: npt.ArrayLike,
    month_used: npt.ArrayLike | None = None,
    step_bounds: npt.ArrayLike | None = None,
    step_prices_e4: npt.ArrayLike | None = None,
) -> Settled:
    """Settle n readings against their cursors: deltas, flags, cost in fen and carry.

    `prices_e4` (n, 4) prices each bucket; a tiered meter has zeros there and its monthly
    steps in `step_bounds`/`step_prices_e4` (n, K), priced on top of `month_used`.
    """
    delta, flags = bucket_deltas(previous, current, modulus, limit)
    prices = np.asarray(prices_e4, dtype=np.int64)
    if prices.shape != delta.shape:
        raise ValueError(f"prices_e4 must have shape {delta.shape}, got {prices.shape}")
    _check_prices(prices, "prices_e4")
    amount = (delta * prices).sum(axis=1)
    if step_bounds is not None and step_prices_e4 is not None:
        steps = np.asarray(step_prices_e4, dtype=np.int64)
        _check_prices(steps, "step_prices_e4")
        used = np.zeros(len(delta), dtype=np.int64) if month_used is None else month_used
        amount = amount + tiered_amount_e4(used, delta.sum(axis=1), step_bounds, steps)
    carry = np.asarray(carry_e4, dtype=np.int64)
    if carry.size and (carry.min() < 0 or carry.max() >= E4_PER_FEN):
        raise ValueError(f"carry_e4 must be 0..{E4_PER_FEN - 1} (a remainder below one fen)")
    total = carry + amount
    cursor = np.where(flags < Flag.NEGATIVE, _registers(current, "current"), previous)
    return Settled(
        delta=delta,
        flags=flags,
        cursor=np.asarray(cursor, dtype=np.int64),
        amount_e4=np.asarray(amount, dtype=np.int64),
        cost_fen=np.asarray(total // E4_PER_FEN, dtype=np.int64),
        carry_e4=np.asarray(total % E4_PER_FEN, dtype=np.int64),
    )


def step_table(steps: list[tuple[int | None, int]], width: int) -> tuple[list[int], list[int]]:
    """Monthly steps (up_to_kwh or None, price_e4) as `width` padded bounds and prices."""
    if not steps or len(steps) > width:
        raise ValueError(f"a tiered tariff needs 1..{width} steps, got {len(steps)}")
    bounds = [UNBOUNDED if up is None else up * 100 for up, _ in steps]
    prices = [price for _, price in steps]
    pad = width - len(steps)
    return bounds + [UNBOUNDED] * pad, prices + [0] * pad


def _registers(values: npt.ArrayLike, name: str) -> Int64s:
    array = np.asarray(values)
    if array.ndim != 2 or array.shape[1] != BUCKET_COUNT:
        raise ValueError(f"{name} registers must have shape (n, {BUCKET_COUNT}), got {array.shape}")
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} registers must be integer centi-kWh, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise ValueError(f"{name} registers must not be negative")
    return array.astype(np.int64, copy=False)


def _check_prices(prices: Int64s, name: str) -> None:
    if prices.size and (prices.min() < 0 or prices.max() > MAX_PRICE_E4):
        raise ValueError(f"{name} must be 0..{MAX_PRICE_E4} yuan/10⁴ per kWh")


def elapsed_seconds(since: npt.ArrayLike, until: npt.ArrayLike) -> Floats:
    """Seconds between the cursor and the reading; an unknown start counts as no time."""
    start = np.asarray(since, dtype=np.float64)
    end = np.asarray(until, dtype=np.float64)
    gap = end - start
    return np.asarray(np.where(np.isfinite(gap), gap, 0.0), dtype=np.float64)
