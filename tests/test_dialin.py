"""The dial-in listener against minimal in-test DTU gateways and 4G meters on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import config
from config.model import Gateway
from protocols import acrel4g
from protocols.dialin import DialinListener
from protocols.dlt645 import Dlt645Decoder, Dlt645Frame, Function
from protocols.dlt645_messages import ErrorReply, ReadReply, ReadRequest, parse_message
from protocols.errors import FrameError
from protocols.link_errors import BadReply, Dlt645Refused, LinkDown, LinkTimeout, ModbusException
from protocols.modbus_rtu import (
    ExceptionReply,
    ReadHoldingRegisters,
    RegistersReply,
    Request,
    RtuRequestDecoder,
    WriteMultipleRegisters,
    WriteReply,
)
from server.clock import ManualClock

GATEWAYS = [
    Gateway("GW001", "dtu", "ENT", "modbus_rtu", registration=b"GW001", heartbeat=b"HB"),
    Gateway("GW002", "dtu", "ENT", "dlt645", registration=bytes.fromhex("A1B2C3D4")),
    Gateway("GW003", "modbus_tcp", "ENT", "modbus_rtu", host="127.0.0.1", port=1502),
]
SERIALS = ["860000000000001", "860000000000002"]
Responder = Callable[[Request], list[bytes]]
ACK = bytes.fromhex("7B7B84BF237D7D")
WAIT = 2.0


class States:
    """The listener's on_state calls, awaitable."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool, float]] = []
        self.changed = asyncio.Event()

    def __call__(self, kind: str, device: str, online: bool, at: float) -> None:
        self.seen.append((kind, device, online, at))
        self.changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


def registers_of(request: ReadHoldingRegisters) -> tuple[int, ...]:
    return tuple((request.address + i) & 0xFFFF for i in range(request.count))


def rtu_answer(request: Request) -> bytes:
    if isinstance(request, ReadHoldingRegisters):
        return RegistersReply(request.slave, 3, registers_of(request)).encode()
    assert isinstance(request, WriteMultipleRegisters)
    return WriteReply(request.slave, 16, request.address, len(request.values)).encode()


class FakeDtu:
    """A DTU gateway: registers, then answers each RTU request with `respond(request)`."""

    def __init__(self, port: int, registration: bytes, respond: Responder | None = None) -> None:
        self.port = port
        self.registration = registration
        self.respond = respond or (lambda request: [rtu_answer(request)])
        self.requests: list[Request] = []
        self.got_request = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def connect(self, *chunks: bytes) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        for chunk in chunks or (self.registration,):
            self.writer.write(chunk)
            await self.writer.drain()
        self.task = asyncio.ensure_future(self._serve())

    async def _serve(self) -> None:
        decoder = RtuRequestDecoder()
        while data := await self.reader.read(4096):
            for request in decoder.feed(data):
                self.requests.append(request)
                self.got_request.set()
                for chunk in self.respond(request):
                    if chunk == b"close":
                        self.writer.close()
                        return
                    self.writer.write(chunk)
                    await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        await self.writer.wait_closed()


async def with_listener(
    body: Callable[[DialinListener, int, States], Awaitable[None]],
    *,
    request_timeout: float = 0.2,
    **options: Any,
) -> States:
    states = States()
    listener = DialinListener(
        GATEWAYS, SERIALS, request_timeout=request_timeout, on_state=states, **options
    )
    port = await listener.start("127.0.0.1", 0)
    try:
        await body(listener, port, states)
    finally:
        await listener.close()
    return states


def chunks(*parts: bytes) -> Responder:
    """A responder that sends `parts` (with the right reply for b'ok') as separate writes."""

    def respond(request: Request) -> list[bytes]:
        return [rtu_answer(request) if part == b"ok" else part for part in parts]

    return respond


async def dtu_session(
    listener: DialinListener, port: int, states: States, respond: Responder | None = None
) -> FakeDtu:
    dtu = FakeDtu(port, b"GW001", respond)
    await dtu.connect()
    await states.until(lambda: listener.online("GW001"))
    return dtu


def test_dtu_registers_reads_and_writes(run):
    clock = ManualClock()

    async def body(listener: DialinListener, port: int, states: States) -> None:
        dtu = await dtu_session(listener, port, states)
        assert await listener.read("GW001", 3, 0x61, 3) == (0x61, 0x62, 0x63)
        await listener.write("GW001", 3, 0x57, [1, 1])
        assert dtu.requests == [
            ReadHoldingRegisters(3, 0x61, 3),
            WriteMultipleRegisters(3, 0x57, (1, 1)),
        ]
        await dtu.close()
        await states.until(lambda: not listener.online("GW001"))

    states = run(with_listener(body, clock=clock))
    assert states.seen == [
        ("dtu", "GW001", True, clock.time()),
        ("dtu", "GW001", False, clock.time()),
    ]


@pytest.mark.parametrize(
    ("respond", "error", "reason"),
    [
        (chunks(), LinkTimeout, "no reply within 0.2 s"),
        (chunks(b"close"), LinkDown, "connection lost"),
        (
            chunks(RegistersReply(7, 3, (1, 2)).encode()),
            BadReply,
            "reply from slave 7, expected slave 1",
        ),
        (chunks(RegistersReply(1, 3, (1, 2)).encode()[:-1] + b"\x00"), BadReply, "bad CRC"),
        (chunks(ExceptionReply(1, 3, 2).encode()), ModbusException, "illegal data address"),
        (chunks(RegistersReply(1, 3, (1,)).encode()), BadReply, "carries 1 registers, expected 2"),
    ],
    ids=["timeout", "peer-closes", "wrong-slave", "corrupt-crc", "exception", "short-reply"],
)
def test_dtu_failures_are_typed(run, respond, error, reason):
    async def body(listener: DialinListener, port: int, states: States) -> None:
        dtu = await dtu_session(listener, port, states, respond)
        with pytest.raises(error, match=reason):
            await listener.read("GW001", 1, 0, 2)
        await dtu.close()

    run(with_listener(body))


def test_after_a_wrong_slave_the_line_is_flushed(run):
    answers = iter(
        [
            # A wrong slave's reply whose tail arrives after the request failed.
            [RegistersReply(9, 3, (1, 2)).encode(), RegistersReply(1, 3, (0, 0)).encode()[:4]],
            [b"ok"],
        ]
    )

    def respond(request: Request) -> list[bytes]:
        return [rtu_answer(request) if p == b"ok" else p for p in next(answers)]

    async def body(listener: DialinListener, port: int, states: States) -> None:
        dtu = await dtu_session(listener, port, states, respond)
        with pytest.raises(BadReply, match="slave 9"):
            await listener.read("GW001", 1, 0, 2)
        assert await listener.read("GW001", 1, 40, 2) == (40, 41)
        await dtu.close()

    run(with_listener(body))


@pytest.mark.parametrize(
    "parts",
    [
        (b"\x00\xff\xfe" + b"ok",),
        (b"\x00\xff\xfe", b"ok"),
        (b"HB", b"ok"),
        (b"HB", b"HB", b"ok", b"HB"),
    ],
    ids=["garbage-same-read", "garbage-then-reply", "heartbeat-first", "heartbeats-around"],
)
def test_dtu_reply_after_garbage_or_heartbeats(run, parts):
    def respond(request: Request) -> list[bytes]:
        out = []
        for part in parts:
            out.append(part.replace(b"ok", rtu_answer(request)))
        return out

    async def body(listener: DialinListener, port: int, states: States) -> None:
        dtu = await dtu_session(listener, port, states, respond)
        assert await listener.read("GW001", 2, 7, 2) == (7, 8)
        await dtu.close()

    run(with_listener(body))


def test_heartbeats_are_tracked_between_requests(run):
    async def body(listener: DialinListener, port: int, states: States) -> None:
        dtu = await dtu_session(listener, port, states, chunks(b"HB", b"ok"))
        await listener.read("GW001", 2, 7, 1)
        dtu.writer.write(b"HB")
        assert await listener.read("GW001", 2, 7, 1) == (7,)
        assert listener.gateways["GW001"].heartbeats == 3
        assert listener.gateways["GW001"].last_heartbeat_at is not None
        await dtu.close()

    run(with_listener(body))


def test_registration_split_across_reads(run):
    async def body(listener: DialinListener, port: int, states: States) -> None:
        dtu = FakeDtu(port, b"GW001")
        await dtu.connect(b"G", b"W0", b"01HB")
        await states.until(lambda: listener.online("GW001"))
        assert await listener.read("GW001", 1, 1, 1) == (1,)
        assert listener.gateways["GW001"].heartbeats == 1
        await dtu.close()

    run(with_listener(body))


def test_dtu_without_a_heartbeat_has_none_recognised(run):
    async def body(listener: DialinListener, port: int, states: States) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        registration = bytes.fromhex("A1B2C3D4")  # GW002 is configured without a heartbeat
        writer.write(registration)
        await states.until(lambda: listener.online("GW002"))
        session = listener.gateways["GW002"]
        writer.write(registration + b"HB")  # a repeated registration is not taken as a beat
        writer.close()
        await writer.wait_closed()
        # The close comes after those bytes on the same socket, so they have been handled.
        await states.until(lambda: not listener.online("GW002"))
        assert session.heartbeats == 0
        assert session.dropped_bytes == len(registration) + 2

    run(with_listener(body))


def test_unknown_registration_is_refused_and_logged_once(run, caplog):
    async def body(listener: DialinListener, port: int, states: States) -> None:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"NOPE-42")
            assert await reader.read() == b""  # the server closed it
            writer.close()
            await writer.wait_closed()
        with pytest.raises(LinkDown, match="no such DTU gateway"):
            await listener.read("GW999", 1, 0, 1)
        with pytest.raises(LinkDown, match="GW001: not connected"):
            await listener.read("GW001", 1, 0, 1)

    with caplog.at_level(logging.WARNING, logger="protocols.dialin"):
        run(with_listener(body))
    refused = [r for r in caplog.records if "refused dial-in registration" in r.getMessage()]
    assert len(refused) == 1
    assert "b'NOPE-42' from 127.0.0.1:" in refused[0].getMessage()


def test_second_connection_replaces_the_first(run):
    async def body(listener: DialinListener, port: int, states: States) -> None:
        first = await dtu_session(listener, port, states, chunks())  # never answers
        pending = asyncio.ensure_future(listener.read("GW001", 1, 0, 1))
        async with asyncio.timeout(WAIT):
            await first.got_request.wait()
        second = FakeDtu(port, b"GW001")
        await second.connect()
        with pytest.raises(
            LinkDown, match=re.escape("replaced by a new connection from 127.0.0.1")
        ):
            await pending
        assert await listener.read("GW001", 1, 5, 1) == (5,)
        assert await first.reader.read() == b""  # the old socket was closed
        await first.close()
        await second.close()
        await states.until(lambda: not listener.online("GW001"))

    states = run(with_listener(body))
    assert [(s[1], s[2]) for s in states.seen] == [("GW001", True), ("GW001", False)]


def test_silent_peer_is_closed_after_the_registration_timeout(run):
    async def body(listener: DialinListener, port: int, states: States) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(WAIT):
            assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()

    run(with_listener(body, registration_timeout=0.1))


def test_dlt645_over_a_dtu_socket(run):
    address = "000000000011"
    di = 0x00000000

    def respond_dlt645(frame: Dlt645Frame) -> bytes:
        message = parse_message(frame)
        assert isinstance(message, ReadRequest)
        if message.di == 0x02010100:
            return ErrorReply(address, Function.READ, 0x02).to_frame().encode()
        return ReadReply.of(address, message.di, Decimal("123456.78")).to_frame().encode()

    async def body(listener: DialinListener, port: int, states: States) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(bytes.fromhex("A1B2C3D4"))
        await states.until(lambda: listener.online("GW002"))

        async def serve() -> None:
            decoder = Dlt645Decoder()
            while data := await reader.read(4096):
                try:
                    frames = decoder.feed(data)
                except FrameError:
                    frames = decoder.feed(b"")
                for frame in frames:
                    writer.write(bytes.fromhex("A1B2C3D4") + respond_dlt645(frame))

        task = asyncio.ensure_future(serve())
        reply = await listener.request_dlt645("GW002", ReadRequest(address, di).to_frame())
        message = parse_message(reply)
        assert isinstance(message, ReadReply)
        assert message.value() == Decimal("123456.78")
        assert message.data == bytes.fromhex("78563412")
        with pytest.raises(Dlt645Refused, match="no requested data"):
            await listener.request_dlt645("GW002", ReadRequest(address, 0x02010100).to_frame())
        with pytest.raises(ValueError, match="speaks dlt645, not modbus_rtu"):
            await listener.read("GW002", 1, 0, 1)
        writer.close()
        await asyncio.gather(task, return_exceptions=True)
        await writer.wait_closed()

    run(with_listener(body))


class Fake4G:
    """An Acrel 4G meter: registers, beats, uploads, answers downlinks, records time syncs."""

    def __init__(self, port: int, serial: str) -> None:
        self.port = port
        self.serial = serial
        self.received: list[acrel4g.Frame] = []
        self.arrived = asyncio.Event()

    async def connect(self) -> bytes:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        registration = acrel4g.Registration(self.serial, "8986" + "0" * 16, 23, (1, 2, 3), 30)
        self.writer.write(registration.encode())
        ack = await self.reader.readexactly(len(ACK))
        self.task = asyncio.ensure_future(self._serve())
        return ack

    async def _serve(self) -> None:
        decoder = acrel4g.Acrel4GDecoder(acrel4g.Sender.SERVER)
        while data := await self.reader.read(4096):
            for frame in decoder.feed(data):
                self.received.append(frame)
                self.arrived.set()
                if isinstance(frame, acrel4g.Downlink):
                    assert isinstance(frame.request, ReadHoldingRegisters)
                    reply = RegistersReply(frame.request.slave, 3, registers_of(frame.request))
                    self.writer.write(acrel4g.DownlinkReply(reply).encode())

    async def close(self) -> None:
        self.writer.close()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.writer.wait_closed()


def test_4g_meter_register_heartbeat_upload_downlink_time_sync(run):
    clock = ManualClock()
    uploads: list[tuple[str, tuple[int, ...], float]] = []
    got_upload = asyncio.Event()

    def on_upload(serial: str, registers: tuple[int, ...], at: float) -> None:
        uploads.append((serial, registers, at))
        got_upload.set()

    async def body(listener: DialinListener, port: int, states: States) -> None:
        meter = Fake4G(port, SERIALS[0])
        assert await meter.connect() == ACK
        await states.until(lambda: listener.online(SERIALS[0]))
        meter.writer.write(acrel4g.Heartbeat().encode())
        block = tuple(range(48))
        meter.writer.write(acrel4g.DataUpload(SERIALS[0], RegistersReply(1, 3, block)).encode())
        async with asyncio.timeout(WAIT):
            await got_upload.wait()
        assert uploads == [(SERIALS[0], block, clock.time())]
        assert listener.meters[SERIALS[0]].heartbeats == 1
        reply = await listener.downlink(SERIALS[0], ReadHoldingRegisters(1, 0x4F, 2))
        assert reply == RegistersReply(1, 3, (0x4F, 0x50))
        await listener.time_sync(SERIALS[0], datetime(2026, 11, 22, 8, 30, 15))
        async with asyncio.timeout(WAIT):
            while not any(isinstance(f, acrel4g.TimeSync) for f in meter.received):
                meter.arrived.clear()
                await meter.arrived.wait()
        sync = [f for f in meter.received if isinstance(f, acrel4g.TimeSync)]
        assert sync == [acrel4g.TimeSync(datetime(2026, 11, 22, 8, 30, 15))]
        # 2026-11-22 is a Sunday: weekday 0 on the wire.
        assert acrel4g.TimeSync(datetime(2026, 11, 22, 8, 30, 15)).encode()[3:10] == bytes(
            [26, 11, 22, 0, 8, 30, 15]
        )
        await meter.close()
        await states.until(lambda: not listener.online(SERIALS[0]))

    states = run(with_listener(body, clock=clock, on_upload=on_upload))
    assert states.seen[0] == ("meter4g", SERIALS[0], True, clock.time())


def test_unknown_4g_meter_is_refused(run):
    async def body(listener: DialinListener, port: int, states: States) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(acrel4g.Registration("999", "1", 1, (1, 0, 0), 30).encode())
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        with pytest.raises(LinkDown, match="no such 4G meter"):
            await listener.downlink("999", ReadHoldingRegisters(1, 0, 1))

    run(with_listener(body))


def test_4g_downlink_timeout(run):
    async def body(listener: DialinListener, port: int, states: States) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(acrel4g.Registration(SERIALS[1], "1", 1, (1, 0, 0), 30).encode())
        assert await reader.readexactly(len(ACK)) == ACK
        with pytest.raises(LinkTimeout):
            await listener.downlink(SERIALS[1], ReadHoldingRegisters(1, 0, 1))
        writer.close()
        await writer.wait_closed()

    run(with_listener(body))


def test_junk_from_many_clients_never_escapes(run, caplog):
    rng = random.Random(645)
    failures: list[dict[str, Any]] = []

    async def body(listener: DialinListener, port: int, states: States) -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: failures.append(ctx))

        async def junk(seed: int) -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            prefix = [
                b"",
                b"GW001",
                acrel4g.Registration(SERIALS[0], "1", 1, (1, 0, 0), 30).encode(),
                b"\x7b\x7b",
            ][seed % 4]
            writer.write(prefix)
            for _ in range(20):
                writer.write(rng.randbytes(rng.randrange(1, 300)))
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        await asyncio.gather(*(junk(i) for i in range(12)))
        await states.until(lambda: not listener.gateways and not listener.meters)
        dtu = await dtu_session(listener, port, states)
        assert await listener.read("GW001", 1, 2, 1) == (2,)
        await dtu.close()

    with caplog.at_level(logging.WARNING):
        run(with_listener(body))
    assert failures == []
    assert not [r for r in caplog.records if "broke its handler" in r.getMessage()]


def test_for_site_reads_the_example_site():
    site = config.load_site(Path(config.__file__).parent / "examples" / "small")
    listener = DialinListener.for_site(site)
    assert listener.request_timeout == site.acquisition.request_timeout_ms / 1000
    assert sorted(listener._protocols) == ["GW001", "GW002"]
    assert listener._serials == {"860000000000001", "860000000000002"}
