"""[[acquisition.groups]]: per-meter scan periods, and poll groups scanning at them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.model import Acquisition, Meter, ScanGroup, Site
from server.acquisition.scan_periods import meter_periods, site_class_intervals
from server.acquisition.schedule import ScanSchedule
from server.clock import ManualClock
from server.tags import StatusCode
from tests.acquisition.conftest import START, Harness, acquiring, edited_site

Run = Callable[[Awaitable[Any]], Any]
SITE_VALUES = {"realtime_s": 60, "energy_s": 1800, "prepaid_s": 86400}


def with_groups(tmp_path: Path, groups: str) -> Site:
    """The small example with its one scan group replaced by `groups`."""
    example = '  [[acquisition.groups]]\n  gateway = "GW002"\n  realtime_s = 300\n'

    def edit(text: str) -> str:
        assert text.count(example) == 1
        return text.replace(example, groups)

    return edited_site(tmp_path, edit)


async def count_realtime_reads(h: Harness, seconds: int, step: int = 5) -> dict[str, int]:
    """Advance `seconds` in `step`s; how often each meter's realtime values were read."""
    rows = {m.id: h.row(m.id) for m in h.site.meters}
    reads = dict.fromkeys(rows, 0)
    for _ in range(seconds // step):
        before = h.table.source_ts("realtime").copy()
        await h.advance(step)
        after = h.table.source_ts("realtime")
        for meter_id, row in rows.items():
            if after[row] != before[row] and not np.isnan(after[row]):
                reads[meter_id] += 1
    return reads


def test_two_gateways_scan_at_their_own_rates(run: Run, tmp_path: Path) -> None:
    site = with_groups(
        tmp_path,
        '  [[acquisition.groups]]\n  gateway = "GW001"\n  realtime_s = 20\n\n'
        '  [[acquisition.groups]]\n  area = "PUB"\n  realtime_s = 45\n',
    )

    async def main() -> None:
        async with acquiring(site, ManualClock(START)) as h:
            await h.advance(5)  # the start-up scans: every class once
            reads = await count_realtime_reads(h, 180)
            assert {m: reads[m] for m in ("E0001", "E0002", "E0003")} == dict.fromkeys(
                ("E0001", "E0002", "E0003"), 9
            )
            assert reads["P0001"] == 4  # GW003 is the PUB area's gateway: 45 s
            assert h.acq.groups["GW001"].last["realtime"].good == 3
            rows = [h.row(m) for m in ("E0001", "P0001")]
            assert (h.table.quality("realtime")[rows] == StatusCode.GOOD).all()

    run(main())


def test_meters_group_scans_one_meter_faster(run: Run, tmp_path: Path) -> None:
    site = with_groups(
        tmp_path,
        '  [[acquisition.groups]]\n  meters = ["E0002"]\n  realtime_s = 10\n\n'
        '  [[acquisition.groups]]\n  gateway = "GW001"\n  energy_s = 600\n',
    )

    async def main() -> None:
        async with acquiring(site, ManualClock(START)) as h:
            await h.advance(5)
            group = h.acq.groups["GW001"]
            sizes: list[int] = []
            rows = {m.id: h.row(m.id) for m in site.meters}
            reads = dict.fromkeys(rows, 0)
            for _ in range(120 // 5):
                before = h.table.source_ts("realtime").copy()
                h.clock.advance(5)
                await h.sim.tick()
                reports = await h.acq.tick()
                sizes += [r.good + r.bad for r in reports if r.group == "GW001"]
                after = h.table.source_ts("realtime")
                for meter_id, row in rows.items():
                    reads[meter_id] += int(after[row] != before[row])
            assert reads["E0002"] == 12
            assert reads["E0001"] == reads["E0003"] == 2
            # one scan per due subset: E0002 alone, and all three when the minute comes round
            assert sorted(set(sizes)) == [1, 3]
            assert group.last["realtime"].bad == 0
            # energy every 10 minutes for the whole gateway, E0002 included
            assert set(group.schedule.intervals["energy"].tolist()) == {600.0}

    run(main())


METER = Meter(
    id="E0002",
    model="DTSY1352",
    dlt645_address="000000000002",
    gateway="GW001",
    slave=2,
    serial=None,
    area="ENT",
    building=None,
    room="102",
    owner="",
    billing="none",
    ct=1,
    pt=1,
    merchant=None,
    tariff=None,
    power_limit_kw=None,
    alarm1_fen=None,
    alarm2_fen=None,
    credit_limit_fen=0,
    line=3,
)


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ((), SITE_VALUES),
        ((ScanGroup(area="ENT", realtime_s=30),), SITE_VALUES | {"realtime_s": 30}),
        ((ScanGroup(area="DORM", realtime_s=30),), SITE_VALUES),
        (
            (ScanGroup(area="ENT", realtime_s=30), ScanGroup(gateway="GW001", realtime_s=20)),
            SITE_VALUES | {"realtime_s": 20},
        ),
        (
            (
                ScanGroup(meters=("E0001", "E0002"), realtime_s=10),
                ScanGroup(gateway="GW001", realtime_s=20, energy_s=900),
                ScanGroup(area="ENT", prepaid_s=3600, energy_s=300),
            ),
            {"realtime_s": 10, "energy_s": 900, "prepaid_s": 3600},
        ),
        ((ScanGroup(meters=("E0001",), realtime_s=10),), SITE_VALUES),
    ],
    ids=["site", "area", "other area", "gateway over area", "period by period", "other meter"],
)
def test_meter_periods_precedence(groups: tuple[ScanGroup, ...], expected: dict[str, int]) -> None:
    assert meter_periods(Acquisition(groups=groups), METER) == expected


def test_site_class_intervals_follow_the_rows(tmp_path: Path) -> None:
    site = with_groups(
        tmp_path, '  [[acquisition.groups]]\n  meters = ["G0002"]\n  realtime_s = 15\n'
    )
    intervals = site_class_intervals(site)
    assert intervals["poll_block"][site.meter_row("G0002")] == 15
    assert intervals["realtime"][site.meter_row("G0001")] == 60
    assert (intervals["demand"] == intervals["energy"]).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=8),
    st.integers(1, 200),
)
def test_each_member_is_scanned_at_its_own_interval(intervals: list[int], span: int) -> None:
    schedule = ScanSchedule(
        {"realtime": np.array(intervals, np.float64)}, 0.0, members=len(intervals)
    )
    counts = np.zeros(len(intervals), np.int64)
    for now in range(span + 1):
        if "realtime" in schedule.due(float(now)):
            chosen = schedule.due_members("realtime", float(now))
            counts[chosen] += 1
            schedule.done("realtime", float(now), chosen)
        assert schedule.next_time() > now
    assert counts.tolist() == [span // i + 1 for i in intervals]


def test_schedule_refuses_a_bad_member_interval() -> None:
    with pytest.raises(ValueError, match="interval must be >= 1 s"):
        ScanSchedule({"realtime": np.array([60.0, 0.5])}, 0.0, members=2)
