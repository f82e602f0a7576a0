"""One process and two worker processes fill the same tag table from the same frozen field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import redis

from config.model import Site
from server.acquisition.service import Acquisition
from server.process import build_tag_table
from server.scaleout import worker_gateways
from server.tags import CommState, StatusCode
from tests.acquisition.conftest import START
from tests.scaleout.conftest import pooled, simulated, table_differences, until

Run = Callable[[Awaitable[Any]], Any]


def test_two_workers_give_the_table_of_one_process(
    run: Run, tcp_site: Site, redis_client: redis.Redis
) -> None:
    async def main() -> None:
        async with simulated(tcp_site) as field:
            single = build_tag_table(tcp_site, field.clock)
            acq = Acquisition(
                tcp_site,
                single,
                clock=field.clock,
                polled_gateways=worker_gateways(tcp_site),
                dialin=False,
                request_timeout=0.5,
                phase_spread=0.0,
                startup_window_s=0.0,
            )
            await acq.start(run_loops=False, gateway_endpoints=field.endpoints)
            try:
                await acq.tick()
            finally:
                await acq.stop()
            polled = [r for g in ("GW001", "GW003", "GW004") for r in field.rows_of(g)]
            assert (single.quality("realtime")[polled] == StatusCode.GOOD).all()
            assert (single.comm[polled] == CommState.ONLINE).all()

            async with pooled(field, frozen_at=START) as pool:
                same = await until(lambda: not table_differences(single, pool.table), 25.0)
                assert same, table_differences(single, pool.table)
                status = pool.status()
                assert status["unassigned"] == 0
                owned = {w: s["gateways"] for w, s in status["workers"].items()}
                assert owned == {"w0": 2, "w1": 1}
            assert pool.readings.dead == 0
            assert pool.applier.counts.comm >= 1
            assert np.array_equal(pool.table.comm, single.comm)

    run(main())
