"""Raw registers of a scan to tag batches: one vectorised decode per meter model, then merged.

A poll group reads the registers of all its meters into one (meters, width) uint16 array;
each model's rows are decoded at once with `protocols.registers`, and the columns are put
back in member order so that the scan makes one batch per tag group. Rows that failed carry
no values: their batch rows have a bad StatusCode and `TagTable.apply` keeps the last value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import tzinfo
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from config.catalogue import TagCatalogue
from config.profile import FREEZE, POLL_BLOCK, RegisterProfile
from protocols.errors import ProtocolError
from protocols.registers import (
    decode_blocks,
    decode_freeze_block,
    decode_poll_block,
    poll_block_matches,
)
from server.tags import Batch, StatusCode

log = logging.getLogger(__name__)

Columns = dict[str, npt.NDArray[Any]]
GOOD: Final = int(StatusCode.GOOD)


class ModelRows:
    """Positions of a scan's rows by meter model, with the profile and ratios of each model."""

    def __init__(
        self,
        profiles: Sequence[RegisterProfile],
        pt: npt.NDArray[np.float64],
        ct: npt.NDArray[np.float64],
    ) -> None:
        self.pt = pt
        self.ct = ct
        self.models: dict[str, RegisterProfile] = {}
        positions: dict[str, list[int]] = {}
        for i, profile in enumerate(profiles):
            self.models.setdefault(profile.model, profile)
            positions.setdefault(profile.model, []).append(i)
        self.positions = {m: np.array(p, np.int64) for m, p in positions.items()}

    def width(self, scan_class: str) -> int:
        """The widest raw row any model needs for `scan_class`."""
        return max(p.read_plan(scan_class).width for p in self.models.values())


def decode_scan(
    models: ModelRows,
    scan_class: str,
    raw: npt.NDArray[np.uint16],
    codes: npt.NDArray[np.uint32],
    tz: tzinfo,
    now: float,
) -> Columns:
    """The decoded columns of every row (failed rows hold zeros); marks undecodable rows bad.

    For `freeze`, the columns include `yymm`; for `poll_block`, rows whose type register
    names another model are marked BAD_CONFIGURATION_ERROR.
    """
    out: Columns = {}
    count = len(raw)
    for model, profile in models.models.items():
        where = models.positions[model]
        where = where[where < count]
        if not len(where):
            continue
        width = profile.read_plan(scan_class).width
        block = np.ascontiguousarray(raw[where, :width])
        try:
            columns = _decode(profile, scan_class, block, models, where, tz, now)
        except (ProtocolError, ValueError) as exc:
            log.warning("%s %s: cannot decode %d meter(s): %s", model, scan_class, len(where), exc)
            codes[where] = np.where(
                codes[where] == GOOD, StatusCode.BAD_DECODING_ERROR, codes[where]
            )
            continue
        if scan_class == POLL_BLOCK:
            wrong = ~poll_block_matches(profile, block)
            codes[where[wrong]] = np.where(
                codes[where[wrong]] == GOOD, StatusCode.BAD_CONFIGURATION_ERROR, codes[where[wrong]]
            )
        for tag, column in columns.items():
            target = out.get(tag)
            if target is None:
                target = out[tag] = np.zeros(count, column.dtype)
            target[where] = column
    return out


def _decode(
    profile: RegisterProfile,
    scan_class: str,
    block: npt.NDArray[np.uint16],
    models: ModelRows,
    where: npt.NDArray[np.int64],
    tz: tzinfo,
    now: float,
) -> Columns:
    if scan_class == POLL_BLOCK:
        return decode_poll_block(profile, block, tz, now=now)
    if scan_class == FREEZE:
        return decode_freeze_block(profile, block, models.pt[where], models.ct[where], tz)
    return decode_blocks(
        profile, scan_class, block, models.pt[where], models.ct[where], tz, now=now
    )


def group_batches(
    catalogue: TagCatalogue,
    groups: Iterable[str],
    rows: npt.NDArray[np.int64],
    columns: Columns,
    codes: npt.NDArray[np.uint32],
    source_ts: npt.NDArray[np.float64],
) -> list[Batch]:
    """One batch per tag group, each with the group's catalogue tags found in `columns`."""
    batches = []
    for group in groups:
        names = {t.name for t in catalogue.group_tags(group)}
        values = {tag: column for tag, column in columns.items() if tag in names}
        batches.append(Batch(group, rows, values, quality=codes, source_ts=source_ts))
    return batches


def poll_block_groups(catalogue: TagCatalogue, profiles: Iterable[RegisterProfile]) -> list[str]:
    """The tag groups the poll blocks of these profiles feed, in catalogue order."""
    tags = {t for p in profiles for t in p.read_plan(POLL_BLOCK).tags}
    return [g for g in catalogue.groups if any(t.name in tags for t in catalogue.group_tags(g))]
