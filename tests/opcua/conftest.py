# mypy: disable-error-code="attr-defined,arg-type,name-defined"
# (asyncua 2.1 re-exports `ua.*`/`Server` implicitly and types scalars as NewTypes.)
"""Fixtures: a real asyncua server on an ephemeral loopback port with the park built in."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from asyncua import Client, Server

from config.loader import load_site
from config.model import Site
from server.clock import ManualClock
from server.opcua import OpcUaValues, build_park
from server.process import build_tag_table
from server.tags import TagTable

SMALL_SITE = Path(__file__).resolve().parents[2] / "config" / "examples" / "small"

logging.getLogger("asyncua").setLevel(logging.WARNING)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Park:
    """A running server with the park built, its table and clock, and a connected client."""

    site: Site
    table: TagTable
    clock: ManualClock
    server: Server
    values: OpcUaValues
    client: Client
    idx: int


@asynccontextmanager
async def running_park(folder: Path) -> AsyncIterator[Park]:
    """Start a server on 127.0.0.1, build the park, connect a client; close both after."""
    site = load_site(folder)
    clock = ManualClock()
    table = build_tag_table(site, clock)
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{free_port()}/parkgrid")
    values = await build_park(server, site, table)
    await server.start()
    client = Client(server.endpoint.geturl(), timeout=10)
    try:
        await client.connect()
        try:
            idx = await client.get_namespace_index("urn:parkgrid:park")
            yield Park(site, table, clock, server, values, client, idx)
        finally:
            await client.disconnect()
    finally:
        await server.stop()
        await asyncio.sleep(0)
