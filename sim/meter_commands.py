"""Commands to the simulated meters, from any protocol or the control API, applied to the fleet.

Every change goes through here so that the register image is refreshed after it.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Final

import numpy as np

from protocols.register_writes import IllegalWriteValue
from sim.faults import Rows
from sim.fleet import Fleet, RelayAction
from sim.register_image import RegisterImage

# The simulated meters freeze their registers at 00:00 on the 1st of each month, only.
FREEZE_DAY: Final = 1
FREEZE_HOUR: Final = 0


class UnsupportedCommand(Exception):
    """A command the simulated meter cannot carry out (Modbus exception 04)."""

    exception_code: Final = 4


class MeterCommands:
    """Applies commands to the fleet and invalidates the register image after each."""

    def __init__(self, fleet: Fleet, image: RegisterImage) -> None:
        """Commands for `fleet`, whose registers `image` serves."""
        self.fleet = fleet
        self.image = image

    def relay(self, rows: Rows, action: RelayAction) -> None:
        """Force the relay open or closed, or hand it back to the meter."""
        self.fleet.relay(rows, action)
        self.image.invalidate()

    def recharge(self, rows: Rows, fen: int) -> None:
        """Credit `fen` (a positive integer) to the meters."""
        if isinstance(fen, bool) or not isinstance(fen, int) or fen <= 0:
            raise ValueError(f"fen: a recharge is a positive integer number of fen, got {fen!r}")
        self.fleet.recharge(rows, fen)
        self.image.invalidate()

    def set_load(self, rows: Rows, kw: float | None) -> None:
        """Hold the meters' load at `kw` (primary kW), or return them to their profile (None)."""
        if kw is not None and (not math.isfinite(kw) or kw < 0):
            raise ValueError(f"kw: a load must be a number ≥ 0 or null, got {kw!r}")
        self.fleet.set_load(rows, math.nan if kw is None else kw)
        self.image.invalidate()

    def set_clock(self, rows: Rows, local: datetime) -> None:
        """Set the meters' clocks to `local`, a naive time on the park's wall clock."""
        self.fleet.set_clock(rows, local.replace(tzinfo=self.fleet.tz).timestamp())
        self.image.invalidate()

    def write(self, row: int, command: str, params: dict[str, object]) -> None:
        """Carry out a decoded register write (`protocols.register_writes.decode_write`)."""
        fleet = self.fleet
        if command in ("relay_open", "relay_close", "relay_auto"):
            action: RelayAction = "open" if command == "relay_open" else "close"
            self.relay(row, "auto" if command == "relay_auto" else action)
            return
        if command == "prices":
            names = ("sharp_e4", "peak_e4", "flat_e4", "valley_e4")
            prices = np.array([[_int(params[name]) for name in names]], dtype=np.int64)
            fleet.set_prices(row, prices)
        elif command == "power_limit":
            fleet.set_power_limit(row, _number(params["kw"]))
        elif command in ("alarm1", "alarm2", "credit_limit"):
            money = fleet.money
            amounts = {
                "alarm1": int(money.alarm1_fen[row]),
                "alarm2": int(money.alarm2_fen[row]),
                "credit_limit": int(money.credit_limit_fen[row]),
            }
            amounts[command] = _int(params["fen"])
            fleet.set_prepaid(
                row,
                enabled=bool(money.enabled[row]),
                alarm1_fen=amounts["alarm1"],
                alarm2_fen=amounts["alarm2"],
                credit_limit_fen=amounts["credit_limit"],
            )
        elif command == "freeze_time":
            if (params["day"], params["hour"]) != (FREEZE_DAY, FREEZE_HOUR):
                raise IllegalWriteValue(
                    f"freeze_time: the simulated meter freezes on day {FREEZE_DAY} at hour "
                    f"{FREEZE_HOUR} only, got day {params['day']} hour {params['hour']}"
                )
        elif command == "clock":
            when = params["when"]
            if not isinstance(when, datetime):
                raise IllegalWriteValue(f"clock: not a time: {when!r}")
            self.set_clock(row, when)
            return
        else:
            raise UnsupportedCommand(
                f"{command}: the simulated meter keeps its site tariff's day tables"
                if command == "tou_day_table"
                else f"{command}: the simulated meter has no such command"
            )
        self.image.invalidate()


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise IllegalWriteValue(f"expected an integer, got {value!r}")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IllegalWriteValue(f"expected a number, got {value!r}")
    return float(value)
