"""The simulated fleet: every meter of the park as numpy columns, advanced together by `step`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Final, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from config.model import Site
from server.clock import Clock, SystemClock
from sim import noise
from sim.daytables import DayTables
from sim.demand import DemandRing
from sim.electrical import Electrical, load_scale
from sim.energy import EnergyRegisters
from sim.faults import FaultTable, Rows
from sim.freeze import FreezeRing
from sim.loads import LoadModel
from sim.localtime import MINUTE_MS, LocalMinutes, local_minutes, month_starts
from sim.prepaid import MoneyRegisters
from sim.readings import Columns, freeze_columns, status_words, tag_columns
from sim.site_columns import site_columns

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ArrayT = TypeVar("ArrayT", bound=npt.NDArray[np.generic])
RelayAction = Literal["open", "close", "auto"]

# Upper bound on segments × meters held at once while integrating a long step.
CHUNK_CELLS: Final = 1_000_000

_CLOCK_OFFSET, _CLOCK_BAD, _CLOCK_DRIFT = range(20, 23)


class Fleet:
    """The state of every simulated meter, one row per meter, advanced by `step(now)`."""

    def __init__(
        self,
        ids: Sequence[str],
        three_phase: npt.ArrayLike,
        kind: npt.ArrayLike,
        ct: npt.ArrayLike,
        pt: npt.ArrayLike,
        power_limit_kw: npt.ArrayLike,
        day_tables: DayTables,
        seed: int,
        nominal_voltage: float,
        tz: str | ZoneInfo,
        *,
        gateway_ids: Sequence[str] = (),
        clock: Clock | None = None,
        start: float | None = None,
    ) -> None:
        """Meters as parallel columns; `power_limit_kw` NaN means no limit."""
        n = len(ids)
        self.ids = tuple(ids)
        self.three_phase: BoolArray = _column(np.array(three_phase, dtype=bool), n, "three_phase")
        kinds: npt.NDArray[np.str_] = _column(np.array(kind, dtype=np.str_), n, "kind")
        self.ct: IntArray = _column(np.array(ct, dtype=np.int64), n, "ct")
        self.pt: IntArray = _column(np.array(pt, dtype=np.int64), n, "pt")
        if n and min(self.ct.min(), self.pt.min()) < 1:
            raise ValueError("ct, pt: ratios must be integers ≥ 1")
        self.ratio = self.ct * self.pt
        limits = np.array(power_limit_kw, dtype=np.float64)
        self.power_limit_kw: FloatArray = _column(limits, n, "power_limit_kw")
        if np.any(self.power_limit_kw < 0):
            raise ValueError("power_limit_kw: must be ≥ 0 or NaN (no limit)")
        if len(day_tables) != n:
            raise ValueError(f"day_tables: covers {len(day_tables)} meters, expected {n}")
        if not 50.0 <= nominal_voltage <= 1000.0:
            raise ValueError(f"nominal_voltage: must be within 50..1000 V, got {nominal_voltage}")
        self.day_tables = day_tables
        self.seed = seed
        try:
            self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"tz: {tz!r} is not an IANA time zone") from None
        self.loads = LoadModel(seed, kinds, self.three_phase, self.ct, self.pt, nominal_voltage)
        self.electrical = Electrical(seed, self.three_phase, nominal_voltage)
        self.faults = FaultTable(self.ids, gateway_ids, clock=clock, seed=seed)
        self.energy = EnergyRegisters(n)
        self.money = MoneyRegisters(n)
        self.demand = DemandRing(n)
        self.freezes = FreezeRing(n)
        self.closed: BoolArray = np.ones(n, dtype=bool)
        self.forced: BoolArray = np.zeros(n, dtype=bool)
        self.over_limit: BoolArray = np.zeros(n, dtype=bool)
        self.trip_count: IntArray = np.zeros(n, dtype=np.int64)
        rows = np.arange(n)
        badly_set = noise.uniform(seed, _CLOCK_BAD, rows) < 0.05
        spread = np.where(badly_set, 300.0, 5.0)
        self.clock_offset: FloatArray = spread * noise.signed(seed, _CLOCK_OFFSET, rows)
        self.clock_drift_ppm: FloatArray = 20.0 * noise.signed(seed, _CLOCK_DRIFT, rows)
        self._now_ms: int | None = None if start is None else _to_ms(start)
        self._chunk = max(1, CHUNK_CELLS // max(n, 1))
        self._cache: Columns | None = None
        self._cache_faults = -1

    @classmethod
    def from_site(
        cls, site: Site, seed: int, *, clock: Clock | None = None, start: float | None = None
    ) -> Fleet:
        """The fleet of a site, programmed with the tariffs in force at `start` (or now)."""
        at = start if start is not None else (clock or SystemClock()).time()
        columns = site_columns(site, at)
        fleet = cls(
            columns.ids,
            columns.three_phase,
            columns.kind,
            columns.ct,
            columns.pt,
            columns.power_limit_kw,
            columns.day_tables,
            seed,
            columns.nominal_voltage,
            columns.timezone,
            gateway_ids=columns.gateway_ids,
            clock=clock,
            start=start,
        )
        fleet.set_prices(np.arange(len(columns.ids)), columns.prices_e4)
        prepaid = np.flatnonzero(columns.prepaid)
        fleet.set_prepaid(
            prepaid,
            alarm1_fen=columns.alarm1_fen[prepaid],
            alarm2_fen=columns.alarm2_fen[prepaid],
            credit_limit_fen=columns.credit_limit_fen[prepaid],
        )
        return fleet

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def now(self) -> float:
        """The simulated time the state stands at (Unix seconds)."""
        if self._now_ms is None:
            raise RuntimeError("the fleet has no time yet: call step(now) first")
        return self._now_ms / 1000.0

    # -- time --------------------------------------------------------------------------------

    def step(self, now: float) -> None:
        """Advance every meter to `now`, however much time passed (the first call only starts)."""
        target = _to_ms(now)
        if self._now_ms is None:
            self._now_ms = target
            self._cache = None
            return
        if target < self._now_ms:
            raise ValueError(f"step: time went back from {self.now} to {now}")
        start = self._now_ms
        for cut in month_starts(self.tz, start / 1000.0, target / 1000.0):
            cut_ms = _to_ms(cut)
            self._advance(start, cut_ms)
            self._freeze(cut_ms)
            start = cut_ms
        self._advance(start, target)
        self.clock_offset += self.clock_drift_ppm * 1e-9 * (target - self._now_ms)
        self._now_ms = target
        self._cache = None

    def _advance(self, start_ms: int, end_ms: int) -> None:
        """Integrate [start_ms, end_ms) minute by minute, a chunk of minutes at a time."""
        if end_ms <= start_ms:
            return
        first = (start_ms // MINUTE_MS + 1) * MINUTE_MS
        inner = np.arange(first, end_ms, MINUTE_MS, dtype=np.int64)
        starts = np.concatenate([np.array([start_ms], dtype=np.int64), inner])
        ends = np.concatenate([inner, np.array([end_ms], dtype=np.int64)])
        for i in range(0, starts.size, self._chunk):
            self._integrate(starts[i : i + self._chunk], ends[i : i + self._chunk])

    def power_at(self, starts_ms: IntArray) -> tuple[LocalMinutes, FloatArray, IntArray]:
        """Local fields, primary load (kW) and secondary power (integer mW) per segment × meter."""
        minutes = starts_ms // MINUTE_MS
        local = local_minutes(self.tz, minutes)
        load = self.loads.power_kw(minutes, local)
        rows, factors = self.faults.voltage_factors(starts_ms / 1000.0)
        if rows.size:
            load[:, rows] *= load_scale(self.three_phase[rows], factors)
        return local, load, np.rint(load * (1e6 / self.ratio)).astype(np.int64)

    def _integrate(self, starts: IntArray, ends: IntArray) -> None:
        """Energy, buckets, money, demand and self-trips over consecutive minute segments."""
        local, load, power = self.power_at(starts)
        complete = ends % MINUTE_MS == 0
        # The meter trips at the end of a whole minute spent over its limit, unless forced.
        trips = (load > self.power_limit_kw) & complete[:, None] & (self.closed & ~self.forced)
        tripped = np.logical_or.accumulate(trips, axis=0)
        before = np.zeros_like(tripped)
        before[1:] = tripped[:-1]
        energy = power * (ends - starts)[:, None] * (self.closed & ~before)
        buckets = self.day_tables.buckets(local.month, local.weekend, local.minute_of_day)
        counts = self.energy.accumulate(energy, buckets)
        self.money.charge(counts, self.ratio)
        self.demand.add(energy, complete, ends / 1000.0)
        newly = tripped[-1]
        self.closed &= ~newly
        self.over_limit |= newly
        self.trip_count += newly

    def _freeze(self, at_ms: int) -> None:
        """Copy the month's registers into freeze block 1 and restart maximum demand."""
        ended = datetime.fromtimestamp(at_ms / 1000.0 - 1.0, self.tz)
        self.freezes.freeze(
            (ended.year % 100) * 100 + ended.month,
            at_ms / 1000.0,
            self.energy.total,
            self.energy.buckets,
            self.demand.max_energy,
            self.demand.max_time,
        )
        self.demand.reset_max()

    # -- commands ----------------------------------------------------------------------------

    def _rows(self, rows: Rows | None) -> IntArray:
        if rows is None:
            return np.arange(len(self.ids))
        idx = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= len(self.ids))):
            raise IndexError(f"rows: must be meter rows within 0..{len(self.ids) - 1}")
        return idx

    def relay(self, rows: Rows, action: RelayAction) -> None:
        """Relay command: force open (trip), force closed, or hand control back to the meter."""
        idx = np.unique(self._rows(rows))
        if action == "open":
            self.trip_count[idx] += self.closed[idx]
            self.closed[idx] = False
            self.forced[idx] = True
        elif action in ("close", "auto"):
            self.closed[idx] = True
            self.forced[idx] = action == "close"
            self.over_limit[idx] = False
        else:
            raise ValueError(f"action: must be open, close or auto, got {action!r}")
        self._cache = None

    def set_load(self, rows: Rows, kw: float | npt.ArrayLike) -> None:
        """Hold the meters' load at `kw` (primary, at Un); NaN returns to the profile."""
        value = np.asarray(kw, dtype=np.float64)
        if np.any(value < 0):
            raise ValueError(f"kw: a load must be ≥ 0 or NaN, got {kw!r}")
        self.loads.fixed_kw[self._rows(rows)] = value
        self._cache = None

    def set_power_limit(self, rows: Rows, kw: float | npt.ArrayLike) -> None:
        """Program the power limit (kW, primary); NaN removes it."""
        value = np.asarray(kw, dtype=np.float64)
        if np.any(value < 0):
            raise ValueError(f"kw: a power limit must be ≥ 0 or NaN, got {kw!r}")
        self.power_limit_kw[self._rows(rows)] = value
        self._cache = None

    def set_prices(self, rows: Rows, prices_e4: npt.ArrayLike) -> None:
        """Program the sharp, peak, flat and valley prices (yuan/10⁴ per kWh)."""
        value = np.asarray(prices_e4)
        if not np.issubdtype(value.dtype, np.integer) or value.shape[-1:] != (4,):
            raise ValueError("prices_e4: four integer prices (sharp, peak, flat, valley) expected")
        if np.any(value < 0):
            raise ValueError(f"prices_e4: prices must be ≥ 0, got {value.tolist()}")
        self.money.prices_e4[self._rows(rows)] = value
        self._cache = None

    def set_prepaid(
        self,
        rows: Rows,
        *,
        enabled: bool = True,
        alarm1_fen: int | npt.ArrayLike = 0,
        alarm2_fen: int | npt.ArrayLike = 0,
        credit_limit_fen: int | npt.ArrayLike = 0,
    ) -> None:
        """Switch the meter's own money counting and program its alarm amounts and credit."""
        idx = self._rows(rows)
        for name, value in (
            ("alarm1_fen", alarm1_fen),
            ("alarm2_fen", alarm2_fen),
            ("credit_limit_fen", credit_limit_fen),
        ):
            amount = np.asarray(value)
            if not np.issubdtype(amount.dtype, np.integer) or np.any(amount < 0):
                raise ValueError(f"{name}: must be integer fen ≥ 0, got {value!r}")
            getattr(self.money, name)[idx] = amount
        self.money.enabled[idx] = enabled
        self._cache = None

    def recharge(self, rows: Rows, fen: int | npt.ArrayLike) -> None:
        """Credit money to the meter (a purchase); fen must be a positive integer."""
        amount = np.asarray(fen)
        if not np.issubdtype(amount.dtype, np.integer):
            raise ValueError(f"fen: a recharge is integer fen, got {fen!r}")
        self.money.recharge(self._rows(rows), amount.astype(np.int64))
        self._cache = None

    def set_clock(self, rows: Rows, meter_time: float) -> None:
        """Time-sync command: set the meters' clocks to `meter_time` at the current time."""
        if not math.isfinite(meter_time):
            raise ValueError(f"meter_time: must be a finite Unix time, got {meter_time!r}")
        self.clock_offset[self._rows(rows)] = meter_time - self.now
        self._cache = None

    def preset_energy(self, rows: Rows, buckets: npt.ArrayLike) -> None:
        """Load the energy counters (0.01 kWh secondary; sharp, peak, flat, valley)."""
        self.energy.preset(self._rows(rows), np.asarray(buckets, dtype=np.int64))
        self._cache = None

    # -- readings ----------------------------------------------------------------------------

    def status_word(self) -> IntArray:
        """The raw status word of every meter (DOMAIN §2)."""
        return status_words(self)

    def tags(self, rows: Rows | None = None) -> Columns:
        """Current state as catalogue tag columns (primary values), for all or some rows."""
        if self._cache is None or self._cache_faults != self.faults.version:
            self._cache = tag_columns(self)
            self._cache_faults = self.faults.version
        if rows is None:
            return {name: column.copy() for name, column in self._cache.items()}
        idx = self._rows(rows)
        return {name: column[idx] for name, column in self._cache.items()}

    def freeze_block(self, n: int, rows: Rows | None = None) -> Columns:
        """Freeze block of the n-th previous month (1..12): month YYMM, time, energies, demand."""
        return freeze_columns(self, n, self._rows(rows))


def _to_ms(seconds: float) -> int:
    if not math.isfinite(seconds):
        raise ValueError(f"time must be a finite Unix time, got {seconds!r}")
    return round(seconds * 1000.0)


def _column(column: ArrayT, n: int, name: str) -> ArrayT:
    if column.shape != (n,):
        raise ValueError(f"{name}: expected one value per meter ({n}), got shape {column.shape}")
    return column
