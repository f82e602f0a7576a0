"""DL/T 645 gateways polled from the read plan: GW002 of the small example, on the simulator."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config import load_site
from config.catalogue import default_catalogue
from config.dlt645_plan import PlanError, default_plan, parse_plan
from config.model import Site
from server.clock import ManualClock
from server.tags import CommState, StatusCode
from tests.acquisition.conftest import SMALL, START, Harness, acquiring, within_resolution

Run = Callable[[Awaitable[Any]], Any]
DLT = ["D0001", "D0002"]
REALTIME = {"u_a": 0.1, "i_a": 0.001, "p": 0.0001, "p_a": 0.0001, "pf": 0.001, "f": 0.01}
ENERGY = {"e_total": 0.01, "e_sharp": 0.01, "e_peak": 0.01, "e_flat": 0.01, "e_valley": 0.01}


def quality(h: Harness, group: str) -> list[int]:
    return [int(q) for q in h.table.quality(group)[[h.row(m) for m in DLT]]]


def test_dlt645_gateway_fills_every_class(run: Run, site: Site) -> None:
    async def main() -> None:
        async with acquiring(site, ManualClock(START)) as h:
            await h.advance(6)
            for group in ("realtime", "energy", "demand", "prepaid"):
                assert quality(h, group) == [StatusCode.GOOD] * 2, group
            rows = [h.row(m) for m in DLT]
            assert (h.table.comm[rows] == CommState.ONLINE).all()
            within_resolution(h, DLT, REALTIME | ENERGY)
            truth = h.sim.fleet.tags(rows)
            assert h.table.column("balance_fen")[rows].tolist() == truth["balance_fen"].tolist()
            assert np.isnan(h.table.column("u_b")[rows]).all()  # single-phase meters
            demand = h.table.column("demand")[rows]
            assert np.allclose(demand, truth["demand"], atol=0.0001 * 0.5 + 1e-9, equal_nan=True)
            status = h.acq.status()
            assert status["meters"]["unpolled"] == 0
            assert "D0001" not in h.acq.directory  # commands speak Modbus: no channel
            assert h.acq.groups["GW002"].last["realtime"].good == 2

    run(main())


def test_secondary_values_are_scaled_by_pt_and_ct(run: Run, tmp_path: Path) -> None:
    folder = tmp_path / "site"
    shutil.copytree(SMALL, folder)
    csv = folder / "meters.csv"
    text = csv.read_text(encoding="utf-8")
    assert text.count("张三,prepaid,1,1,") == 1
    csv.write_text(text.replace("张三,prepaid,1,1,", "张三,prepaid,40,2,"), encoding="utf-8")
    site = load_site(folder)

    async def main() -> None:
        async with acquiring(site, ManualClock(START)) as h:
            await h.advance(6)
            assert quality(h, "realtime") == [StatusCode.GOOD] * 2
            within_resolution(h, DLT, REALTIME | ENERGY)
            row = h.row("D0001")
            assert h.table.column("i_a")[row] > 1.0  # primary current, not the 5 A side

    run(main())


def test_dlt645_scans_at_the_gateway_groups_period(run: Run, site: Site) -> None:
    """The example's [[acquisition.groups]] gives GW002 a 300 s realtime period."""

    async def main() -> None:
        async with acquiring(site, ManualClock(START)) as h:
            await h.advance(6)
            row = h.row("D0001")
            seen = [float(h.table.source_ts("realtime")[row])]
            for _ in range(10):
                await h.advance(60)
                seen.append(float(h.table.source_ts("realtime")[row]))
            assert len(set(seen)) == 3  # the start-up scan, then at 300 s and 600 s
            assert h.table.source_ts("realtime")[h.row("E0001")] == h.clock.time()

    run(main())


def test_silent_dlt645_meter_times_out_alone(run: Run, site: Site) -> None:
    async def main() -> None:
        async with acquiring(site, ManualClock(START)) as h:
            await h.advance(6)
            h.sim.fleet.faults.silence(h.sim.fleet.faults.rows_of(["D0002"]))
            h.acq.groups["GW002"].wake("realtime")
            await h.advance(1)
            assert quality(h, "realtime") == [StatusCode.GOOD, StatusCode.BAD_TIMEOUT]
            h.sim.fleet.faults.clear("silent")
            h.acq.groups["GW002"].wake("realtime")
            await h.advance(1)
            assert quality(h, "realtime") == [StatusCode.GOOD] * 2

    run(main())


def test_shipped_plan_reads_the_four_groups() -> None:
    plan = default_plan()
    assert plan.classes == ("realtime", "energy", "demand", "prepaid")
    balance = [r for r in plan.for_class("prepaid") if "balance_fen" in r.tags]
    assert sorted(r.sign for r in balance) == [-1, 1]


GOOD_READ = '[[reads]]\nclass = "realtime"\ndi = "02800002"\ntags = ["f"]\nratio = "1"\n'


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ('class = "realtime"', 'class = "fast"', ":2: reads[0].class", "must be one of"),
        ('di = "02800002"', 'di = "2800002"', ":3: reads[0].di", "8 hex digits"),
        ('tags = ["f"]', 'tags = ["freq"]', ":4: reads[0].tags[0]", "unknown tag freq"),
        ('tags = ["f"]', 'tags = ["e_total"]', ":4: reads[0].tags[0]", "read by energy"),
        ('ratio = "1"', 'ratio = "ct*pt"', ":5: reads[0].ratio", "must be one of"),
        ('ratio = "1"', 'ratio = "1"\nsign = 2', ":6: reads[0].sign", "must be 1 or -1"),
        ('ratio = "1"', 'ratio = "1"\nscale = 2', ":6: reads[0].scale", "unknown key"),
        (
            'tags = ["f"]',
            'tags = ["f"]\nsingle_phase = ["u_a"]',
            ":5: reads[0].single_phase[0]",
            "not one of this read's tags",
        ),
    ],
)
def test_plan_errors_name_line_and_field(old: str, new: str, where: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(GOOD_READ.replace(old, new), default_catalogue(), "plan.toml")
    assert str(caught.value).startswith(f"plan.toml{where}: ")
    assert message in str(caught.value)


def test_plan_refuses_a_ratio_on_money_and_a_repeated_di() -> None:
    money = '[[reads]]\nclass = "prepaid"\ndi = "00900200"\ntags = ["balance_fen"]\nratio = "ct"\n'
    with pytest.raises(PlanError, match="integer tag: its ratio must be 1"):
        parse_plan(money, default_catalogue())
    repeated = r"reads\[1\]\.di: DI 02800002 is already read by reads\[0\]"
    with pytest.raises(PlanError, match=repeated):
        parse_plan(GOOD_READ + GOOD_READ, default_catalogue())
