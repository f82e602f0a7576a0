"""Fault injection for the simulated park: per-meter and per-gateway faults with expiry times."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

from server.clock import Clock, SystemClock

FaultKind: TypeAlias = Literal[
    "phase_loss", "undervoltage", "meter_fault", "silent", "corrupt", "slow", "gateway_down"
]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = get_args(FaultKind)
METER_KINDS: Final[tuple[FaultKind, ...]] = FAULT_KINDS[:-1]
PHASES: Final = "ABC"

FloatArray = npt.NDArray[np.float64]
Rows = int | Sequence[int] | npt.NDArray[np.integer]

NEVER: Final = -math.inf
FOREVER: Final = math.inf


class FaultError(ValueError):
    """A fault request is invalid; the message names the field."""


class FaultTable:
    """Active faults of every meter and gateway: plain columns, each with its expiry time."""

    def __init__(
        self,
        meter_ids: Sequence[str],
        gateway_ids: Sequence[str] = (),
        *,
        clock: Clock | None = None,
        seed: int = 0,
    ) -> None:
        """No faults yet for `meter_ids` (rows in order) and `gateway_ids`."""
        n = len(meter_ids)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.meter_ids = tuple(meter_ids)
        self.gateway_ids = tuple(gateway_ids)
        self._meter_row = {m: i for i, m in enumerate(self.meter_ids)}
        self._gateway_row = {g: i for i, g in enumerate(self.gateway_ids)}
        self._rng = np.random.default_rng(seed)
        self.until: dict[FaultKind, FloatArray] = {k: np.full(n, NEVER) for k in METER_KINDS}
        self.phase_lost = np.zeros((n, 3), dtype=bool)
        self.residual = np.zeros(n)
        self.undervoltage_ratio = np.ones(n)
        self.corrupt_probability = np.zeros(n)
        self.delay = np.zeros(n)
        g = len(self.gateway_ids)
        self.gateway_since = np.zeros(g)
        self.gateway_until = np.full(g, NEVER)
        self.gateway_period = np.zeros(g)
        self.gateway_down_s = np.zeros(g)
        self.version = 0

    # -- injection -------------------------------------------------------------------------

    def _expiry(self, duration_s: float | None) -> float:
        if duration_s is None:
            return FOREVER
        if not math.isfinite(duration_s) or duration_s <= 0:
            raise FaultError(f"duration_s: must be a positive number of seconds, got {duration_s}")
        return self.clock.time() + duration_s

    def _rows(self, rows: Rows) -> npt.NDArray[np.int64]:
        idx = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= len(self.meter_ids))):
            raise FaultError(f"meters: rows must be within 0..{len(self.meter_ids) - 1}")
        return idx

    def _set(self, kind: FaultKind, rows: Rows, duration_s: float | None) -> npt.NDArray[np.int64]:
        idx = self._rows(rows)
        self.until[kind][idx] = self._expiry(duration_s)
        self.version += 1
        return idx

    def phase_loss(
        self, rows: Rows, phases: str, *, duration_s: float | None = None, residual: float = 0.02
    ) -> None:
        """Drop one or two phases (e.g. "B" or "BC") to `residual` × Un on the given meters."""
        lost = np.array([PHASES.index(p) for p in phases.upper() if p in PHASES], dtype=np.int64)
        if not 1 <= len(set(lost.tolist())) <= 2 or lost.size != len(phases):
            raise FaultError(f"phases: one or two of A, B, C expected, got {phases!r}")
        if not 0.0 <= residual < 0.3:
            raise FaultError(f"residual: must be within [0, 0.3), got {residual}")
        idx = self._set("phase_loss", rows, duration_s)
        self.phase_lost[idx] = False
        self.phase_lost[np.ix_(idx, lost)] = True
        self.residual[idx] = residual

    def undervoltage(
        self, rows: Rows, ratio: float = 0.8, *, duration_s: float | None = None
    ) -> None:
        """Every phase of the given meters at `ratio` × Un."""
        if not 0.3 <= ratio < 1.0:
            raise FaultError(f"ratio: must be within [0.3, 1), got {ratio}")
        idx = self._set("undervoltage", rows, duration_s)
        self.undervoltage_ratio[idx] = ratio

    def meter_fault(self, rows: Rows, *, duration_s: float | None = None) -> None:
        """Raise the meter's own fault bit."""
        self._set("meter_fault", rows, duration_s)

    def silence(self, rows: Rows, *, duration_s: float | None = None) -> None:
        """The meters stop answering."""
        self._set("silent", rows, duration_s)

    def corrupt_frames(
        self, rows: Rows, probability: float, *, duration_s: float | None = None
    ) -> None:
        """Each reply of the meters is corrupted with `probability`."""
        if not 0.0 < probability <= 1.0:
            raise FaultError(f"probability: must be within (0, 1], got {probability}")
        idx = self._set("corrupt", rows, duration_s)
        self.corrupt_probability[idx] = probability

    def slow_replies(self, rows: Rows, delay_ms: float, *, duration_s: float | None = None) -> None:
        """The meters answer `delay_ms` late."""
        if not 0.0 < delay_ms <= 600_000.0:
            raise FaultError(f"delay_ms: must be within (0, 600000], got {delay_ms}")
        idx = self._set("slow", rows, duration_s)
        self.delay[idx] = delay_ms / 1000.0

    def gateway_outage(
        self,
        gateway: str,
        *,
        duration_s: float | None = None,
        period_s: float | None = None,
        down_s: float | None = None,
    ) -> None:
        """Take a gateway down, or make it flap: down for `down_s` of every `period_s`."""
        g = self._gateway(gateway)
        if (period_s is None) != (down_s is None):
            raise FaultError("period_s and down_s: give both to flap, or neither")
        if period_s is not None and down_s is not None and not 0 < down_s < period_s:
            raise FaultError(f"down_s: must be within (0, period_s={period_s}), got {down_s}")
        self.gateway_until[g] = self._expiry(duration_s)
        self.gateway_since[g] = self.clock.time()
        self.gateway_period[g] = period_s or 0.0
        self.gateway_down_s[g] = down_s or 0.0
        self.version += 1

    def clear(
        self,
        kind: FaultKind | None = None,
        rows: Rows | None = None,
        gateways: Iterable[str] | None = None,
    ) -> None:
        """End faults: of one kind or all, on the given meters/gateways or everywhere."""
        if kind is not None and kind not in FAULT_KINDS:
            raise FaultError(f"kind: {kind!r} is not one of {', '.join(FAULT_KINDS)}")
        if kind != "gateway_down" and gateways is None:
            idx = self._rows(rows) if rows is not None else slice(None)
            for k in METER_KINDS if kind is None else (kind,):
                self.until[k][idx] = NEVER
        if kind in (None, "gateway_down") and rows is None:
            names = self.gateway_ids if gateways is None else tuple(gateways)
            for name in names:
                self.gateway_until[self._gateway(name)] = NEVER
        self.version += 1

    def _gateway(self, gateway: str) -> int:
        try:
            return self._gateway_row[gateway]
        except KeyError:
            raise FaultError(f"gateway: unknown gateway {gateway!r}") from None

    # -- queries for the protocol servers --------------------------------------------------

    def _now(self, now: float | None) -> float:
        return self.clock.time() if now is None else now

    def active(self, kind: FaultKind, now: float | None = None) -> npt.NDArray[np.bool_]:
        """Which meters have a fault of `kind` at `now`."""
        return self.until[kind] > self._now(now)

    def is_silent(self, row: int, now: float | None = None) -> bool:
        """Whether the meter at `row` ignores requests."""
        return bool(self.until["silent"][row] > self._now(now))

    def corrupt(self, row: int, now: float | None = None) -> bool:
        """Whether this reply of the meter at `row` should be corrupted (a fresh draw)."""
        if self.until["corrupt"][row] <= self._now(now):
            return False
        return bool(self._rng.random() < self.corrupt_probability[row])

    def delay_s(self, row: int, now: float | None = None) -> float:
        """How late the meter at `row` answers, in seconds."""
        return float(self.delay[row]) if self.until["slow"][row] > self._now(now) else 0.0

    def gateway_down(self, gateway: str, now: float | None = None) -> bool:
        """Whether the gateway is unreachable at `now` (down, or in the down part of a flap)."""
        g = self._gateway(gateway)
        t = self._now(now)
        if not self.gateway_since[g] <= t < self.gateway_until[g]:
            return False
        period = self.gateway_period[g]
        if period <= 0:
            return True
        return bool((t - self.gateway_since[g]) % period < self.gateway_down_s[g])

    # -- physics inputs for the fleet ------------------------------------------------------

    def voltage_factors(self, t: FloatArray) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """Rows with a voltage fault at some of the times `t`, and their factors of Un.

        The factors are (times × rows × 3 phases).
        """
        first = t.min() if t.size else FOREVER
        hit = (self.until["phase_loss"] > first) | (self.until["undervoltage"] > first)
        rows = np.flatnonzero(hit)
        if rows.size == 0:
            return rows, np.ones((t.size, 0, 3))
        times = t[:, None]
        uv = np.where(self.until["undervoltage"][rows] > times, self.undervoltage_ratio[rows], 1.0)
        loss_on = (self.until["phase_loss"][rows] > times)[:, :, None] & self.phase_lost[rows]
        factors = np.where(loss_on, self.residual[rows][None, :, None], uv[:, :, None])
        return rows, factors

    def describe(self, now: float | None = None) -> list[dict[str, object]]:
        """The active faults, as JSON-ready records."""
        t = self._now(now)
        out: list[dict[str, object]] = []
        for kind in METER_KINDS:
            for row in np.flatnonzero(self.until[kind] > t):
                record: dict[str, object] = {"kind": kind, "meter": self.meter_ids[row]}
                until = float(self.until[kind][row])
                record["until"] = None if until == FOREVER else until
                record.update(self._params(kind, int(row)))
                out.append(record)
        for g, name in enumerate(self.gateway_ids):
            if self.gateway_until[g] > t:
                until = float(self.gateway_until[g])
                gw: dict[str, object] = {"kind": "gateway_down", "gateway": name}
                gw["until"] = None if until == FOREVER else until
                if self.gateway_period[g] > 0:
                    gw["period_s"] = float(self.gateway_period[g])
                    gw["down_s"] = float(self.gateway_down_s[g])
                out.append(gw)
        return out

    def _params(self, kind: FaultKind, row: int) -> Mapping[str, object]:
        if kind == "phase_loss":
            lost = "".join(p for p, on in zip(PHASES, self.phase_lost[row], strict=True) if on)
            return {"phases": lost, "residual": float(self.residual[row])}
        if kind == "undervoltage":
            return {"ratio": float(self.undervoltage_ratio[row])}
        if kind == "corrupt":
            return {"probability": float(self.corrupt_probability[row])}
        if kind == "slow":
            return {"delay_ms": float(self.delay[row]) * 1000.0}
        return {}

    def rows_of(self, meters: Iterable[str]) -> npt.NDArray[np.int64]:
        """Rows of meters named by id; an unknown id is a `FaultError` naming it."""
        try:
            return np.array([self._meter_row[m] for m in meters], dtype=np.int64)
        except KeyError as exc:
            raise FaultError(f"meters: unknown meter {exc.args[0]!r}") from None
