"""The store-and-forward spool: an append-only file of checksummed records, fsynced each."""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

MAGIC: Final = b"PGSP"
# A record: magic, payload length, CRC-32 of the payload, then the payload.
_RECORD: Final = struct.Struct("<4sII")
# The cursor file: the offset of the first record not yet replayed, and its CRC-32.
_CURSOR: Final = struct.Struct("<QI")
DATA_NAME: Final = "spool.dat"
CURSOR_NAME: Final = "spool.cursor"


class SpoolFull(RuntimeError):
    """The spool has no room left for a record; the message gives the sizes."""


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled payload and the offset just after it (where replay resumes)."""

    offset: int
    end: int
    payload: bytes


class Spool:
    """Records kept on local disk while the database is away, replayed oldest first.

    Each append is written and fsynced before it returns. `commit(end)` records that every
    record before `end` is in the database; when that is all of them the file is emptied.
    On opening, a torn or corrupt tail (a crash in the middle of an append) is cut off.
    """

    def __init__(self, directory: Path, *, max_bytes: int, near_full_ratio: float = 0.8) -> None:
        if max_bytes <= _RECORD.size:
            raise ValueError(f"spool max_bytes must exceed {_RECORD.size}, got {max_bytes}")
        if not 0.0 < near_full_ratio <= 1.0:
            raise ValueError(f"near_full_ratio must be in (0, 1], got {near_full_ratio}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.near_full_ratio = near_full_ratio
        self.rejected = 0
        self.torn_bytes = 0
        self._data_path = self.directory / DATA_NAME
        self._cursor_path = self.directory / CURSOR_NAME
        self._data = open(self._data_path, "a+b")  # noqa: SIM115 - held open for appends
        self._cursor = self._read_cursor()
        self._size = self._valid_end()
        self.records = sum(1 for _ in self.read())

    @property
    def size(self) -> int:
        """Bytes the spool file holds, replayed or not."""
        return self._size

    @property
    def pending_bytes(self) -> int:
        """Bytes of records not yet replayed."""
        return self._size - self._cursor

    @property
    def near_full(self) -> bool:
        """Whether the file holds at least `near_full_ratio` of `max_bytes`."""
        return self._size >= self.near_full_ratio * self.max_bytes

    def __len__(self) -> int:
        """The number of records not yet replayed."""
        return self.records

    def append(self, payload: bytes) -> None:
        """Write one record and fsync it; a `SpoolFull` when it would exceed `max_bytes`."""
        need = _RECORD.size + len(payload)
        if self._size + need > self.max_bytes:
            self.rejected += 1
            raise SpoolFull(
                f"historian spool {self._data_path} is full: {self._size} of {self.max_bytes}"
                f" bytes used, a record of {need} bytes does not fit"
            )
        record = _RECORD.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload
        self._data.seek(0, os.SEEK_END)
        self._data.write(record)
        self._data.flush()
        os.fsync(self._data.fileno())
        self._size += need
        self.records += 1

    def read(self, limit: int | None = None) -> Iterator[SpoolRecord]:
        """The records not yet replayed, oldest first (at most `limit` of them)."""
        offset, count = self._cursor, 0
        while offset < self._size and (limit is None or count < limit):
            record = self._record_at(offset)
            if record is None:
                return
            yield record
            offset = record.end
            count += 1

    def commit(self, end: int, records: int) -> None:
        """Mark the `records` records before offset `end` replayed (fsynced); empty if all."""
        if not self._cursor <= end <= self._size:
            raise ValueError(f"spool commit offset {end} is outside {self._cursor}..{self._size}")
        emptied = end == self._size
        if emptied:
            # Empty the data file before the cursor: a crash between the two leaves a cursor
            # past the end, which opening reads as "nothing pending".
            self._data.truncate(0)
            self._data.flush()
            os.fsync(self._data.fileno())
            self._size = 0
            end = 0
        self._write_cursor(end)
        self.records = 0 if emptied else self.records - records

    def close(self) -> None:
        """Close the spool file."""
        self._data.close()

    def _record_at(self, offset: int) -> SpoolRecord | None:
        """The valid record starting at `offset`, or None for a torn or corrupt one."""
        self._data.seek(offset)
        head = self._data.read(_RECORD.size)
        if len(head) < _RECORD.size:
            return None
        magic, length, crc = _RECORD.unpack(head)
        if magic != MAGIC:
            return None
        payload = self._data.read(length)
        if len(payload) < length or zlib.crc32(payload) != crc:
            return None
        return SpoolRecord(offset, offset + _RECORD.size + length, payload)

    def _valid_end(self) -> int:
        """Scan from the cursor to the last whole record and cut off anything after it."""
        file_size = self._data_path.stat().st_size
        if self._cursor > file_size:
            # A crash between emptying the file and resetting the cursor: nothing is pending.
            # The reset is written now, before any append could grow the file past it.
            self._write_cursor(0)
        offset = self._cursor
        while offset < file_size:
            record = self._record_at(offset)
            if record is None:
                break
            offset = record.end
        if offset < file_size:
            self.torn_bytes = file_size - offset
            log.warning(
                "historian spool: ignoring a torn or corrupt tail of %d bytes at offset %d",
                self.torn_bytes,
                offset,
            )
            self._data.truncate(offset)
            self._data.flush()
            os.fsync(self._data.fileno())
        return offset

    def _read_cursor(self) -> int:
        """The replay cursor on disk; 0 when missing or unreadable (replay is idempotent)."""
        try:
            raw = self._cursor_path.read_bytes()
        except FileNotFoundError:
            return 0
        if len(raw) != _CURSOR.size:
            return 0
        offset, crc = _CURSOR.unpack(raw)
        if zlib.crc32(raw[:8]) != crc:
            log.warning("historian spool: cursor file is corrupt; replaying from the start")
            return 0
        return int(offset)

    def _write_cursor(self, offset: int) -> None:
        """Persist the replay cursor with fsync (a small in-place write)."""
        raw = struct.pack("<Q", offset)
        fd = os.open(self._cursor_path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, raw + struct.pack("<I", zlib.crc32(raw)))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._cursor = offset
