"""Acrel 4G frames: known bytes, 7D7D inside payloads, round trips and fuzzing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.acrel4g import (
    POLL_BLOCK_REGISTERS,
    Acrel4GDecoder,
    DataUpload,
    Downlink,
    DownlinkReply,
    Frame,
    Heartbeat,
    Registration,
    RegistrationAck,
    Sender,
    TimeSync,
)
from protocols.errors import EncodeError, FrameError, ProtocolError
from protocols.modbus_rtu import (
    ExceptionReply,
    ReadHoldingRegisters,
    RegistersReply,
    WriteMultipleRegisters,
    WriteReply,
)


def naive_crc(data: bytes) -> bytes:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes((crc & 0xFF, crc >> 8))


def naive_frame(body_hex: str) -> bytes:
    body = bytes.fromhex(body_hex)
    return b"\x7b\x7b" + body + naive_crc(body) + b"\x7d\x7d"


SERIAL = "AM2024000001"
REGISTRATION = Registration(SERIAL, "89860412345678901234", 25, (1, 2, 3), 30)
POLL = RegistersReply(1, 3, tuple(range(0x7D70, 0x7D70 + POLL_BLOCK_REGISTERS)))


def test_register_ack_is_the_crc_of_the_command_alone() -> None:
    assert RegistrationAck().encode() == bytes.fromhex("7b7b 84 bf23 7d7d")
    assert naive_frame("84") == bytes.fromhex("7b7b84bf237d7d")


def test_registration_layout() -> None:
    serial = SERIAL.encode().ljust(20, b"\x00").hex()
    iccid = b"89860412345678901234".ljust(30, b"\x00").hex()
    assert REGISTRATION.encode() == naive_frame("84" + serial + iccid + "19" + "010203" + "001e")


def test_time_sync_layout_sunday_is_zero() -> None:
    sunday = datetime(2024, 5, 5, 13, 14, 15)
    assert TimeSync(sunday).encode() == naive_frame("93 18 05 05 00 0d 0e 0f")


def test_data_upload_and_downlink_embed_modbus_frames() -> None:
    serial = SERIAL.encode().ljust(20, b"\x00")
    assert DataUpload(SERIAL, POLL).encode() == naive_frame(
        "91" + serial.hex() + POLL.encode().hex()
    )
    request = ReadHoldingRegisters(1, 0, 48)
    assert Downlink(request).encode() == naive_frame("90" + request.encode().hex())


METER_FRAMES: list[Frame] = [
    REGISTRATION,
    Heartbeat(),
    Heartbeat(b"\x7d\x7d\x01"),
    DataUpload(SERIAL, POLL),
    DownlinkReply(POLL),
    DownlinkReply(ExceptionReply(1, 3, 2)),
    DownlinkReply(WriteReply(1, 16, 0x57, 2)),
]
SERVER_FRAMES: list[Frame] = [
    RegistrationAck(),
    TimeSync(datetime(2024, 5, 6, 7, 8, 9)),
    Downlink(ReadHoldingRegisters(1, 0, 48)),
    Downlink(WriteMultipleRegisters(1, 0x57, (1, 1))),
]


@pytest.mark.parametrize(
    ("sender", "frame"),
    [(Sender.METER, f) for f in METER_FRAMES] + [(Sender.SERVER, f) for f in SERVER_FRAMES],
)
def test_every_frame_round_trips_byte_by_byte(sender: Sender, frame: Frame) -> None:
    decoder = Acrel4GDecoder(sender)
    found: list[Frame] = []
    for byte in frame.encode():
        found += decoder.feed(bytes((byte,)))
    assert found == [frame]


def test_7d7d_inside_a_payload_does_not_end_the_frame() -> None:
    wire = DataUpload(SERIAL, POLL).encode()
    assert wire.count(b"\x7d\x7d") > 1
    assert Acrel4GDecoder().feed(wire + Heartbeat(b"}}").encode()) == [
        DataUpload(SERIAL, POLL),
        Heartbeat(b"}}"),
    ]


@pytest.mark.parametrize(
    ("sender", "wire", "message"),
    [
        (Sender.METER, naive_frame("93 18 05 05 00 0d 0e 0f"), "unknown Acrel 4G command 0x93"),
        (Sender.SERVER, naive_frame("93 18 05 05 03 0d 0e 0f"), "weekday 3"),
        (Sender.SERVER, naive_frame("93 18 0d 05 00 0d 0e 0f"), "not a valid time"),
        (Sender.METER, bytes.fromhex("7b7b 84 bf24 7d7d"), "0x84 of 63 bytes lacks 7D7D"),
        (Sender.SERVER, bytes.fromhex("7b7b 84 bf24 7d7d"), "bad CRC"),
        (Sender.SERVER, bytes.fromhex("7b7b 84 bf23 7d7e"), "lacks 7D7D"),
        (
            Sender.METER,
            naive_frame("91" + "41" * 20 + ExceptionReply(1, 3, 2).encode().hex()),
            "not a register reply",
        ),
        (Sender.METER, naive_frame("84" + "ff" * 20 + "41" * 31 + "010203001e"), "not printable"),
        (Sender.METER, naive_frame("84" + "41" * 51 + "0a0203" + "001e"), "not BCD"),
    ],
)
def test_corrupt_frames_raise_and_the_next_frame_is_found(
    sender: Sender, wire: bytes, message: str
) -> None:
    decoder = Acrel4GDecoder(sender)
    good = METER_FRAMES[0] if sender is Sender.METER else SERVER_FRAMES[1]
    with pytest.raises(FrameError, match=message):
        decoder.feed(b"\x7b" + wire + good.encode())
    assert decoder.feed(b"") == [good]


def test_open_ended_heartbeat_without_end_is_given_up() -> None:
    decoder = Acrel4GDecoder()
    with pytest.raises(FrameError, match="no valid end"):
        decoder.feed(b"\x7b\x7b\x94" + b"\x00" * 80)
    assert decoder.feed(Heartbeat().encode()) == [Heartbeat()]


@pytest.mark.parametrize(
    "bad",
    [
        Registration("x" * 21, "1", 0, (1, 2, 3), 30),
        Registration("é", "1", 0, (1, 2, 3), 30),
        Registration("x", "1", 256, (1, 2, 3), 30),
        Registration("x", "1", 0, (100, 2, 3), 30),
        Heartbeat(b"\x00" * 65),
        TimeSync(datetime(1999, 1, 1)),
    ],
)
def test_encoders_refuse_what_does_not_fit(bad: Frame) -> None:
    with pytest.raises(EncodeError):
        bad.encode()


printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
registers = st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125).map(tuple)
replies = st.one_of(
    st.builds(RegistersReply, st.integers(1, 247), st.just(3), registers),
    st.builds(
        ExceptionReply, st.integers(1, 247), st.sampled_from([3, 6, 16]), st.integers(0, 255)
    ),
    st.builds(
        WriteReply,
        st.integers(1, 247),
        st.sampled_from([6, 16]),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
    ),
)
meter_frames = st.one_of(
    st.builds(
        Registration,
        printable,
        st.text("0123456789F", max_size=30),
        st.integers(0, 255),
        st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
        st.integers(0, 0xFFFF),
    ),
    st.builds(Heartbeat, st.binary(max_size=64)),
    st.builds(
        DataUpload, printable, st.builds(RegistersReply, st.integers(1, 247), st.just(3), registers)
    ),
    st.builds(DownlinkReply, replies),
)
server_frames = st.one_of(
    st.just(RegistrationAck()),
    st.builds(
        TimeSync,
        st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(
            lambda t: t.replace(microsecond=0)
        ),
    ),
    st.builds(
        Downlink,
        st.builds(
            ReadHoldingRegisters, st.integers(1, 247), st.integers(0, 0xFF00), st.integers(1, 125)
        ),
    ),
    st.builds(
        Downlink,
        st.builds(
            WriteMultipleRegisters,
            st.integers(1, 247),
            st.integers(0, 0xFF00),
            registers.filter(lambda r: len(r) <= 123),
        ),
    ),
)


def drain(decoder: Any, chunks: list[bytes]) -> list[Any]:
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


@settings(max_examples=200)
@given(st.lists(meter_frames, min_size=1, max_size=3), st.lists(st.integers(0, 900), max_size=5))
def test_meter_frames_round_trip_in_any_split(sent: list[Frame], cuts: list[int]) -> None:
    stream = b"".join(f.encode() for f in sent)
    assert drain(Acrel4GDecoder(Sender.METER), split(stream, cuts)) == sent


@settings(max_examples=200)
@given(st.lists(server_frames, min_size=1, max_size=3), st.lists(st.integers(0, 900), max_size=5))
def test_server_frames_round_trip_in_any_split(sent: list[Frame], cuts: list[int]) -> None:
    stream = b"".join(f.encode() for f in sent)
    assert drain(Acrel4GDecoder(Sender.SERVER), split(stream, cuts)) == sent


@settings(max_examples=300)
@given(
    st.binary(max_size=600)
    | st.lists(st.sampled_from([0x7B, 0x7D, 0x84, 0x94, 0x91, 0x90, 0x03])).map(bytes),
    st.lists(st.integers(0, 600), max_size=6),
    st.sampled_from(Sender),
)
def test_fuzz_decoder_raises_only_frame_errors(
    garbage: bytes, cuts: list[int], sender: Sender
) -> None:
    decoder = Acrel4GDecoder(sender)
    for chunk in split(garbage, cuts):
        try:
            decoder.feed(chunk)
        except FrameError as exc:
            assert isinstance(exc, ProtocolError) and exc.reason
        assert len(decoder._buffer) <= 2 + 1 + 20 + 260 + 4


@settings(max_examples=200)
@given(
    st.binary(max_size=80) | st.lists(st.sampled_from([0x7B, 0x7D, 0x94, 0x00])).map(bytes),
    st.lists(meter_frames, min_size=1, max_size=3),
    st.lists(st.integers(0, 900), max_size=5),
)
def test_fuzz_frames_after_garbage_are_found(
    garbage: bytes, sent: list[Frame], cuts: list[int]
) -> None:
    stream = garbage + b"".join(f.encode() for f in sent)
    found = drain(Acrel4GDecoder(), split(stream, cuts))
    assert found[-len(sent) :] == sent


@settings(max_examples=200)
@given(st.lists(meter_frames, min_size=2, max_size=4), st.data())
def test_fuzz_corrupting_one_frame_keeps_the_others(sent: list[Frame], data: st.DataObject) -> None:
    wires = [f.encode() for f in sent]
    victim = data.draw(st.integers(0, len(wires) - 1))
    wire = bytearray(wires[victim])
    at = data.draw(st.integers(0, len(wire) - 1))
    wire[at] ^= data.draw(st.integers(1, 255))
    wires[victim] = bytes(wire)
    found = drain(Acrel4GDecoder(), [b"".join(wires)])
    kept = [f for i, f in enumerate(sent) if i != victim]
    assert [f for f in found if f in kept] == kept
