"""The wire form of a reading batch on a Redis stream: compact, versioned, checksummed."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from server.tags import Batch, TagTable

MAGIC: Final = b"PGRB"
VERSION: Final = 1

_HEAD = struct.Struct("<4sBB")
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")

_UNIFORM_QUALITY: Final = 0x01
_UNIFORM_TS: Final = 0x02
_KNOWN_FLAGS: Final = _UNIFORM_QUALITY | _UNIFORM_TS

# Value dtypes a batch may carry on the wire, by one-byte code; all little-endian.
_DTYPES: Final[Mapping[int, np.dtype[np.generic]]] = MappingProxyType(
    {
        1: np.dtype("<f8"),
        2: np.dtype("<f4"),
        3: np.dtype("<i8"),
        4: np.dtype("<i4"),
        5: np.dtype("<i2"),
        6: np.dtype("i1"),
        7: np.dtype("<u8"),
        8: np.dtype("<u4"),
        9: np.dtype("<u2"),
        10: np.dtype("u1"),
        11: np.dtype("?"),
    }
)
_CODE_OF: Final = {(dt.kind, dt.itemsize): code for code, dt in _DTYPES.items()}

# Group and tag names follow the catalogue's naming rule (config/catalogue.py).
_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")
_MAX_ROWS: Final = 1_000_000
_ID_SEPARATOR: Final = "\x00"


class CodecError(ValueError):
    """Bytes that are not a valid reading batch; the message says what is wrong and where."""


@dataclass(frozen=True, slots=True, eq=False)
class MeterBatch:
    """A batch addressed by meter id rather than row: what travels between processes.

    Workers and the core may number rows differently, so the wire carries meter ids and
    the receiving table maps them to its own rows (`to_batch`).
    """

    group: str
    meter_ids: tuple[str, ...]
    values: Mapping[str, npt.NDArray[np.generic]]
    quality: npt.NDArray[np.uint32]
    source_ts: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.meter_ids)

    def to_batch(self, table: TagTable, *, skip_older: bool = True) -> Batch:
        """The batch in `table`'s rows; a `ValueError` names unknown meter ids.

        With `skip_older`, rows whose source timestamp is older than what the table
        already holds for the group are left out, so a reading redelivered after a newer
        one (a reclaimed entry of a dead consumer) cannot roll a value back.
        """
        rows = table.rows_for(self.meter_ids)
        if skip_older and len(rows):
            current = table.source_ts(self.group)[rows]
            keep = ~(self.source_ts < current)
            if not keep.all():
                index = np.flatnonzero(keep)
                return Batch(
                    self.group,
                    rows[index],
                    {name: column[index] for name, column in self.values.items()},
                    quality=self.quality[index],
                    source_ts=self.source_ts[index],
                )
        return Batch(self.group, rows, self.values, quality=self.quality, source_ts=self.source_ts)


def encode_batch(batch: Batch, meter_ids: Sequence[str] | npt.NDArray[np.str_]) -> bytes:
    """The wire bytes of `batch`, whose rows belong to `meter_ids` (one id per row, in order)."""
    ids = [str(m) for m in meter_ids]
    count = len(batch)
    if len(ids) != count:
        raise ValueError(f"encode_batch: {len(ids)} meter ids for a batch of {count} rows")
    for meter_id in ids:
        if not meter_id or _ID_SEPARATOR in meter_id:
            raise ValueError(f"encode_batch: meter id {meter_id!r} is empty or holds a NUL")
    group = _name_bytes(batch.group, "group")
    quality = batch.quality.astype("<u4", copy=False)
    ts_bits = batch.source_ts.astype("<f8", copy=False)
    flags = 0
    if count and bool((quality == quality[0]).all()):
        flags |= _UNIFORM_QUALITY
        quality = quality[:1]
    bits = ts_bits.view(np.uint64)
    if count and bool((bits == bits[0]).all()):
        flags |= _UNIFORM_TS
        ts_bits = ts_bits[:1]
    id_block = _ID_SEPARATOR.join(ids).encode("utf-8")
    parts = [
        _HEAD.pack(MAGIC, VERSION, flags),
        _U8.pack(len(group)),
        group,
        _U32.pack(count),
        _U32.pack(len(id_block)),
        id_block,
        quality.tobytes(),
        ts_bits.tobytes(),
        _U16.pack(len(batch.values)),
    ]
    for name, column in batch.values.items():
        code = _CODE_OF.get((column.dtype.kind, column.dtype.itemsize))
        if code is None:
            raise ValueError(f"encode_batch: tag {name!r} has dtype {column.dtype}, not sendable")
        tag = _name_bytes(name, "tag")
        parts += [_U8.pack(len(tag)), tag, _U8.pack(code)]
        parts.append(np.ascontiguousarray(column, dtype=_DTYPES[code]).tobytes())
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def decode_batch(data: bytes) -> MeterBatch:
    """The batch in `data`; a `CodecError` says why bytes are not a valid batch."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"a reading batch is bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < _HEAD.size + _U32.size:
        raise CodecError(f"too short for a reading batch: {len(data)} bytes")
    magic, version, flags = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise CodecError(f"not a parkgrid reading batch: starts with {magic!r}, not {MAGIC!r}")
    if version != VERSION:
        raise CodecError(f"reading batch version {version} is not supported (reads {VERSION})")
    (crc,) = _U32.unpack_from(data, len(data) - _U32.size)
    body = data[: -_U32.size]
    if zlib.crc32(body) != crc:
        raise CodecError("reading batch is corrupt: checksum mismatch")
    if flags & ~_KNOWN_FLAGS:
        raise CodecError(f"reading batch has unknown flags 0x{flags:02x}")
    return _Reader(body, _HEAD.size).batch(flags)


class _Reader:
    """Walks the body of a batch, checking every length before it is used."""

    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.offset = offset

    def take(self, size: int, what: str) -> int:
        """Reserve `size` bytes for `what`; return where they start."""
        start = self.offset
        if size > len(self.data) - start:
            raise CodecError(
                f"reading batch is truncated: {what} needs {size} bytes at offset {start},"
                f" {len(self.data) - start} left"
            )
        self.offset += size
        return start

    def unpack(self, fmt: struct.Struct, what: str) -> int:
        value: int = fmt.unpack_from(self.data, self.take(fmt.size, what))[0]
        return value

    def name(self, what: str) -> str:
        size = self.unpack(_U8, f"{what} length")
        raw = self.data[self.take(size, what) : self.offset]
        text = raw.decode("ascii", errors="replace")
        if not _NAME.fullmatch(text):
            raise CodecError(f"reading batch: {what} {raw!r} is not a valid name")
        return text

    def array(self, dtype: np.dtype[np.generic], count: int, what: str) -> npt.NDArray[np.generic]:
        start = self.take(dtype.itemsize * count, what)
        return np.frombuffer(self.data, dtype=dtype, count=count, offset=start)

    def batch(self, flags: int) -> MeterBatch:
        group = self.name("group")
        count = self.unpack(_U32, "row count")
        if count > _MAX_ROWS:
            raise CodecError(f"reading batch: {count} rows is more than {_MAX_ROWS}")
        ids = self.meter_ids(count)
        one_q = bool(flags & _UNIFORM_QUALITY)
        quality = self.array(np.dtype("<u4"), 1 if one_q else count, "quality")
        one_ts = bool(flags & _UNIFORM_TS)
        source_ts = self.array(np.dtype("<f8"), 1 if one_ts else count, "source timestamps")
        if one_q or one_ts:
            if not count:
                raise CodecError("reading batch: an empty batch cannot have uniform columns")
            quality = np.full(count, quality[0], dtype=np.uint32) if one_q else quality
            source_ts = np.full(count, source_ts[0], dtype=np.float64) if one_ts else source_ts
        tags = self.unpack(_U16, "tag count")
        values: dict[str, npt.NDArray[np.generic]] = {}
        for i in range(tags):
            name = self.name(f"tag {i} name")
            if name in values:
                raise CodecError(f"reading batch: tag {name!r} appears twice")
            code = self.unpack(_U8, f"dtype of tag {name!r}")
            if code not in _DTYPES:
                raise CodecError(f"reading batch: tag {name!r} has unknown dtype code {code}")
            column = self.array(_DTYPES[code], count, f"values of tag {name!r}")
            if code == 11:
                flags_u8 = column.view(np.uint8)
                if count and int(flags_u8.max()) > 1:
                    raise CodecError(
                        f"reading batch: bool tag {name!r} holds a byte other than 0/1"
                    )
            values[name] = column
        if self.offset != len(self.data):
            raise CodecError(
                f"reading batch has {len(self.data) - self.offset} unexpected trailing bytes"
            )
        return MeterBatch(
            group=group,
            meter_ids=ids,
            values=MappingProxyType(values),
            quality=np.asarray(quality, dtype=np.uint32),
            source_ts=np.asarray(source_ts, dtype=np.float64),
        )

    def meter_ids(self, count: int) -> tuple[str, ...]:
        size = self.unpack(_U32, "meter id block length")
        raw = self.data[self.take(size, "meter ids") : self.offset]
        if not count:
            if raw:
                raise CodecError("reading batch: meter ids given for an empty batch")
            return ()
        try:
            ids = tuple(raw.decode("utf-8").split(_ID_SEPARATOR))
        except UnicodeDecodeError as exc:
            raise CodecError(f"reading batch: meter ids are not UTF-8 ({exc.reason})") from None
        if len(ids) != count:
            raise CodecError(f"reading batch: {len(ids)} meter ids for {count} rows")
        if not all(ids):
            raise CodecError("reading batch: an empty meter id")
        if len(set(ids)) != count:
            raise CodecError("reading batch: a meter id appears more than once")
        return ids


def _name_bytes(name: str, what: str) -> bytes:
    """A group or tag name as ASCII bytes, or a `ValueError` naming the bad name."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"encode_batch: {what} name {name!r} is not valid ({_NAME.pattern})")
    return name.encode("ascii")
