"""An independent Modbus master (mbpoll) reads the simulated Modbus TCP gateway.

mbpoll's `-r` is a 1-based register reference: `-r N` sends PDU address N − 1. The profiles
number registers with `address_base` 0 (PDU address = register number), so reading the
profile's register A takes `-r A+1`; `-0` would make `-r` the PDU address itself.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from config import load_site
from protocols.registers import decode_blocks
from server.clock import ManualClock
from sim.runner import Simulator

MBPOLL = "/usr/bin/mbpoll"
Run = Callable[[Awaitable[Any]], Any]
SMALL = Path(__file__).resolve().parent.parent / "config" / "examples" / "small"
SH = ZoneInfo("Asia/Shanghai")
START = datetime(2024, 6, 3, 10, 0, tzinfo=SH).timestamp()

pytestmark = pytest.mark.skipif(
    shutil.which(MBPOLL) is None, reason=f"{MBPOLL} is missing (scripts/services.sh installs it)"
)


async def mbpoll(port: str, ref: int, count: int) -> tuple[int, str]:
    """One poll of `count` holding registers of slave 1 from reference `ref` (1-based), in hex."""
    args = ["-m", "tcp", "-a", "1", "-r", str(ref), "-c", str(count), "-t", "4:hex", "-1"]
    process = await asyncio.create_subprocess_exec(
        MBPOLL,
        *args,
        "-p",
        port,
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode(errors="replace")


def registers(output: str) -> dict[int, int]:
    """`[ref]: 0xHHHH` lines of mbpoll's hex output, by reference."""
    return {int(r): int(v, 16) for r, v in re.findall(r"\[(\d+)\]:\s+0x([0-9A-Fa-f]{4})", output)}


def test_mbpoll_reads_the_profile_values(run: Run) -> None:
    async def main() -> None:
        site = load_site(SMALL)
        sim = Simulator(
            site, clock=ManualClock(START), dial_in=False, serve_control=False, modbus_any_port=True
        )
        await sim.start()
        try:
            row = site.meter_row("P0001")
            profile = sim.image.profile(row)
            port = str(sim.modbus_port("GW003"))
            raw: list[int] = []
            for block in profile.plan("realtime"):
                ref = block.pdu_start + 1
                code, out = await mbpoll(port, ref, block.count)
                assert code == 0, out
                got = registers(out)
                assert sorted(got) == list(range(ref, ref + block.count)), out
                raw.extend(got[r] for r in sorted(got))
                assert raw[-block.count :] == sim.image.read(row, block.pdu_start, block.count)
            fleet = sim.fleet
            tags = decode_blocks(
                profile, "realtime", np.array([raw], np.uint16), fleet.pt[row], fleet.ct[row], SH
            )
            truth = fleet.tags([row])
            assert abs(tags["u_a"][0] - truth["u_a"][0]) <= 0.05 * 10 + 1e-9  # 0.1 V × PT 10
            assert tags["ct"][0] == 200 and tags["relay"][0] == 1

            code, out = await mbpoll(port, 0x0200 + 1, 2)
            assert code != 0 or "Illegal data address" in out, out
            assert "Illegal data address" in out, out
        finally:
            await sim.stop()

    run(main())
