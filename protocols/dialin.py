"""The dial-in listener: DTU gateways and Acrel 4G meters connect here and are served by id.

The first bytes of a connection decide what it is: an Acrel 4G registration frame (7B 7B 84)
makes a 4G meter session, anything else goes to `DtuSession` to be matched against the
configured gateways' registration packets; a gateway configured without a heartbeat has
none recognised. An unknown id is refused and logged once per id; a second connection with
a known id replaces the first; a peer that says nothing within the registration timeout is
closed. No peer's bytes or failure escape into the server: each is logged once and costs
only that peer its connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from config.model import Gateway, Site
from protocols import acrel4g
from protocols.dialed_link import Clock, StateCallback, WallClock
from protocols.dialin_sessions import (
    DialinSession,
    DtuGatewaySession,
    Meter4GSession,
    UploadCallback,
)
from protocols.dlt645 import Dlt645Frame
from protocols.dtu import DtuIdentity, DtuSession, Registered, UnknownRegistration
from protocols.errors import FrameError
from protocols.link_errors import LinkDown
from protocols.modbus_rtu import (
    ReadHoldingRegisters,
    RegistersReply,
    Reply,
    Request,
    WriteMultipleRegisters,
)

log = logging.getLogger(__name__)

REGISTER_4G = acrel4g.HEAD + bytes((acrel4g.Command.REGISTER,))
MAX_LOGGED = 4096
MAX_UNREGISTERED_BYTES = 4096


class DialinListener:
    """The asyncio server on the dial-in port and the registry of its registered sessions."""

    def __init__(
        self,
        gateways: Iterable[Gateway],
        meter_serials: Iterable[str],
        *,
        request_timeout: float = 1.0,
        registration_timeout: float = 30.0,
        on_upload: UploadCallback | None = None,
        on_state: StateCallback | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.request_timeout = request_timeout
        self.registration_timeout = registration_timeout
        self.on_upload = on_upload
        self.on_state = on_state
        self.clock: Clock = clock if clock is not None else WallClock()
        self._protocols: dict[str, str] = {}
        identities = []
        for gateway in gateways:
            if gateway.kind != "dtu":
                continue
            if gateway.registration is None:
                raise ValueError(f"DTU gateway {gateway.id} has no registration packet")
            identities.append(DtuIdentity(gateway.id, gateway.registration, gateway.heartbeat))
            self._protocols[gateway.id] = gateway.protocol
        self._identities = tuple(identities)
        DtuSession(self._identities)  # refuses ambiguous registration packets now, not per peer
        self._serials = frozenset(meter_serials)
        self.gateways: dict[str, DtuGatewaySession] = {}
        self.meters: dict[str, Meter4GSession] = {}
        self._connections: set[_DialinConnection] = set()
        self._logged: set[tuple[str, str]] = set()
        self._server: asyncio.Server | None = None

    @classmethod
    def for_site(cls, site: Site, **options: Any) -> DialinListener:
        """The listener for a site's DTU gateways and direct 4G meters."""
        serials = [m.serial for m in site.direct_meters() if m.serial]
        options.setdefault("request_timeout", site.acquisition.request_timeout_ms / 1000)
        return cls(site.gateways, serials, **options)

    async def start(self, host: str, port: int) -> int:
        """Listen on `host:port` (0 for an ephemeral port); return the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _DialinConnection(self), host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        log.info("dial-in listener on %s:%s", host, bound)
        return bound

    async def close(self) -> None:
        """Stop listening, close every connection and fail the requests in flight."""
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        for connection in connections:
            connection.close("listener closed")
        if self._server is not None:
            await self._server.wait_closed()
        await asyncio.gather(*(c.lost for c in connections))

    def online(self, device_id: str) -> bool:
        """Whether a DTU gateway or 4G meter of this id is connected and registered."""
        return device_id in self.gateways or device_id in self.meters

    async def request(self, gateway_id: str, request: Request) -> Reply:
        """One Modbus-RTU request to a meter behind a DTU gateway; its checked reply."""
        return await self._gateway(gateway_id).request(request)

    async def read(self, gateway_id: str, slave: int, address: int, count: int) -> tuple[int, ...]:
        """The `count` holding registers from `address` of `slave` behind a DTU gateway."""
        reply = await self.request(gateway_id, ReadHoldingRegisters(slave, address, count))
        assert isinstance(reply, RegistersReply)
        return reply.registers

    async def write(self, gateway_id: str, slave: int, address: int, values: Sequence[int]) -> None:
        """Write registers (function 16) of `slave` behind a DTU gateway."""
        await self.request(gateway_id, WriteMultipleRegisters(slave, address, tuple(values)))

    async def request_dlt645(self, gateway_id: str, frame: Dlt645Frame) -> Dlt645Frame:
        """One DL/T 645 frame to a meter behind a DTU gateway; the meter's normal reply."""
        return await self._gateway(gateway_id).request_dlt645(frame)

    async def broadcast_dlt645(self, gateway_id: str, frame: Dlt645Frame) -> None:
        """A DL/T 645 frame without a reply (broadcast time) through a DTU gateway."""
        await self._gateway(gateway_id).broadcast_dlt645(frame)

    async def downlink(self, serial: str, request: Request) -> Reply:
        """A Modbus-RTU request passed through (0x90) to a 4G meter; its checked reply."""
        return await self._meter(serial).downlink(request)

    async def time_sync(self, serial: str, when: datetime) -> None:
        """Set a 4G meter's clock (0x93)."""
        await self._meter(serial).time_sync(when)

    def _gateway(self, gateway_id: str) -> DtuGatewaySession:
        session = self.gateways.get(gateway_id)
        if session is None:
            known = gateway_id in self._protocols
            raise LinkDown(gateway_id, "not connected" if known else "no such DTU gateway")
        return session

    def _meter(self, serial: str) -> Meter4GSession:
        session = self.meters.get(serial)
        if session is None:
            known = serial in self._serials
            raise LinkDown(serial, "not connected" if known else "no such 4G meter")
        return session

    def _bind(self, session: DialinSession) -> None:
        """Register a session under its id, replacing (and closing) an earlier connection."""
        registry: dict[str, Any] = self.gateways if session.kind == "dtu" else self.meters
        old = registry.get(session.id)
        registry[session.id] = session
        if old is not None:
            log.info("%s %s reconnected from %s", session.kind, session.id, session.peer)
            old.close(f"replaced by a new connection from {session.peer}")
        else:
            log.info("%s %s online from %s", session.kind, session.id, session.peer)
            self._state(session, True)

    def _unbind(self, session: DialinSession) -> None:
        registry: dict[str, Any] = self.gateways if session.kind == "dtu" else self.meters
        if registry.get(session.id) is session:
            del registry[session.id]
            log.info("%s %s offline", session.kind, session.id)
            self._state(session, False)

    def _state(self, session: DialinSession, online: bool) -> None:
        if self.on_state is None:
            return
        try:
            self.on_state(session.kind, session.id, online, self.clock.time())
        except Exception:
            log.exception("on_state callback failed for %s %s", session.kind, session.id)

    def log_once(self, what: str, key: str, message: str, *args: object) -> None:
        """Log a peer's failure the first time it happens for `(what, key)`."""
        if (what, key) in self._logged:
            return
        if len(self._logged) < MAX_LOGGED:
            self._logged.add((what, key))
        log.warning(message, *args)


class _DialinConnection(asyncio.Protocol):
    """One accepted socket: classify it, register it, then hand its bytes to its session."""

    def __init__(self, listener: DialinListener) -> None:
        self.listener = listener
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.pending = b""
        self.dtu: DtuSession | None = None
        self.meter_decoder: acrel4g.Acrel4GDecoder | None = None
        self.session: DtuGatewaySession | Meter4GSession | None = None
        self.unregistered_bytes = 0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.listener._connections.add(self)
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.listener.registration_timeout, self._too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.listener._connections.discard(self)
        session = self.session
        if session is not None:
            session.close("connection lost" if exc is None else f"connection lost: {exc}")
            self.listener._unbind(session)
        if not self.lost.done():
            self.lost.set_result(None)

    def close(self, reason: str) -> None:
        """Close this connection (and its session's request in flight)."""
        if self.session is not None:
            self.session.close(reason)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            self._handle(data)
        except Exception as exc:
            self.listener.log_once(
                "crash", type(exc).__name__, "dial-in peer %s broke its handler: %r", self.peer, exc
            )
            log.debug("dial-in handler failure", exc_info=True)
            self.close(f"handler failed: {exc!r}")

    def _too_slow(self) -> None:
        if self.session is None:
            log.info("dial-in peer %s did not register in time; closed", self.peer)
            self.close("no registration in time")

    def _handle(self, data: bytes) -> None:
        at = self.listener.clock.time()
        session = self.session
        if isinstance(session, DtuGatewaySession):
            assert self.dtu is not None
            session.received(self.dtu.feed(data), at)
            return
        if isinstance(session, Meter4GSession):
            session.received(self._frames(data, session), at)
            return
        self.unregistered_bytes += len(data)
        if self.unregistered_bytes > MAX_UNREGISTERED_BYTES:
            self.close("too many bytes without a registration")
            return
        if self.dtu is None and self.meter_decoder is None:
            head = self.pending + data
            if len(head) < len(REGISTER_4G) and REGISTER_4G.startswith(head):
                self.pending = head
                return
            self.pending = b""
            data = head
            if head.startswith(REGISTER_4G):
                self.meter_decoder = acrel4g.Acrel4GDecoder(acrel4g.Sender.METER)
            else:
                self.dtu = DtuSession(self.listener._identities)
        if self.dtu is not None:
            self._register_dtu(self.dtu.feed(data), at)
        else:
            self._register_meter(self._frames(data, None), at)

    def _frames(self, data: bytes, session: Meter4GSession | None) -> list[acrel4g.Frame]:
        assert self.meter_decoder is not None
        try:
            return self.meter_decoder.feed(data)
        except FrameError as exc:
            if session is not None:
                session.corrupt(exc.reason)
            return self.meter_decoder.feed(b"")

    def _register_dtu(self, events: list[Any], at: float) -> None:
        assert self.transport is not None
        for index, event in enumerate(events):
            if isinstance(event, UnknownRegistration):
                shown = event.payload[:32]
                self.listener.log_once(
                    "refused",
                    shown.hex(),
                    "refused dial-in registration %r from %s",
                    shown,
                    self.peer,
                )
                self.close("unknown registration")
                return
            if isinstance(event, Registered):
                listener = self.listener
                session = DtuGatewaySession(
                    event.id,
                    listener._protocols[event.id],
                    self.transport,
                    self.peer,
                    listener.request_timeout,
                )
                self._registered(session)
                session.received(events[index + 1 :], at)
                return

    def _register_meter(self, frames: list[acrel4g.Frame], at: float) -> None:
        assert self.transport is not None
        for index, frame in enumerate(frames):
            if not isinstance(frame, acrel4g.Registration):
                continue  # nothing counts before the meter says who it is
            if frame.serial not in self.listener._serials:
                self.listener.log_once(
                    "refused", frame.serial, "refused 4G meter %r from %s", frame.serial, self.peer
                )
                self.close("unknown 4G meter")
                return
            self.transport.write(acrel4g.RegistrationAck().encode())
            listener = self.listener
            session = Meter4GSession(
                frame.serial,
                self.transport,
                self.peer,
                listener.request_timeout,
                listener.on_upload,
            )
            self._registered(session)
            session.received(frames[index + 1 :], at)
            return

    def _registered(self, session: DtuGatewaySession | Meter4GSession) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.session = session
        self.listener._bind(session)
