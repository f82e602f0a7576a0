"""Instantaneous electrical values: per-phase voltage, current, power, power factor, frequency."""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from sim import noise

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FREQUENCY_HZ: Final = 50.0
PF_RANGE: Final = (0.85, 0.99)

_PF_BASE, _PF_PHASE, _PF_SLOW, _U_SLOW, _U_FAST, _F_SLOW, _F_FAST = range(10, 17)


def phase_weights(three_phase: npt.NDArray[np.bool_], factors: FloatArray) -> FloatArray:
    """Share of the meter's load on each phase (meters × 3) given voltage factors of Un.

    A constant-impedance load draws power with the square of its voltage, so a lost phase
    carries almost nothing; single-phase meters have everything on phase A.
    """
    nominal = np.where(three_phase[:, None], 1.0 / 3.0, np.array([1.0, 0.0, 0.0]))
    return nominal * factors * factors


def load_scale(three_phase: npt.NDArray[np.bool_], factors: FloatArray) -> FloatArray:
    """How much of its nominal load a meter draws under voltage factors (… × meters × 3)."""
    scale: FloatArray = phase_weights(three_phase, factors).sum(axis=-1)
    return scale


class Electrical:
    """Per-meter constants of the electrical model and the snapshot at a time."""

    def __init__(
        self, seed: int, three_phase: npt.NDArray[np.bool_], nominal_voltage: float
    ) -> None:
        """Draw each meter's typical power factor."""
        n = three_phase.size
        rows = np.arange(n)
        self.seed = seed
        self.three_phase = three_phase
        self.nominal_voltage = nominal_voltage
        phases = rows[:, None] * 3 + np.arange(3)[None, :]
        self._phase_keys = phases
        base = 0.86 + 0.12 * noise.uniform(seed, _PF_BASE, rows)
        self.pf_base = base[:, None] + 0.005 * noise.signed(seed, _PF_PHASE, phases)

    def snapshot(self, now: float, p_kw: FloatArray, factors: FloatArray) -> dict[str, FloatArray]:
        """Realtime values for total active power `p_kw` (primary) under voltage `factors`."""
        keys = self._phase_keys
        second = math.floor(now)
        u_noise = 0.015 * noise.smooth(self.seed, _U_SLOW, keys, now, 600.0)
        u_noise += 0.005 * noise.signed(self.seed, _U_FAST, keys, second)
        u = self.nominal_voltage * factors * (1.0 + u_noise)
        pf_noise = 0.005 * noise.smooth(self.seed, _PF_SLOW, keys, now, 900.0)
        pf = np.clip(self.pf_base + pf_noise, *PF_RANGE)
        weights = phase_weights(self.three_phase, factors)
        total_weight = weights.sum(axis=1, keepdims=True)
        share = np.divide(weights, total_weight, out=np.zeros_like(weights), where=total_weight > 0)
        p = p_kw[:, None] * share
        current = np.divide(p * 1000.0, u * pf, out=np.zeros_like(p), where=u > 0)
        q = p * np.sqrt(1.0 - pf * pf) / pf
        single = ~self.three_phase
        for column in (u, current, p, q, pf):
            column[single, 1:] = np.nan
        p_total = np.nansum(p, axis=1)
        q_total = np.nansum(q, axis=1)
        apparent = np.hypot(p_total, q_total)
        pf_total = np.divide(p_total, apparent, out=np.nanmean(pf, axis=1), where=apparent > 0)
        grid = FREQUENCY_HZ + 0.04 * noise.smooth(self.seed, _F_SLOW, 0, now, 20.0)
        f = grid + 0.01 * noise.signed(self.seed, _F_FAST, keys[:, 0], second)
        out: dict[str, FloatArray] = {"p": p_total, "q": q_total, "pf": pf_total, "f": f}
        for k, phase in enumerate("abc"):
            out[f"u_{phase}"] = u[:, k]
            out[f"i_{phase}"] = current[:, k]
            out[f"p_{phase}"] = p[:, k]
            out[f"q_{phase}"] = q[:, k]
            out[f"pf_{phase}"] = pf[:, k]
        return out
