"""A small in-memory park for the alarm tests: site, tag table and helpers to feed readings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from alarms.engine import AlarmEngine
from alarms.kinds import AlarmKind
from alarms.records import AlarmTransition
from alarms.states import AlarmState
from config.model import (
    Acquisition,
    AlarmLimits,
    AlarmOverride,
    Alarms,
    Area,
    Gateway,
    Meter,
    Park,
    Services,
    Site,
)
from server.clock import ManualClock
from server.tags import Batch, StatusCode, TagTable

UN = 220.0
REALTIME_S = 60


def meter(
    meter_id: str,
    *,
    gateway: str | None = "GW1",
    area: str = "ENT",
    three_phase: bool = True,
    billing: str = "prepaid",
    power_limit_kw: str | None = None,
    alarm1_fen: int | None = None,
    alarm2_fen: int | None = None,
) -> Meter:
    return Meter(
        id=meter_id,
        model="DTSY1352" if three_phase else "DDSY1352",
        dlt645_address="000000000001",
        gateway=gateway,
        slave=1 if gateway else None,
        serial=None if gateway else "860000000000001",
        area=area,
        building=None,
        room="101",
        owner="owner",
        billing=billing,
        ct=1,
        pt=1,
        merchant=None,
        tariff=None,
        power_limit_kw=None if power_limit_kw is None else Decimal(power_limit_kw),
        alarm1_fen=alarm1_fen,
        alarm2_fen=alarm2_fen,
        credit_limit_fen=0,
        line=2,
    )


def site(
    meters: Sequence[Meter],
    *,
    limits: AlarmLimits | None = None,
    overrides: Sequence[AlarmOverride] = (),
) -> Site:
    gateway_ids = sorted({m.gateway for m in meters if m.gateway})
    return Site(
        folder=Path("test-site"),
        park=Park("Test park", "Asia/Shanghai", UN),
        services=Services(),
        acquisition=Acquisition(realtime_s=REALTIME_S),
        areas=(
            Area("ENT", "Enterprises", "enterprise", None, ()),
            Area("DORM", "Dormitories", "dormitory", None, ()),
        ),
        gateways=tuple(Gateway(g, "dtu", "ENT", "modbus_rtu") for g in gateway_ids),
        meters=tuple(meters),
        tariffs=(),
        merchants=(),
        alarms=Alarms(limits or AlarmLimits(), tuple(overrides)),
        routes=(),
        users=(),
    )


def table_for(park_site: Site, clock: ManualClock) -> TagTable:
    return TagTable(
        [m.id for m in park_site.meters],
        areas=[m.area for m in park_site.meters],
        gateways=[m.gateway for m in park_site.meters],
        three_phase=[m.three_phase for m in park_site.meters],
        clock=clock,
    )


class Rig:
    """A site, its table, a manual clock and an engine that records every transition."""

    def __init__(self, park_site: Site, **engine_options: float) -> None:
        self.site = park_site
        self.clock = ManualClock(1_700_000_000.0)
        self.table = table_for(park_site, self.clock)
        self.engine = AlarmEngine(park_site, self.table, clock=self.clock, **engine_options)  # type: ignore[arg-type]
        self.log: list[AlarmTransition] = []
        self.engine.subscribe(self.log.append)

    def rows(self, ids: Sequence[str] | None) -> np.ndarray[Any, Any]:
        if ids is None:
            return np.arange(len(self.table), dtype=np.int64)
        return self.table.rows_for(ids)

    def realtime(
        self,
        values: Mapping[str, float | Sequence[float]] | None = None,
        *,
        ids: Sequence[str] | None = None,
        quality: int = StatusCode.GOOD,
    ) -> list[AlarmTransition]:
        """Apply one realtime batch (healthy defaults, overridden by `values`) and evaluate."""
        rows = self.rows(ids)
        count = len(rows)
        base: dict[str, float] = {
            "u_a": UN, "u_b": UN, "u_c": UN, "p": 1.0, "relay": 1, "fault": 0, "over_limit": 0,
        }  # fmt: skip
        base.update({k: v for k, v in (values or {}).items() if np.ndim(v) == 0})  # type: ignore[misc]
        columns = {}
        for name, default in base.items():
            given = (values or {}).get(name)
            scalar = given is None or np.ndim(given) == 0
            column = np.full(count, default) if scalar else np.asarray(given)
            flag = name in ("relay", "fault", "over_limit")
            columns[name] = column.astype(np.uint8 if flag else float)
        batch = Batch("realtime", rows, columns, quality=quality, source_ts=self.clock.time())
        return self.engine.on_batch(self.table.apply(batch))

    def balance(
        self, fen: int | Sequence[int], *, ids: Sequence[str] | None = None
    ) -> list[AlarmTransition]:
        rows = self.rows(ids)
        column = np.broadcast_to(np.asarray(fen, dtype=np.int64), rows.shape).copy()
        batch = Batch("prepaid", rows, {"balance_fen": column}, source_ts=self.clock.time())
        return self.engine.on_batch(self.table.apply(batch))

    def advance(self, seconds: float) -> list[AlarmTransition]:
        self.clock.advance(seconds)
        return self.engine.evaluate()

    def state(self, kind: AlarmKind | str, target: str) -> AlarmState:
        return self.engine.state(kind, target)


def of_kind(records: list[AlarmTransition], kind: AlarmKind) -> list[AlarmTransition]:
    """The records of one alarm kind (other kinds, such as lost comm, may move meanwhile)."""
    return [r for r in records if r.kind is kind]
