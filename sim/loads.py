"""Load profiles by area kind: what each meter's appliances draw, minute by minute."""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from sim import noise
from sim.localtime import LocalMinutes

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

AREA_KINDS: Final[tuple[str, ...]] = ("enterprise", "dormitory", "common")

# Load shape variants, rows of the shape table.
DORMITORY: Final = 0
DAY_SHIFT: Final = 1
ROUND_THE_CLOCK: Final = 2
COMMON: Final = 3

# Share of enterprise meters that are plants running around the clock.
ROUND_THE_CLOCK_SHARE: Final = 0.2

# Relative load (% of rated) at the start of each hour 00..23, weekday then weekend, per variant.
_HOURLY_TEXT: Final = {
    DORMITORY: (
        "35 20 12 12 12 12 20 40 20 12 12 12 12 12 12 12 12 30 60 85 95 99 90 60",
        "40 25 12 12 12 12 15 20 30 35 35 40 45 35 35 35 35 40 60 80 90 90 85 60",
    ),
    DAY_SHIFT: (
        " 8  8  8  8  8  8  8 30 90 90 90 90 60 90 90 90 90 90 40 10 10 10  8  8",
        " 8  8  8  8  8  8  8 10 20 20 20 20 15 20 20 20 20 15 10  8  8  8  8  8",
    ),
    ROUND_THE_CLOCK: (
        "80 80 78 78 78 80 82 85 90 90 90 90 85 90 90 90 90 88 85 82 82 80 80 80",
        "70 70 70 70 70 70 70 70 70 70 70 70 70 70 70 70 70 70 70 70 70 70 70 70",
    ),
    COMMON: (
        "80 80 80 80 80 70 40 10 10 10 10 10 10 10 10 10 10 20 60 85 85 85 85 85",
        "80 80 80 80 80 70 40 10 10 10 10 10 10 10 10 10 10 20 60 85 85 85 85 85",
    ),
}

# Amplitude of the smooth minute-to-minute noise, per variant.
_NOISE_AMPLITUDE: Final = np.array([0.3, 0.1, 0.06, 0.05])
_NOISE_PERIOD_MIN: Final = 7.0

# Noise streams, so that draws for different purposes never coincide.
_RATED, _VARIANT, _SHIFT, _DAY, _WIGGLE = range(5)


def _shape_table() -> FloatArray:
    """Relative load (variants × day types × 1,440 minutes), linear between hour knots."""
    table = np.zeros((len(_HOURLY_TEXT), 2, 1440))
    knots = np.arange(25) * 60.0
    minutes = np.arange(1440, dtype=np.float64)
    for variant, days in _HOURLY_TEXT.items():
        for daytype, text in enumerate(days):
            hourly = [float(value) / 100.0 for value in text.split()]
            table[variant, daytype] = np.interp(minutes, knots, [*hourly, hourly[0]])
    return table


SHAPES: Final = _shape_table()


def rated_power_kw(
    seed: int,
    three_phase: npt.NDArray[np.bool_],
    ct: IntArray,
    pt: IntArray,
    nominal_voltage: float,
) -> FloatArray:
    """Each meter's peak load (primary kW), drawn from its wiring and transformer ratios."""
    n = three_phase.size
    draw = noise.uniform(seed, _RATED, np.arange(n))
    direct = ct == 1
    # Direct single-phase meters: 0.2–4 kW. Direct three-phase: 2–25 kW.
    single_direct = 0.2 * (20.0**draw)
    three_direct = 2.0 * (12.5**draw)
    # Transformer-connected (x/5 A): 10–60 % of the rated secondary current.
    line_voltage = nominal_voltage * math.sqrt(3.0)
    fraction = 0.1 + 0.5 * draw
    three_ct = fraction * line_voltage * 5.0 * ct * pt / 1000.0
    single_ct = fraction * nominal_voltage * 5.0 * ct * pt / 1000.0
    return np.where(
        three_phase,
        np.where(direct, three_direct, three_ct),
        np.where(direct, single_direct, single_ct),
    )


class LoadModel:
    """Deterministic load of every meter from the seed and the time."""

    def __init__(
        self,
        seed: int,
        kind: npt.NDArray[np.str_],
        three_phase: npt.NDArray[np.bool_],
        ct: IntArray,
        pt: IntArray,
        nominal_voltage: float,
    ) -> None:
        """Pick each meter's profile variant, time shift and rated power."""
        unknown = sorted(set(np.unique(kind).tolist()) - set(AREA_KINDS))
        if unknown:
            raise ValueError(f"kind: unknown area kind(s) {unknown}, expected {AREA_KINDS}")
        n = kind.size
        rows = np.arange(n)
        plant = noise.uniform(seed, _VARIANT, rows) < ROUND_THE_CLOCK_SHARE
        self.seed = seed
        self.variant = np.select(
            [kind == "dormitory", kind == "common", plant],
            [DORMITORY, COMMON, ROUND_THE_CLOCK],
            default=DAY_SHIFT,
        ).astype(np.int64)
        self.shift = np.rint(noise.signed(seed, _SHIFT, rows) * 30.0).astype(np.int64)
        self.rated_kw = rated_power_kw(seed, three_phase, ct, pt, nominal_voltage)
        self.amplitude = _NOISE_AMPLITUDE[self.variant]
        self.fixed_kw: FloatArray = np.full(n, np.nan)
        self._rows = rows

    def power_kw(self, minutes: IntArray, local: LocalMinutes) -> FloatArray:
        """Load (primary kW) for each Unix minute × meter; a fixed load replaces the profile."""
        rows = self._rows[None, :]
        mod = (local.minute_of_day[:, None] + self.shift[None, :]) % 1440
        shape = SHAPES[self.variant[None, :], local.weekend[:, None], mod]
        day_factor = 0.75 + 0.4 * noise.uniform(self.seed, _DAY, rows, local.day[:, None])
        wiggle = noise.smooth(self.seed, _WIGGLE, rows, minutes[:, None], _NOISE_PERIOD_MIN)
        load = self.rated_kw * shape * day_factor * (1.0 + self.amplitude * wiggle)
        profile = np.maximum(load, 0.0)
        fixed = ~np.isnan(self.fixed_kw)
        if fixed.any():
            profile[:, fixed] = self.fixed_kw[fixed]
        clipped: FloatArray = profile
        return clipped
