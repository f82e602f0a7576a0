# mypy: disable-error-code="attr-defined,arg-type,name-defined"
# (asyncua 2.1 re-exports `ua.*`/`Server` implicitly and types scalars as NewTypes.)
"""The plain build through asyncua's node API, kept only to compare against the fast one.

It makes the same tree as `builder.build_fast` with `add_folder` and `add_object(…,
objecttype=…)`, which instantiates every type variable one `add_nodes` call at a time.
The benchmark times it for the whole park; a test checks both builds agree on a small site.
"""

from __future__ import annotations

from asyncua import Server, ua

from config.catalogue import TagCatalogue
from config.model import Site
from server.opcua import namespace as ns
from server.opcua.types import ParkTypes, install_types


async def build_naive(server: Server, site: Site, catalogue: TagCatalogue) -> ParkTypes:
    """Install the types and add every park node with the ordinary asyncua calls."""
    types = await install_types(server, catalogue)
    idx = types.idx
    tree = ns.ParkTree.from_site(site)
    for folder in tree.folders:
        parent_id = (
            ua.NodeId(ua.ObjectIds.ObjectsFolder)
            if folder.parent is None
            else ns.node(folder.parent, idx)
        )
        parent = server.get_node(parent_id)
        await parent.add_folder(ns.node(folder.identifier, idx), ua.QualifiedName(folder.name, idx))
    for meter in tree.meters:
        parent = server.get_node(ns.node(meter.parent, idx))
        obj = await parent.add_object(
            ns.node(ns.meter_id(meter.meter), idx),
            ua.QualifiedName(meter.meter, idx),
            objecttype=types.meter_type,
        )
        billing = server.get_node(ns.node(ns.member_id(obj.nodeid.Identifier, "billing"), idx))
        await billing.write_value(ua.Variant(meter.billing, ua.VariantType.String))
    gateways = server.get_node(ns.node(ns.GATEWAYS, idx))
    for gateway in tree.gateways:
        obj = await gateways.add_object(
            ns.node(ns.gateway_id(gateway.gateway), idx),
            ua.QualifiedName(gateway.gateway, idx),
            objecttype=types.gateway_type,
        )
        protocol = server.get_node(ns.node(ns.member_id(obj.nodeid.Identifier, "protocol"), idx))
        await protocol.write_value(ua.Variant(gateway.protocol, ua.VariantType.String))
    return types
