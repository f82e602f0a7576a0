"""The spool: append, replay in order, bound and near-full, torn tails and crashes."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from historian.copy_rows import BlockError, CopyBlock
from historian.spool import CURSOR_NAME, DATA_NAME, Spool, SpoolFull


def _open(path: Path, max_bytes: int = 1 << 20) -> Spool:
    return Spool(path, max_bytes=max_bytes)


def test_records_come_back_in_order_and_commit_empties(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    for i in range(5):
        spool.append(f"batch {i}".encode())
    records = list(spool.read())
    assert [r.payload for r in records] == [f"batch {i}".encode() for i in range(5)]
    spool.commit(records[1].end, 2)
    assert len(spool) == 3
    assert [r.payload for r in spool.read(limit=2)] == [b"batch 2", b"batch 3"]
    spool.close()
    reopened = _open(tmp_path)
    assert [r.payload for r in reopened.read()] == [b"batch 2", b"batch 3", b"batch 4"]
    reopened.commit(reopened.size, 3)
    assert (len(reopened), reopened.size, reopened.pending_bytes) == (0, 0, 0)
    assert (tmp_path / DATA_NAME).stat().st_size == 0
    reopened.close()


def test_bound_and_near_full_flag(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000, near_full_ratio=0.8)
    payload = b"x" * 188  # 200 bytes a record with its 12-byte header
    for _ in range(3):
        spool.append(payload)
    assert not spool.near_full
    spool.append(payload)
    assert spool.near_full
    spool.append(payload)
    with pytest.raises(SpoolFull, match="1000 of 1000 bytes used"):
        spool.append(b"y")
    assert spool.rejected == 1
    assert len(spool) == 5
    spool.close()


@pytest.mark.parametrize("cut", [1, 5, 11, 12, 40])
def test_torn_last_record_is_ignored_and_cut_off(tmp_path: Path, cut: int) -> None:
    spool = _open(tmp_path)
    spool.append(b"first")
    spool.append(b"second" * 10)
    spool.close()
    data = tmp_path / DATA_NAME
    whole = data.read_bytes()
    data.write_bytes(whole[: len(whole) - 60 - 12 + cut])  # a crash mid-append
    reopened = _open(tmp_path)
    assert [r.payload for r in reopened.read()] == [b"first"]
    assert reopened.torn_bytes == cut
    reopened.append(b"third")
    assert [r.payload for r in reopened.read()] == [b"first", b"third"]
    reopened.close()


def test_corrupt_record_ends_the_valid_part(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    spool.append(b"good")
    spool.append(b"flipped")
    spool.close()
    data = tmp_path / DATA_NAME
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0xFF
    data.write_bytes(bytes(raw))
    reopened = _open(tmp_path)
    assert [r.payload for r in reopened.read()] == [b"good"]
    reopened.close()


def test_corrupt_cursor_replays_from_the_start(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    spool.append(b"a")
    spool.append(b"b")
    spool.commit(next(spool.read()).end, 1)
    spool.close()
    (tmp_path / CURSOR_NAME).write_bytes(b"\x00" * 12)
    reopened = _open(tmp_path)
    assert [r.payload for r in reopened.read()] == [b"a", b"b"]
    reopened.close()


def test_cursor_past_the_end_means_nothing_pending(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    spool.append(b"a" * 50)
    first = next(spool.read())
    spool.append(b"b")
    spool.commit(first.end, 1)
    spool.close()
    (tmp_path / DATA_NAME).write_bytes(b"")  # emptied, then a crash before the cursor reset
    reopened = _open(tmp_path)
    assert (len(reopened), reopened.pending_bytes) == (0, 0)
    reopened.append(b"c" * 100)
    reopened.close()
    again = _open(tmp_path)
    assert [r.payload for r in again.read()] == [b"c" * 100]
    again.close()


def test_commit_outside_the_file_is_refused(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    spool.append(b"a")
    with pytest.raises(ValueError, match="outside"):
        spool.commit(10_000, 1)
    spool.close()


@given(st.lists(st.binary(max_size=300), max_size=30), st.integers(0, 30))
def test_any_payloads_round_trip_and_resume(
    tmp_path_factory: pytest.TempPathFactory, payloads: list[bytes], done: int
) -> None:
    path = tmp_path_factory.mktemp("spool")
    spool = _open(path)
    for payload in payloads:
        spool.append(payload)
    records = list(spool.read())
    done = min(done, len(records))
    if done:
        spool.commit(records[done - 1].end, done)
    spool.close()
    reopened = _open(path)
    assert [r.payload for r in reopened.read()] == payloads[done:]
    assert len(reopened) == len(payloads) - done
    reopened.close()


@given(
    st.sampled_from(["readings", "energy_intervals", "meter_events"]),
    st.integers(0, 2**31),
    st.floats(allow_nan=False),
    st.binary(max_size=64),
)
def test_block_round_trip(table: str, rows: int, ts: float, tuples: bytes) -> None:
    block = CopyBlock(table, rows, rows * 2 % 2**32, ts, ts, tuples)
    assert CopyBlock.from_bytes(block.to_bytes()) == block


@given(st.binary(max_size=40))
def test_block_parser_accepts_only_block_errors(data: bytes) -> None:
    with contextlib.suppress(BlockError):
        CopyBlock.from_bytes(data)
