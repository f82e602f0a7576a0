"""CRC16-Modbus and Modbus RTU: known frames, round trips, a pymodbus cross-check, fuzzing."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    WriteMultipleRegistersRequest,
    WriteSingleRegisterRequest,
)

from protocols.crc import crc16_modbus, crc16_modbus_bytes, crc_matches
from protocols.errors import EncodeError, FrameError, ProtocolError
from protocols.modbus_rtu import (
    ExceptionReply,
    ReadHoldingRegisters,
    RegistersReply,
    Reply,
    Request,
    RtuReplyDecoder,
    RtuRequestDecoder,
    WriteMultipleRegisters,
    WriteReply,
    WriteSingleRegister,
    decode_reply,
    decode_request,
    parse_reply_pdu,
    parse_request_pdu,
    reply_mismatch,
)


def bitwise_crc(data: bytes) -> int:
    """A deliberately naive shift-register CRC16-Modbus, to check the table."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


@pytest.mark.parametrize(
    ("data", "crc_wire"),
    [
        ("01030000000A", "C5CD"),
        ("84", "BF23"),  # the Acrel register ack: BF23 is the CRC of 0x84 alone
        ("010600010003", "980B"),
        ("", "FFFF"),
        ("313233343536373839", "374B"),  # the CRC catalogue check value 0x4B37 of "123456789"
    ],
)
def test_crc_known_vectors(data: str, crc_wire: str) -> None:
    assert crc16_modbus_bytes(bytes.fromhex(data)) == bytes.fromhex(crc_wire)


@given(st.binary(max_size=300))
def test_crc_matches_bitwise_and_pymodbus(data: bytes) -> None:
    crc = crc16_modbus(data)
    assert crc == bitwise_crc(data)
    assert FramerRTU.compute_CRC(data) == int.from_bytes(crc.to_bytes(2, "little"), "big")
    assert crc_matches(data + crc16_modbus_bytes(data), 0, len(data))


KNOWN: list[tuple[Request, str]] = [
    (ReadHoldingRegisters(1, 0, 10), "01 03 00 00 00 0a c5 cd"),
    (WriteSingleRegister(1, 1, 3), "01 06 00 01 00 03 98 0b"),
    (WriteMultipleRegisters(0x11, 1, (10, 258)), "11 10 00 01 00 02 04 00 0a 01 02 c6 f0"),
]
KNOWN_REPLIES: list[tuple[Reply, str]] = [
    (RegistersReply(1, 3, (0x1234, 0x5678)), "01 03 04 12 34 56 78 81 07"),
    (ExceptionReply(1, 3, 2), "01 83 02 c0 f1"),
    (WriteReply(1, 6, 1, 3), "01 06 00 01 00 03 98 0b"),
]


@pytest.mark.parametrize(("request_", "wire"), KNOWN)
def test_known_requests(request_: Request, wire: str) -> None:
    assert request_.encode() == bytes.fromhex(wire)
    assert decode_request(bytes.fromhex(wire)) == request_


@pytest.mark.parametrize(("reply", "wire"), KNOWN_REPLIES)
def test_known_replies(reply: Reply, wire: str) -> None:
    assert reply.encode() == bytes.fromhex(wire)
    assert decode_reply(bytes.fromhex(wire)) == reply


def test_exception_reply_names_its_code() -> None:
    assert ExceptionReply(1, 3, 2).name == "illegal data address"
    assert ExceptionReply(1, 3, 0x7E).name == "exception 0x7E"


@pytest.mark.parametrize(
    "bad",
    [
        ReadHoldingRegisters(0, 0, 1),
        ReadHoldingRegisters(1, 0, 126),
        ReadHoldingRegisters(1, 0xFFFF, 2),
        WriteSingleRegister(1, 0, 0x10000),
        WriteMultipleRegisters(1, 0, ()),
        WriteMultipleRegisters(1, 0, (1,) * 124),
        RegistersReply(1, 3, ()),
    ],
)
def test_encoders_refuse_out_of_range(bad: Request | Reply) -> None:
    with pytest.raises(EncodeError):
        bad.encode()


slaves = st.integers(1, 247)
registers = st.integers(0, 0xFFFF)
reads = st.builds(
    lambda s, n, a: ReadHoldingRegisters(s, min(a, 0x10000 - n), n),
    slaves,
    st.integers(1, 125),
    st.integers(0, 0xFFFF),
)
singles = st.builds(WriteSingleRegister, slaves, st.integers(0, 0xFFFF), registers)
multiples = st.builds(
    lambda s, v, a: WriteMultipleRegisters(s, min(a, 0x10000 - len(v)), tuple(v)),
    slaves,
    st.lists(registers, min_size=1, max_size=123),
    st.integers(0, 0xFFFF),
)
requests = st.one_of(reads, singles, multiples)


def pymodbus_frame(request: Request) -> bytes:
    framer = FramerRTU(DecodePDU(False))
    pdu: ModbusPDU
    if isinstance(request, ReadHoldingRegisters):
        pdu = ReadHoldingRegistersRequest(
            address=request.address, count=request.count, dev_id=request.slave
        )
    elif isinstance(request, WriteSingleRegister):
        pdu = WriteSingleRegisterRequest(
            address=request.address, registers=[request.value], dev_id=request.slave
        )
    else:
        pdu = WriteMultipleRegistersRequest(
            address=request.address, registers=list(request.values), dev_id=request.slave
        )
    return framer.buildFrame(pdu)


@settings(max_examples=200)
@given(requests)
def test_requests_match_pymodbus_and_round_trip(request: Request) -> None:
    wire = request.encode()
    assert wire == pymodbus_frame(request)
    assert decode_request(wire) == request
    assert RtuRequestDecoder().feed(wire) == [request]


def answer(request: Request, data: st.DataObject) -> Reply:
    """A valid reply to `request`: registers, an echo, or an exception."""
    if data.draw(st.booleans()):
        return ExceptionReply(request.slave, request.function, data.draw(st.integers(1, 11)))
    if isinstance(request, ReadHoldingRegisters):
        values = data.draw(st.lists(registers, min_size=request.count, max_size=request.count))
        return RegistersReply(request.slave, 3, tuple(values))
    if isinstance(request, WriteSingleRegister):
        return WriteReply(request.slave, 6, request.address, request.value)
    return WriteReply(request.slave, 16, request.address, len(request.values))


@settings(max_examples=200)
@given(requests, st.data())
def test_reply_round_trip_in_any_split(request: Request, data: st.DataObject) -> None:
    reply = answer(request, data)
    wire = reply.encode()
    assert decode_reply(wire) == reply
    cut = data.draw(st.integers(0, len(wire)))
    decoder = RtuReplyDecoder(request)
    first = decoder.feed(wire[:cut])
    assert first is None or cut == len(wire)
    assert decoder.feed(wire[cut:]) == reply


def test_wrong_slave_raises_then_the_right_reply_is_found() -> None:
    request = ReadHoldingRegisters(3, 0, 2)
    decoder = RtuReplyDecoder(request)
    with pytest.raises(FrameError, match="reply from slave 5, expected slave 3"):
        decoder.feed(RegistersReply(5, 3, (1, 2)).encode())
    right = RegistersReply(3, 3, (7, 8))
    assert decoder.feed(right.encode()) == right


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ("01 03 04 12 34 56 78 81 08", "bad CRC"),
        ("01 06 00 01 00 03 98 0b", "answered with function 0x06"),
        ("01 03 02 00 01 79 84", "1 registers, expected 2"),
    ],
)
def test_reply_decoder_errors(wire: str, message: str) -> None:
    decoder = RtuReplyDecoder(ReadHoldingRegisters(1, 0, 2))
    with pytest.raises(FrameError, match=message):
        decoder.feed(bytes.fromhex(wire))


def test_write_echo_must_match_the_request() -> None:
    decoder = RtuReplyDecoder(WriteSingleRegister(1, 1, 4))
    with pytest.raises(FrameError, match="does not match"):
        decoder.feed(WriteReply(1, 6, 1, 3).encode())


def test_reply_after_garbage_and_trailing_bytes() -> None:
    request = ReadHoldingRegisters(1, 0, 2)
    reply = RegistersReply(1, 3, (0x1234, 0x5678))
    decoder = RtuReplyDecoder(request)
    assert decoder.feed(b"\x00\xff\x7b" + reply.encode() + b"\x55") == reply
    assert decoder.trailing == b"\x55"
    assert decoder.discarded == 3


def test_request_decoder_splits_a_stream_and_skips_garbage() -> None:
    stream = b"".join(r.encode() for r, _ in KNOWN)
    decoder = RtuRequestDecoder()
    found = []
    for byte in b"\xff\x00" + stream:
        found += decoder.feed(bytes((byte,)))
    assert found == [r for r, _ in KNOWN]


def test_request_with_bad_crc_raises_and_later_requests_come_next() -> None:
    good = ReadHoldingRegisters(1, 0, 10).encode()
    decoder = RtuRequestDecoder()
    with pytest.raises(FrameError, match="bad CRC"):
        decoder.feed(good[:-1] + b"\x00" + good)
    assert decoder.feed(b"") == [ReadHoldingRegisters(1, 0, 10)]


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
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_fuzz_decoders_raise_only_frame_errors(garbage: bytes, cuts: list[int]) -> None:
    reply_decoder = RtuReplyDecoder(ReadHoldingRegisters(1, 0, 48))
    request_decoder = RtuRequestDecoder()
    for chunk in split(garbage, cuts):
        for decoder in (reply_decoder, request_decoder):
            try:
                decoder.feed(chunk)
            except FrameError as exc:
                assert isinstance(exc, ProtocolError) and exc.reason
        assert len(request_decoder._buffer) <= 256
        assert len(reply_decoder._buffer) <= 260
    for decode in (decode_reply, decode_request):
        with contextlib.suppress(FrameError):
            decode(garbage)


@settings(max_examples=200)
@given(
    st.binary(max_size=60),
    st.lists(requests, min_size=1, max_size=3),
    st.lists(st.integers(0, 800), max_size=5),
)
def test_fuzz_requests_after_garbage_are_found(
    garbage: bytes, sent: list[Request], cuts: list[int]
) -> None:
    stream = garbage + b"".join(r.encode() for r in sent)
    found = drain(RtuRequestDecoder(), split(stream, cuts))
    assert found[-len(sent) :] == sent


@settings(max_examples=200)
@given(requests, st.binary(max_size=60), st.data())
def test_fuzz_reply_after_garbage_is_found(
    request: Request, garbage: bytes, data: st.DataObject
) -> None:
    reply = answer(request, data)
    decoder = RtuReplyDecoder(request)
    wire = garbage + reply.encode()
    cut = data.draw(st.integers(0, len(wire)))
    result: Reply | None = None
    for chunk in (wire[:cut], wire[cut:], b""):
        with contextlib.suppress(FrameError):
            result = decoder.feed(chunk) or result
    assert result == reply


@settings(max_examples=200)
@given(requests, st.data())
def test_pdu_is_the_rtu_frame_without_slave_and_crc(request: Request, data: st.DataObject) -> None:
    reply = answer(request, data)
    for message, parse in ((request, parse_request_pdu), (reply, parse_reply_pdu)):
        pdu = message.pdu()
        assert message.encode()[1:-2] == pdu
        padded = b"\xaa" + pdu + b"\xbb"  # parsed in place, between other bytes
        assert parse(message.slave, padded, 1, 1 + len(pdu)) == message
    assert reply_mismatch(request, reply) is None


@pytest.mark.parametrize(
    ("parse", "pdu", "reason"),
    [
        (parse_reply_pdu, "", "empty PDU"),
        (parse_reply_pdu, "03 04 0001", "register reply of 3 bytes declares 4 data bytes"),
        (parse_reply_pdu, "03 00", "declares 0 data bytes"),
        (parse_reply_pdu, "06 0001", "write reply PDU of 3 bytes, expected 5"),
        (parse_reply_pdu, "83 02 00", "exception reply PDU of 3 bytes, expected 2"),
        (parse_reply_pdu, "2B 0E", "unsupported Modbus function 0x2B in reply"),
        (parse_request_pdu, "03 0000 00", "function 0x03 request PDU of 4 bytes, expected 5"),
        (parse_request_pdu, "10 0000 00", "write request PDU of 4 bytes, at least 6 needed"),
        (parse_request_pdu, "10 0000 0002 03 000000", "write of 2 registers carries 3 of 3"),
        (parse_request_pdu, "10 0000 0001 02 0000 00", "carries 2 of 3 data bytes"),
        (parse_request_pdu, "04 0000 0001", "unsupported Modbus function 0x04 in request"),
    ],
)
def test_pdu_parsers_name_the_problem(parse: Any, pdu: str, reason: str) -> None:
    raw = bytes.fromhex(pdu)
    with pytest.raises(FrameError, match=reason):
        parse(1, raw, 0, len(raw))


def test_oversized_register_reply_pdu_is_refused() -> None:
    raw = bytes((3, 252)) + bytes(252)
    with pytest.raises(FrameError, match="declares 252 data bytes"):
        parse_reply_pdu(1, raw, 0, len(raw))


@pytest.mark.parametrize(
    ("expect", "reply", "problem"),
    [
        (ReadHoldingRegisters(1, 0, 2), RegistersReply(1, 3, (1, 2)), None),
        (ReadHoldingRegisters(1, 0, 2), ExceptionReply(1, 3, 2), None),
        (ReadHoldingRegisters(1, 0, 2), RegistersReply(4, 3, (1, 2)), "reply from unit 4"),
        (ReadHoldingRegisters(1, 0, 2), ExceptionReply(1, 6, 2), "reply to function 0x06"),
        (ReadHoldingRegisters(1, 0, 2), WriteReply(1, 3, 0, 2), "WriteReply to a register read"),
        (ReadHoldingRegisters(1, 0, 2), RegistersReply(1, 3, (1,)), "carries 1 registers"),
        (WriteSingleRegister(1, 5, 7), WriteReply(1, 6, 5, 7), None),
        (WriteSingleRegister(1, 5, 7), WriteReply(1, 6, 5, 8), "write echo 5/8 does not match 5/7"),
        (WriteMultipleRegisters(1, 5, (1, 2)), WriteReply(1, 16, 5, 2), None),
        (WriteMultipleRegisters(1, 5, (1, 2)), RegistersReply(1, 16, (2,)), "to a write"),
    ],
)
def test_reply_mismatch(expect: Request, reply: Reply, problem: str | None) -> None:
    found = reply_mismatch(expect, reply)
    assert found == problem if problem is None else found is not None and problem in found


@settings(max_examples=300)
@given(st.binary(max_size=300), st.integers(0, 255), st.integers(0, 300), st.integers(0, 300))
def test_fuzz_pdu_parsers_raise_only_frame_errors(
    raw: bytes, unit: int, start: int, stop: int
) -> None:
    start, stop = min(start, len(raw)), min(max(start, stop), len(raw))
    for parse in (parse_reply_pdu, parse_request_pdu):
        try:
            message = parse(unit, raw, start, stop)
        except FrameError as exc:
            assert exc.reason
            continue
        assert message.slave == unit
        with contextlib.suppress(EncodeError):  # ranges are the server's to judge
            assert message.pdu() == raw[start:stop]
