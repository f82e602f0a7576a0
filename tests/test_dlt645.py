"""DL/T 645-2007: hand-worked frames, DI values, round trips, a naive cross-check, fuzzing.

The frame literals were worked out by hand from the standard's layout and then checked
against the independent PyPI package dlt645 3.2.0 (run once in a throwaway venv; it is not a
dependency). The one hand slip it caught: the relay frame's checksum is 3A, not 3C.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.dlt645 import Dlt645Decoder, Dlt645Frame, Function, error_names
from protocols.dlt645_di import (
    DI_TABLE,
    DayHour,
    FieldFormat,
    Kind,
    Value,
    decode_value,
    encode_value,
)
from protocols.dlt645_messages import (
    Acknowledgement,
    BroadcastTime,
    ErrorReply,
    FreezeRequest,
    Message,
    ReadAddressReply,
    ReadAddressRequest,
    ReadFollowUpRequest,
    ReadReply,
    ReadRequest,
    RelayAction,
    RelayRequest,
    WriteRequest,
    parse_message,
)
from protocols.errors import EncodeError, FrameError, ProtocolError, UnknownDataIdentifier

ADDRESS = "123456789012"

KNOWN_FRAMES: list[tuple[Message, int, str]] = [
    # read 00010000 (forward active total) from 123456789012, with the four FE bytes
    (ReadRequest(ADDRESS, 0x00010000), 4, "fefefefe 68 129078563412 68 11 04 33333433 68 16"),
    # its reply: 12345.67 kWh = BCD 01 23 45 67, low byte first, +0x33
    (
        ReadReply(ADDRESS, 0x00010000, bytes.fromhex("67452301")),
        0,
        "68 129078563412 68 91 08 33333433 9a785634 88 16",
    ),
    (
        BroadcastTime(datetime(2024, 5, 6, 7, 8, 9)),
        0,
        "68 999999999999 68 08 06 3c3b3a393857 ed 16",
    ),
    (ReadAddressRequest(), 0, "68 aaaaaaaaaaaa 68 13 00 df 16"),
    (
        RelayRequest(
            ADDRESS,
            bytes.fromhex("02000000"),
            bytes(4),
            RelayAction.TRIP,
            datetime(2024, 12, 31, 23, 59, 59),
        ),
        0,
        "68 129078563412 68 1c 10 35333333 33333333 4d 33 8c8c56644557 3a 16",
    ),
    (ErrorReply(ADDRESS, Function.READ, 0x02), 0, "68 129078563412 68 d1 01 35 8d 16"),
]


@pytest.mark.parametrize(("message", "preamble", "wire"), KNOWN_FRAMES)
def test_known_frames(message: Message, preamble: int, wire: str) -> None:
    raw = bytes.fromhex(wire)
    assert message.to_frame().encode(preamble) == raw
    frames = Dlt645Decoder().feed(raw)
    assert len(frames) == 1
    assert parse_message(frames[0]) == message


def test_read_reply_value_and_error_names() -> None:
    reply = parse_message(Dlt645Decoder().feed(bytes.fromhex(KNOWN_FRAMES[1][2]))[0])
    assert isinstance(reply, ReadReply)
    assert reply.value() == Decimal("12345.67")
    assert ErrorReply(ADDRESS, Function.READ, 0x02).names == ("no requested data",)
    assert error_names(0x05) == ("other error", "password error or unauthorised")


KNOWN_VALUES: list[tuple[int, Value, str]] = [
    (0x02010100, Decimal("220.1"), "0122"),
    (0x02020100, Decimal("-5.123"), "235180"),
    (0x02030000, Decimal("-1.2345"), "452381"),
    (0x02060000, Decimal("-0.987"), "8789"),
    (0x02800002, Decimal("50.01"), "0150"),
    (0x00010000, Decimal("987654.32"), "32547698"),
    (0x00000000, Decimal("-12.34"), "34120080"),
    (0x00900200, 12345, "45230100"),
    (0x00900201, 0, "00000000"),
    (0x01010000, (Decimal("12.3456"), datetime(2024, 5, 6, 7, 8)), "563412 0807060524"),
    (0x01010000, (Decimal(0), None), "000000 0000000000"),
    (0x04000B01, DayHour(1, 0), "0001"),
    (0x0201FF00, (Decimal("220.1"), Decimal("221.0"), Decimal("219.9")), "0122 1022 9921"),
    (0x0001FF01, (Decimal("1.00"), Decimal("0.01")), "00010000 01000000"),
]


@pytest.mark.parametrize(("di", "value", "data"), KNOWN_VALUES)
def test_known_values(di: int, value: Value, data: str) -> None:
    assert encode_value(di, value) == bytes.fromhex(data)
    assert decode_value(di, bytes.fromhex(data)) == value


def test_money_is_integer_fen() -> None:
    value = decode_value(0x00900200, bytes.fromhex("99999999"))
    assert value == 99_999_999 and type(value) is int
    with pytest.raises(EncodeError, match="integer fen"):
        encode_value(0x00900200, Decimal("1.5"))


@pytest.mark.parametrize(
    ("di", "data", "error"),
    [
        (0x02010100, "0a22", FrameError),  # non-BCD nibble
        (0x02010100, "012233", FrameError),  # wrong length
        (0x0201FF00, "012233", FrameError),  # not a whole number of elements
        (0x01010000, "563412 0807061324", FrameError),  # month 13
        (0x12345678, "00", UnknownDataIdentifier),
    ],
)
def test_bad_values(di: int, data: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_value(di, bytes.fromhex(data))


@pytest.mark.parametrize(
    ("di", "value"),
    [
        (0x02010100, Decimal("220.12")),  # too precise for XXX.X
        (0x02010100, Decimal("-1.0")),  # unsigned
        (0x02010100, Decimal("1000.0")),  # too big
        (0x02020100, Decimal("800.000")),  # the sign bit leaves 79 in the top byte
        (0x01010000, Decimal("1.0")),  # needs (demand, time)
        (0x0201FF00, ()),
    ],
)
def test_values_that_do_not_fit(di: int, value: Any) -> None:
    with pytest.raises(EncodeError):
        encode_value(di, value)


def test_table_covers_the_domain_identifiers() -> None:
    wanted = [0x00000000, 0x00010000, 0x00010100, 0x00010200, 0x00010300, 0x00010400]
    wanted += [0x0001FF01, 0x02010100, 0x02010200, 0x02010300, 0x0201FF00, 0x02020100]
    wanted += [0x0202FF00, 0x02030000, 0x0203FF00, 0x02060000, 0x0206FF00, 0x02800002]
    wanted += [0x01010000, 0x04000B01, 0x00900200, 0x00900201]
    assert all(di in DI_TABLE for di in wanted)


def field_values(fmt: FieldFormat) -> st.SearchStrategy[Any]:
    if fmt.kind is Kind.MONEY:
        return st.integers(0, 10 ** (2 * fmt.length) - 1)
    if fmt.kind is Kind.DAY_HOUR:
        return st.builds(DayHour, st.integers(0, 99), st.integers(0, 99))
    if fmt.kind is Kind.DATETIME:
        times = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59))
        return st.none() | times.map(lambda t: t.replace(second=0, microsecond=0))
    top = 8 * 10 ** (2 * fmt.length - 1) if fmt.signed else 10 ** (2 * fmt.length)
    low = -(top - 1) if fmt.signed else 0
    return st.integers(low, top - 1).map(lambda n: Decimal(n).scaleb(-fmt.decimals))


def item_values(di: int) -> st.SearchStrategy[Any]:
    item = DI_TABLE[di]
    if len(item.fields) == 1:
        element = field_values(item.fields[0])
    else:
        element = st.tuples(*(field_values(f) for f in item.fields))
    if item.block:
        return st.lists(element, min_size=1, max_size=5).map(tuple)
    return element


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(DI_TABLE)).flatmap(lambda di: st.tuples(st.just(di), item_values(di)))
)
def test_value_round_trip(di_value: tuple[int, Value]) -> None:
    di, value = di_value
    data = encode_value(di, value)
    assert decode_value(di, data) == value
    assert ReadReply.of(ADDRESS, di, value).value() == value


def naive_frame(address: str, control: int, data: bytes, preamble: int) -> bytes:
    """A deliberately plain bytewise encoder, written from the standard's frame picture."""
    out = [0xFE] * preamble
    frame = [0x68]
    for i in range(6):
        pair = address[10 - 2 * i : 12 - 2 * i]
        frame.append(int(pair, 16))
    frame += [0x68, control, len(data)]
    for byte in data:
        frame.append((byte + 0x33) % 256)
    total = 0
    for byte in frame:
        total = (total + byte) % 256
    return bytes([*out, *frame, total, 0x16])


addresses = st.text("0123456789", min_size=12, max_size=12) | st.text(
    "0123456789A", min_size=12, max_size=12
)
frames = st.builds(Dlt645Frame, addresses, st.integers(0, 255), st.binary(max_size=255))


@settings(max_examples=200)
@given(frames, st.integers(0, 4), st.lists(st.integers(0, 300), max_size=4))
def test_frame_round_trip_any_split(frame: Dlt645Frame, preamble: int, cuts: list[int]) -> None:
    wire = frame.encode(preamble)
    assert wire == naive_frame(frame.address, frame.control, frame.data, preamble)
    assert drain(Dlt645Decoder(), split(wire, cuts)) == [frame]


messages = st.one_of(
    st.builds(ReadRequest, addresses, st.integers(0, 2**32 - 1)),
    st.builds(ReadFollowUpRequest, addresses, st.integers(0, 2**32 - 1), st.integers(0, 255)),
    st.builds(
        ReadReply,
        addresses,
        st.integers(0, 2**32 - 1),
        st.binary(max_size=40),
        st.booleans(),
        st.none() | st.integers(0, 255),
    ),
    st.builds(ReadAddressReply, st.text("0123456789", min_size=12, max_size=12)),
    st.builds(
        WriteRequest,
        addresses,
        st.integers(0, 2**32 - 1),
        st.binary(min_size=4, max_size=4),
        st.binary(min_size=4, max_size=4),
        st.binary(max_size=40),
    ),
    st.builds(
        BroadcastTime,
        st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(
            lambda t: t.replace(microsecond=0)
        ),
    ),
    st.builds(
        FreezeRequest,
        addresses,
        st.none() | st.integers(0, 59),
        st.none() | st.integers(0, 23),
        st.none() | st.integers(1, 28),
        st.none() | st.integers(1, 12),
    ),
    st.builds(
        RelayRequest,
        addresses,
        st.binary(min_size=4, max_size=4),
        st.binary(min_size=4, max_size=4),
        st.sampled_from(RelayAction),
        st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(
            lambda t: t.replace(microsecond=0)
        ),
    ),
    st.builds(
        Acknowledgement,
        addresses,
        st.sampled_from([Function.WRITE, Function.FREEZE, Function.RELAY]),
    ),
    st.builds(ErrorReply, addresses, st.sampled_from(Function), st.integers(0, 255)),
)


@settings(max_examples=300)
@given(messages)
def test_message_round_trip(message: Message) -> None:
    assert parse_message(message.to_frame()) == message
    wire = message.to_frame().encode()
    assert [parse_message(f) for f in Dlt645Decoder().feed(wire)] == [message]


def test_read_follow_up_reply_carries_more_and_seq() -> None:
    reply = ReadReply(ADDRESS, 0x0001FF01, bytes(8), more=True, seq=2)
    frame = reply.to_frame()
    assert frame.control == 0xB2 and frame.more_follows and frame.is_reply
    assert frame.data[-1] == 2
    assert parse_message(frame) == reply


def test_decoder_skips_preambles_and_resyncs_after_a_bad_checksum() -> None:
    good = ReadRequest(ADDRESS, 0x00010000).to_frame()
    wire = good.encode()
    bad = wire[:-2] + bytes(((wire[-2] + 1) & 0xFF,)) + wire[-1:]
    decoder = Dlt645Decoder()
    with pytest.raises(FrameError, match="checksum"):
        decoder.feed(b"\x00\x11" + wire + bad + wire)
    assert decoder.feed(b"") == [good, good]
    assert decoder.feed(b"") == []


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (Dlt645Frame(ADDRESS, 0x15, b""), "unsupported DL/T 645 function 0x15"),
        (Dlt645Frame(ADDRESS, 0x11, b"\x00"), "read request carries 1 data bytes"),
        (Dlt645Frame(ADDRESS, 0x1C, bytes(8) + b"\x99" + bytes(7)), "not a known action"),
        (Dlt645Frame(ADDRESS, 0x08, bytes.fromhex("000000003201")), "invalid time"),
        (Dlt645Frame(ADDRESS, 0x31, b""), "reply-only bits"),
        (Dlt645Frame(ADDRESS, 0x88, b""), "has no reply"),
    ],
)
def test_parse_errors(frame: Dlt645Frame, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        parse_message(frame)


def test_addresses_are_validated() -> None:
    with pytest.raises(EncodeError):
        Dlt645Frame("12345678901B", 0x11).encode()
    wire = bytearray(ReadRequest(ADDRESS, 0).to_frame().encode(0))
    wire[1] = 0xBB
    wire[-2] = sum(wire[:-2]) & 0xFF
    with pytest.raises(FrameError, match="not BCD"):
        Dlt645Decoder().feed(bytes(wire))


def drain(decoder: Any, chunks: list[bytes]) -> list[Any]:
    """Feed every chunk, swallowing documented errors, then collect what is left."""
    found: list[Any] = []
    for chunk in [*chunks, b""]:
        try:
            found += decoder.feed(chunk)
        except FrameError:
            found += decoder.feed(b"")
    return found


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=300)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=6))
def test_fuzz_decoder_raises_only_frame_errors(garbage: bytes, cuts: list[int]) -> None:
    decoder = Dlt645Decoder()
    for chunk in split(garbage, cuts):
        try:
            for frame in decoder.feed(chunk):
                try:
                    message = parse_message(frame)
                    if isinstance(message, ReadReply):
                        message.value()
                except (FrameError, UnknownDataIdentifier):
                    pass
        except FrameError as exc:
            assert isinstance(exc, ProtocolError) and exc.reason
        assert len(decoder._buffer) <= 267


@settings(max_examples=200)
@given(
    st.binary(max_size=80) | st.lists(st.sampled_from([0x68, 0xFE, 0x16, 0x00])).map(bytes),
    st.lists(frames, min_size=1, max_size=3),
    st.lists(st.integers(0, 900), max_size=5),
)
def test_fuzz_frames_after_garbage_are_found(
    garbage: bytes, sent: list[Dlt645Frame], cuts: list[int]
) -> None:
    stream = garbage + b"".join(f.encode() for f in sent)
    found = drain(Dlt645Decoder(), split(stream, cuts))
    assert found[-len(sent) :] == sent


@settings(max_examples=200)
@given(st.lists(frames, min_size=2, max_size=4), st.data())
def test_fuzz_corrupting_one_frame_keeps_the_others(
    sent: list[Dlt645Frame], data: st.DataObject
) -> None:
    wires = [f.encode() for f in sent]
    victim = data.draw(st.integers(0, len(wires) - 1))
    wire = bytearray(wires[victim])
    at = data.draw(st.integers(4, len(wire) - 1))
    wire[at] ^= data.draw(st.integers(1, 255))
    wires[victim] = bytes(wire)
    found = drain(Dlt645Decoder(), [b"".join(wires)])
    kept = [f for i, f in enumerate(sent) if i != victim]
    assert [f for f in found if f in kept] == kept
