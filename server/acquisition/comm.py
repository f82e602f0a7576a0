"""Communication state of meters and links: online or offline, since when, last good, retries.

A meter goes offline after `lost_comm_polls` failed polls in a row (its own limit, after
the area and meter overrides) and online again on its first good reading; its link being
down for `gateway_down_s` takes it offline at once. Meter states live in the tag table
(written through the pipeline so that alarms see them); link states live here, fed by the
links' `on_state` callbacks and by the poll results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from config.model import Site
from server.acquisition.pipeline import BatchPipeline, GatewayEvent
from server.tags import CommState

RowArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class LinkComm:
    """The state of one gateway or dial-in link."""

    id: str
    kind: str
    online: bool | None = None  # None until the link first reports
    since: float = math.nan
    last_good: float = math.nan
    reconnects: int = 0
    failed_scans: int = 0

    def down_for(self, now: float) -> float:
        """Seconds the link has been down at `now` (0 when up or never seen)."""
        if self.online is False and math.isfinite(self.since):
            return max(0.0, now - self.since)
        return 0.0


class CommTracker:
    """Consecutive failures per meter, states per link; writes meter states via the pipeline."""

    def __init__(self, site: Site, pipeline: BatchPipeline) -> None:
        self.site = site
        self.pipeline = pipeline
        count = len(site.meters)
        self.failures: npt.NDArray[np.int32] = np.zeros(count, np.int32)
        self.limit: npt.NDArray[np.int32] = np.array(
            [site.alarms.limits_for(m).lost_comm_polls for m in site.meters], np.int32
        ).reshape(count)
        self.gateway_down_s = float(site.alarms.limits.gateway_down_s)
        self.links: dict[str, LinkComm] = {}

    def link(self, link_id: str, kind: str) -> LinkComm:
        """The record of a link, made on first use."""
        record = self.links.get(link_id)
        if record is None:
            record = self.links[link_id] = LinkComm(link_id, kind)
        return record

    def link_state(self, kind: str, link_id: str, online: bool, at: float) -> GatewayEvent | None:
        """A link reported online or offline; the event when this is a change."""
        record = self.link(link_id, kind)
        if record.online is online:
            return None
        if online and record.online is False:
            record.reconnects += 1
        record.online = online
        record.since = at
        return GatewayEvent(link_id, kind, online, at)

    def link_answered(self, link_id: str, kind: str, answered: bool, at: float) -> None:
        """A scan over the link ended; `answered` when at least one meter replied."""
        record = self.link(link_id, kind)
        if answered:
            record.last_good = at
            record.failed_scans = 0
        else:
            record.failed_scans += 1

    async def polled(self, rows: RowArray, ok: npt.NDArray[np.bool_], at: float) -> None:
        """Poll results of `rows`: good ones online, failed ones offline once over their limit."""
        if not len(rows):
            return
        good, bad = rows[ok], rows[~ok]
        self.failures[good] = 0
        self.failures[bad] += 1
        lost = bad[self.failures[bad] >= self.limit[bad]]
        await self._set(good, lost, at)

    async def lost(self, rows: RowArray, at: float) -> None:
        """These meters cannot be reached (their link is down too long): offline now."""
        self.failures[rows] = np.maximum(self.failures[rows], self.limit[rows])
        await self._set(rows[:0], rows, at)

    async def _set(self, online: RowArray, offline: RowArray, at: float) -> None:
        rows = np.concatenate([online, offline])
        if not len(rows):
            return
        states = np.concatenate(
            [
                np.full(len(online), CommState.ONLINE, np.uint8),
                np.full(len(offline), CommState.OFFLINE, np.uint8),
            ]
        )
        await self.pipeline.set_comm(rows, states, at)

    def counts(self, kind: str | None = None) -> dict[str, int]:
        """Links online, offline and not yet seen (of one kind, or all)."""
        chosen = [r for r in self.links.values() if kind in (None, r.kind)]
        return {
            "online": sum(r.online is True for r in chosen),
            "offline": sum(r.online is False for r in chosen),
            "unknown": sum(r.online is None for r in chosen),
        }
