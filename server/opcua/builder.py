# mypy: disable-error-code="attr-defined,arg-type,name-defined"
# (asyncua 2.1 re-exports `ua.*`/`Server` implicitly and types scalars as NewTypes.)
"""The fast build: the park's nodes written straight into asyncua's address space.

asyncua keeps its address space as a dict of `NodeData` (attributes and references).
Adding 450,000 nodes through `add_nodes` takes minutes, mostly because it copies every
attribute and scans the parent's references for each child. Here each meter's nodes are
made directly, and everything that is the same for all instances of a declaration is one
shared object: the attribute values other than Value, the EngineeringUnits property's
whole attribute dict, the HasTypeDefinition references, and the inverse reference from a
meter's variables to the meter. The NodeId attribute is one shared AttributeValue whose
read callback answers with the node id asked for. The result has the same nodes,
attributes and references (both directions) as the plain build in `naive.py`.
This relies on asyncua internals, so asyncua is pinned and `tests/opcua` checks them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from typing import Any

from asyncua import Server, ua
from asyncua.server.address_space import AddressSpace, AttributeValue, NodeData

from config.catalogue import TagCatalogue
from config.model import Site
from server.opcua import namespace as ns
from server.opcua.types import Member, ParkTypes, install_types

_OBJECTS = ua.NodeId(ua.ObjectIds.ObjectsFolder)
_FOLDER_TYPE = ua.NodeId(ua.ObjectIds.FolderType)
_ORGANIZES = ua.NodeId(ua.ObjectIds.Organizes)
_HAS_COMPONENT = ua.NodeId(ua.ObjectIds.HasComponent)
_HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)
_HAS_TYPE_DEFINITION = ua.NodeId(ua.ObjectIds.HasTypeDefinition)
_NO_TYPE = ua.ExpandedNodeId()

# The attributes OPC UA Part 3 §5.6.2 makes mandatory for a Variable. Instance variables
# carry only these: ten entries keep each node's attribute dict in its smallest size,
# which saves about 75 MB on the park. Description, WriteMask, UserWriteMask,
# ArrayDimensions and MinimumSamplingInterval stay on the MeterType declarations;
# reading them on an instance answers BadAttributeIdInvalid, as the spec allows.
VARIABLE_ATTRIBUTES = frozenset(
    {
        ua.AttributeIds.NodeId,
        ua.AttributeIds.NodeClass,
        ua.AttributeIds.BrowseName,
        ua.AttributeIds.DisplayName,
        ua.AttributeIds.Value,
        ua.AttributeIds.DataType,
        ua.AttributeIds.ValueRank,
        ua.AttributeIds.AccessLevel,
        ua.AttributeIds.UserAccessLevel,
        ua.AttributeIds.Historizing,
    }
)


def _read_node_id(nodeid: ua.NodeId, attr: ua.AttributeIds) -> ua.DataValue:
    """The NodeId attribute of whichever node is read (shared by all fast-built nodes)."""
    return ua.DataValue(ua.Variant(nodeid, ua.VariantType.NodeId))


def _node_id_attribute() -> AttributeValue:
    """One AttributeValue for the NodeId attribute of many nodes, answered by callback."""
    shared = AttributeValue(ua.DataValue(ua.Variant(ua.NodeId(), ua.VariantType.NodeId)))
    shared.value = None
    shared.value_callback = _read_node_id
    return shared


def _text(value: str) -> ua.DataValue:
    return ua.DataValue(ua.Variant(ua.LocalizedText(value), ua.VariantType.LocalizedText))


class _Declaration:
    """What the instances of one type variable share, taken from the type's own nodes."""

    def __init__(self, aspace: AddressSpace, type_var: NodeData, shared_id: AttributeValue) -> None:
        self.browse_name: ua.QualifiedName = _attr(type_var, ua.AttributeIds.BrowseName)
        self.display_name: ua.LocalizedText = _attr(type_var, ua.AttributeIds.DisplayName)
        self.default: ua.DataValue | None = type_var.attributes[ua.AttributeIds.Value].value
        self.attributes: dict[ua.AttributeIds, AttributeValue] = {
            attr: shared_id if attr == ua.AttributeIds.NodeId else AttributeValue(av.value)
            for attr, av in type_var.attributes.items()
            if attr in VARIABLE_ATTRIBUTES and attr != ua.AttributeIds.Value
        }
        self.type_ref = _forward(type_var, _HAS_TYPE_DEFINITION)[0]
        props = _forward(type_var, _HAS_PROPERTY)
        self.eu: tuple[ua.ReferenceDescription, dict[ua.AttributeIds, AttributeValue]] | None = None
        self.eu_type_ref: ua.ReferenceDescription | None = None
        if props:
            eu_node = aspace[props[0].NodeId]
            eu_attrs = {
                attr: shared_id if attr == ua.AttributeIds.NodeId else AttributeValue(av.value)
                for attr, av in eu_node.attributes.items()
            }
            self.eu = (props[0], eu_attrs)
            self.eu_type_ref = _forward(eu_node, _HAS_TYPE_DEFINITION)[0]


def _attr(node: NodeData, attr: ua.AttributeIds) -> Any:
    value = node.attributes[attr].value
    assert value is not None and value.Value is not None
    return value.Value.Value


def _forward(node: NodeData, ref_type: ua.NodeId) -> list[ua.ReferenceDescription]:
    return [r for r in node.references if r.IsForward and r.ReferenceTypeId == ref_type]


class FastBuilder:
    """Writes objects and type instances into an address space without `add_nodes`."""

    def __init__(self, server: Server, types: ParkTypes) -> None:
        self.aspace: AddressSpace = server.iserver.aspace
        self.types = types
        self.idx = types.idx
        self.shared_id = _node_id_attribute()
        self._object_attrs: dict[ua.AttributeIds, AttributeValue] = {
            ua.AttributeIds.NodeId: self.shared_id,
            ua.AttributeIds.NodeClass: AttributeValue(
                ua.DataValue(ua.Variant(ua.NodeClass.Object, ua.VariantType.Int32))
            ),
            ua.AttributeIds.EventNotifier: AttributeValue(
                ua.DataValue(ua.Variant(0, ua.VariantType.Byte))
            ),
            ua.AttributeIds.WriteMask: AttributeValue(
                ua.DataValue(ua.Variant(0, ua.VariantType.UInt32))
            ),
            ua.AttributeIds.UserWriteMask: AttributeValue(
                ua.DataValue(ua.Variant(0, ua.VariantType.UInt32))
            ),
        }

    def declarations(self, type_id: ua.NodeId) -> list[_Declaration]:
        """The shared parts of every variable declared by a type, in declaration order."""
        type_node = self.aspace[type_id]
        return [
            _Declaration(self.aspace, self.aspace[r.NodeId], self.shared_id)
            for r in _forward(type_node, _HAS_COMPONENT)
        ]

    def add_object(
        self, identifier: str, name: str, parent: ua.NodeId, type_id: ua.NodeId
    ) -> NodeData:
        """An object organised under `parent`, typed `type_id`, with both references."""
        nodeid = ns.node(identifier, self.idx)
        parent_data = self.aspace[parent]
        browse_name = ua.QualifiedName(name, self.idx)
        display = ua.LocalizedText(name)
        data = NodeData(nodeid)
        data.attributes = dict(self._object_attrs)
        data.attributes[ua.AttributeIds.BrowseName] = AttributeValue(
            ua.DataValue(ua.Variant(browse_name, ua.VariantType.QualifiedName))
        )
        data.attributes[ua.AttributeIds.DisplayName] = AttributeValue(_text(name))
        data.attributes[ua.AttributeIds.Description] = AttributeValue(_text(name))
        type_data = self.aspace[type_id]
        parent_type = _forward(parent_data, _HAS_TYPE_DEFINITION)
        data.references = [
            ua.ReferenceDescription(
                ReferenceTypeId=_ORGANIZES,
                IsForward=False,
                NodeId=parent,
                BrowseName=_attr(parent_data, ua.AttributeIds.BrowseName),
                DisplayName=_attr(parent_data, ua.AttributeIds.DisplayName),
                NodeClass=_attr(parent_data, ua.AttributeIds.NodeClass),
                TypeDefinition=parent_type[0].NodeId if parent_type else _NO_TYPE,
            ),
            ua.ReferenceDescription(
                ReferenceTypeId=_HAS_TYPE_DEFINITION,
                IsForward=True,
                NodeId=type_id,
                BrowseName=_attr(type_data, ua.AttributeIds.BrowseName),
                DisplayName=_attr(type_data, ua.AttributeIds.DisplayName),
                NodeClass=_attr(type_data, ua.AttributeIds.NodeClass),
                TypeDefinition=_NO_TYPE,
            ),
        ]
        self.aspace[nodeid] = data
        parent_data.references.append(
            ua.ReferenceDescription(
                ReferenceTypeId=_ORGANIZES,
                IsForward=True,
                NodeId=nodeid,
                BrowseName=browse_name,
                DisplayName=display,
                NodeClass=ua.NodeClass.Object,
                TypeDefinition=type_id,
            )
        )
        return data

    def add_members(
        self,
        owner: NodeData,
        declarations: Iterable[_Declaration],
        type_id: ua.NodeId,
        values: dict[str, ua.DataValue] | None = None,
    ) -> None:
        """Instantiate a type's variables (and EngineeringUnits) under the object `owner`."""
        owner_id = owner.nodeid
        prefix = str(owner_id.Identifier) + "."
        idx = self.idx
        nodes = self.aspace._nodes
        up = ua.ReferenceDescription(
            ReferenceTypeId=_HAS_COMPONENT,
            IsForward=False,
            NodeId=owner_id,
            BrowseName=_attr(owner, ua.AttributeIds.BrowseName),
            DisplayName=_attr(owner, ua.AttributeIds.DisplayName),
            NodeClass=ua.NodeClass.Object,
            TypeDefinition=type_id,
        )
        owner_refs = owner.references
        for decl in declarations:
            name = decl.browse_name.Name
            var_id = ua.NodeId(prefix + name, idx, ua.NodeIdType.String)
            var = NodeData(var_id)
            attrs = decl.attributes.copy()
            start = values.get(name, decl.default) if values else decl.default
            attrs[ua.AttributeIds.Value] = AttributeValue(start)
            var.attributes = attrs
            if decl.eu is None:
                var.references = [up, decl.type_ref]
            else:
                eu_ref, eu_attrs = decl.eu
                eu_id = ua.NodeId(prefix + name + "." + ns.EU_PROPERTY, idx, ua.NodeIdType.String)
                eu = NodeData(eu_id)
                eu.attributes = eu_attrs
                eu.references = [
                    ua.ReferenceDescription(
                        ReferenceTypeId=_HAS_PROPERTY,
                        IsForward=False,
                        NodeId=var_id,
                        BrowseName=decl.browse_name,
                        DisplayName=decl.display_name,
                        NodeClass=ua.NodeClass.Variable,
                        TypeDefinition=decl.type_ref.NodeId,
                    ),
                    decl.eu_type_ref,  # type: ignore[list-item]
                ]
                nodes[eu_id] = eu
                # built in one go: a list that grows by append over-allocates
                var.references = [
                    up,
                    decl.type_ref,
                    ua.ReferenceDescription(
                        ReferenceTypeId=_HAS_PROPERTY,
                        IsForward=True,
                        NodeId=eu_id,
                        BrowseName=eu_ref.BrowseName,
                        DisplayName=eu_ref.DisplayName,
                        NodeClass=ua.NodeClass.Variable,
                        TypeDefinition=eu_ref.TypeDefinition,
                    ),
                ]
            nodes[var_id] = var
            owner_refs.append(
                ua.ReferenceDescription(
                    ReferenceTypeId=_HAS_COMPONENT,
                    IsForward=True,
                    NodeId=var_id,
                    BrowseName=decl.browse_name,
                    DisplayName=decl.display_name,
                    NodeClass=ua.NodeClass.Variable,
                    TypeDefinition=decl.type_ref.NodeId,
                )
            )


def _string_values(cache: dict[str, ua.DataValue], text: str) -> ua.DataValue:
    """One shared DataValue per distinct string (billing modes, protocols)."""
    value = cache.get(text)
    if value is None:
        value = cache[text] = ua.DataValue(ua.Variant(text, ua.VariantType.String))
    return value


async def build_fast(server: Server, site: Site, catalogue: TagCatalogue) -> ParkTypes:
    """Install the types and write the whole park's nodes into `server`'s address space.

    The cyclic garbage collector is paused while the millions of objects are made (it
    would rescan them all over and over), and the result is then frozen out of its reach
    so that later collections do not walk the address space and stall the event loop.
    """
    types = await install_types(server, catalogue)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _build_instances(server, site, types)
    finally:
        if was_enabled:
            gc.enable()
    gc.freeze()
    return types


def _build_instances(server: Server, site: Site, types: ParkTypes) -> None:
    """Every folder, meter and gateway object with its variables."""
    builder = FastBuilder(server, types)
    tree = ns.ParkTree.from_site(site)
    idx = types.idx
    for folder in tree.folders:
        parent = _OBJECTS if folder.parent is None else ns.node(folder.parent, idx)
        builder.add_object(folder.identifier, folder.name, parent, _FOLDER_TYPE)
    meter_decls = builder.declarations(types.meter_type)
    strings: dict[str, ua.DataValue] = {}
    for meter in tree.meters:
        owner = builder.add_object(
            ns.meter_id(meter.meter), meter.meter, ns.node(meter.parent, idx), types.meter_type
        )
        billing = {"billing": _string_values(strings, meter.billing)}
        builder.add_members(owner, meter_decls, types.meter_type, billing)
    gateway_decls = builder.declarations(types.gateway_type)
    gateways = ns.node(ns.GATEWAYS, idx)
    for gateway in tree.gateways:
        owner = builder.add_object(
            ns.gateway_id(gateway.gateway), gateway.gateway, gateways, types.gateway_type
        )
        protocol = {"protocol": _string_values(strings, gateway.protocol)}
        builder.add_members(owner, gateway_decls, types.gateway_type, protocol)


__all__ = ["FastBuilder", "Member", "build_fast"]
