"""A decoded batch of readings for one tag group, ready for `TagTable.apply`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from config.catalogue import TagDef
from server.tags.quality import Severity, StatusCode, severity

RowArray = npt.NDArray[np.int64]

_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True, eq=False)
class Batch:
    """Readings of one group for some rows: values per tag, one quality and timestamp per row.

    Any subset of the group's tags may be given; the others keep their values. Rows whose
    quality is bad carry no values: `apply` keeps each tag's last value there and marks it
    bad, so the HMI shows "last value, bad" rather than a stale value that looks good.
    Value arrays are not copied: do not reuse a decode buffer while the batch is in use.
    """

    group: str
    rows: RowArray
    values: Mapping[str, npt.NDArray[np.generic]]
    quality: npt.NDArray[np.uint32]
    source_ts: npt.NDArray[np.float64]

    def __init__(
        self,
        group: str,
        rows: npt.ArrayLike,
        values: Mapping[str, npt.ArrayLike],
        *,
        quality: int | npt.ArrayLike = StatusCode.GOOD,
        source_ts: float | npt.ArrayLike,
    ) -> None:
        row_array = _rows(rows)
        count = len(row_array)
        columns: dict[str, npt.NDArray[np.generic]] = {}
        for name, column in values.items():
            array = np.asarray(column)
            if array.ndim != 1 or len(array) != count:
                raise ValueError(
                    f"batch for group {group!r}: tag {name!r} has shape {array.shape},"
                    f" expected ({count},) to match the rows"
                )
            columns[name] = array
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "rows", row_array)
        object.__setattr__(self, "values", MappingProxyType(columns))
        object.__setattr__(self, "quality", _quality(quality, count, group))
        object.__setattr__(self, "source_ts", _timestamps(source_ts, count, group))

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, tag: TagDef) -> npt.NDArray[np.generic]:
        """The values of `tag` in its column dtype; a `ValueError` if they do not fit."""
        values = self.values[tag.name]
        if values.size == 0:
            return np.zeros(0, dtype=tag.dtype)
        kind = values.dtype.kind
        where = f"batch for group {self.group!r}: tag {tag.name!r} ({tag.kind})"
        if tag.kind == "float":
            if kind not in "fiub":
                raise ValueError(f"{where} needs numbers, got dtype {values.dtype}")
        elif kind not in "iub":
            raise ValueError(f"{where} needs integers or bools, got dtype {values.dtype}")
        elif (
            kind == "u" and values.dtype.itemsize == 8 and values.size and values.max() > _INT64_MAX
        ):
            raise ValueError(f"{where}: value {values.max()} does not fit in int64")
        if tag.kind == "bool" and kind != "b":
            flags: npt.NDArray[np.uint8] = np.not_equal(values, 0).view(np.uint8)
            return flags
        return values.astype(tag.dtype, copy=False)

    @classmethod
    def bad(
        cls,
        group: str,
        rows: npt.ArrayLike,
        code: int,
        ts: float | npt.ArrayLike,
    ) -> Batch:
        """A failed poll: every row gets the bad `code` at `ts` and keeps its last values."""
        if severity(code) is not Severity.BAD:
            raise ValueError(f"Batch.bad needs a bad StatusCode, got 0x{int(code):08X}")
        return cls(group, rows, {}, quality=code, source_ts=ts)


def _rows(rows: npt.ArrayLike) -> RowArray:
    """`rows` as a 1-D int64 array, or a `ValueError` saying what is wrong."""
    array = np.asarray(rows)
    if array.ndim != 1:
        raise ValueError(f"batch rows must be a 1-D array of row indices, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"batch rows must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _quality(quality: int | npt.ArrayLike, count: int, group: str) -> npt.NDArray[np.uint32]:
    """Per-row quality codes, broadcast from a scalar when needed."""
    array = np.asarray(quality)
    if array.size == 0 and array.ndim == 1:
        array = array.astype(np.uint32)
    if array.dtype.kind not in "iu":
        raise ValueError(f"batch for group {group!r}: quality must be integer StatusCodes")
    if array.size and (array.min() < 0 or array.max() > 0xFFFFFFFF):
        raise ValueError(f"batch for group {group!r}: quality codes must fit in 32 bits")
    if array.ndim == 0:
        return np.full(count, int(array), dtype=np.uint32)
    if array.shape != (count,):
        raise ValueError(
            f"batch for group {group!r}: quality has shape {array.shape}, expected ({count},)"
        )
    return array.astype(np.uint32, copy=False)


def _timestamps(ts: float | npt.ArrayLike, count: int, group: str) -> npt.NDArray[np.float64]:
    """Per-row source timestamps, broadcast from a scalar when needed."""
    try:
        array = np.asarray(ts, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"batch for group {group!r}: source_ts must be Unix seconds, got {ts!r}"
        ) from None
    if array.ndim == 0:
        return np.full(count, float(array), dtype=np.float64)
    if array.shape != (count,):
        raise ValueError(
            f"batch for group {group!r}: source_ts has shape {array.shape}, expected ({count},)"
        )
    return array
