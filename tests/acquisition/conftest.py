"""The acquisition harness: the real simulator on real sockets, acquisition on a manual clock."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from config import load_site
from config.model import Site
from config.values import Endpoint
from server.acquisition.service import Acquisition
from server.clock import ManualClock
from server.process import build_tag_table
from server.tags import TagTable
from sim.runner import Simulator

SMALL = Path(__file__).resolve().parents[2] / "config" / "examples" / "small"
SH = ZoneInfo("Asia/Shanghai")
START = datetime(2024, 6, 3, 10, 0, tzinfo=SH).timestamp()


@dataclass
class Harness:
    """A started simulator and a started acquisition, on the same manual clock."""

    site: Site
    clock: ManualClock
    sim: Simulator
    acq: Acquisition
    table: TagTable

    def row(self, meter_id: str) -> int:
        return self.site.meter_row(meter_id)

    async def until(self, condition: Callable[[], bool], within: float = 5.0) -> None:
        """Wait (real time, for sockets) until `condition` holds."""
        async with asyncio.timeout(within):
            for _ in iter(int, 1):  # until the condition holds or the timeout hits
                if condition():
                    return
                await asyncio.sleep(0.005)

    async def all_connected(self, within: float = 5.0) -> None:
        listener = self.acq.listener
        assert listener is not None
        expected = set(self.sim.dtus) | {m.serial for m in self.sim.meters4g}
        await self.until(lambda: all(listener.online(d) for d in expected), within)

    async def advance(self, seconds: float) -> None:
        """Move simulated time, let the fleet follow, run what is due."""
        self.clock.advance(seconds)
        await self.sim.tick()
        await self.acq.tick()


@asynccontextmanager
async def acquiring(
    site: Site,
    clock: ManualClock,
    *,
    request_timeout: float = 0.25,
    connect: bool = True,
    acq_options: dict[str, Any] | None = None,
    **sim_options: Any,
) -> AsyncIterator[Harness]:
    """The acquisition listening on 127.0.0.1:0 and the simulator dialling into it."""
    table = build_tag_table(site, clock)
    acq = Acquisition(
        site,
        table,
        clock=clock,
        dialin_listen=Endpoint("127.0.0.1", 0),
        request_timeout=request_timeout,
        backoff=(0.05, 0.2),
        **({"phase_spread": 0.0} | (acq_options or {})),
    )
    port = await acq.listen()
    options = {"backoff_s": (0.05, 0.2), "modbus_any_port": True, **sim_options}
    sim = Simulator(
        site, clock=clock, dialin=Endpoint("127.0.0.1", port or 1), serve_control=False, **options
    )
    harness = Harness(site, clock, sim, acq, table)
    try:
        await sim.start()
        endpoints = {g: Endpoint("127.0.0.1", sim.modbus_port(g)) for g in sim.modbus}
        await acq.start(run_loops=False, gateway_endpoints=endpoints)
        if connect:
            await harness.all_connected()
        yield harness
    finally:
        await acq.stop()
        await sim.stop()


@pytest.fixture
def site() -> Site:
    return load_site(SMALL)


def within_resolution(h: Harness, meter_ids: list[str], tags: dict[str, float]) -> None:
    """The table holds the fleet's values of `tags` to half their raw resolution (LSB)."""
    rows = [h.row(m) for m in meter_ids]
    truth = h.sim.fleet.tags(rows)
    fleet = h.sim.fleet
    for tag, lsb in tags.items():
        ratio = {"u": fleet.pt[rows], "i": fleet.ct[rows], "p": fleet.ratio[rows]}.get(
            tag.split("_")[0], fleet.ratio[rows] if tag.startswith("e_") else 1
        )
        got = h.table.column(tag)[rows]
        assert np.all(np.abs(got - truth[tag]) <= lsb * ratio * 0.5 + 1e-9), (tag, got, truth[tag])


def edited_site(tmp_path: Path, edit: Callable[[str], str]) -> Site:
    """A copy of the small example with its site.toml edited."""
    folder = tmp_path / "site"
    shutil.copytree(SMALL, folder)
    toml = folder / "site.toml"
    toml.write_text(edit(toml.read_text(encoding="utf-8")), encoding="utf-8")
    return load_site(folder)
