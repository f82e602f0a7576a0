"""The whole simulated park in one process: the fleet, its clock, and every protocol endpoint.

`Simulator(site)` builds the fleet from the site, a Modbus TCP server per `modbus_tcp`
gateway, a dial-in client per `dtu` gateway and per direct 4G meter, and (optionally) the
HTTP control API. `start()` opens them; the dial-in devices connect at `connect_rate` per
second so that the server is not hit by 1,316 connections at once. `tick()` advances the
fleet to the clock, applies gateway outages and sends the 4G uploads that are due; it runs
every `tick_s` seconds, and tests may call it directly after moving a manual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import numpy as np

from config.model import Gateway, Site
from config.values import Endpoint
from server.clock import Clock, SystemClock
from sim.clock import AcceleratedClock
from sim.control import ControlServer
from sim.dialin_client import DialInClient
from sim.dlt645_meter import Dlt645Meters
from sim.dtu_gateway import DtuGateway
from sim.fleet import Fleet
from sim.meter4g import Meter4G, UploadSchedule
from sim.meter_commands import MeterCommands
from sim.modbus_slave import ModbusSlaves
from sim.modbus_tcp_server import ModbusTcpGateway
from sim.register_image import RegisterImage

log = logging.getLogger(__name__)

ANY_HOSTS: Final = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def dial_target(listen: Endpoint) -> Endpoint:
    """Where to connect to reach a server that listens on `listen` (any-address → loopback)."""
    return Endpoint(ANY_HOSTS.get(listen.host, listen.host), listen.port)


class Simulator:
    """The simulated park: fleet, clock, Modbus TCP gateways, dial-in devices, control API."""

    def __init__(
        self,
        site: Site,
        *,
        seed: int = 1,
        clock: Clock | None = None,
        speed: float = 1.0,
        start: float | None = None,
        dialin: Endpoint | None = None,
        control: Endpoint | None = None,
        serve_control: bool = True,
        dial_in: bool = True,
        modbus_any_port: bool = False,
        tick_s: float = 1.0,
        connect_rate: float = 500.0,
        upload_interval_min: int = 30,
        heartbeat_s: float | None = 60.0,
        backoff_s: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        """Simulated time runs `speed` × the base `clock` (default: the system clock) from `start`.

        `dialin` is where the server listens for dial-in devices (default: the site's
        `dialin_listen`), `control` where the control API listens (default `sim_control`).
        `modbus_any_port` binds every Modbus TCP gateway to a free port (tests, benches);
        `dial_in=False` leaves the DTU gateways and 4G meters offline.
        """
        if connect_rate <= 0 or tick_s <= 0:
            raise ValueError("connect_rate and tick_s must be positive")
        self.site = site
        self.clock = AcceleratedClock(clock or SystemClock(), speed, origin=start)
        self.fleet = Fleet.from_site(site, seed, clock=self.clock, start=self.clock.time())
        self.fleet.step(self.clock.time())
        self.image = RegisterImage(self.fleet, [m.model for m in site.meters])
        self.commands = MeterCommands(self.fleet, self.image)
        self.slaves = ModbusSlaves(self.image, self.commands)
        self.dialin = dial_target(dialin or site.services.dialin_listen)
        self.control_endpoint = control or site.services.sim_control
        self.serve_control = serve_control
        self.dial_in = dial_in
        self.tick_s = tick_s
        self.modbus: dict[str, ModbusTcpGateway] = {}
        self.dtus: dict[str, DtuGateway] = {}
        devices: list[DialInClient] = []
        for gateway in site.gateways:
            if gateway.kind == "modbus_tcp":
                self.modbus[gateway.id] = self._modbus_gateway(gateway, modbus_any_port)
            else:
                dtu = self._dtu(gateway, heartbeat_s, backoff_s, seed)
                self.dtus[gateway.id] = dtu
                devices.append(dtu)
        self.meters4g: list[Meter4G] = [
            Meter4G(
                meter.id,
                site.meter_row(meter.id),
                meter.serial or meter.dlt645_address,
                self.dialin,
                self.slaves,
                self.commands,
                upload_interval_min=upload_interval_min,
                heartbeat_s=heartbeat_s,
                backoff_s=backoff_s,
                seed=seed,
            )
            for meter in site.direct_meters()
        ]
        devices.extend(self.meters4g)
        # Interleave gateways and meters so both kinds come up from the first second.
        order = sorted(range(len(devices)), key=lambda k: (k * 7919) % max(len(devices), 1))
        for position, k in enumerate(order):
            devices[k].start_delay_s = position / connect_rate
        self.devices = devices
        self.uploads = UploadSchedule(
            len(self.meters4g), upload_interval_min * 60.0, self.clock.time()
        )
        self._down: dict[str, bool] = {g.id: False for g in site.gateways}
        self._tasks: list[asyncio.Task[None]] = []
        self._control: ControlServer | None = None

    def _rows(self, gateway: Gateway) -> dict[int, int]:
        return {
            int(m.slave): self.site.meter_row(m.id)
            for m in self.site.meters_on(gateway.id)
            if m.slave is not None
        }

    def _modbus_gateway(self, gateway: Gateway, any_port: bool) -> ModbusTcpGateway:
        return ModbusTcpGateway(
            gateway.id,
            self._rows(gateway),
            self.slaves,
            self.fleet.faults,
            gateway.host or "127.0.0.1",
            0 if any_port else int(gateway.port or 502),
        )

    def _dtu(
        self, gateway: Gateway, heartbeat_s: float | None, backoff_s: tuple[float, float], seed: int
    ) -> DtuGateway:
        line: dict[str, object] = {}
        if gateway.protocol == "dlt645":
            addresses = {
                m.dlt645_address: self.site.meter_row(m.id) for m in self.site.meters_on(gateway.id)
            }
            line["dlt645"] = Dlt645Meters(self.commands, addresses)
        else:
            line["modbus"] = (self.slaves, self._rows(gateway))
        return DtuGateway(
            gateway.id,
            gateway.registration or gateway.id.encode(),
            gateway.heartbeat,
            self.dialin,
            self.fleet.faults,
            heartbeat_s=heartbeat_s,
            backoff_s=backoff_s,
            seed=seed,
            **line,  # type: ignore[arg-type]
        )

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the Modbus TCP servers and the control API; start dialling and ticking."""
        for gateway in self.modbus.values():
            await gateway.start()
        if self.serve_control:
            control = ControlServer(self, self.control_endpoint)
            await control.start()
            self._control = control
        loop = asyncio.get_running_loop()
        dialling = self.devices if self.dial_in else []
        self._tasks = [loop.create_task(d.run(), name=f"sim:{d.name}") for d in dialling]
        self._tasks.append(loop.create_task(self._ticking(), name="sim:tick"))
        log.info(
            "simulator: %d meters, %d Modbus TCP gateways, %d dial-in devices → %s",
            len(self.fleet),
            len(self.modbus),
            len(self.devices),
            self.dialin,
        )

    async def stop(self) -> None:
        """Stop ticking, hang up every device, close every server."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for gateway in self.modbus.values():
            await gateway.stop()
        if self._control is not None:
            await self._control.stop()
            self._control = None

    async def _ticking(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.tick()
            except Exception:
                log.exception("simulator tick failed")

    async def tick(self) -> None:
        """Advance the fleet to the clock, apply gateway outages, send the uploads due now."""
        now = self.clock.time()
        if now > self.fleet.now:
            self.fleet.step(now)
        self.apply_outages(now)
        await self.send_uploads(now)

    def apply_outages(self, now: float | None = None) -> None:
        """Hang up the gateways the fault table has down at `now`, and let the others redial."""
        at = self.clock.time() if now is None else now
        for gateway_id, was_down in self._down.items():
            down = self.fleet.faults.gateway_down(gateway_id, at)
            if down == was_down:
                continue
            self._down[gateway_id] = down
            log.info("simulator: gateway %s %s", gateway_id, "down" if down else "up")
            if gateway_id in self.dtus:
                self.dtus[gateway_id].set_down(down)
            elif down:
                self.modbus[gateway_id].drop_connections()

    async def send_uploads(self, now: float) -> None:
        """Send the 4G uploads due at simulated time `now`."""
        due = self.uploads.due(now)
        if not due.size:
            return
        rows = np.array([self.meters4g[k].row for k in due.tolist()], dtype=np.int64)
        blocks = self.image.poll_blocks(rows)
        for k, block in zip(due.tolist(), blocks.tolist(), strict=True):
            with contextlib.suppress(OSError, ConnectionError):
                await self.meters4g[k].upload(block)

    # -- state -------------------------------------------------------------------------------

    def set_speed(self, speed: float) -> None:
        """Change the time acceleration from now on (simulated time does not jump)."""
        self.clock.set_factor(speed)

    def modbus_port(self, gateway_id: str) -> int:
        """The port the Modbus TCP gateway listens on (after `start`)."""
        return self.modbus[gateway_id].port

    @property
    def control_port(self) -> int | None:
        """The port of the control API, once started."""
        return self._control.port if self._control is not None else None

    def status(self) -> dict[str, int]:
        """Counts of connected dial-in devices and Modbus TCP clients."""
        return {
            "dtu_connected": sum(d.connected for d in self.dtus.values()),
            "dtu_total": len(self.dtus),
            "meters4g_registered": sum(m.registered and m.connected for m in self.meters4g),
            "meters4g_total": len(self.meters4g),
            "modbus_clients": sum(g.connections for g in self.modbus.values()),
        }
