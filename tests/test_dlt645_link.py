"""The DL/T 645 TCP link against a minimal in-test meter line on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from protocols.dialed_link import Backoff
from protocols.dlt645 import Dlt645Decoder, Dlt645Frame, Function
from protocols.dlt645_di import encode_value
from protocols.dlt645_link import Dlt645TcpLink, dlt645_reply_error
from protocols.dlt645_messages import (
    Acknowledgement,
    BroadcastTime,
    ErrorReply,
    Message,
    ReadFollowUpRequest,
    ReadReply,
    ReadRequest,
    RelayAction,
    RelayRequest,
    parse_message,
)
from protocols.errors import FrameError
from protocols.link_errors import BadReply, Dlt645Refused, LinkDown, LinkTimeout
from server.clock import ManualClock

ADDRESS = "000000000031"
ENERGY = 0x00000000
BLOCK = 0x0000FF00
BLOCK_VALUES = tuple(Decimal(v) for v in ("1000.50", "100.25", "300.00", "400.25", "200.00"))

Responder = Callable[[Message], bytes | None]


def meter(message: Message) -> bytes | None:
    """A well-behaved meter at ADDRESS."""
    if isinstance(message, ReadRequest) and message.di == ENERGY:
        return ReadReply.of(ADDRESS, ENERGY, Decimal("123456.78")).to_frame().encode()
    if isinstance(message, ReadRequest) and message.di == BLOCK:
        data = encode_value(BLOCK, BLOCK_VALUES)
        return ReadReply(ADDRESS, BLOCK, data[:8], more=True).to_frame().encode()
    if isinstance(message, ReadFollowUpRequest):
        data = encode_value(BLOCK, BLOCK_VALUES)
        return ReadReply(ADDRESS, BLOCK, data[8:], more=False, seq=1).to_frame().encode()
    if isinstance(message, RelayRequest):
        return Acknowledgement(ADDRESS, Function.RELAY).to_frame().encode()
    return None


class FakeLine:
    """A TCP serial server with DL/T 645 meters behind it; records the raw bytes it got."""

    def __init__(self, respond: Responder = meter) -> None:
        self.respond = respond
        self.raw = bytearray()
        self.messages: list[Message] = []
        self.got = asyncio.Event()
        self.transports: list[asyncio.Transport] = []

    async def start(self, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _LineProtocol(self), "127.0.0.1", port)
        bound: int = self.server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        self.server.close()
        for transport in self.transports:
            transport.close()
        await self.server.wait_closed()
        await asyncio.sleep(0)


class _LineProtocol(asyncio.Protocol):
    def __init__(self, line: FakeLine) -> None:
        self.line = line
        self.decoder = Dlt645Decoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.line.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        self.line.raw += data
        try:
            frames = self.decoder.feed(data)
        except FrameError:
            frames = self.decoder.feed(b"")
        for frame in frames:
            message = parse_message(frame)
            self.line.messages.append(message)
            self.line.got.set()
            out = self.line.respond(message)
            if out == b"close":
                self.transport.close()
            elif out is not None:
                self.transport.write(out)


async def with_line(
    respond: Responder, body: Callable[[Dlt645TcpLink, FakeLine], Awaitable[None]], **options: Any
) -> None:
    line = FakeLine(respond)
    port = await line.start()
    link = Dlt645TcpLink("DL1", "127.0.0.1", port, timeout=0.2, **options)
    try:
        await body(link, line)
    finally:
        await link.close()
        await line.stop()


def test_read_with_preamble(run):
    async def body(link: Dlt645TcpLink, line: FakeLine) -> None:
        assert await link.read(ADDRESS, ENERGY) == Decimal("123456.78")
        assert bytes(line.raw) == ReadRequest(ADDRESS, ENERGY).to_frame().encode(4)
        assert line.raw.startswith(b"\xfe\xfe\xfe\xfe\x68")

    run(with_line(meter, body))


def test_long_read_follows_up(run):
    async def body(link: Dlt645TcpLink, line: FakeLine) -> None:
        assert await link.read(ADDRESS, BLOCK) == BLOCK_VALUES
        assert line.messages == [
            ReadRequest(ADDRESS, BLOCK),
            ReadFollowUpRequest(ADDRESS, BLOCK, 1),
        ]

    run(with_line(meter, body))


def test_relay_sends_the_action_and_expiry(run):
    expiry = datetime(2026, 12, 31, 23, 59, 0)

    async def body(link: Dlt645TcpLink, line: FakeLine) -> None:
        await link.relay(ADDRESS, RelayAction.TRIP, expiry)
        assert line.messages == [
            RelayRequest(ADDRESS, link.password, link.operator, RelayAction.TRIP, expiry)
        ]

    run(with_line(meter, body, password=bytes.fromhex("02123456"), operator=b"OP01"))


def test_broadcast_time_waits_for_no_reply(run):
    when = datetime(2026, 11, 25, 14, 0, 5)

    async def body(link: Dlt645TcpLink, line: FakeLine) -> None:
        await link.broadcast_time(when)
        async with asyncio.timeout(2):
            await line.got.wait()
        assert bytes(line.raw) == BroadcastTime(when).to_frame().encode(4)

    run(with_line(meter, body))


@pytest.mark.parametrize(
    ("respond", "error", "reason"),
    [
        (
            lambda m: ErrorReply(ADDRESS, Function.READ, 0x06).to_frame().encode(),
            Dlt645Refused,
            "no requested data, password error or unauthorised (0x06)",
        ),
        (
            lambda m: ReadReply.of("000000000099", ENERGY, Decimal(1)).to_frame().encode(),
            BadReply,
            "reply from meter 000000000099, expected 000000000031",
        ),
        (
            lambda m: ReadReply.of(ADDRESS, 0x00010000, Decimal(1)).to_frame().encode(),
            BadReply,
            "data identifier 00010000, expected 00000000",
        ),
        (
            lambda m: (
                ReadReply.of(ADDRESS, ENERGY, Decimal(1)).to_frame().encode()[:-2] + b"\x00\x16"
            ),
            BadReply,
            "bad DL/T 645 checksum",
        ),
        (lambda m: None, LinkTimeout, "no reply within 0.2 s"),
        (lambda m: b"close", LinkDown, "closed by the peer"),
    ],
    ids=["error-reply", "wrong-address", "wrong-di", "bad-checksum", "timeout", "peer-closes"],
)
def test_failures_are_typed(run, respond, error, reason):
    async def body(link: Dlt645TcpLink, line: FakeLine) -> None:
        with pytest.raises(error, match=re.escape(reason)):
            await link.read(ADDRESS, ENERGY)

    run(with_line(respond, body))


def test_refusal_carries_the_error_names(run):
    def respond(message: Message) -> bytes:
        return ErrorReply(ADDRESS, Function.RELAY, 0x04).to_frame().encode()

    async def body(link: Dlt645TcpLink, line: FakeLine) -> None:
        with pytest.raises(Dlt645Refused) as caught:
            await link.relay(ADDRESS, RelayAction.ALLOW_CLOSE, datetime(2027, 1, 1))
        assert caught.value.names == ("password error or unauthorised",)
        assert (caught.value.function, caught.value.error) == (Function.RELAY, 0x04)

    run(with_line(respond, body))


def test_echoed_request_is_skipped(run):
    def respond(message: Message) -> bytes | None:
        echo = ReadRequest(ADDRESS, ENERGY).to_frame().encode(2)
        return echo + (meter(message) or b"")

    async def body(link: Dlt645TcpLink, line: FakeLine) -> None:
        assert await link.read(ADDRESS, ENERGY) == Decimal("123456.78")

    run(with_line(respond, body))


def test_unknown_data_identifier_is_refused_before_sending(run):
    async def body(link: Dlt645TcpLink, line: FakeLine) -> None:
        with pytest.raises(ValueError, match="unknown DL/T 645 data identifier 12345678"):
            await link.read(ADDRESS, 0x12345678)
        assert line.raw == b""

    run(with_line(meter, body))


def test_reconnects_after_its_backoff(run):
    clock = ManualClock()

    async def main() -> None:
        line = FakeLine()
        port = await line.start()
        await line.stop()
        link = Dlt645TcpLink(
            "DL1", "127.0.0.1", port, timeout=0.2, clock=clock, backoff=Backoff(2.0, 8.0)
        )
        try:
            with pytest.raises(LinkDown, match="connect to"):
                await link.read(ADDRESS, ENERGY)
            await line.start(port)
            with pytest.raises(LinkDown, match=re.escape("next attempt in 2.00 s")):
                await link.read(ADDRESS, ENERGY)
            clock.advance(2.0)
            assert await link.read(ADDRESS, ENERGY) == Decimal("123456.78")
        finally:
            await link.close()
            await line.stop()

    run(main())


def test_reply_check_accepts_any_address_for_a_wildcard_request():
    request = Dlt645Frame("AAAAAAAAAAAA", Function.READ_ADDRESS)
    reply = Dlt645Frame(ADDRESS, Function.READ_ADDRESS | 0x80, bytes.fromhex("310000000000"))
    assert dlt645_reply_error("x", request, reply) is None
    not_reply = Dlt645Frame(ADDRESS, Function.READ_ADDRESS)
    error = dlt645_reply_error("x", request, not_reply)
    assert isinstance(error, BadReply)
    assert "is not a reply" in error.reason
