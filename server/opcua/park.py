# mypy: disable-error-code="attr-defined,arg-type,name-defined"
# (asyncua 2.1 re-exports `ua.*`/`Server` implicitly and types scalars as NewTypes.)
"""The park's OPC UA address space in one call: types, nodes, value index and live values."""

from __future__ import annotations

from asyncua import Server

from config.model import Site
from server.opcua.builder import build_fast
from server.opcua.namespace import ParkTree
from server.opcua.updates import OpcUaValues, ValueIndex
from server.tags import TagTable


async def build_park(server: Server, site: Site, table: TagTable) -> OpcUaValues:
    """Build the whole park into an initialised `server` and load the table's values."""
    types = await build_fast(server, site, table.catalogue)
    index = ValueIndex.from_address_space(server, types, ParkTree.from_site(site), table)
    values = OpcUaValues(server, table, index)
    await values.load()
    return values
