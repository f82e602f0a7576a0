"""The scale-out harness: the small site with three Modbus TCP gateways, the simulator, a pool."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config import load_site
from config.model import Site
from config.values import Endpoint
from server.acquisition.pipeline import BatchPipeline
from server.clock import ManualClock, SystemClock
from server.process import build_tag_table
from server.scaleout import WorkerPool
from server.tags import TagTable
from sim.runner import Simulator
from tests.acquisition.conftest import SMALL, START
from tests.conftest import TEST_REDIS_URL

PARK = "scaleout-test"

GW001_DTU = """[[gateways]]
id = "GW001"
kind = "dtu"
area = "ENT"
protocol = "modbus_rtu"
registration = "GW001"
registration_format = "ascii"
heartbeat = "HB"
heartbeat_format = "ascii"
"""

GW001_GW004_TCP = """[[gateways]]
id = "GW001"
kind = "modbus_tcp"
area = "ENT"
protocol = "modbus_rtu"
host = "127.0.0.1"
port = 1501

[[gateways]]
id = "GW004"
kind = "modbus_tcp"
area = "ENT"
protocol = "modbus_rtu"
host = "127.0.0.1"
port = 1504
"""


@pytest.fixture
def tcp_site(tmp_path: Path) -> Site:
    """The small site with GW001 as a Modbus TCP gateway and E0003 moved to a new GW004.

    With the pool's worker names w0 and w1, rendezvous hashing gives GW001 and GW003 to
    w0 and GW004 to w1; w0 alone takes all three.
    """
    folder = tmp_path / "site"
    shutil.copytree(SMALL, folder)
    toml = folder / "site.toml"
    text = toml.read_text(encoding="utf-8")
    assert GW001_DTU in text
    toml.write_text(text.replace(GW001_DTU, GW001_GW004_TCP), encoding="utf-8")
    csv = folder / "meters.csv"
    lines = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    moved = [
        line.replace(",GW001,3,", ",GW004,3,") if line.startswith("E0003,") else line
        for line in lines
    ]
    csv.write_text("".join(moved), encoding="utf-8")
    return load_site(folder, env={})


@dataclass
class Field:
    """The simulator on a frozen clock, and where its Modbus TCP gateways listen."""

    site: Site
    clock: ManualClock
    sim: Simulator
    endpoints: dict[str, Endpoint]

    def rows_of(self, gateway: str) -> list[int]:
        return [self.site.meter_row(m.id) for m in self.site.meters_on(gateway)]


@asynccontextmanager
async def simulated(site: Site) -> AsyncIterator[Field]:
    """The simulator serving the site's Modbus TCP gateways at the frozen time START."""
    clock = ManualClock(START)
    sim = Simulator(
        site, seed=7, clock=clock, modbus_any_port=True, serve_control=False, dial_in=False
    )
    await sim.start()
    try:
        endpoints = {g: Endpoint("127.0.0.1", sim.modbus_port(g)) for g in sim.modbus}
        yield Field(site, clock, sim, endpoints)
    finally:
        await sim.stop()


@asynccontextmanager
async def pooled(field: Field, **options: Any) -> AsyncIterator[WorkerPool]:
    """A started `WorkerPool` of two workers on its own bus keys, stopped at the end."""
    table = build_tag_table(field.site, field.clock)
    settings: dict[str, Any] = {
        "workers": 2,
        "redis_url": TEST_REDIS_URL,
        "clock": SystemClock(),
        "park": PARK,
        "gateway_endpoints": field.endpoints,
        "heartbeat_ttl": 2.0,
        "check_interval": 0.2,
        "request_timeout": 0.5,
        "command_timeout": 5.0,
        **options,
    }
    pool = WorkerPool(field.site, table, BatchPipeline(table), **settings)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.stop()


async def until(condition: Callable[[], bool], within: float) -> bool:
    """Wait (real time: other processes do the work) until `condition` holds; whether it did."""
    try:
        async with asyncio.timeout(within):
            # the work happens in other processes: nothing here could set an event
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        return condition()
    return True


def table_differences(one: TagTable, other: TagTable) -> list[str]:
    """Where two tag tables differ in values, qualities, source timestamps or comm states."""
    found = []
    for group in one.catalogue.groups:
        if not np.array_equal(one.quality(group), other.quality(group)):
            found.append(f"quality of {group}")
        if not np.array_equal(one.source_ts(group), other.source_ts(group), equal_nan=True):
            found.append(f"source_ts of {group}")
    for tag in one.catalogue.tags:
        a, b = one.column(tag.name), other.column(tag.name)
        if not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
            found.append(f"values of {tag.name}")
    if not np.array_equal(one.comm, other.comm):
        found.append("comm states")
    return found
