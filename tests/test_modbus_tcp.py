"""The MBAP codec: known frames, round trips, split reads, resynchronisation, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import EncodeError, FrameError
from protocols.modbus_rtu import (
    ExceptionReply,
    ReadHoldingRegisters,
    RegistersReply,
    Reply,
    WriteMultipleRegisters,
    WriteReply,
    WriteSingleRegister,
)
from protocols.modbus_tcp import (
    MAX_ADU_LENGTH,
    MbapDecoder,
    MbapFrame,
    Sender,
    encode_reply,
    encode_request,
)

# Frames written out by hand from the Modbus Application Protocol and Messaging specs.
KNOWN_REQUESTS = [
    (1, ReadHoldingRegisters(17, 0x006B, 3), "0001 0000 0006 11 03 006B 0003"),
    (0x1234, WriteSingleRegister(1, 0x0001, 0x0003), "1234 0000 0006 01 06 0001 0003"),
    (
        0xFFFF,
        WriteMultipleRegisters(5, 0x0057, (1, 1)),
        "FFFF 0000 000B 05 10 0057 0002 04 0001 0001",
    ),
]
KNOWN_REPLIES = [
    (1, RegistersReply(17, 3, (0x022B, 0, 0x64)), "0001 0000 0009 11 03 06 022B 0000 0064"),
    (2, WriteReply(5, 0x10, 0x0057, 2), "0002 0000 0006 05 10 0057 0002"),
    (3, ExceptionReply(9, 3, 2), "0003 0000 0003 09 83 02"),
]
REQUEST_TYPES = (ReadHoldingRegisters, WriteSingleRegister, WriteMultipleRegisters)


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@pytest.mark.parametrize(("tid", "request_", "wire"), KNOWN_REQUESTS)
def test_known_requests(tid, request_, wire):
    assert encode_request(tid, request_) == hexbytes(wire)
    assert MbapDecoder(Sender.CLIENT).feed(hexbytes(wire)) == [MbapFrame(tid, request_)]


@pytest.mark.parametrize(("tid", "reply", "wire"), KNOWN_REPLIES)
def test_known_replies(tid, reply, wire):
    assert encode_reply(tid, reply) == hexbytes(wire)
    assert MbapDecoder(Sender.SERVER).feed(hexbytes(wire)) == [MbapFrame(tid, reply)]


@pytest.mark.parametrize(
    ("tid", "request_", "reason"),
    [
        (0x10000, ReadHoldingRegisters(1, 0, 1), "transaction id 65536"),
        (1, ReadHoldingRegisters(256, 0, 1), "unit id 256"),
        (1, ReadHoldingRegisters(1, 0, 126), "register count 126"),
        (1, ReadHoldingRegisters(1, 0xFFFF, 2), "start address 65535"),
        (1, WriteSingleRegister(1, 0, 0x10000), "register value 65536"),
        (1, WriteMultipleRegisters(1, 0, ()), "register count 0"),
        (1, WriteMultipleRegisters(1, 0, (1, -1)), "register value -1"),
    ],
)
def test_bad_requests_are_refused(tid, request_, reason):
    with pytest.raises(EncodeError, match=reason):
        encode_request(tid, request_)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("0001 0001 0006 01 03 0000 0001", "protocol id 1"),
        ("0001 0000 0001 01", "length 1"),
        ("0001 0000 0005 01 03 04 0001", "declares 4 data bytes"),
        ("0001 0000 0004 01 03 01 00", "declares 1 data bytes"),
        ("0001 0000 0004 01 06 0001", "write reply PDU of 3 bytes"),
        ("0001 0000 0004 01 81 02 00", "exception reply PDU of 3 bytes"),
        ("0001 0000 0003 01 2B 0E", "unsupported Modbus function 0x2B"),
    ],
)
def test_corrupt_replies_name_the_problem(wire, reason):
    with pytest.raises(FrameError, match=reason):
        MbapDecoder(Sender.SERVER).feed(hexbytes(wire))


def test_corrupt_request_is_named():
    with pytest.raises(FrameError, match="write of 2 registers carries 3 of 3 data bytes"):
        MbapDecoder(Sender.CLIENT).feed(hexbytes("0001 0000 000A 01 10 0000 0002 03 000000"))


def test_frame_after_a_bad_pdu_comes_back_on_the_next_feed():
    good = encode_reply(8, RegistersReply(1, 3, (7,)))
    decoder = MbapDecoder(Sender.SERVER)
    with pytest.raises(FrameError):
        decoder.feed(hexbytes("0007 0000 0003 01 2B 0E") + good)
    assert decoder.feed(b"") == [MbapFrame(8, RegistersReply(1, 3, (7,)))]


def test_garbage_before_a_frame_is_skipped():
    good = encode_reply(0x0102, RegistersReply(4, 3, (1, 2)))
    decoder = MbapDecoder(Sender.SERVER)
    with pytest.raises(FrameError, match="protocol id"):
        decoder.feed(b"\xff\xee\xdd" + good)
    assert decoder.feed(b"") == [MbapFrame(0x0102, RegistersReply(4, 3, (1, 2)))]
    assert decoder.discarded == 3


registers = st.tuples(*[st.integers(0, 0xFFFF)] * 1) | st.lists(
    st.integers(0, 0xFFFF), min_size=1, max_size=125
).map(tuple)
units = st.integers(0, 255)
tids = st.integers(0, 0xFFFF)
requests = st.one_of(
    st.builds(
        lambda unit, count, address: ReadHoldingRegisters(
            unit, min(address, 0x10000 - count), count
        ),
        units,
        st.integers(1, 125),
        st.integers(0, 0xFFFF),
    ),
    st.builds(WriteSingleRegister, units, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    st.builds(
        lambda unit, values: WriteMultipleRegisters(unit, 0x10000 - len(values), values),
        units,
        st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=123).map(tuple),
    ),
)
replies = st.one_of(
    st.builds(RegistersReply, units, st.just(3), registers),
    st.builds(
        WriteReply, units, st.sampled_from([6, 16]), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)
    ),
    st.builds(ExceptionReply, units, st.integers(1, 0x7F), st.integers(0, 255)),
)


def split(wire: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(wire) + 1) for c in cuts})
    return [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]


@given(st.lists(st.tuples(tids, requests), min_size=1, max_size=5), st.lists(st.integers(0, 2000)))
def test_requests_round_trip_through_any_split(frames, cuts):
    wire = b"".join(encode_request(tid, request) for tid, request in frames)
    decoder = MbapDecoder(Sender.CLIENT)
    found = [frame for chunk in split(wire, cuts) for frame in decoder.feed(chunk)]
    assert found == [MbapFrame(tid, request) for tid, request in frames]


@given(st.lists(st.tuples(tids, replies), min_size=1, max_size=5), st.lists(st.integers(0, 2000)))
def test_replies_round_trip_through_any_split(frames, cuts):
    wire = b"".join(encode_reply(tid, reply) for tid, reply in frames)
    decoder = MbapDecoder(Sender.SERVER)
    found = [frame for chunk in split(wire, cuts) for frame in decoder.feed(chunk)]
    assert found == [MbapFrame(tid, reply) for tid, reply in frames]


@given(st.sampled_from(list(Sender)), st.lists(st.binary(max_size=300), max_size=12))
def test_random_bytes_raise_only_frame_error_and_stay_bounded(sender, chunks):
    decoder = MbapDecoder(sender)
    for chunk in chunks:
        try:
            frames = decoder.feed(chunk)
        except FrameError:
            continue
        for frame in frames:
            message = frame.message
            try:
                if isinstance(message, REQUEST_TYPES):
                    wire = encode_request(frame.transaction_id, message)
                else:
                    wire = encode_reply(frame.transaction_id, message)
            except EncodeError:
                continue
            assert MbapDecoder(sender).feed(wire) == [frame]
        assert len(decoder._buffer) < MAX_ADU_LENGTH


@given(
    st.integers(1, 255).flatmap(lambda hi: st.integers(1, 255).map(lambda lo: hi << 8 | lo)),
    replies,
    st.binary(max_size=40).map(lambda raw: raw.replace(b"\x00", b"\x01")),
)
def test_a_valid_frame_after_garbage_is_found(tid, reply, garbage):
    # With no zero byte in the garbage or the transaction id, no header candidate that starts
    # in the garbage has protocol id 0, so the decoder must slide onto the real frame.
    decoder = MbapDecoder(Sender.SERVER)
    found: list[MbapFrame[Reply]] = []
    for chunk in (garbage, encode_reply(tid, reply)):
        try:
            found += decoder.feed(chunk)
        except FrameError:
            found += decoder.feed(b"")
    assert found == [MbapFrame(tid, reply)]
    assert decoder.discarded == len(garbage)


@given(
    st.sampled_from(list(Sender)),
    tids,
    st.integers(0, 255),
    st.sampled_from([3, 6, 16, 0x83, 0x2B]),
    st.one_of(
        st.sampled_from([b"\x01" * n for n in (248, 250, 252, 254)]), st.binary(max_size=300)
    ),
)
def test_one_whole_read_with_any_pdu_raises_only_frame_error(sender, tid, unit, function, body):
    # One read holding exactly one MBAP frame takes the decoder's fast path; the byte count
    # agrees with the body, so only the MBAP length limit stops an oversized register reply.
    pdu = bytes((function, len(body) & 0xFF)) + body
    wire = tid.to_bytes(2, "big") + bytes(2) + (len(pdu) + 1).to_bytes(2, "big")
    decoder = MbapDecoder(sender)
    try:
        frames = decoder.feed(wire + bytes((unit,)) + pdu)
    except FrameError:
        return
    assert len(frames) == 1
    assert frames[0].transaction_id == tid
    assert frames[0].message.slave == unit
    assert len(pdu) <= 253
