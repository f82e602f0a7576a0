"""The acquisition service: links, the dial-in listener, poll groups, uploads and the pipeline.

`Acquisition(site, table)` builds a Modbus TCP link per `modbus_tcp` gateway, one dial-in
listener for the DTU gateways and direct 4G meters, a poll group per gateway and one for the
direct 4G meters, the upload path, the comm tracker and the channel directory the command
executor uses. `start()` runs one task per poll group (224 for the park, never one per
meter); `tick()` runs what is due once, for tests that move a manual clock instead.

Scan classes: `realtime` every `realtime_s`, `energy` and `demand` every `energy_s` (the
maximum demand is a 15-minute window kept by the meter, so the energy period loses none of
it), `prepaid` every `prepaid_s` followed by a clock check, and the monthly `freeze`. The
direct 4G meters push realtime and energy data in their uploads; their group polls the
poll block only for meters whose upload is overdue, and polls `prepaid` and `freeze`.
DTU gateways speaking DL/T 645 are polled DI by DI from the read plan
(config/dlt645_reads.toml), for the classes it names; they have no freeze read or clock
check yet. A Modbus TCP gateway with DL/T 645 meters is not polled: the start logs it.

The periods come from `[acquisition]` and its `[[acquisition.groups]]` (per area, gateway
or meters; see config/SITE_FORMAT.md), resolved per meter; a poll group whose meters
differ scans each class for the due subset only. `intervals` (tests, benches, scale-out
workers) overrides a class for every meter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from config.dlt645_plan import Dlt645Plan, default_plan
from config.model import Gateway, Site
from config.profile import POLL_BLOCK, RegisterProfile, load_profile
from config.values import Endpoint
from protocols.dialed_link import Backoff
from protocols.dialin import DialinListener
from protocols.modbus_tcp_link import ModbusTcpLink
from server.acquisition.channels import (
    DIRECT_SLAVE,
    ChannelDirectory,
    Dlt645Route,
    DownlinkPort,
    DtuPort,
    LinkPort,
    MeterChannel,
    ModbusTcpPort,
    SharedLine,
)
from server.acquisition.clock_sync import ClockSync, wall_time
from server.acquisition.comm import CommTracker
from server.acquisition.dlt645_reads import Dlt645Reader
from server.acquisition.pipeline import BatchPipeline, GatewayEvent
from server.acquisition.poll_group import DIRECT_KIND, Member, PollGroup, ScanReport
from server.acquisition.scan_periods import site_class_intervals
from server.acquisition.schedule import group_phase
from server.acquisition.uploads import UploadPath
from server.clock import Clock, SystemClock
from server.tags import CommState, TagTable

log = logging.getLogger(__name__)

DIRECT_GROUP = "direct-4g"
DIRECT_PARALLEL = 32


class Acquisition:
    """Keeps the tag table current from every gateway and 4G meter of the site."""

    def __init__(
        self,
        site: Site,
        table: TagTable,
        *,
        clock: Clock | None = None,
        dialin_listen: Endpoint | None = None,
        gateway_endpoints: Mapping[str, Endpoint] | None = None,
        request_timeout: float | None = None,
        backoff: tuple[float, float] = (0.5, 30.0),
        intervals: Mapping[str, float] | None = None,
        startup_window_s: float = 5.0,
        freeze_retry_s: float = 300.0,
        phase_spread: float = 1.0,
        polled_gateways: Collection[str] | None = None,
        dialin: bool = True,
        dlt645_plan: Dlt645Plan | None = None,
    ) -> None:
        """Poll `polled_gateways` (None: all); with `dialin`, listen for DTUs and 4G meters.

        Scale-out workers poll their share of the Modbus TCP gateways with `dialin=False`;
        the dial-in side stays in one process.
        """
        if len(table) != len(site.meters):
            raise ValueError(f"tag table has {len(table)} rows, the site {len(site.meters)} meters")
        self.site = site
        self.table = table
        self.clock: Clock = clock or table.clock or SystemClock()
        self.tz = ZoneInfo(site.park.timezone)
        self.dialin_listen = dialin_listen or site.services.dialin_listen
        self.endpoints = dict(gateway_endpoints or {})
        acq = site.acquisition
        self.request_timeout = request_timeout or acq.request_timeout_ms / 1000.0
        self.backoff = backoff
        self.intervals = {
            "realtime": float(acq.realtime_s),
            "energy": float(acq.energy_s),
            "demand": float(acq.energy_s),
            "prepaid": float(acq.prepaid_s),
            **(intervals or {}),
        }
        self.overridden = frozenset(intervals or {})
        self.member_intervals = site_class_intervals(site)
        self.startup_window_s = startup_window_s
        self.polled_gateways = None if polled_gateways is None else frozenset(polled_gateways)
        self.dialin = dialin
        self.dlt645_plan = dlt645_plan or default_plan()
        self.phase_spread = min(max(phase_spread, 0.0), 1.0)  # 0: every group on the same beat
        self.freeze_retry_s = freeze_retry_s
        self.pipeline = BatchPipeline(table)
        self.comm = CommTracker(site, self.pipeline)
        self.clock_sync = ClockSync(len(site.meters), self.tz, acq.clock_drift_limit_s)
        self.profiles: dict[str, RegisterProfile] = {
            m.id: load_profile(m.model) for m in site.meters
        }
        self.uploads = UploadPath(
            site,
            self.pipeline,
            self.comm,
            self.profiles,
            self.tz,
            period_s=1.2 * float(acq.energy_s),
            clock_sync=self.clock_sync,
            time_sync=self._time_sync,
        )
        self.listener: DialinListener | None = None
        self.dialin_port: int | None = None
        self.links: dict[str, ModbusTcpLink] = {}
        self.groups: dict[str, PollGroup] = {}
        self.unpolled: dict[str, int] = {}
        self.directory = ChannelDirectory({}, {})
        self._began = self.clock.time()
        self._serials = {
            site.meter_row(m.id): m.serial for m in site.direct_meters() if m.serial is not None
        }
        self._events: asyncio.Queue[GatewayEvent] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- life cycle ----------------------------------------------------------------------------

    async def listen(self) -> int | None:
        """Open the dial-in listener (if the site has dial-in devices); its bound port."""
        if self.listener is not None or not self.dialin:
            return self.dialin_port
        needs_listener = any(g.kind == "dtu" for g in self.site.gateways) or bool(
            self.site.direct_meters()
        )
        if not needs_listener:
            return None
        listener = DialinListener.for_site(
            self.site,
            on_upload=self.uploads.on_upload,
            on_state=self._link_state,
            request_timeout=self.request_timeout,
            clock=self.clock,
        )
        self.dialin_port = await listener.start(self.dialin_listen.host, self.dialin_listen.port)
        self.listener = listener
        return self.dialin_port

    async def start(
        self,
        *,
        run_loops: bool = True,
        gateway_endpoints: Mapping[str, Endpoint] | None = None,
    ) -> None:
        """Listen, build the groups; with `run_loops`, poll on schedule until `stop()`.

        `gateway_endpoints` overrides where Modbus TCP gateways are reached (the simulator's
        ports in tests and in the demo).
        """
        if self._events is not None:
            raise RuntimeError("acquisition already started")
        self._events = asyncio.Queue()
        self.endpoints.update(gateway_endpoints or {})
        self._began = self.clock.time()
        await self.listen()
        self._build_groups()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._forward_events(), name="acquisition:events"),
            loop.create_task(self.uploads.run(), name="acquisition:uploads"),
        ]
        if run_loops:
            self._tasks += [
                loop.create_task(g.run(), name=f"poll:{g.name}") for g in self.groups.values()
            ]
        polled = len(self.directory)
        log.info(
            "acquisition started: %d poll groups, %d meters polled, %d direct 4G, dial-in %s",
            len(self.groups),
            polled,
            len(self.site.direct_meters()),
            f"{self.dialin_listen.host}:{self.dialin_port}" if self.listener else "off",
        )

    async def stop(self) -> None:
        """Stop polling, close every link and the listener."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await asyncio.gather(*(link.close() for link in self.links.values()))
        self._events = None
        if self.listener is not None:
            await self.listener.close()
            self.listener = None
        log.info("acquisition stopped")

    def _build_groups(self) -> None:
        channels: dict[str, MeterChannel] = {}
        routes: dict[str, Dlt645Route] = {}
        gateways = [g for g in self.site.gateways if self._chosen(g) and self._polled(g)]
        count = len(gateways) + 1
        for index, gateway in enumerate(gateways):
            line = SharedLine(self._port(gateway))
            members = [
                self._member(m.id, line, int(m.slave or 1)) for m in self.site.meters_on(gateway.id)
            ]
            reader = self._dlt645_reader(gateway) if gateway.protocol == "dlt645" else None
            group = self._group(gateway.id, gateway.kind, members, index, count, reader)
            self.groups[gateway.id] = group
            if reader is None:
                for member in members:
                    channels[member.meter_id] = member.channel
            else:  # DL/T 645 meters get a route for their commands, no register channel
                assert self.listener is not None
                for meter_id, address in reader.addresses.items():
                    routes[meter_id] = Dlt645Route(meter_id, gateway.id, address, self.listener)
        direct = []
        if self.listener is not None:
            for meter in self.site.direct_meters():
                if meter.serial:
                    line = SharedLine(DownlinkPort(self.listener, meter.serial))
                    direct.append(self._member(meter.id, line, DIRECT_SLAVE))
        if direct:
            group = self._group(DIRECT_GROUP, DIRECT_KIND, direct, count - 1, count)
            self.groups[DIRECT_GROUP] = group
            for member in direct:
                channels[member.meter_id] = member.channel
        profiles = {m: self.profiles[m] for m in channels}
        self.directory = ChannelDirectory(channels, profiles, routes)

    def _chosen(self, gateway: Gateway) -> bool:
        """Whether this process polls `gateway`: in `polled_gateways`, and reachable from here."""
        if self.polled_gateways is not None and gateway.id not in self.polled_gateways:
            return False
        return self.dialin or gateway.kind != "dtu"

    def _polled(self, gateway: Gateway) -> bool:
        if gateway.protocol == "modbus_rtu":
            return True
        if gateway.protocol == "dlt645" and gateway.kind == "dtu":
            return True
        meters = len(self.site.meters_on(gateway.id))
        self.unpolled[gateway.id] = meters
        log.warning(
            "gateway %s (%s) speaks %s: its %d meter(s) are not polled (no link for it)",
            gateway.id,
            gateway.kind,
            gateway.protocol,
            meters,
        )
        return False

    def _port(self, gateway: Gateway) -> LinkPort:
        if gateway.kind == "modbus_tcp":
            endpoint = self.endpoints.get(gateway.id)
            if endpoint is not None:
                gateway = Gateway(
                    gateway.id,
                    gateway.kind,
                    gateway.area,
                    gateway.protocol,
                    host=endpoint.host,
                    port=endpoint.port,
                )
            link = ModbusTcpLink.for_gateway(
                gateway,
                timeout=self.request_timeout,
                clock=self.clock,
                on_state=self._link_state,
                backoff=Backoff(*self.backoff),
            )
            self.links[gateway.id] = link
            self.comm.link(gateway.id, "modbus_tcp")
            return ModbusTcpPort(link)
        assert self.listener is not None
        self.comm.link(gateway.id, "dtu")
        return DtuPort(self.listener, gateway.id)

    def _member(self, meter_id: str, line: SharedLine, slave: int) -> Member:
        meter = self.site.meter(meter_id)
        row = self.site.meter_row(meter_id)
        return Member(meter_id, row, line, slave, self.profiles[meter_id], meter.pt, meter.ct)

    def _dlt645_reader(self, gateway: Gateway) -> Dlt645Reader:
        assert self.listener is not None  # DTU gateways are chosen only with the listener
        meters = self.site.meters_on(gateway.id)
        return Dlt645Reader(
            self.listener,
            gateway.id,
            self.dlt645_plan,
            self.table.catalogue,
            self.tz,
            {m.id: m.dlt645_address for m in meters},
            {m.id: m.three_phase for m in meters},
        )

    def _group(
        self,
        name: str,
        kind: str,
        members: list[Member],
        index: int,
        count: int,
        dlt645: Dlt645Reader | None = None,
    ) -> PollGroup:
        direct = kind == DIRECT_KIND
        if direct:
            classes: tuple[str, ...] = (POLL_BLOCK, "prepaid")
        elif dlt645 is not None:
            classes = dlt645.plan.classes
        else:
            classes = ("realtime", "energy", "demand", "prepaid")
        rows = np.array([m.row for m in members], np.int64).reshape(len(members))
        intervals = {c: self._class_interval(c, rows) for c in classes}
        return PollGroup(
            name,
            kind,
            members,
            pipeline=self.pipeline,
            comm=self.comm,
            clock=self.clock,
            tz=self.tz,
            intervals=intervals,
            phase=group_phase(index, count) * self.phase_spread,
            freeze_retry_s=self.freeze_retry_s,
            clock_sync=None if dlt645 is not None else self.clock_sync,
            time_setter=self._set_4g_clock if direct else None,
            stale=self._direct_stale if direct else None,
            ready=self._registered(name) if kind == "dtu" else None,
            parallel=DIRECT_PARALLEL if direct else 1,
            startup_window_s=self.startup_window_s,
            freeze=dlt645 is None,
            dlt645=dlt645,
        )

    def _class_interval(
        self, scan_class: str, rows: npt.NDArray[np.int64]
    ) -> float | npt.NDArray[np.float64]:
        """One interval when the members agree (or it is overridden), else one per member."""
        base = "realtime" if scan_class == POLL_BLOCK else scan_class
        if base in self.overridden:
            return self.intervals[base]
        column = self.member_intervals[scan_class][rows]
        if len(column) and bool((column == column[0]).all()):
            return float(column[0])
        return column if len(column) else self.intervals[base]

    def _direct_stale(self, rows: npt.NDArray[np.int64], now: float) -> npt.NDArray[np.bool_]:
        """Direct meters to poll: upload overdue, and dialled in once (or the grace is over)."""
        stale = self.uploads.stale(rows, now)
        if now - self._began >= self.comm.gateway_down_s:
            return stale
        seen = [self._serials.get(int(r), "") in self.comm.links for r in rows.tolist()]
        return stale & np.array(seen, np.bool_).reshape(len(rows))

    def _registered(self, gateway_id: str) -> Callable[[], bool]:
        """Whether a DTU gateway's group may scan: it has registered once, or the grace is over.

        Until a DTU first dials in its meters stay "not read since start" rather than being
        polled into failure; after `gateway_down_s` without it they go bad and offline.
        """
        began = self._began
        grace = self.comm.gateway_down_s

        def ready() -> bool:
            record = self.comm.links.get(gateway_id)
            seen = record is not None and record.online is not None
            return seen or self.clock.time() - began >= grace

        return ready

    # -- callbacks -----------------------------------------------------------------------------

    def _link_state(self, kind: str, link_id: str, online: bool, at: float) -> None:
        event = self.comm.link_state(kind, link_id, online, at)
        if event is None:
            return
        if self._events is not None:
            self._events.put_nowait(event)
        if online:
            group = self.groups.get(link_id) or (
                self.groups.get(DIRECT_GROUP) if kind == "meter4g" else None
            )
            if group is not None:
                group.wake(POLL_BLOCK if group.kind == DIRECT_KIND else "realtime")

    async def _forward_events(self) -> None:
        assert self._events is not None
        while True:
            event = await self._events.get()
            await self.pipeline.gateway_changed(event)

    async def _time_sync(self, serial: str, now: float) -> None:
        if self.listener is None:
            return
        try:
            await self.listener.time_sync(serial, wall_time(now, self.tz))
        except Exception as exc:
            log.debug("time sync of 4G meter %s failed: %r", serial, exc)
            self.clock_sync.recorded(False, serial)
        else:
            self.clock_sync.recorded(True, serial)

    async def _set_4g_clock(self, member: Member, now: float) -> None:
        await self._time_sync(member.line.name, now)

    # -- driving and status --------------------------------------------------------------------

    async def tick(self) -> list[ScanReport]:
        """Run every group's due scans once, side by side (tests and benches on a manual clock)."""
        await self.uploads.process()
        results = await asyncio.gather(*(g.run_due() for g in self.groups.values()))
        return [report for reports in results for report in reports]

    async def full_scan(self, scan_class: str = "realtime") -> list[ScanReport]:
        """Scan one class on every gateway group at once; the reports of each group."""
        groups = [g for g in self.groups.values() if scan_class in g.schedule.intervals]
        return list(await asyncio.gather(*(g.scan(scan_class) for g in groups)))

    def status(self) -> dict[str, Any]:
        """Counts of meters and links by state, and the last scan of each class."""
        comm = self.table.comm
        kinds: dict[str, dict[str, int]] = {}
        for group in self.groups.values():
            states = comm[group.rows]
            entry = kinds.setdefault(group.kind, {"meters": 0, "online": 0, "offline": 0})
            entry["meters"] += len(group.rows)
            entry["online"] += int(np.count_nonzero(states == CommState.ONLINE))
            entry["offline"] += int(np.count_nonzero(states == CommState.OFFLINE))
        last: dict[str, dict[str, float]] = {}
        for group in self.groups.values():
            for scan_class, report in group.last.items():
                entry_f = last.setdefault(scan_class, {"at": 0.0, "duration_s": 0.0})
                entry_f["at"] = max(entry_f["at"], report.at)
                entry_f["duration_s"] = max(entry_f["duration_s"], report.duration_s)
        groups = [g.state.value for g in self.groups.values()]
        stats = self.pipeline.stats
        return {
            "meters": {
                "total": len(self.table),
                "online": int(np.count_nonzero(comm == CommState.ONLINE)),
                "offline": int(np.count_nonzero(comm == CommState.OFFLINE)),
                "unpolled": sum(self.unpolled.values()),
            },
            "by_kind": kinds,
            "links": {k: self.comm.counts(k) for k in ("modbus_tcp", "dtu", "meter4g")},
            "groups": {s: groups.count(s) for s in ("ok", "failing", "recovered")},
            "last_scan": last,
            "pipeline": {
                "batches": stats.batches,
                "values": stats.values,
                "consumer_failures": stats.consumer_failures,
            },
            "uploads": self.uploads.received,
            "clock_syncs": self.clock_sync.synced,
        }
