"""Meter channels: the one way to read or write one meter's registers, shared by polls and commands.

Every link carries one request at a time. A `SharedLine` is that link as the acquisition
sees it: a FIFO lock around the link's read and write, held per request, so a command
waits for at most the one poll request in flight on its gateway and never interleaves with
it. A poll group reads through the same `SharedLine` as the channels of its meters; that
is how "commands and polls never have two requests in flight on one gateway" holds.

Three kinds of line: a Modbus TCP gateway (unit id = the meter's slave address), a DTU
gateway that dialled in (Modbus RTU over its socket, by slave address), and a direct 4G
meter, whose Modbus requests travel inside 0x90 downlink frames. A 4G meter is addressed
as Modbus slave 1: it is the only device on its link and answers to its own address,
which the Acrel 4G meters keep at the factory default 1 (the simulator does the same).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from config.profile import RegisterProfile
from protocols.dialin import DialinListener
from protocols.dlt645 import Dlt645Frame
from protocols.modbus_rtu import ReadHoldingRegisters, RegistersReply, WriteMultipleRegisters
from protocols.modbus_tcp_link import ModbusTcpLink

DIRECT_SLAVE = 1
"""The Modbus slave address a direct 4G meter answers to behind its 0x90 downlink."""


@runtime_checkable
class MeterChannel(Protocol):
    """Reads and writes of one meter's registers at PDU addresses; raises LinkError subclasses."""

    meter_id: str

    async def read(self, pdu_address: int, count: int) -> tuple[int, ...]:
        """`count` holding registers from `pdu_address` (function 03)."""
        ...

    async def write(self, pdu_address: int, values: Sequence[int]) -> None:
        """Write `values` into consecutive registers from `pdu_address` (function 16)."""
        ...


class LinkPort(Protocol):
    """A link addressed by slave: what a `SharedLine` serialises."""

    name: str

    async def read(self, slave: int, address: int, count: int) -> tuple[int, ...]:
        """Read holding registers of `slave`."""
        ...

    async def write(self, slave: int, address: int, values: Sequence[int]) -> None:
        """Write registers of `slave`."""
        ...


class ModbusTcpPort:
    """A Modbus TCP gateway link; the unit id is the meter's slave address."""

    def __init__(self, link: ModbusTcpLink) -> None:
        self.link = link
        self.name = link.id

    async def read(self, slave: int, address: int, count: int) -> tuple[int, ...]:
        """Read holding registers of `slave` through the gateway."""
        return await self.link.read(slave, address, count)

    async def write(self, slave: int, address: int, values: Sequence[int]) -> None:
        """Write registers of `slave` through the gateway."""
        await self.link.write(slave, address, values)


class DtuPort:
    """A DTU gateway that dialled in: Modbus RTU to its meters over the dial-in socket."""

    def __init__(self, listener: DialinListener, gateway_id: str) -> None:
        self.listener = listener
        self.name = gateway_id

    async def read(self, slave: int, address: int, count: int) -> tuple[int, ...]:
        """Read holding registers of `slave` behind the DTU gateway."""
        return await self.listener.read(self.name, slave, address, count)

    async def write(self, slave: int, address: int, values: Sequence[int]) -> None:
        """Write registers of `slave` behind the DTU gateway."""
        await self.listener.write(self.name, slave, address, values)


class DownlinkPort:
    """A direct 4G meter: Modbus RTU requests passed through in 0x90 downlink frames."""

    def __init__(self, listener: DialinListener, serial: str) -> None:
        self.listener = listener
        self.name = serial

    async def read(self, slave: int, address: int, count: int) -> tuple[int, ...]:
        """Read holding registers of the 4G meter."""
        reply = await self.listener.downlink(self.name, ReadHoldingRegisters(slave, address, count))
        assert isinstance(reply, RegistersReply)  # the session checked it answers the request
        return reply.registers

    async def write(self, slave: int, address: int, values: Sequence[int]) -> None:
        """Write registers of the 4G meter."""
        await self.listener.downlink(
            self.name, WriteMultipleRegisters(slave, address, tuple(values))
        )


class SharedLine:
    """One link shared by a poll group and the command channels: one request at a time, FIFO."""

    def __init__(self, port: LinkPort) -> None:
        self.port = port
        self.name = port.name
        self._lock = asyncio.Lock()

    @property
    def busy(self) -> bool:
        """Whether a request holds the line now."""
        return self._lock.locked()

    async def read(self, slave: int, address: int, count: int) -> tuple[int, ...]:
        """Read holding registers of `slave`, after the request ahead (if any) has finished."""
        async with self._lock:
            return await self.port.read(slave, address, count)

    async def write(self, slave: int, address: int, values: Sequence[int]) -> None:
        """Write registers of `slave`, after the request ahead (if any) has finished."""
        async with self._lock:
            await self.port.write(slave, address, values)


class LineChannel:
    """A meter reached over a shared line at its slave address."""

    def __init__(self, meter_id: str, line: SharedLine, slave: int) -> None:
        self.meter_id = meter_id
        self.line = line
        self.slave = slave

    def __repr__(self) -> str:
        return f"<LineChannel {self.meter_id} via {self.line.name} slave {self.slave}>"

    async def read(self, pdu_address: int, count: int) -> tuple[int, ...]:
        """`count` holding registers from `pdu_address` of this meter."""
        return await self.line.read(self.slave, pdu_address, count)

    async def write(self, pdu_address: int, values: Sequence[int]) -> None:
        """Write `values` from `pdu_address` of this meter."""
        await self.line.write(self.slave, pdu_address, values)


class Dlt645Port(Protocol):
    """DL/T 645 frames to the meters behind a DTU gateway (`DialinListener` is one)."""

    async def request_dlt645(self, gateway_id: str, frame: Dlt645Frame) -> Dlt645Frame:
        """One frame to a meter; its normal reply (errors raise LinkError subclasses)."""
        ...

    async def broadcast_dlt645(self, gateway_id: str, frame: Dlt645Frame) -> None:
        """A frame without a reply (broadcast time) to every meter behind the gateway."""
        ...


@dataclass(frozen=True, slots=True)
class Dlt645Route:
    """How commands reach a DL/T 645 meter: its gateway, its 12-digit address, the port."""

    meter_id: str
    gateway_id: str
    address: str
    port: Dlt645Port


class ChannelDirectory:
    """The channel and register profile of every polled meter, built by the acquisition service.

    DL/T 645 meters have no register channel: they have a `Dlt645Route` instead, and
    `in` / `len` count register channels only.
    """

    def __init__(
        self,
        channels: Mapping[str, MeterChannel],
        profiles: Mapping[str, RegisterProfile],
        dlt645: Mapping[str, Dlt645Route] | None = None,
    ) -> None:
        missing = sorted(set(channels) - set(profiles))
        if missing:
            raise ValueError(f"channel directory: no profile for meter(s) {', '.join(missing[:5])}")
        self._channels = dict(channels)
        self._profiles = dict(profiles)
        self._dlt645 = dict(dlt645 or {})
        both = sorted(set(self._channels) & set(self._dlt645))
        if both:
            raise ValueError(f"channel directory: meter(s) {', '.join(both[:5])} on both protocols")

    def __len__(self) -> int:
        return len(self._channels)

    def __contains__(self, meter_id: object) -> bool:
        return meter_id in self._channels

    def channel(self, meter_id: str) -> MeterChannel:
        """The channel of `meter_id`; a `KeyError` names a meter that has none."""
        try:
            return self._channels[meter_id]
        except KeyError:
            raise KeyError(f"no channel for meter {meter_id!r} (unknown, or not polled)") from None

    def dlt645_route(self, meter_id: str) -> Dlt645Route | None:
        """The DL/T 645 route of `meter_id`, or None when it is not a polled DL/T 645 meter."""
        return self._dlt645.get(meter_id)

    def profile(self, meter_id: str) -> RegisterProfile:
        """The register profile of `meter_id`; a `KeyError` names an unknown meter."""
        try:
            return self._profiles[meter_id]
        except KeyError:
            raise KeyError(f"no register profile for meter {meter_id!r}") from None
