"""Full scans against the simulator fill the tag table with the fleet's values."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from config.model import Site
from server.clock import ManualClock
from server.tags import CommState, StatusCode
from tests.acquisition.conftest import START, acquiring, within_resolution

Run = Callable[[Awaitable[Any]], Any]

REALTIME = {"u_a": 0.1, "i_a": 0.01, "p": 0.001, "pf": 0.001, "f": 0.01}
ENERGY = {"e_total": 0.01, "e_peak": 0.01, "e_flat": 0.01, "e_valley": 0.01}


def test_first_tick_fills_every_polled_meter(run: Run, site: Site) -> None:
    async def main() -> None:
        clock = ManualClock(START)
        async with acquiring(site, clock) as h:
            await h.advance(6)  # past the start-up window: every class has run once
            polled = [m.id for m in site.meters if m.gateway != "GW002"]
            rows = [h.row(m) for m in polled]
            assert (h.table.quality("realtime")[rows] == StatusCode.GOOD).all()
            assert (h.table.quality("energy")[rows] == StatusCode.GOOD).all()
            assert (h.table.comm[rows] == CommState.ONLINE).all()
            polled_rtu = [m for m in polled if site.meter(m).gateway is not None]
            within_resolution(h, polled_rtu, REALTIME | ENERGY)
            direct = [m.id for m in site.direct_meters()]
            within_resolution(h, direct, {"u_a": 0.1, "i_a": 0.01, "e_total": 0.01})
            dlt = [h.row(m.id) for m in site.meters_on("GW002")]  # DL/T 645: test_dlt645_poll
            assert (h.table.comm[dlt] == CommState.ONLINE).all()
            status = h.acq.status()
            assert status["meters"]["online"] == len(polled) + len(dlt)
            assert status["meters"]["unpolled"] == 0

    run(main())
