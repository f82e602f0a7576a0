"""Meter clocks: compare them with the server clock and set those that drifted past the limit.

The meter clock comes from the `meter_clock` field of a profile's plans (the poll block has
it): 4G meters carry it in every upload, polled meters have those few registers read after
their daily prepaid scan. A meter beyond `clock_drift_limit_s` is set to the server's local
wall time, through its channel with the profile's `clock` write, or with the 4G 0x93 frame.
Each meter is set at most once per `min_interval_s`, so a meter whose clock will not take
the setting is not written on every scan.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime, tzinfo

import numpy as np
import numpy.typing as npt

from config.profile import Field, RegisterProfile
from protocols.register_writes import encode_write
from server.acquisition.channels import MeterChannel

log = logging.getLogger(__name__)

CLOCK_TAG = "meter_clock"


def clock_field(profile: RegisterProfile) -> Field | None:
    """The field of the profile that holds the meter's clock (with a year), if any plan has one."""
    for plan in profile.plans.values():
        for f in plan.fields:
            if f.tag == CLOCK_TAG and f.type == "time" and "YY" in f.layout:
                return f
    return None


def decode_clock(profile: RegisterProfile, f: Field, registers: Sequence[int], tz: tzinfo) -> float:
    """Unix seconds of a meter clock read as `f.count` registers; NaN when not a valid time."""
    if len(registers) != f.count:
        return math.nan
    parts: dict[str, int] = {"ss": 0}
    for i, name in enumerate(f.layout):
        word = int(registers[i // 2])
        byte = (word >> 8) & 0xFF if i % 2 == 0 else word & 0xFF
        if profile.time_code == "bcd":
            if byte >> 4 > 9 or byte & 0xF > 9:
                return math.nan
            byte = (byte >> 4) * 10 + (byte & 0xF)
        parts[name] = byte
    try:
        local = datetime(
            2000 + parts["YY"], parts["MM"], parts["DD"], parts["hh"], parts["mm"], parts["ss"]
        )
    except (KeyError, ValueError):
        return math.nan
    return local.replace(tzinfo=tz).timestamp()


def wall_time(now: float, tz: tzinfo) -> datetime:
    """`now` as the naive local wall time that meter clocks keep."""
    return datetime.fromtimestamp(now, tz).replace(tzinfo=None)


class ClockSync:
    """Which meters drifted beyond the limit, rate-limited per meter; counts what it did."""

    def __init__(
        self, meters: int, tz: tzinfo, limit_s: float, *, min_interval_s: float = 3600.0
    ) -> None:
        self.tz = tz
        self.limit_s = float(limit_s)
        self.min_interval_s = float(min_interval_s)
        self.last_sync: npt.NDArray[np.float64] = np.full(meters, -math.inf)
        self.checked = 0
        self.synced = 0
        self.failed = 0

    def drifted(
        self, rows: npt.NDArray[np.int64], meter_clock: npt.NDArray[np.float64], now: float
    ) -> npt.NDArray[np.int64]:
        """The rows to set now: a valid clock off by more than the limit, not set lately."""
        clock = np.asarray(meter_clock, np.float64)
        self.checked += int(np.count_nonzero(~np.isnan(clock)))
        off = np.abs(np.nan_to_num(clock - now, nan=0.0)) > self.limit_s
        off &= now - self.last_sync[rows] >= self.min_interval_s
        chosen: npt.NDArray[np.int64] = rows[off]
        self.last_sync[chosen] = now
        return chosen

    async def set_through(
        self, channel: MeterChannel, profile: RegisterProfile, now: float
    ) -> bool:
        """Set one meter's clock with the profile's `clock` write; False if it failed."""
        try:
            for address, values in encode_write(profile, "clock", when=wall_time(now, self.tz)):
                await channel.write(address, values)
        except Exception as exc:
            self.failed += 1
            log.debug("clock sync of %s failed: %r", channel.meter_id, exc)
            return False
        self.synced += 1
        log.debug("meter %s: clock set (drift over %g s)", channel.meter_id, self.limit_s)
        return True

    def recorded(self, ok: bool, meter_id: str) -> None:
        """Count a clock set done by another path (the 4G 0x93 frame)."""
        if ok:
            self.synced += 1
            log.debug("meter %s: clock set (drift over %g s)", meter_id, self.limit_s)
        else:
            self.failed += 1
