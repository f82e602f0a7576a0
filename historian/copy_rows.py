"""Binary COPY rows for the historian tables, built with numpy a whole batch at a time."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from config.catalogue import TagCatalogue
from server.tags import Batch
from server.tags.quality import is_bad

# PostgreSQL's binary timestamps count microseconds from 2000-01-01 UTC.
PG_EPOCH: Final = 946_684_800.0
COPY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER: Final = struct.pack(">h", -1)
_FLOAT8_OID: Final = 701

# The column order of each table's COPY, as the encoders below write it.
COLUMNS: Final = {
    "readings": ("ts", "meter", "grp", "quality", "server_ts", "vals"),
    "energy_intervals": ("ts", "meter", "interval_s", "read_ts", "registers"),
    "meter_events": ("ts", "meter", "kind", "detail", "server_ts"),
}
_TABLE_CODES: Final = {name: code for code, name in enumerate(COLUMNS, start=1)}
_TABLE_NAMES: Final = {code: name for name, code in _TABLE_CODES.items()}
_BLOCK_HEAD: Final = struct.Struct("<BddII")


class BlockError(ValueError):
    """A serialised block is not one this module wrote."""


@dataclass(frozen=True, slots=True)
class CopyBlock:
    """Binary COPY tuples for one table, with their row and value counts and time span."""

    table: str
    rows: int
    values: int
    first_ts: float
    last_ts: float
    tuples: bytes

    def to_bytes(self) -> bytes:
        """The block as one spool record."""
        head = _BLOCK_HEAD.pack(
            _TABLE_CODES[self.table], self.first_ts, self.last_ts, self.rows, self.values
        )
        return head + self.tuples

    @classmethod
    def from_bytes(cls, data: bytes) -> CopyBlock:
        """A block from a spool record; a `BlockError` says what is wrong with it."""
        if len(data) < _BLOCK_HEAD.size:
            raise BlockError(f"block of {len(data)} bytes is shorter than its header")
        code, first, last, rows, values = _BLOCK_HEAD.unpack_from(data)
        table = _TABLE_NAMES.get(code)
        if table is None:
            raise BlockError(f"block names unknown table code {code}")
        return cls(table, rows, values, first, last, data[_BLOCK_HEAD.size :])


def to_pg_micros(unix_s: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Unix seconds as PostgreSQL binary timestamps (microseconds since 2000)."""
    micros: npt.NDArray[np.int64] = np.rint((unix_s - PG_EPOCH) * 1e6).astype(np.int64)
    return micros


def pack_tuples(columns: Sequence[npt.NDArray[np.generic]]) -> bytes:
    """Binary COPY tuples of fixed-width columns: 1-D numbers or bytes, 2-D float8 arrays."""
    count = len(columns[0])
    fields: list[tuple[str, object] | tuple[str, object, tuple[int, ...]]] = [("n", ">i2")]
    for i, column in enumerate(columns):
        fields.append((f"l{i}", ">i4"))
        if column.ndim == 2:
            width = column.shape[1]
            fields.append((f"h{i}", ">i4", (5,)))
            fields.append((f"v{i}", [("len", ">i4"), ("v", ">f8")], (width,)))
        elif column.dtype.kind == "S":
            fields.append((f"v{i}", column.dtype))
        else:
            fields.append((f"v{i}", column.dtype.newbyteorder(">")))
    records = np.empty(count, dtype=np.dtype(fields))
    records["n"] = len(columns)
    for i, column in enumerate(columns):
        if column.ndim == 2:
            width = column.shape[1]
            records[f"l{i}"] = 20 + 12 * width
            records[f"h{i}"] = (1, 0, _FLOAT8_OID, width, 1)
            records[f"v{i}"]["len"] = 8
            records[f"v{i}"]["v"] = column
        else:
            records[f"l{i}"] = column.dtype.itemsize
            records[f"v{i}"] = column
    return records.tobytes()


class MeterNames:
    """The UTF-8 id of each tag-table row, grouped by length so rows pack at fixed width."""

    def __init__(self, meter_ids: Sequence[str]) -> None:
        encoded = [m.encode("utf-8") for m in meter_ids]
        if any(not m for m in encoded):
            raise ValueError("every meter needs a non-empty id for the historian")
        self._lengths = np.array([len(m) for m in encoded], dtype=np.int64)
        self._names = np.array(encoded, dtype=np.bytes_) if encoded else np.zeros(0, "S1")

    def __len__(self) -> int:
        return len(self._lengths)

    def split(self, rows: npt.NDArray[np.int64]) -> list[tuple[npt.NDArray[np.intp], np.ndarray]]:
        """Positions of `rows` by id length, each with the ids as a fixed-width bytes array."""
        lengths = self._lengths[rows]
        parts = []
        for length in np.unique(lengths):
            where = np.flatnonzero(lengths == length)
            parts.append((where, self._names[rows[where]].astype(f"S{int(length)}")))
        return parts


class ReadingEncoder:
    """Turns applied batches into `readings` COPY blocks: one wide row per meter and group."""

    def __init__(self, meter_ids: Sequence[str], catalogue: TagCatalogue) -> None:
        self.meters = MeterNames(meter_ids)
        self.catalogue = catalogue

    def encode(self, batch: Batch, server_ts: float) -> CopyBlock | None:
        """The block for `batch`; rows without a finite source time are left out."""
        tags = self.catalogue.group_tags(batch.group)
        finite = np.isfinite(batch.source_ts)
        keep = np.flatnonzero(finite) if not finite.all() else None
        rows = batch.rows if keep is None else batch.rows[keep]
        if len(rows) == 0:
            return None
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self.meters)):
            raise ValueError(f"batch for group {batch.group!r} has rows outside the meter list")
        values = np.full((len(batch.rows), len(tags)), np.nan)
        for j, tag in enumerate(tags):
            if tag.name in batch.values:
                values[:, j] = batch.column(tag)
        values[is_bad(batch.quality)] = np.nan
        quality = batch.quality.astype(np.int64)
        source = batch.source_ts
        if keep is not None:
            values, quality, source = values[keep], quality[keep], source[keep]
        ts = to_pg_micros(source)
        server = np.full(len(rows), to_pg_micros(np.array([server_ts]))[0], dtype=np.int64)
        group = np.full(len(rows), batch.group.encode("utf-8"))
        chunks = [
            pack_tuples([ts[w], names, group[w], quality[w], server[w], values[w]])
            for w, names in self.meters.split(rows)
        ]
        return CopyBlock(
            "readings",
            len(rows),
            int(values.size),
            float(source.min()),
            float(source.max()),
            b"".join(chunks),
        )


class IntervalEncoder:
    """Energy intervals: the registers at the first reading of each interval of each meter."""

    def __init__(
        self, meter_ids: Sequence[str], catalogue: TagCatalogue, *, group: str, interval_s: int
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.meters = MeterNames(meter_ids)
        self.tags = catalogue.group_tags(group)
        self.group = group
        self.interval_s = interval_s
        self._last = np.full(len(meter_ids), -1, dtype=np.int64)

    def encode(self, batch: Batch) -> CopyBlock | None:
        """The intervals that `batch` opens (good rows in a new interval), or None."""
        if batch.group != self.group or len(batch) == 0:
            return None
        good = ~is_bad(batch.quality) & np.isfinite(batch.source_ts)
        if not all(tag.name in batch.values for tag in self.tags):
            return None
        slots = np.full(len(batch), -1, dtype=np.int64)
        slots[good] = np.floor(batch.source_ts[good] / self.interval_s).astype(np.int64)
        opens = good & (slots != self._last[batch.rows])
        if not opens.any():
            return None
        at = np.flatnonzero(opens)
        rows = batch.rows[at]
        # A row listed twice in one batch keeps the slot of its last reading.
        self._last[rows] = slots[at]
        registers = np.column_stack([batch.column(t)[at].astype(np.float64) for t in self.tags])
        starts = slots[at].astype(np.float64) * self.interval_s
        read = batch.source_ts[at]
        ts, read_ts = to_pg_micros(starts), to_pg_micros(read)
        width = np.full(len(rows), self.interval_s, dtype=np.int32)
        chunks = [
            pack_tuples([ts[w], names, width[w], read_ts[w], registers[w]])
            for w, names in self.meters.split(rows)
        ]
        return CopyBlock(
            "energy_intervals",
            len(rows),
            int(registers.size),
            float(starts.min()),
            float(starts.max()),
            b"".join(chunks),
        )


def event_block(events: Sequence[tuple[float, str, str, str]], server_ts: float) -> CopyBlock:
    """A `meter_events` block from (ts, meter, kind, detail) tuples."""
    if not events:
        raise ValueError("an event block needs at least one event")
    server = struct.pack(">iq", 8, round((server_ts - PG_EPOCH) * 1e6))
    parts = []
    for ts, meter, kind, detail in events:
        if not math.isfinite(ts):
            raise ValueError(f"event {kind!r} of meter {meter!r} has no finite time: {ts!r}")
        parts.append(struct.pack(">hiq", 5, 8, round((ts - PG_EPOCH) * 1e6)))
        for text in (meter, kind, detail):
            raw = text.encode("utf-8")
            parts.append(struct.pack(">i", len(raw)) + raw)
        parts.append(server)
    times = [e[0] for e in events]
    count = len(events)
    return CopyBlock("meter_events", count, count, min(times), max(times), b"".join(parts))
