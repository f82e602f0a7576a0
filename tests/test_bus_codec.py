"""The reading-batch wire codec: round trips, corrupt input and the row mapping."""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from config.catalogue import default_catalogue
from server.bus.codec import MAGIC, CodecError, decode_batch, encode_batch
from server.clock import ManualClock
from server.tags import Batch, StatusCode, TagTable

CATALOGUE = default_catalogue()
DTYPES = ["<f8", "<f4", "<i8", "<i4", "<i2", "i1", "<u8", "<u4", "<u2", "u1", "?"]


def make_table(count: int = 8) -> TagTable:
    return TagTable(
        [f"M{i}" for i in range(count)],
        areas=["A"] * count,
        gateways=["G1"] * count,
        three_phase=[True] * count,
        clock=ManualClock(1000.0),
    )


@st.composite
def batches(draw: st.DrawFn) -> tuple[Batch, list[str]]:
    group = draw(st.sampled_from(CATALOGUE.groups))
    tags = CATALOGUE.group_tags(group)
    names = draw(st.lists(st.sampled_from([t.name for t in tags]), unique=True))
    count = draw(st.integers(0, 30))
    ids = draw(
        st.lists(
            st.text(st.characters(blacklist_characters="\x00", codec="utf-8"), min_size=1),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    values = {
        name: draw(hnp.arrays(np.dtype(draw(st.sampled_from(DTYPES))), count)) for name in names
    }
    if draw(st.booleans()):
        quality: Any = draw(st.sampled_from(list(StatusCode)))
    else:
        quality = draw(hnp.arrays(np.uint32, count))
    if draw(st.booleans()):
        ts: Any = draw(st.floats(allow_nan=True))
    else:
        ts = draw(hnp.arrays(np.float64, count))
    rows = np.arange(count, dtype=np.int64)
    return Batch(group, rows, values, quality=quality, source_ts=ts), ids


@given(batches())
def test_round_trip_keeps_every_value_bit_for_bit(case: tuple[Batch, list[str]]) -> None:
    batch, ids = case
    decoded = decode_batch(encode_batch(batch, ids))
    assert decoded.group == batch.group
    assert decoded.meter_ids == tuple(ids)
    assert list(decoded.values) == list(batch.values)
    for name, column in batch.values.items():
        got = decoded.values[name]
        assert got.dtype == column.dtype.newbyteorder("=")
        assert got.tobytes() == np.ascontiguousarray(column).tobytes()
    assert decoded.quality.dtype == np.uint32
    assert decoded.quality.tolist() == batch.quality.tolist()
    assert decoded.source_ts.view(np.uint64).tolist() == batch.source_ts.view(np.uint64).tolist()


@given(batches(), st.data())
def test_any_changed_byte_is_a_codec_error(
    case: tuple[Batch, list[str]], data: st.DataObject
) -> None:
    encoded = bytearray(encode_batch(*case))
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CodecError):
        decode_batch(bytes(encoded))


@given(batches(), st.data())
def test_truncation_is_a_codec_error(case: tuple[Batch, list[str]], data: st.DataObject) -> None:
    encoded = encode_batch(*case)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(CodecError):
        decode_batch(encoded[:cut])


def seal(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@given(st.binary(max_size=300), st.integers(0, 255))
def test_random_bodies_behind_a_valid_checksum_never_crash(body: bytes, flags: int) -> None:
    data = seal(MAGIC + bytes([1, flags]) + body)
    try:
        decoded = decode_batch(data)
    except CodecError:
        return
    assert len(decoded.quality) == len(decoded.source_ts) == len(decoded)


@given(st.binary(max_size=200))
def test_random_bytes_are_a_codec_error(data: bytes) -> None:
    # A valid batch needs the magic and a matching CRC-32: random bytes never have both.
    with pytest.raises(CodecError):
        decode_batch(data)


def realtime(count: int = 3) -> tuple[Batch, list[str]]:
    batch = Batch(
        "realtime",
        np.arange(count),
        {"u_a": np.full(count, 230.5), "relay": np.ones(count, dtype=np.uint8)},
        source_ts=100.0,
    )
    return batch, [f"M{i}" for i in range(count)]


def body_of(batch: Batch, ids: list[str]) -> bytes:
    return encode_batch(batch, ids)[:-4]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"JUNKJUNKJUNK", "not a parkgrid reading batch"),
        (seal(MAGIC + bytes([9, 0])), "version 9 is not supported"),
        (MAGIC + bytes([1, 0]) + b"\x00" * 8, "checksum mismatch"),
        (seal(MAGIC + bytes([1, 0x80])), "unknown flags"),
        (seal(MAGIC + bytes([1, 0, 3]) + b"BAD"), "is not a valid name"),
        (seal(MAGIC + bytes([1, 0, 8]) + b"realtime" + struct.pack("<I", 5)), "truncated"),
    ],
)
def test_corrupt_input_is_named(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode_batch(data)


def test_structural_problems_are_named() -> None:
    batch, ids = realtime()
    body = body_of(batch, ids)
    with pytest.raises(CodecError, match="trailing bytes"):
        decode_batch(seal(body + b"\x00"))
    bool_at = body.rindex(b"relay") + len("relay")
    bad_dtype = body[:bool_at] + bytes([99]) + body[bool_at + 1 :]
    with pytest.raises(CodecError, match="unknown dtype code 99"):
        decode_batch(seal(bad_dtype))
    as_bool = body[:bool_at] + bytes([11]) + body[bool_at + 1 : -1] + b"\x02"
    with pytest.raises(CodecError, match="other than 0/1"):
        decode_batch(seal(as_bool))
    same_ids = encode_batch(batch, ["M1", "M2", "M3"])
    dup = same_ids.replace(b"M1\x00M2\x00M3", b"M1\x00M1\x00M3")
    with pytest.raises(CodecError, match="more than once"):
        decode_batch(seal(dup[:-4]))


def test_encoding_refuses_what_it_cannot_send() -> None:
    batch, ids = realtime()
    with pytest.raises(ValueError, match="2 meter ids for a batch of 3 rows"):
        encode_batch(batch, ids[:2])
    with pytest.raises(ValueError, match="holds a NUL"):
        encode_batch(batch, ["M0", "M\x001", "M2"])
    odd = Batch("realtime", [0], {"u_a": np.array([1 + 2j])}, source_ts=1.0)
    with pytest.raises(ValueError, match="not sendable"):
        encode_batch(odd, ["M0"])


def test_uniform_columns_make_a_compact_entry() -> None:
    batch, ids = realtime(24)
    varied = Batch(
        "realtime", batch.rows, batch.values, quality=np.arange(24), source_ts=np.arange(24.0)
    )
    assert len(encode_batch(varied, ids)) - len(encode_batch(batch, ids)) == 23 * 4 + 23 * 8


def test_to_batch_maps_ids_to_the_receiving_tables_rows() -> None:
    table = make_table()
    batch = Batch("realtime", [0, 1], {"u_a": [1.0, 2.0]}, source_ts=5.0)
    decoded = decode_batch(encode_batch(batch, ["M6", "M2"]))
    table.apply(decoded.to_batch(table))
    assert table.column("u_a")[[6, 2]].tolist() == [1.0, 2.0]
    unknown = decode_batch(encode_batch(batch, ["M6", "X9"]))
    with pytest.raises(ValueError, match="X9"):
        unknown.to_batch(table)


def test_to_batch_skips_rows_older_than_the_table() -> None:
    table = make_table()
    newer = Batch("realtime", [0, 1], {"u_a": [2.0, 2.0]}, source_ts=[20.0, 20.0])
    table.apply(newer)
    older = Batch("realtime", [0, 1, 2], {"u_a": [1.0, 1.0, 1.0]}, source_ts=[10.0, 30.0, 10.0])
    mapped = decode_batch(encode_batch(older, ["M0", "M1", "M2"])).to_batch(table)
    assert mapped.rows.tolist() == [1, 2]
    table.apply(mapped)
    assert table.column("u_a")[:3].tolist() == [2.0, 1.0, 1.0]
    everything = decode_batch(encode_batch(older, ["M0", "M1", "M2"]))
    assert len(everything.to_batch(table, skip_older=False)) == 3


def test_nan_values_round_trip() -> None:
    batch = Batch("energy", [0], {"e_total": [math.nan]}, source_ts=math.nan)
    decoded = decode_batch(encode_batch(batch, ["M0"]))
    assert math.isnan(decoded.values["e_total"][0])
    assert math.isnan(decoded.source_ts[0])
