"""What the simulated meters report: catalogue tag columns, status words and freeze blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from config.catalogue import default_catalogue
from sim.daytables import BUCKET_CODE
from sim.demand import demand_kw

if TYPE_CHECKING:
    from sim.fleet import Fleet

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Columns = dict[str, npt.NDArray[Any]]

# Run-mode bits (0x0022) as this simulator reports them.
RUN_MODE_PREPAID: Final = 0x01
RUN_MODE_FORCED: Final = 0x02

# Status word (DOMAIN §2): high byte bit0 fault, bits 5–7 relay L1–L3 closed; low byte bit4
# over limit, bit5 arrears, bit6 ALM1, bit7 ALM2.
FAULT_BIT: Final = 1 << 8
RELAY_SHIFT: Final = 13
OVER_LIMIT_BIT: Final = 1 << 4
ARREARS_BIT: Final = 1 << 5
ALM1_BIT: Final = 1 << 6
ALM2_BIT: Final = 1 << 7


def status_words(fleet: Fleet) -> IntArray:
    """The raw status word of every meter; a single-phase meter has only relay L1."""
    money = fleet.money
    relay_bits = np.where(fleet.three_phase, 0b111, 0b001) * fleet.closed
    words: IntArray = (
        np.where(fleet.faults.active("meter_fault", fleet.now), FAULT_BIT, 0)
        | (relay_bits << RELAY_SHIFT)
        | np.where(fleet.over_limit, OVER_LIMIT_BIT, 0)
        | np.where(money.arrears(), ARREARS_BIT, 0)
        | np.where(money.alarm1(), ALM1_BIT, 0)
        | np.where(money.alarm2(), ALM2_BIT, 0)
    ).astype(np.int64)
    return words


def realtime_values(fleet: Fleet) -> dict[str, FloatArray]:
    """Electrical values now, with the same power as the energy being counted."""
    now_ms = np.array([round(fleet.now * 1000.0)], dtype=np.int64)
    power_mw = fleet.power_at(now_ms)[2][0]
    factors = np.ones((len(fleet), 3))
    rows, fault_factors = fleet.faults.voltage_factors(now_ms / 1000.0)
    factors[rows] = fault_factors[0]
    p_kw = power_mw * fleet.closed * fleet.ratio / 1e6
    return fleet.electrical.snapshot(fleet.now, p_kw, factors)


def tag_columns(fleet: Fleet) -> Columns:
    """Every catalogue tag of every meter, in catalogue order and dtype."""
    now = fleet.now
    scale = 0.01 * fleet.ratio
    money = fleet.money
    e_total = fleet.energy.total * scale
    values: dict[str, npt.ArrayLike] = dict(realtime_values(fleet))
    values.update(
        pt=fleet.pt,
        ct=fleet.ct,
        status_word=status_words(fleet),
        relay=fleet.closed,
        fault=fleet.faults.active("meter_fault", now),
        over_limit=fleet.over_limit,
        arrears=money.arrears(),
        alm1=money.alarm1(),
        alm2=money.alarm2(),
        meter_clock=now + fleet.clock_offset,
        e_total=e_total,
        e_fwd=e_total,
        e_rev=np.zeros(len(fleet)),
        demand=demand_kw(fleet.demand.max_energy, fleet.ratio),
        demand_time=fleet.demand.max_time,
        balance_fen=money.balance_fen,
        purchase_count=money.purchase_count,
        trip_count=fleet.trip_count,
        alarm1_fen=money.alarm1_fen,
        alarm2_fen=money.alarm2_fen,
        credit_limit_fen=money.credit_limit_fen,
        power_limit=fleet.power_limit_kw,
        run_mode=np.where(money.enabled, RUN_MODE_PREPAID, 0)
        | np.where(fleet.forced, RUN_MODE_FORCED, 0),
    )
    for bucket, b in BUCKET_CODE.items():
        values[f"e_{bucket}"] = fleet.energy.buckets[:, b] * scale
        values[f"price_{bucket}_e4"] = money.prices_e4[:, b]
    catalogue = default_catalogue()
    missing = [tag.name for tag in catalogue if tag.name not in values]
    if missing:
        raise KeyError(f"the simulator has no value for catalogue tag(s) {missing}")
    return {tag.name: np.array(values[tag.name], dtype=tag.dtype) for tag in catalogue}


def freeze_columns(fleet: Fleet, n: int, rows: IntArray) -> Columns:
    """Freeze block n (1 = previous month) of the given rows, primary values."""
    ring = fleet.freezes
    if not 1 <= n <= ring.month.size:
        raise ValueError(f"n: freeze blocks are numbered 1..{ring.month.size}, got {n}")
    ratio = fleet.ratio[rows]
    counts = ring.counts[n - 1, rows]
    block: Columns = {
        "month": np.full(rows.size, ring.month[n - 1], dtype=np.int64),
        "time": np.full(rows.size, ring.time[n - 1]),
        "demand": demand_kw(ring.demand_energy[n - 1, rows], ratio),
        "demand_time": ring.demand_time[n - 1, rows].copy(),
    }
    for b, name in enumerate(("total", "sharp", "peak", "flat", "valley")):
        block[f"e_{name}"] = counts[:, b] * 0.01 * ratio
    return block
