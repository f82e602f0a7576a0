"""Faults from the simulator: comm states stay right, nothing escapes, the others keep going."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from config.model import Site
from server.clock import ManualClock
from server.tags import CommState, StatusCode
from tests.acquisition.conftest import START, Harness, acquiring

Run = Callable[[Awaitable[Any]], Any]
MINUTE = 60.0


def quality(h: Harness, meter_id: str, group: str = "realtime") -> int:
    return int(h.table.quality(group)[h.row(meter_id)])


def comm(h: Harness, meter_id: str) -> CommState:
    return CommState(int(h.table.comm[h.row(meter_id)]))


def transitions(caplog: pytest.LogCaptureFixture, group: str) -> list[str]:
    return [
        r.getMessage().split(": ")[1].split(",")[0]
        for r in caplog.records
        if r.name == "server.acquisition.poll_group" and f"poll group {group} " in r.getMessage()
    ]


def test_gateway_down_then_back(run: Run, site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def main() -> None:
        async with acquiring(site, ManualClock(START)) as h:
            await h.advance(6)
            assert comm(h, "P0001") is CommState.ONLINE
            h.sim.fleet.faults.gateway_outage("GW003")
            for polls in range(1, 4):
                await h.advance(MINUTE)
                assert quality(h, "P0001") == StatusCode.BAD_NOT_CONNECTED
                expected = CommState.OFFLINE if polls >= 3 else CommState.ONLINE
                assert comm(h, "P0001") is expected, polls
                # the DTU gateway's meters are unaffected, and not slowed down
                assert quality(h, "E0001") == StatusCode.GOOD
                assert comm(h, "E0001") is CommState.ONLINE
                assert h.acq.groups["GW001"].last["realtime"].duration_s < 0.25
            assert h.acq.status()["groups"]["failing"] == 1
            h.sim.fleet.faults.clear("gateway_down")
            await h.advance(MINUTE)
            assert quality(h, "P0001") == StatusCode.GOOD
            assert comm(h, "P0001") is CommState.ONLINE
            await h.advance(MINUTE)
            assert transitions(caplog, "GW003") == ["failing", "recovered", "ok"]
            assert transitions(caplog, "GW001") == []
            record = h.acq.comm.links["GW003"]
            assert record.online is True and record.reconnects >= 1

    run(main())


def test_flapping_gateway_gives_consistent_states(run: Run, site: Site) -> None:
    async def main() -> None:
        async with acquiring(site, ManualClock(START)) as h:
            await h.advance(6)
            h.sim.fleet.faults.gateway_outage("GW003", period_s=2 * MINUTE, down_s=MINUTE)
            for _ in range(8):
                await h.advance(MINUTE)
                down = h.sim.fleet.faults.gateway_down("GW003")
                good = quality(h, "P0001") == StatusCode.GOOD
                assert good != down
                assert comm(h, "P0001") is CommState.ONLINE  # never 3 failed polls in a row
                assert quality(h, "E0002") == StatusCode.GOOD

    run(main())


def test_slow_corrupt_and_silent_meters_are_bad_with_a_reason(run: Run, site: Site) -> None:
    async def main() -> None:
        async with acquiring(site, ManualClock(START), request_timeout=0.2) as h:
            await h.advance(6)
            faults = h.sim.fleet.faults
            # a slow meter holds a DTU's serial line: keep it alone on its Modbus TCP gateway
            faults.slow_replies(h.row("P0001"), 400.0)
            faults.corrupt_frames(h.row("E0002"), 1.0)
            faults.silence(h.row("E0001"))
            before = h.table.column("u_a")[h.row("E0001")]
            await h.advance(MINUTE)
            assert quality(h, "E0001") == StatusCode.BAD_TIMEOUT
            assert quality(h, "E0002") == StatusCode.BAD_COMMUNICATION_ERROR
            assert quality(h, "P0001") == StatusCode.BAD_TIMEOUT
            assert quality(h, "E0003") == StatusCode.GOOD  # after its neighbours' failures
            assert h.table.column("u_a")[h.row("E0001")] == before  # last value, marked bad
            for _ in range(2):
                await h.advance(MINUTE)
            assert comm(h, "E0002") is comm(h, "P0001") is CommState.OFFLINE
            assert comm(h, "E0001") is CommState.ONLINE  # its own limit is 5 polls (site.toml)
            for _ in range(2):
                await h.advance(MINUTE)
            assert comm(h, "E0001") is CommState.OFFLINE
            assert comm(h, "E0003") is CommState.ONLINE
            faults.clear()
            await asyncio.sleep(0.45)  # the late replies of the slow meter arrive and are dropped
            await h.advance(MINUTE)
            for meter in ("E0001", "E0002", "P0001"):
                assert quality(h, meter) == StatusCode.GOOD
                assert comm(h, meter) is CommState.ONLINE

    run(main())


def test_a_reply_from_the_wrong_address_is_bad(run: Run, site: Site) -> None:
    async def main() -> None:
        async with acquiring(site, ManualClock(START)) as h:
            gateway = h.sim.modbus["GW003"]
            answer = gateway._answer

            async def wrong_unit(transaction_id: int, request: Any) -> bytes | None:
                frame = await answer(transaction_id, request)
                assert frame is not None
                return frame[:6] + bytes([frame[6] ^ 0x05]) + frame[7:]  # another unit id

            gateway._answer = wrong_unit  # type: ignore[method-assign]
            await h.advance(6)
            assert quality(h, "P0001") == StatusCode.BAD_COMMUNICATION_ERROR
            assert quality(h, "E0001") == StatusCode.GOOD

    run(main())


def test_unknown_dialin_id_is_refused_and_scans_go_on(run: Run, site: Site) -> None:
    async def main() -> None:
        async with acquiring(site, ManualClock(START)) as h:
            assert h.acq.dialin_port is not None
            reader, writer = await asyncio.open_connection("127.0.0.1", h.acq.dialin_port)
            writer.write(b"NOT-A-GATEWAY")
            await writer.drain()
            async with asyncio.timeout(5):
                assert await reader.read() == b""  # the server hung up
            writer.close()
            await writer.wait_closed()
            await h.advance(6)
            rows = [h.row(m.id) for m in site.meters if m.gateway != "GW002"]
            assert (h.table.comm[rows] == CommState.ONLINE).all()

    run(main())


def test_a_failing_consumer_does_not_stop_scanning(
    run: Run, site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    class DatabaseAway:
        calls = 0

        def on_batch(self, changes: Any) -> None:
            self.calls += 1
            raise ConnectionError("PostgreSQL is restarting")

    class Feed:
        batches = 0

        async def on_batch(self, changes: Any) -> None:
            self.batches += 1

    async def main() -> None:
        async with acquiring(site, ManualClock(START)) as h:
            historian, feed = DatabaseAway(), Feed()
            h.acq.pipeline.subscribe("historian", historian)
            h.acq.pipeline.subscribe("feeds", feed)
            await h.advance(6)
            await h.advance(MINUTE)
            assert historian.calls == feed.batches > 0
            assert h.acq.pipeline.failures()["DatabaseAway"] == historian.calls
            assert quality(h, "P0001") == StatusCode.GOOD
            assert np.all(h.table.comm[[h.row("E0001"), h.row("P0001")]] == CommState.ONLINE)
            logged = [r for r in caplog.records if "DatabaseAway" in r.getMessage()]
            assert len(logged) == 1

    run(main())
