"""The live tag database: one row per meter, one numpy column per tag."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from config.catalogue import TagCatalogue, TagDef, default_catalogue
from server.clock import Clock, SystemClock
from server.tags.batch import Batch
from server.tags.changes import ChangeSet, CommChange, CommState, Snapshot
from server.tags.meters import MeterIndex
from server.tags.quality import NEVER_READ, Severity, is_bad, is_good, severity

RowArray = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
Rows = slice | RowArray
Predicate = Callable[["TagTable"], Mask]

_Array = TypeVar("_Array", bound="np.ndarray[Any, Any]")


def _read_only(array: _Array) -> _Array:
    """A view of `array` that cannot be written through."""
    view = array.view()
    view.flags.writeable = False
    return view


class TagTable:
    """Every tag of every meter as numpy columns, with quality, timestamps and versions.

    Each group has a quality column (OPC UA StatusCode, uint32) and a source-timestamp
    column; each row has a server timestamp, a communication state and a change version.
    The table version only grows: every write that changes something takes the next one.
    """

    def __init__(
        self,
        meter_ids: Sequence[str],
        *,
        areas: Sequence[str],
        gateways: Sequence[str | None],
        three_phase: Sequence[bool],
        catalogue: TagCatalogue | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.meters = MeterIndex(meter_ids, areas=areas, gateways=gateways, three_phase=three_phase)
        self.catalogue = catalogue if catalogue is not None else default_catalogue()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.epoch = uuid.uuid4().hex
        count = len(self.meters)
        self._version = 0
        self._values = {t.name: np.full(count, t.fill, dtype=t.dtype) for t in self.catalogue}
        groups = self.catalogue.groups
        self._group_tags = {
            g: frozenset(t.name for t in self.catalogue.group_tags(g)) for g in groups
        }
        self._quality = {g: np.full(count, NEVER_READ, dtype=np.uint32) for g in groups}
        self._source_ts = {g: np.full(count, np.nan) for g in groups}
        self._group_version = {g: np.zeros(count, dtype=np.int64) for g in groups}
        self._server_ts = np.full(count, np.nan)
        self._comm = np.full(count, CommState.UNKNOWN, dtype=np.uint8)
        self._comm_since = np.full(count, np.nan)
        self._comm_version = np.zeros(count, dtype=np.int64)
        self._last_good = np.full(count, np.nan)
        self._row_version = np.zeros(count, dtype=np.int64)
        self._seen = np.zeros(count, dtype=np.bool_)

    def __len__(self) -> int:
        return len(self.meters)

    @property
    def version(self) -> int:
        """The version of the last change; 0 before anything changed."""
        return self._version

    @property
    def ids(self) -> npt.NDArray[np.str_]:
        """The meter id of each row."""
        return self.meters.ids

    def rows_for(self, meter_ids: Iterable[str]) -> RowArray:
        """The rows of the given meters, in order; a `ValueError` lists unknown ids."""
        return self.meters.rows_for(meter_ids)

    def column(self, tag: str) -> npt.NDArray[np.generic]:
        """A read-only view of one tag's column (no copy: read it before the next write)."""
        if tag not in self._values:
            raise ValueError(f"unknown tag {tag!r}")
        return _read_only(self._values[tag])

    def quality(self, group: str) -> npt.NDArray[np.uint32]:
        """A read-only view of a group's quality column."""
        return _read_only(self._quality[self._check_group(group)])

    def source_ts(self, group: str) -> npt.NDArray[np.float64]:
        """A read-only view of a group's source-timestamp column."""
        return _read_only(self._source_ts[self._check_group(group)])

    def group_version(self, group: str) -> npt.NDArray[np.int64]:
        """A read-only view of the version at which each row's group last changed."""
        return _read_only(self._group_version[self._check_group(group)])

    @property
    def server_ts(self) -> npt.NDArray[np.float64]:
        """Read-only: when each row was last written, by the table's clock."""
        return _read_only(self._server_ts)

    @property
    def comm(self) -> npt.NDArray[np.uint8]:
        """Read-only: the `CommState` of each row."""
        return _read_only(self._comm)

    @property
    def comm_since(self) -> npt.NDArray[np.float64]:
        """Read-only: since when each row has been in its communication state."""
        return _read_only(self._comm_since)

    @property
    def last_good(self) -> npt.NDArray[np.float64]:
        """Read-only: when each row last got a good-quality batch, by the table's clock."""
        return _read_only(self._last_good)

    @property
    def row_version(self) -> npt.NDArray[np.int64]:
        """Read-only: the version at which each row last changed."""
        return _read_only(self._row_version)

    def apply(self, batch: Batch) -> ChangeSet:
        """Write a batch; bump the version for the rows whose values or quality changed.

        Rows with bad quality keep their last values and get the bad code. The server
        timestamp of every row in the batch is set, and `last_good` where quality is good.
        Validation happens before anything is written: a bad batch changes nothing.
        """
        group = self._check_group(batch.group)
        columns = [(self._values[t.name], batch.column(t)) for t in self._batch_tags(batch)]
        rows = batch.rows
        index = self._index(rows, f"batch for group {group!r}")
        now = self.clock.time()
        quality = batch.quality
        quality_changed = self._quality[group][index] != quality
        row_changed = quality_changed.copy()
        bad = is_bad(quality)
        keep = np.flatnonzero(~bad) if bad.any() else None
        masks: dict[str, Mask] = {}
        for (column, new), name in zip(columns, batch.values, strict=True):
            if keep is None:
                diff = _differs(column[index], new)
                column[index] = new
            else:
                target = rows[keep]
                diff = np.zeros(len(rows), dtype=np.bool_)
                diff[keep] = _differs(column[target], new[keep])
                column[target] = new[keep]
            masks[name] = diff
            row_changed |= diff
        self._quality[group][index] = quality
        self._source_ts[group][index] = batch.source_ts
        self._server_ts[index] = now
        good = is_good(quality)
        if good.all():
            self._last_good[index] = now
        else:
            self._last_good[rows[good]] = now
        changed = np.flatnonzero(row_changed)
        changed_rows = rows[changed]
        if len(changed_rows):
            self._version += 1
            self._row_version[changed_rows] = self._version
            self._group_version[group][changed_rows] = self._version
        return ChangeSet(
            group=group,
            version=self._version,
            rows=changed_rows,
            values={name: mask[changed] for name, mask in masks.items()},
            quality=quality_changed[changed],
            server_ts=now,
            batch=batch,
        )

    def set_comm(
        self,
        rows: npt.ArrayLike,
        state: CommState | npt.ArrayLike,
        ts: float | npt.ArrayLike | None = None,
    ) -> CommChange:
        """Set the communication state of rows (at `ts`, default now); report what changed."""
        row_array = _as_rows(rows)
        self._index(row_array, "set_comm")
        states = np.broadcast_to(np.asarray(state), row_array.shape)
        if states.dtype.kind not in "iu" or not np.isin(states, list(CommState)).all():
            raise ValueError(f"set_comm: state must be a CommState, got {state!r}")
        states = states.astype(np.uint8)
        when = np.broadcast_to(
            np.asarray(self.clock.time() if ts is None else ts, dtype=np.float64), row_array.shape
        )
        previous = self._comm[row_array]
        changed = np.flatnonzero(previous != states)
        changed_rows = row_array[changed]
        if len(changed_rows):
            self._version += 1
            self._comm[changed_rows] = states[changed]
            self._comm_since[changed_rows] = when[changed]
            self._comm_version[changed_rows] = self._version
            self._row_version[changed_rows] = self._version
        return CommChange(
            version=self._version,
            rows=changed_rows,
            previous=previous[changed],
            state=states[changed].copy(),
            since=when[changed].copy(),
        )

    def snapshot(
        self, rows: npt.ArrayLike | None = None, tags: Iterable[str] | None = None
    ) -> Snapshot:
        """A columnar copy of `rows` (default all) and `tags` (default all)."""
        if rows is None:
            return self._gather(np.arange(len(self), dtype=np.int64), slice(None), tags)
        row_array = _as_rows(rows)
        self._index(row_array, "snapshot")
        return self._gather(row_array, row_array, tags)

    def deltas(self, since_version: int, tags: Iterable[str] | None = None) -> Snapshot:
        """The rows that changed after `since_version` (in `tags`' groups or their comm state)."""
        if not 0 <= since_version <= self._version:
            raise ValueError(
                f"since_version must be between 0 and the table version {self._version},"
                f" got {since_version}"
            )
        if tags is None:
            mask = self._row_version > since_version
        else:
            tags = tuple(tags)
            mask = self._comm_version > since_version
            for group in {t.group for t in self._tag_defs(tags)}:
                mask |= self._group_version[group] > since_version
        changed = np.flatnonzero(mask)
        return self._gather(changed, changed, tags)

    def select(
        self,
        *,
        area: str | Iterable[str] | None = None,
        gateway: str | Iterable[str] | None = None,
        direct: bool | None = None,
        ids: Iterable[str] | None = None,
        comm: CommState | Iterable[CommState] | None = None,
        quality: tuple[str, Severity] | None = None,
        flags: Mapping[str, bool] | None = None,
        predicate: Predicate | None = None,
    ) -> RowArray:
        """Rows, ascending, that pass every filter given.

        `quality=(group, severity)` keeps rows whose group quality has that severity;
        `flags={"relay": False}` keeps rows where the bool tag has that value (a bool
        never read is 0, so combine with `quality` to leave those out); `predicate` gets
        the table and returns a mask over all rows.
        """
        mask = np.ones(len(self), dtype=np.bool_)
        if area is not None:
            mask &= self.meters.area_mask(area)
        if gateway is not None:
            mask &= self.meters.gateway_mask(gateway)
        if direct is not None:
            mask &= self.meters.direct_mask() == direct
        if ids is not None:
            picked = np.zeros(len(self), dtype=np.bool_)
            picked[self.rows_for(ids)] = True
            mask &= picked
        if comm is not None:
            states = [comm] if isinstance(comm, CommState) else list(comm)
            mask &= np.isin(self._comm, [CommState(s) for s in states])
        if quality is not None:
            group, wanted = quality
            mask &= severity(self._quality[self._check_group(group)]) == Severity(wanted)
        for name, value in (flags or {}).items():
            tag = self._tag_defs([name])[0]
            if tag.kind != "bool":
                raise ValueError(f"flags: tag {name!r} is {tag.kind}, not bool")
            mask &= self._values[name] == (1 if value else 0)
        if predicate is not None:
            extra = np.asarray(predicate(self))
            if extra.shape != mask.shape or extra.dtype != np.bool_:
                raise ValueError(
                    f"select: predicate must return a bool mask of shape {mask.shape},"
                    f" got {extra.dtype} {extra.shape}"
                )
            mask &= extra
        return np.flatnonzero(mask).astype(np.int64, copy=False)

    def _check_group(self, group: str) -> str:
        if group not in self._quality:
            known = ", ".join(self.catalogue.groups)
            raise ValueError(f"unknown tag group {group!r} (known: {known})")
        return group

    def _tag_defs(self, names: Iterable[str]) -> list[TagDef]:
        """The catalogue entries of `names`; a `ValueError` lists unknown ones."""
        names = list(names)
        unknown = [n for n in names if n not in self.catalogue]
        if unknown:
            raise ValueError(f"unknown tag(s): {', '.join(map(repr, unknown))}")
        return [self.catalogue.by_name[n] for n in names]

    def _batch_tags(self, batch: Batch) -> list[TagDef]:
        """The catalogue entries of a batch's tags, all of which must be in its group."""
        tags = self._tag_defs(batch.values)
        strays = [f"{t.name!r} (group {t.group})" for t in tags if t.group != batch.group]
        if strays:
            raise ValueError(
                f"batch for group {batch.group!r} holds tags of other groups: {', '.join(strays)}"
            )
        return tags

    def _index(self, rows: RowArray, where: str) -> Rows:
        """A slice for an ascending run of rows (faster), else `rows`; checks range and repeats."""
        count = len(rows)
        if count == 0:
            return rows
        first, last = int(rows[0]), int(rows[-1])
        ascending = count == 1 or bool((rows[1:] > rows[:-1]).all())
        low, high = (first, last) if ascending else (int(rows.min()), int(rows.max()))
        if low < 0 or high >= len(self):
            raise ValueError(
                f"{where}: row indices must be in 0..{len(self) - 1}, got {low}..{high}"
            )
        if ascending:
            return slice(first, last + 1) if last - first + 1 == count else rows
        seen = self._seen
        seen[rows] = True
        distinct = int(np.count_nonzero(seen))
        seen[rows] = False
        if distinct != count:
            raise ValueError(f"{where}: {count - distinct} row(s) appear more than once")
        return rows

    def _gather(self, rows: RowArray, index: Rows, tags: Iterable[str] | None) -> Snapshot:
        """Copy the chosen rows and tags into a `Snapshot`."""
        defs = list(self.catalogue) if tags is None else self._tag_defs(tags)
        groups = [g for g in self.catalogue.groups if any(t.group == g for t in defs)]
        return Snapshot(
            epoch=self.epoch,
            version=self._version,
            rows=rows.copy(),
            ids=self.meters.ids[index].copy(),
            values={t.name: self._values[t.name][index].copy() for t in defs},
            quality={g: self._quality[g][index].copy() for g in groups},
            source_ts={g: self._source_ts[g][index].copy() for g in groups},
            server_ts=self._server_ts[index].copy(),
            comm=self._comm[index].copy(),
            comm_since=self._comm_since[index].copy(),
            last_good=self._last_good[index].copy(),
            row_version=self._row_version[index].copy(),
        )


def _as_rows(rows: npt.ArrayLike) -> RowArray:
    """`rows` as a 1-D int64 array, or a `ValueError`."""
    array = np.asarray(rows)
    if array.ndim != 1:
        raise ValueError(f"rows must be a 1-D array of row indices, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise ValueError(f"rows must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _differs(old: npt.NDArray[np.generic], new: npt.NDArray[np.generic]) -> Mask:
    """Element-wise "changed", where NaN equals NaN."""
    diff: Mask = np.not_equal(old, new)
    if old.dtype.kind == "f" and diff.any():
        diff &= ~(np.isnan(old) & np.isnan(new))
    return diff
