"""The dial-in DTU session: registration, heartbeats between replies, unknown devices, fuzzing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.dtu import (
    MAX_REGISTRATION_LENGTH,
    Data,
    DtuIdentity,
    DtuSession,
    Heartbeat,
    Registered,
    UnknownRegistration,
    parse_payload,
)
from protocols.errors import EncodeError
from protocols.modbus_rtu import ReadHoldingRegisters, RegistersReply, RtuReplyDecoder

GW1 = DtuIdentity("gw-0001", b"GW0001", b"HB")
GW2 = DtuIdentity("gw-0002", parse_payload("7b0002ff", "hex"), parse_payload("fe", "hex"))
GW3 = DtuIdentity("gw-0003", b"GW0003\r\n", b"HB")
REPLY = RegistersReply(1, 3, (1, 2, 3)).encode()


def session() -> DtuSession:
    return DtuSession([GW1, GW2, GW3])


def collect(s: DtuSession, chunks: list[bytes]) -> list[Any]:
    events: list[Any] = []
    for chunk in chunks:
        events += s.feed(chunk)
    return events


def test_registration_then_data_and_heartbeats() -> None:
    events = collect(session(), [b"GW0001", b"HB", REPLY, b"HB" + REPLY + b"HB"])
    assert events == [
        Registered("gw-0001"),
        Heartbeat(),
        Data(REPLY),
        Heartbeat(),
        Data(REPLY),
        Heartbeat(),
    ]


def test_registration_split_across_reads_with_data_after_it() -> None:
    events = collect(session(), [b"\x7b\x00", b"\x02", b"\xff\xfe" + REPLY])
    assert events == [Registered("gw-0002"), Heartbeat(), Data(REPLY)]


def test_registration_and_heartbeat_in_one_read() -> None:
    assert collect(session(), [b"GW0003\r\nHB"]) == [Registered("gw-0003"), Heartbeat()]


def test_unknown_registration_refuses_the_link() -> None:
    s = session()
    assert s.feed(b"GW9") == [UnknownRegistration(b"GW9")]
    assert s.refused
    assert s.feed(b"GW0001") == []


def test_heartbeat_split_across_reads_is_held_then_released() -> None:
    s = DtuSession([DtuIdentity("x", b"REG", b"PING")])
    assert s.feed(b"REGPI") == [Registered("x")]
    assert s.feed(b"NG") == [Heartbeat()]
    assert s.feed(b"PI") == []
    assert s.feed(REPLY) == [Data(b"PI" + REPLY)]


def test_data_feeds_the_rtu_decoder_around_a_heartbeat() -> None:
    s = DtuSession([GW1])
    s.feed(b"GW0001")
    decoder = RtuReplyDecoder(ReadHoldingRegisters(1, 0, 3))
    result = None
    for chunk in (REPLY[:4], b"HB", REPLY[4:] + b"HB"):
        for event in s.feed(chunk):
            if isinstance(event, Data):
                result = decoder.feed(event.payload) or result
    assert result == RegistersReply(1, 3, (1, 2, 3))


@pytest.mark.parametrize(
    ("text", "kind"), [("é", "ascii"), ("zz", "hex"), ("", "ascii"), ("ab", "base64")]
)
def test_parse_payload_refuses_bad_config(text: str, kind: str) -> None:
    with pytest.raises(EncodeError):
        parse_payload(text, kind)


def test_session_refuses_ambiguous_config() -> None:
    with pytest.raises(EncodeError, match="start alike"):
        DtuSession([GW1, DtuIdentity("other", b"GW0001", b"HB")])
    with pytest.raises(EncodeError, match="start alike"):
        DtuSession([GW1, DtuIdentity("gw-0010", b"GW00010", b"HB")])
    with pytest.raises(EncodeError, match="needs a registration"):
        DtuSession([DtuIdentity("empty", b"", b"HB")])
    with pytest.raises(EncodeError, match="empty heartbeat"):
        DtuSession([DtuIdentity("silent", b"REG", b"")])


QUIET = DtuIdentity("gw-quiet", b"QUIET")


def test_without_a_heartbeat_everything_after_registration_is_data() -> None:
    s = DtuSession([GW1, QUIET])
    assert QUIET.heartbeat is None
    # Neither another DTU's heartbeat nor a repeat of the registration counts as a heartbeat.
    events = collect(s, [b"QUI", b"ETHB", REPLY + b"HB", b"QUIET"])
    assert events == [Registered("gw-quiet"), Data(b"HB"), Data(REPLY + b"HB"), Data(b"QUIET")]


def test_a_dtu_with_a_heartbeat_still_beats_beside_one_without() -> None:
    s = DtuSession([QUIET, GW1])
    assert collect(s, [b"GW0001HB", REPLY]) == [Registered("gw-0001"), Heartbeat(), Data(REPLY)]


@settings(max_examples=200)
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=6))
def test_fuzz_without_a_heartbeat_the_data_is_the_stream(stream: bytes, cuts: list[int]) -> None:
    s = DtuSession([QUIET])
    wire = QUIET.registration + stream
    points = sorted({min(c, len(wire)) for c in cuts})
    parts = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    events = collect(s, parts)
    assert events[0] == Registered("gw-quiet")
    assert all(isinstance(e, Data) and e.payload for e in events[1:])
    assert b"".join(e.payload for e in events[1:]) == stream


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_fuzz_session_never_raises_and_stays_bounded(chunks: list[bytes]) -> None:
    s = session()
    for chunk in chunks:
        for event in s.feed(chunk):
            assert isinstance(event, Registered | UnknownRegistration | Heartbeat | Data)
        assert len(s._held) <= MAX_REGISTRATION_LENGTH


@settings(max_examples=200)
@given(
    st.sampled_from([GW1, GW2, GW3]),
    st.lists(st.sampled_from(["beat", "reply"]), max_size=6),
    st.data(),
)
def test_fuzz_split_registration_and_heartbeats_between_replies(
    device: DtuIdentity, script: list[str], data: st.DataObject
) -> None:
    s = session()
    chunks: list[bytes] = []
    packet = device.registration
    cut = data.draw(st.integers(1, len(packet)))
    chunks += [packet[:cut], packet[cut:]]
    assert device.heartbeat is not None
    for step in script:
        chunks.append(device.heartbeat if step == "beat" else REPLY)
    events = collect(s, [c for c in chunks if c])
    expected: list[Any] = [Registered(device.id)]
    expected += [Heartbeat() if step == "beat" else Data(REPLY) for step in script]
    assert events == expected
