"""Worker death, dropped Redis connections and commands through the owning worker."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from config.model import Site
from protocols.link_errors import LinkDown
from server.bus import BusKeys
from server.commands import ChannelExecutor
from server.commands.kinds import validate_params
from server.commands.states import Command
from server.scaleout import WorkerPool
from server.scaleout.remote import RemoteChannel
from server.tags import StatusCode
from tests.acquisition.conftest import START
from tests.scaleout.conftest import PARK, Field, pooled, simulated, until

Run = Callable[[Awaitable[Any]], Any]
SCANNING = {"realtime": 1.0}


def fresh(pool: WorkerPool, field: Field, gateway: str, after: float) -> bool:
    """Whether every meter of `gateway` has a good realtime reading taken after `after`."""
    rows = field.rows_of(gateway)
    good = pool.table.quality("realtime")[rows] == StatusCode.GOOD
    return bool(good.all() and (pool.table.source_ts("realtime")[rows] > after).all())


def owner(pool: WorkerPool, gateway: str) -> str | None:
    """The worker the pool's current assignment gives `gateway`."""
    current = pool.watch.current
    return None if current is None else current.owner(gateway)


def published(client: redis.Redis) -> int:
    """How many entries were ever added to the readings stream."""
    info = client.xinfo_stream(BusKeys(park=PARK).readings)
    return int(info["entries-added"])


def test_a_killed_workers_gateways_move_and_nothing_acknowledged_is_lost(
    run: Run, tcp_site: Site, redis_client: redis.Redis
) -> None:
    async def main() -> None:
        async with simulated(tcp_site) as field:
            async with pooled(field, intervals=SCANNING, restart=False) as pool:
                began = time.time()
                assert await until(lambda: fresh(pool, field, "GW004", began), 15.0)
                assert pool.watch.current is not None
                assert pool.watch.current.owner("GW004") == "w1"
                pool.kill("w1")
                killed = time.time()
                bound = pool.heartbeat_ttl + pool.coordinator.check_interval + 1.0
                assert await until(lambda: owner(pool, "GW004") == "w0", bound)
                assert time.time() - killed <= bound
                moved = time.time()
                assert await until(lambda: fresh(pool, field, "GW004", moved), 5.0)
                assert fresh(pool, field, "GW001", moved)
                assert not pool.status()["workers"]["w1"]["alive"]
            assert pool.readings.lost == 0 and pool.readings.dead == 0
            assert pool.readings.done == published(redis_client)

    run(main())


def test_a_dead_worker_is_restarted(run: Run, tcp_site: Site, redis_client: redis.Redis) -> None:
    async def main() -> None:
        async with (
            simulated(tcp_site) as field,
            pooled(field, intervals=SCANNING, restart_delay=0.1) as pool,
        ):
            assert await until(lambda: pool.watch.current is not None, 5.0)
            old = pool.kill("w1")

            def restarted() -> bool:
                w1 = pool.status()["workers"]["w1"]
                return bool(w1["alive"] and w1["restarts"] == 1 and w1["pid"] != old)

            assert await until(restarted, 5.0)
            back = time.time()
            assert await until(lambda: fresh(pool, field, "GW004", back), 10.0)

    run(main())


def test_dropped_redis_connections_resume(
    run: Run, tcp_site: Site, redis_client: redis.Redis
) -> None:
    async def main() -> None:
        async with simulated(tcp_site) as field:
            async with pooled(field, intervals=SCANNING) as pool:
                began = time.time()
                assert await until(lambda: fresh(pool, field, "GW001", began), 15.0)
                ours = f"parkgrid-{PARK}-"
                killed = 0
                for client in redis_client.client_list():
                    if client["name"].startswith(ours):
                        redis_client.client_kill_filter(_id=client["id"])
                        killed += 1
                assert killed >= 3  # the core and both workers
                dropped = time.time()

                def all_fresh() -> bool:
                    return all(fresh(pool, field, g, dropped) for g in ("GW001", "GW003", "GW004"))

                assert await until(all_fresh, 10.0)
            assert pool.readings.lost == 0 and pool.readings.dead == 0
            assert pool.readings.done == published(redis_client)

    run(main())


def _relay_open(meter: str) -> Command:
    return Command(
        id=1,
        request_id=1,
        meter=meter,
        kind="relay_open",
        params=validate_params("relay_open", {}, START),
        state="sending",
        attempts=1,
        max_attempts=3,
        next_attempt_at=START,
        lease_owner="core",
        lease_until=START + 30,
        last_error=None,
        reissue_of=None,
        actor="op",
        channel="hmi",
        created_at=START,
        updated_at=START,
        finished_at=None,
    )


def test_relay_open_reaches_the_relay_through_the_owning_worker(
    run: Run, tcp_site: Site, redis_client: redis.Redis
) -> None:
    async def main() -> None:
        async with simulated(tcp_site) as field, pooled(field, frozen_at=START) as pool:
            row = tcp_site.meter_row("E0003")  # behind GW004, polled by w1
            assert bool(field.sim.fleet.closed[row])
            tz = ZoneInfo(tcp_site.park.timezone)
            executor = ChannelExecutor(pool.directory, clock=field.clock, tz=tz)
            command = _relay_open("E0003")
            await executor.execute(command)
            assert not field.sim.fleet.closed[row] and field.sim.fleet.forced[row]
            assert await executor.confirm(command)
            assert isinstance(pool.directory.channel("E0003"), RemoteChannel)
            assert "D0001" not in pool.directory  # the DL/T 645 gateway is nobody's

    run(main())


def test_a_gateway_without_a_live_worker_is_link_down(
    run: Run, tcp_site: Site, redis_client: redis.Redis
) -> None:
    async def main() -> None:
        async with (
            simulated(tcp_site) as field,
            pooled(field, frozen_at=START, restart=False, command_timeout=0.5) as pool,
        ):
            assert await until(lambda: pool.watch.current is not None, 5.0)
            for worker in ("w0", "w1"):
                pool.kill(worker)
            bound = pool.heartbeat_ttl + pool.coordinator.check_interval + 1.0
            assert await until(lambda: owner(pool, "GW003") is None, bound)
            channel = pool.directory.channel("P0001")
            with pytest.raises(LinkDown, match="no worker carried out read_registers"):
                await channel.read(0, 2)

    run(main())
