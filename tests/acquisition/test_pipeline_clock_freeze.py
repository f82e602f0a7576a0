"""Pipeline order, clock sync and the monthly freeze, against the simulator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from config.model import Site
from server.acquisition.pipeline import STAGES, BatchPipeline, FreezeReadings
from server.clock import ManualClock
from server.process import build_tag_table
from server.tags import Batch
from tests.acquisition.conftest import SH, START, acquiring

Run = Callable[[Awaitable[Any]], Any]


def test_consumers_run_in_stage_order_and_a_bad_stage_is_refused(run: Run, site: Site) -> None:
    seen: list[str] = []

    class Consumer:
        def __init__(self, name: str) -> None:
            self.name = name

        def on_batch(self, changes: Any) -> None:
            seen.append(self.name)

    async def main() -> None:
        pipeline = BatchPipeline(build_tag_table(site, ManualClock(START)))
        for stage in reversed(STAGES):
            pipeline.subscribe(stage, Consumer(stage), name=stage)
        changes = await pipeline.submit(
            Batch("realtime", [0, 1], {"u_a": [230.0, 231.0]}, source_ts=START)
        )
        assert len(changes) == 2
        assert seen == list(STAGES)
        with pytest.raises(ValueError, match="unknown pipeline stage"):
            pipeline.subscribe("billing", Consumer("x"))
        with pytest.raises(TypeError):
            pipeline.subscribe("feeds", object())

    run(main())


def test_drifted_clocks_are_set(run: Run, site: Site) -> None:
    async def main() -> None:
        clock = ManualClock(START)
        async with acquiring(site, clock, upload_interval_min=30) as h:
            fleet = h.sim.fleet
            for meter in ("P0001", "E0002", "G0001"):
                fleet.set_clock(h.row(meter), clock.time() + 300.0)
            await h.advance(6)  # prepaid scan + clock check; the 4G meter's poll block
            await h.until(lambda: abs(fleet.clock_offset[h.row("G0001")]) < 5.0)
            for meter in ("P0001", "E0002"):
                assert abs(fleet.clock_offset[h.row(meter)]) < 5.0, meter
            assert h.acq.clock_sync.synced >= 3

    run(main())


def test_freeze_after_midnight_on_the_first(run: Run, site: Site) -> None:
    got: list[FreezeReadings] = []

    class Historian:
        def on_freeze(self, readings: FreezeReadings) -> None:
            got.append(readings)

    async def main() -> None:
        clock = ManualClock(datetime(2024, 6, 30, 23, 50, tzinfo=SH).timestamp())
        async with acquiring(site, clock, acq_options={"freeze_retry_s": 120.0}) as h:
            h.acq.pipeline.subscribe("historian", Historian())
            await h.advance(6)
            assert got == []  # the simulated meters have no May block yet
            await h.advance(15 * 60)  # 00:05 on 1 July
            await h.advance(5)
            months = {int(m) for r in got for m in r.yymm}
            assert months == {2406}
            rows = sorted(int(r) for readings in got for r in readings.rows)
            polled = sorted(h.row(m.id) for m in site.meters if m.gateway != "GW002")
            assert rows == polled

    run(main())
