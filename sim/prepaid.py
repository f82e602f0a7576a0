"""The money registers of a prepaid meter: remaining fen, alarm amounts, prices, purchases."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# A count (0.01 kWh) at a price in yuan/10⁴ per kWh costs price / 10⁴ fen: charges are kept in
# 10⁻⁴ fen so that nothing is ever rounded away.
SUB_FEN: Final = 10_000


class MoneyRegisters:
    """What a DDSY/DTSY meter holds about money; the server's ledger stays the authority."""

    def __init__(self, n_meters: int) -> None:
        """No money, no limits, no prices, counting off."""
        self.enabled: BoolArray = np.zeros(n_meters, dtype=bool)
        self.balance_fen: IntArray = np.zeros(n_meters, dtype=np.int64)
        self.remainder: IntArray = np.zeros(n_meters, dtype=np.int64)
        self.purchase_count: IntArray = np.zeros(n_meters, dtype=np.int64)
        self.alarm1_fen: IntArray = np.zeros(n_meters, dtype=np.int64)
        self.alarm2_fen: IntArray = np.zeros(n_meters, dtype=np.int64)
        self.credit_limit_fen: IntArray = np.zeros(n_meters, dtype=np.int64)
        self.prices_e4: IntArray = np.zeros((n_meters, 4), dtype=np.int64)

    def charge(self, counts: IntArray, ratio: IntArray) -> None:
        """Deduct the cost of new counts (meters × 4 buckets, secondary) at primary ratio PT×CT."""
        cost = (counts * self.prices_e4).sum(axis=1) * ratio
        cost = np.where(self.enabled, cost, 0) + self.remainder
        self.balance_fen -= cost // SUB_FEN
        self.remainder = cost % SUB_FEN

    def recharge(self, rows: IntArray, fen: int | IntArray) -> None:
        """Add money bought at the counter or online; each row counts one purchase."""
        amounts = np.broadcast_to(np.asarray(fen, dtype=np.int64), rows.shape)
        if amounts.size and amounts.min() <= 0:
            raise ValueError(f"fen: a recharge must be a positive number of fen, got {fen!r}")
        np.add.at(self.balance_fen, rows, amounts)
        np.add.at(self.purchase_count, rows, 1)

    def arrears(self) -> BoolArray:
        """Balance below zero."""
        return self.enabled & (self.balance_fen < 0)

    def alarm1(self) -> BoolArray:
        """Balance below alarm amount 1."""
        return self.enabled & (self.balance_fen < self.alarm1_fen)

    def alarm2(self) -> BoolArray:
        """Balance below alarm amount 2."""
        return self.enabled & (self.balance_fen < self.alarm2_fen)
