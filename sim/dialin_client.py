"""A simulated field device that dials in to the server: connect, greet, serve, reconnect.

DTU gateways and direct 4G meters sit behind carrier NAT and connect to the server's dial-in
port. This base class owns the socket, the heartbeat timer and the reconnects (exponential
backoff with jitter); subclasses say what to send first and how to answer what arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from typing import Final

from config.values import Endpoint

log = logging.getLogger(__name__)

READ_SIZE: Final = 4096
CONNECT_TIMEOUT_S: Final = 10.0


class DialInClient(ABC):
    """One device's connection to the dial-in port, kept up until `stop` or a down fault."""

    def __init__(
        self,
        name: str,
        server: Endpoint,
        *,
        heartbeat_s: float | None,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        start_delay_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        """Dial `server`; beat every `heartbeat_s` of quiet (None: never); retry within backoff."""
        low, high = backoff_s
        if not 0 < low <= high:
            raise ValueError(f"backoff_s: must be 0 < first ≤ most, got {backoff_s}")
        if heartbeat_s is not None and heartbeat_s <= 0:
            raise ValueError(f"heartbeat_s: must be positive or None, got {heartbeat_s}")
        self.name = name
        self.server = server
        self.heartbeat_s = heartbeat_s
        self.backoff_s = backoff_s
        self.start_delay_s = start_delay_s
        self.connected = False
        self.sessions = 0
        self.heartbeats = 0
        self._rng = random.Random(f"{seed}/{name}")
        self._up = asyncio.Event()
        self._up.set()
        self._writer: asyncio.StreamWriter | None = None

    # -- what subclasses provide -----------------------------------------------------------

    @abstractmethod
    async def greet(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Send the registration (and wait for its answer, where there is one)."""

    @abstractmethod
    def heartbeat(self) -> bytes | None:
        """The heartbeat bytes to send after `heartbeat_s` of quiet, or None for none."""

    @abstractmethod
    async def received(self, data: bytes) -> None:
        """Handle bytes from the server; answers go out through `send`."""

    # -- the connection ----------------------------------------------------------------------

    async def send(self, data: bytes) -> bool:
        """Write `data` if connected; whether it went out."""
        writer = self._writer
        if writer is None or not self.connected or writer.is_closing():
            return False
        writer.write(data)
        await writer.drain()
        return True

    def set_down(self, down: bool) -> None:
        """A down fault closes the connection and holds off reconnects until it clears."""
        if down:
            self._up.clear()
            if self._writer is not None:
                self._writer.close()
        else:
            self._up.set()

    async def run(self) -> None:
        """Connect, greet and serve; after a failure or a close, wait and dial again."""
        await asyncio.sleep(self.start_delay_s)
        failures = 0
        while True:
            await self._up.wait()
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.server.host, self.server.port),
                    CONNECT_TIMEOUT_S,
                )
            except (OSError, TimeoutError) as exc:
                failures += 1
                log.debug("%s: cannot dial %s: %s", self.name, self.server, exc)
                await asyncio.sleep(self._backoff(failures))
                continue
            self._writer = writer
            try:
                await self._session(reader, writer)
                failures = 0
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
                failures += 1
                log.debug("%s: link lost: %s", self.name, exc)
            finally:
                self.connected = False
                self._writer = None
                writer.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await writer.wait_closed()
            await asyncio.sleep(self._backoff(max(failures, 1)))

    def _backoff(self, failures: int) -> float:
        low, high = self.backoff_s
        delay: float = min(high, low * 2.0 ** min(failures - 1, 16))
        return delay * self._rng.uniform(0.5, 1.0)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up.is_set():
            return
        self.connected = True
        await self.greet(reader, writer)
        self.sessions += 1
        while self._up.is_set():
            try:
                async with asyncio.timeout(self.heartbeat_s):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                beat = self.heartbeat()
                if beat is not None and await self.send(beat):
                    self.heartbeats += 1
                continue
            if not data:
                return
            await self.received(data)
