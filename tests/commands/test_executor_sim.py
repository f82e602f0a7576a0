"""The outbox, the dispatcher and `ChannelExecutor` against the real simulator over Modbus TCP.

P0001 (a DTSY1352 at slave 1 behind the Modbus TCP gateway GW003 of the small example site)
is commanded through a real `CommandOutbox` on PostgreSQL; what the simulated meter shows
afterwards is read from the simulator's fleet. Simulated time is the outbox's ManualClock.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config import load_site
from config.profile import load_profile
from protocols.modbus_tcp_link import ModbusTcpLink
from server.acquisition.channels import (
    ChannelDirectory,
    LineChannel,
    ModbusTcpPort,
    SharedLine,
)
from server.clock import ManualClock
from server.commands import ChannelExecutor, CommandDispatcher, CommandOutbox, DispatchReport
from sim.runner import Simulator
from tests.commands.conftest import EXAMPLE
from tests.commands.fake_meters import POLICY, Run

METER = "P0001"
LINK_TIMEOUT_S = 0.2  # real seconds a silent meter costs per request
PRICES = {"sharp_e4": 12345, "peak_e4": 10210, "flat_e4": 6970, "valley_e4": 3720}


@dataclass
class Park:
    """The running simulator, the server's link to GW003, and the dispatcher over it."""

    sim: Simulator
    row: int
    outbox: CommandOutbox
    dispatcher: CommandDispatcher
    link: ModbusTcpLink

    def enqueue(self, kind: str, params: Mapping[str, object]) -> int:
        enqueued = self.outbox.enqueue(kind, params, METER, actor="op", channel="hmi")
        return enqueued.commands[0].id

    async def dispatch(self) -> DispatchReport:
        return await self.dispatcher.run_once()


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    target = tmp_path / "site"
    shutil.copytree(EXAMPLE, target)
    return target


@asynccontextmanager
async def park(site_dir: Path, outbox: CommandOutbox, clock: ManualClock) -> AsyncIterator[Park]:
    site = load_site(site_dir, env={})
    sim = Simulator(
        site, seed=7, clock=clock, modbus_any_port=True, serve_control=False, dial_in=False
    )
    await sim.start()
    link = ModbusTcpLink("GW003", "127.0.0.1", sim.modbus_port("GW003"), timeout=LINK_TIMEOUT_S)
    try:
        meter = site.meter(METER)
        channel = LineChannel(METER, SharedLine(ModbusTcpPort(link)), int(meter.slave or 1))
        directory = ChannelDirectory({METER: channel}, {METER: load_profile(meter.model)})
        executor = ChannelExecutor(directory, clock=clock, tz=ZoneInfo(site.park.timezone))
        dispatcher = CommandDispatcher(outbox, executor, owner="d1", attempt_timeout_s=2.0)
        yield Park(sim, site.meter_row(METER), outbox, dispatcher, link)
    finally:
        await link.close()
        await sim.stop()


def test_relay_open_then_close_reach_the_simulated_relay(
    run: Run, site_dir: Path, outbox: CommandOutbox, clock: ManualClock
) -> None:
    async def scenario() -> None:
        async with park(site_dir, outbox, clock) as p:
            assert bool(p.sim.fleet.closed[p.row])
            opened = p.enqueue("relay_open", {})
            assert (await p.dispatch()).done == 1
            assert not p.sim.fleet.closed[p.row] and p.sim.fleet.forced[p.row]
            closed = p.enqueue("relay_close", {})
            assert (await p.dispatch()).done == 1
            assert p.sim.fleet.closed[p.row] and p.sim.fleet.forced[p.row]
            for command_id in (opened, closed):
                done = outbox.get(command_id)
                assert (done.state, done.attempts, done.last_error) == ("done", 1, None)

    run(scenario())


def test_prices_and_limits_land_in_the_simulated_meter(
    run: Run, site_dir: Path, outbox: CommandOutbox, clock: ManualClock
) -> None:
    async def scenario() -> None:
        async with park(site_dir, outbox, clock) as p:
            prices = p.enqueue("price_set", PRICES)
            alarm = p.enqueue("alarm1_set", {"fen": 77_700})
            assert (await p.dispatch()).done == 2
            shown = p.sim.fleet.money.prices_e4[p.row].tolist()
            assert shown == [PRICES[k] for k in ("sharp_e4", "peak_e4", "flat_e4", "valley_e4")]
            assert int(p.sim.fleet.money.alarm1_fen[p.row]) == 77_700
            assert [outbox.get(c).state for c in (prices, alarm)] == ["done", "done"]

    run(scenario())


def test_time_sync_sets_a_drifted_meter_clock(
    run: Run, site_dir: Path, outbox: CommandOutbox, clock: ManualClock
) -> None:
    async def scenario() -> None:
        async with park(site_dir, outbox, clock) as p:
            p.sim.fleet.set_clock(p.row, clock.time() - 3600)  # an hour slow
            p.sim.image.invalidate()
            synced = p.enqueue("time_sync", {})
            assert (await p.dispatch()).done == 1
            assert outbox.get(synced).state == "done"
            assert abs(float(p.sim.fleet.clock_offset[p.row])) < 1.0

    run(scenario())


def test_a_write_the_simulated_meter_cannot_carry_out_waits_with_its_reason(
    run: Run, site_dir: Path, outbox: CommandOutbox, clock: ManualClock
) -> None:
    async def scenario() -> None:
        async with park(site_dir, outbox, clock) as p:
            table = p.enqueue("tou_day_table_set", {"table": 1, "periods": [[0, 0, "flat"]]})
            report = await p.dispatch()
            assert (report.failed, report.retried) == (0, 1)  # exception 04: device failure
            command = outbox.get(table)
            assert command.last_error == (
                "write 0x0300+28: GW003: meter refused: server device failure (Modbus exception 04)"
            )

    run(scenario())


def test_a_silent_meter_is_retried_then_reissued_after_the_fault_clears(
    run: Run, site_dir: Path, outbox: CommandOutbox, clock: ManualClock
) -> None:
    async def scenario() -> None:
        async with park(site_dir, outbox, clock) as p:
            faults = p.sim.fleet.faults
            faults.silence(p.row)
            command_id = p.enqueue("relay_open", {})
            assert (await p.dispatch()).retried == 1
            waiting = outbox.get(command_id)
            assert (waiting.state, waiting.attempts) == ("pending", 1)
            assert waiting.last_error == (
                f"write 0x0057+2: GW003: no reply within {LINK_TIMEOUT_S:g} s"
            )
            assert waiting.next_attempt_at == clock.time() + POLICY.base_s
            clock.advance(POLICY.base_s)
            assert (await p.dispatch()).retried == 1  # read back first: unknown, no re-send
            assert outbox.get(command_id).last_error == (
                f"read-back: read-back of 0x008F+1: GW003: no reply within {LINK_TIMEOUT_S:g} s"
            )
            clock.advance(POLICY.delay(2))
            assert (await p.dispatch()).failed == 1
            assert outbox.get(command_id).state == "failed"
            assert p.sim.fleet.closed[p.row]  # nothing reached the meter

            faults.clear(rows=p.row)
            again = outbox.reissue(command_id, actor="op", channel="hmi").command
            assert (await p.dispatch()).done == 1
            assert outbox.get(again.id).state == "done"
            assert not p.sim.fleet.closed[p.row]

    run(scenario())
