"""Vectorised alarm conditions over the whole tag table, with deadband hysteresis."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alarms.kinds import METER_KINDS, AlarmKind
from alarms.limits import NO_LEVEL, LimitColumns
from server.tags import CommState, TagTable
from server.tags.quality import is_bad, is_good

Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Matrix = npt.NDArray[np.bool_]

K = AlarmKind
_VALUE_KINDS = (
    K.PHASE_LOSS,
    K.UNDERVOLTAGE,
    K.OVERVOLTAGE,
    K.UNEXPECTED_TRIP,
    K.OVER_POWER,
    K.METER_FAULT,
)
_BALANCE_KINDS = (K.ARREARS, K.LOW_BALANCE_1, K.LOW_BALANCE_2)


def _floats(table: TagTable, tag: str) -> Floats:
    column: Floats = table.column(tag)  # type: ignore[assignment]
    return column


def _ints(table: TagTable, tag: str) -> npt.NDArray[np.int64]:
    column: npt.NDArray[np.int64] = table.column(tag)  # type: ignore[assignment]
    return column


def phase_extremes(table: TagTable, three_phase: Mask) -> tuple[Floats, Floats]:
    """The lowest and highest phase voltage of each meter (phase A only on single-phase ones)."""
    ua, ub, uc = (_floats(table, t) for t in ("u_a", "u_b", "u_c"))
    low = np.where(three_phase, np.fmin(np.fmin(ua, ub), uc), ua)
    high = np.where(three_phase, np.fmax(np.fmax(ua, ub), uc), ua)
    return low, high


def detect_meters(
    table: TagTable,
    limits: LimitColumns,
    previous: Matrix,
    commanded_open: Mask,
    last_good_realtime: Floats,
    started: float,
    now: float,
) -> Matrix:
    """The condition of every meter kind for every meter: a (meter kinds × meters) matrix.

    `previous` is the last result; a condition that was true clears only past the deadband,
    and a value condition holds its last result while its group's quality is not good, so
    a bad reading never raises (or clears) a value alarm: it only feeds lost communication.
    """
    cond = np.empty((len(METER_KINDS), len(table)), dtype=np.bool_)
    ua, ub, uc = (_floats(table, t) for t in ("u_a", "u_b", "u_c"))
    three = limits.three_phase
    deadband = limits.voltage_deadband_v
    low, high = phase_extremes(table, three)

    loss_v = limits.phase_loss_low_v + previous[K.PHASE_LOSS] * deadband
    present_v = limits.phase_loss_high_v
    any_lost = (ua < loss_v) | (ub < loss_v) | (uc < loss_v)
    any_present = (ua >= present_v) | (ub >= present_v) | (uc >= present_v)
    cond[K.PHASE_LOSS] = three & any_lost & any_present
    cond[K.UNDERVOLTAGE] = low < limits.undervoltage_v + previous[K.UNDERVOLTAGE] * deadband
    cond[K.OVERVOLTAGE] = high > limits.overvoltage_v - previous[K.OVERVOLTAGE] * deadband

    relay = table.column("relay")
    cond[K.UNEXPECTED_TRIP] = (relay == 0) & ~commanded_open
    power_limit = limits.power_limit_kw - previous[K.OVER_POWER] * limits.power_deadband_kw
    cond[K.OVER_POWER] = (_floats(table, "p") > power_limit) | (table.column("over_limit") != 0)
    cond[K.METER_FAULT] = table.column("fault") != 0

    balance = _ints(table, "balance_fen")
    arrears = limits.prepaid & (balance < 0)
    below_2 = limits.balance_watched & (balance < limits.alarm2_fen) & ~arrears
    cond[K.ARREARS] = arrears
    cond[K.LOW_BALANCE_2] = below_2
    cond[K.LOW_BALANCE_1] = (
        limits.balance_watched & (balance < limits.alarm1_fen) & ~arrears & ~below_2
    )

    realtime_good = is_good(table.quality("realtime"))
    prepaid_good = is_good(table.quality("prepaid"))
    values = list(_VALUE_KINDS)
    cond[values] = np.where(realtime_good, cond[values], previous[values])
    balances = list(_BALANCE_KINDS)
    cond[balances] = np.where(prepaid_good, cond[balances], previous[balances])

    heard = np.fmax(last_good_realtime, started)
    cond[K.LOST_COMM] = (table.comm == CommState.OFFLINE) | (heard < now - limits.lost_comm_s)
    return cond


def gateway_unreachable(table: TagTable, link_down: Mask) -> Mask:
    """Per gateway: every meter behind it offline or with a bad last reading, or its link down.

    A meter counts as unreachable from its first failed poll, so the gateway alarm (after
    its own on-delay) comes before the meters' lost-communication alarms would.
    """
    codes = table.meters.gateway_codes
    unreachable = (table.comm == CommState.OFFLINE) | is_bad(table.quality("realtime"))
    gateways = len(link_down)
    behind = codes >= 0
    total = np.bincount(codes[behind], minlength=gateways)
    down = np.bincount(codes[behind & unreachable], minlength=gateways)
    result: Mask = ((down == total) & (total > 0)) | link_down
    return result


def observed(
    kind: AlarmKind,
    rows: npt.NDArray[np.int64],
    table: TagTable,
    limits: LimitColumns,
    last_good_realtime: Floats,
    now: float,
) -> tuple[Floats, Floats]:
    """The value that drove a meter kind's condition at `rows`, and the limit it was held to."""
    count = len(rows)
    nan = np.full(count, np.nan)
    if kind in (K.UNDERVOLTAGE, K.PHASE_LOSS, K.OVERVOLTAGE):
        low, high = phase_extremes(table, limits.three_phase)
        if kind is K.OVERVOLTAGE:
            return high[rows], limits.overvoltage_v[rows]
        if kind is K.UNDERVOLTAGE:
            return low[rows], limits.undervoltage_v[rows]
        return low[rows], limits.phase_loss_low_v[rows]
    if kind is K.LOST_COMM:
        return now - last_good_realtime[rows], limits.lost_comm_s[rows]
    if kind in _BALANCE_KINDS:
        balance = table.column("balance_fen")[rows].astype(np.float64)
        level = {
            K.ARREARS: np.zeros(count, dtype=np.int64),
            K.LOW_BALANCE_1: limits.alarm1_fen[rows],
            K.LOW_BALANCE_2: limits.alarm2_fen[rows],
        }[kind]
        return balance, np.where(level == NO_LEVEL, np.nan, level.astype(np.float64))
    if kind is K.OVER_POWER:
        return _floats(table, "p")[rows].astype(np.float64), limits.power_limit_kw[rows]
    if kind is K.UNEXPECTED_TRIP:
        return table.column("relay")[rows].astype(np.float64), nan
    if kind is K.METER_FAULT:
        return table.column("fault")[rows].astype(np.float64), nan
    raise ValueError(f"{kind.label} is not a meter alarm kind")
