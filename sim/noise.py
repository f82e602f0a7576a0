"""Counter-based deterministic noise: the same seed, meter and time always give the same value."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_MIX1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX2: Final = np.uint64(0x94D049BB133111EB)
_S30: Final = np.uint64(30)
_S27: Final = np.uint64(27)
_S31: Final = np.uint64(31)
_S11: Final = np.uint64(11)
_TO_UNIT: Final = 1.0 / float(1 << 53)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The splitmix64 finaliser: a bijection of 64-bit words with good avalanche."""
    x = (x ^ (x >> _S30)) * _MIX1
    x = (x ^ (x >> _S27)) * _MIX2
    return x ^ (x >> _S31)


def _as_words(value: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """Integers (possibly negative) reinterpreted as unsigned 64-bit words."""
    return np.asarray(value, dtype=np.int64).view(np.uint64)


def uniform(seed: int, stream: int, *keys: npt.ArrayLike) -> FloatArray:
    """Uniform values in [0, 1), one per broadcast element of the integer `keys`."""
    h = _mix(np.asarray([(seed * 1_000_003 + stream) & 0xFFFF_FFFF_FFFF_FFFF], dtype=np.uint64))
    for key in keys:
        h = _mix((h + _as_words(key)) * _GOLDEN + _GOLDEN)
    return (h >> _S11).astype(np.float64) * _TO_UNIT


def signed(seed: int, stream: int, *keys: npt.ArrayLike) -> FloatArray:
    """Uniform values in [-1, 1), one per broadcast element of the integer `keys`."""
    return uniform(seed, stream, *keys) * 2.0 - 1.0


def smooth(
    seed: int, stream: int, item: npt.ArrayLike, t: npt.ArrayLike, period: float
) -> FloatArray:
    """Smooth noise in [-1, 1]: random knots every `period` of `t`, eased between."""
    pos = np.asarray(t, dtype=np.float64) / period
    knot = np.floor(pos)
    frac = pos - knot
    ease = frac * frac * (3.0 - 2.0 * frac)
    k0 = knot.astype(np.int64)
    a = signed(seed, stream, item, k0)
    b = signed(seed, stream, item, k0 + 1)
    return a + (b - a) * ease
