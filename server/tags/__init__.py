"""The live columnar tag database: batches in, change sets, snapshots and deltas out."""

from server.tags.batch import Batch
from server.tags.changes import ChangeSet, CommChange, CommState, Snapshot
from server.tags.meters import MeterIndex
from server.tags.quality import NEVER_READ, Severity, StatusCode, is_bad, is_good, severity
from server.tags.table import TagTable

__all__ = [
    "NEVER_READ",
    "Batch",
    "ChangeSet",
    "CommChange",
    "CommState",
    "MeterIndex",
    "Severity",
    "Snapshot",
    "StatusCode",
    "TagTable",
    "is_bad",
    "is_good",
    "severity",
]
