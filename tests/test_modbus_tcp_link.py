"""The Modbus TCP gateway link against a minimal in-test Modbus TCP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import config
from protocols.dialed_link import Backoff
from protocols.errors import FrameError
from protocols.link_errors import BadReply, LinkDown, LinkTimeout, ModbusException
from protocols.modbus_rtu import (
    ExceptionReply,
    ReadHoldingRegisters,
    RegistersReply,
    Request,
    WriteReply,
    WriteSingleRegister,
)
from protocols.modbus_tcp import MbapDecoder, MbapFrame, Sender, encode_reply
from protocols.modbus_tcp_link import ModbusTcpLink
from server.clock import ManualClock

# What the server does with a request: the bytes to send back (None: stay silent), or CLOSE.
CLOSE = b"close"
Handler = Callable[[MbapFrame[Request]], bytes | None]


def registers_of(request: ReadHoldingRegisters) -> tuple[int, ...]:
    return tuple((request.address + i) & 0xFFFF for i in range(request.count))


def answer(frame: MbapFrame[Request]) -> bytes:
    """The correct reply: registers equal to their address, writes echoed."""
    request = frame.message
    if isinstance(request, ReadHoldingRegisters):
        reply = RegistersReply(request.slave, 3, registers_of(request))
        return encode_reply(frame.transaction_id, reply)
    if isinstance(request, WriteSingleRegister):
        echo = WriteReply(request.slave, 6, request.address, request.value)
    else:
        echo = WriteReply(request.slave, 16, request.address, len(request.values))
    return encode_reply(frame.transaction_id, echo)


class FakeGateway:
    """A Modbus TCP server whose behaviour per request is a handler; it counts what it sees."""

    def __init__(self, handler: Handler = answer) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[MbapFrame[Request]] = []
        self.outstanding = 0
        self.max_outstanding = 0
        self.server: asyncio.Server | None = None
        self.transports: list[asyncio.Transport] = []
        self.port = 0

    async def start(self, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _GatewayProtocol(self), "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for transport in self.transports:
            transport.close()
        await self.server.wait_closed()
        await asyncio.sleep(0)


class _GatewayProtocol(asyncio.Protocol):
    def __init__(self, gateway: FakeGateway) -> None:
        self.gateway = gateway
        self.decoder = MbapDecoder(Sender.CLIENT)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.gateway.connections += 1
        self.gateway.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except FrameError:
            frames = self.decoder.feed(b"")
        gateway = self.gateway
        for frame in frames:
            gateway.requests.append(frame)
            gateway.outstanding += 1
            gateway.max_outstanding = max(gateway.max_outstanding, gateway.outstanding)
            out = gateway.handler(frame)
            if out == CLOSE:
                self.transport.close()
                return
            if out is not None:
                gateway.outstanding -= 1
                # Reply on the next loop turn, so requests could overlap if the link let them.
                asyncio.get_running_loop().call_soon(self.transport.write, out)


async def with_gateway(
    handler: Handler, body: Callable[[ModbusTcpLink, FakeGateway], Awaitable[None]], **options: Any
) -> None:
    gateway = FakeGateway(handler)
    port = await gateway.start()
    link = ModbusTcpLink("GW9", "127.0.0.1", port, timeout=0.2, **options)
    try:
        await body(link, gateway)
    finally:
        await link.close()
        await gateway.stop()


def test_read_and_write_round_trip_and_report_online(run):
    clock = ManualClock(1_700_000_000.0)
    states: list[tuple[str, str, bool, float]] = []

    async def body(link: ModbusTcpLink, gateway: FakeGateway) -> None:
        assert await link.read(3, 0x61, 6) == (0x61, 0x62, 0x63, 0x64, 0x65, 0x66)
        await link.write(3, 0x57, [1, 1])
        await link.write_register(3, 0x57, 0)
        assert [f.message.function for f in gateway.requests] == [3, 16, 6]
        assert [f.transaction_id for f in gateway.requests] == [1, 2, 3]
        assert link.last_reply_at == clock.time()
        assert gateway.connections == 1

    run(with_gateway(answer, body, clock=clock, on_state=lambda *s: states.append(s)))
    assert states == [
        ("modbus_tcp", "GW9", True, clock.time()),
        ("modbus_tcp", "GW9", False, clock.time()),
    ]


def test_one_request_in_flight(run):
    async def body(link: ModbusTcpLink, gateway: FakeGateway) -> None:
        results = await asyncio.gather(*(link.read(1, 10 * i, 2) for i in range(8)))
        assert results == [(10 * i, 10 * i + 1) for i in range(8)]
        assert gateway.max_outstanding == 1

    run(with_gateway(answer, body))


def test_timeout_then_the_late_reply_is_dropped(run):
    held: list[MbapFrame[Request]] = []

    def handler(frame: MbapFrame[Request]) -> bytes | None:
        if not held:
            held.append(frame)
            return None
        # The late reply to the first request, then the right one.
        return answer(held[0]) + answer(frame)

    async def body(link: ModbusTcpLink, gateway: FakeGateway) -> None:
        with pytest.raises(LinkTimeout, match=re.escape("GW9: no reply within 0.2 s")):
            await link.read(1, 0, 4)
        assert await link.read(1, 100, 2) == (100, 101)

    run(with_gateway(handler, body))


def test_a_cancelled_request_does_not_spoil_the_next(run):
    held: list[MbapFrame[Request]] = []
    arrived = asyncio.Event()

    def handler(frame: MbapFrame[Request]) -> bytes | None:
        if not held:
            held.append(frame)
            arrived.set()
            return None
        return answer(held[0]) + answer(frame)

    async def body(link: ModbusTcpLink, gateway: FakeGateway) -> None:
        first = asyncio.ensure_future(link.read(1, 0, 4))
        await arrived.wait()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await link.read(1, 100, 2) == (100, 101)

    run(with_gateway(handler, body))


def test_peer_closes_mid_request_then_reconnects(run):
    def handler(frame: MbapFrame[Request]) -> bytes | None:
        return CLOSE if frame.message.address == 666 else answer(frame)

    async def body(link: ModbusTcpLink, gateway: FakeGateway) -> None:
        with pytest.raises(LinkDown, match="closed by the peer"):
            await link.read(1, 666, 1)
        assert not link.online
        assert await link.read(1, 5, 1) == (5,)
        assert gateway.connections == 2

    run(with_gateway(handler, body))


@pytest.mark.parametrize(
    ("mangle", "error", "reason"),
    [
        (
            lambda f: encode_reply(f.transaction_id, RegistersReply(7, 3, (1,))),
            BadReply,
            "reply from unit 7, expected unit 1",
        ),
        (
            lambda f: encode_reply(f.transaction_id + 5, RegistersReply(1, 3, (1,))),
            BadReply,
            "transaction id 6, expected 1",
        ),
        (
            lambda f: encode_reply(f.transaction_id, RegistersReply(1, 3, (1, 2))),
            BadReply,
            "carries 2 registers, expected 1",
        ),
        (
            lambda f: encode_reply(f.transaction_id, WriteReply(1, 6, 0, 1)),
            BadReply,
            "function 0x06, expected 0x03",
        ),
        (
            lambda f: encode_reply(f.transaction_id, ExceptionReply(1, 3, 2)),
            ModbusException,
            "illegal data address \\(code 2\\)",
        ),
        (
            lambda f: f.transaction_id.to_bytes(2, "big") + bytes.fromhex("0000 0004 01 03 03 00"),
            BadReply,
            "corrupt frame",
        ),
    ],
)
def test_wrong_replies_are_typed_errors_and_the_link_recovers(run, mangle, error, reason):
    def handler(frame: MbapFrame[Request]) -> bytes | None:
        return mangle(frame) if frame.message.address == 0 else answer(frame)

    async def body(link: ModbusTcpLink, gateway: FakeGateway) -> None:
        with pytest.raises(error, match=reason):
            await link.read(1, 0, 1)
        assert await link.read(1, 9, 1) == (9,)

    run(with_gateway(handler, body))


def test_exception_carries_its_code(run):
    async def body(link: ModbusTcpLink, gateway: FakeGateway) -> None:
        with pytest.raises(ModbusException) as caught:
            await link.write(1, 0, [1])
        assert (caught.value.function, caught.value.code) == (16, 4)

    run(with_gateway(lambda f: encode_reply(f.transaction_id, ExceptionReply(1, 16, 4)), body))


def test_write_echo_must_match(run):
    def handler(frame: MbapFrame[Request]) -> bytes | None:
        return encode_reply(frame.transaction_id, WriteReply(1, 16, 0x57, 3))

    async def body(link: ModbusTcpLink, gateway: FakeGateway) -> None:
        with pytest.raises(BadReply, match="write echo 87/3 does not match 87/2"):
            await link.write(1, 0x57, [1, 0])

    run(with_gateway(handler, body))


def test_bad_request_is_a_value_error_and_sends_nothing(run):
    async def body(link: ModbusTcpLink, gateway: FakeGateway) -> None:
        with pytest.raises(ValueError, match="register count 200"):
            await link.read(1, 0, 200)
        assert gateway.requests == []

    run(with_gateway(answer, body))


def test_reconnect_backs_off_exponentially_on_the_clock(run):
    clock = ManualClock()

    async def main() -> None:
        gateway = FakeGateway()
        port = await gateway.start()
        await gateway.stop()
        link = ModbusTcpLink(
            "GW9", "127.0.0.1", port, timeout=0.2, clock=clock, backoff=Backoff(1.0, 4.0)
        )
        try:
            with pytest.raises(LinkDown, match=re.escape("connect to 127.0.0.1")):
                await link.read(1, 0, 1)
            with pytest.raises(LinkDown, match=re.escape("next attempt in 1.00 s")):
                await link.read(1, 0, 1)
            clock.advance(1.0)
            with pytest.raises(LinkDown, match="connect to"):
                await link.read(1, 0, 1)
            clock.advance(1.5)
            with pytest.raises(LinkDown, match=re.escape("next attempt in 0.50 s")):
                await link.read(1, 0, 1)
            clock.advance(0.5)
            with pytest.raises(LinkDown, match="connect to"):
                await link.read(1, 0, 1)
            clock.advance(4.0)  # capped: 1, 2, 4
            await gateway.start(port)
            assert await link.read(1, 3, 1) == (3,)
            assert link.online
        finally:
            await link.close()
            await gateway.stop()

    run(main())


def test_backoff_doubles_to_its_cap_and_resets():
    backoff = Backoff(0.5, 3.0)
    assert [backoff.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.failed() == 0.5
    with pytest.raises(ValueError, match="0 < initial <= maximum"):
        Backoff(2.0, 1.0)


def test_close_fails_the_request_in_flight(run):
    arrived = asyncio.Event()

    def handler(frame: MbapFrame[Request]) -> bytes | None:
        arrived.set()
        return None

    async def body(link: ModbusTcpLink, gateway: FakeGateway) -> None:
        pending = asyncio.ensure_future(link.read(1, 0, 1))
        await arrived.wait()
        await link.close()
        with pytest.raises(LinkDown, match="link closed"):
            await pending
        with pytest.raises(LinkDown, match="link closed"):
            await link.read(1, 0, 1)

    run(with_gateway(handler, body))


def test_for_gateway_uses_the_site_model():
    site = config.load_site(Path(config.__file__).parent / "examples" / "small")
    gateways = {g.id: g for g in site.gateways}
    link = ModbusTcpLink.for_gateway(gateways["GW003"], timeout=0.5)
    assert (link.id, link.host, link.port, link.timeout) == ("GW003", "127.0.0.1", 1502, 0.5)
    with pytest.raises(ValueError, match="GW001 is not a modbus_tcp gateway"):
        ModbusTcpLink.for_gateway(gateways["GW001"])
