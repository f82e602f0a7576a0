"""What the tag table hands out: change sets after a write, and columnar snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from server.tags.batch import Batch

RowArray = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


class CommState(IntEnum):
    """The communication state of a meter, as held in the table's uint8 `comm` column."""

    UNKNOWN = 0
    ONLINE = 1
    OFFLINE = 2


@dataclass(frozen=True, slots=True, eq=False)
class ChangeSet:
    """The rows and tags that one `apply` changed, and the version it gave them.

    `rows` lists the changed rows in batch order; `values[tag]` and `quality` are masks
    aligned with `rows` saying which tag values and which qualities changed. `batch` is
    the batch as applied, for consumers that record every sample (the historian).
    """

    group: str
    version: int
    rows: RowArray
    values: Mapping[str, Mask]
    quality: Mask
    server_ts: float
    batch: Batch

    def __len__(self) -> int:
        return len(self.rows)

    def __bool__(self) -> bool:
        return len(self.rows) > 0

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags whose value changed in at least one row."""
        return tuple(name for name, mask in self.values.items() if mask.any())

    def rows_of(self, tag: str) -> RowArray:
        """The rows where `tag` changed value."""
        mask = self.values.get(tag)
        if mask is None:
            return np.zeros(0, dtype=np.int64)
        return self.rows[mask]


@dataclass(frozen=True, slots=True, eq=False)
class CommChange:
    """The rows whose communication state one `set_comm` changed, with old and new state."""

    version: int
    rows: RowArray
    previous: npt.NDArray[np.uint8]
    state: npt.NDArray[np.uint8]
    since: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.rows)

    def __bool__(self) -> bool:
        return len(self.rows) > 0


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """A columnar copy of some rows and tags of the table, taken at `version`.

    `quality` and `source_ts` are keyed by group (the groups of the chosen tags);
    `row_version` is the version at which each row last changed. Pass `version` to
    `TagTable.deltas` to get what changed after this snapshot; `epoch` changes when the
    table is rebuilt, which makes every version held by a client meaningless.
    """

    epoch: str
    version: int
    rows: RowArray
    ids: npt.NDArray[np.str_]
    values: Mapping[str, npt.NDArray[np.generic]]
    quality: Mapping[str, npt.NDArray[np.uint32]]
    source_ts: Mapping[str, npt.NDArray[np.float64]]
    server_ts: npt.NDArray[np.float64]
    comm: npt.NDArray[np.uint8]
    comm_since: npt.NDArray[np.float64]
    last_good: npt.NDArray[np.float64]
    row_version: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.rows)
