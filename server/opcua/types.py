# mypy: disable-error-code="attr-defined,arg-type,name-defined"
# (asyncua 2.1 re-exports `ua.*`/`Server` implicitly and types scalars as NewTypes.)
"""MeterType and GatewayType: their variable declarations, data types and EngineeringUnits.

Every catalogue tag is a variable of MeterType, with `comm_state` (the table's CommState)
and `billing` (the meter's billing mode from meters.csv) beside them; GatewayType holds
`link_state` and `protocol`. A variable whose tag has a unit carries an EngineeringUnits
property (OPC UA Part 8 EUInformation). Units with a UNECE Rec. 20 common code use it
(UnitId encoded as Part 8 §5.6.3 says: the code's ASCII bytes, big-endian); units with no
code (fen, the price unit) use UnitId -1 and the parkgrid namespace URI.
The types are few nodes, so they are added through asyncua's ordinary API.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from asyncua import Node, Server, ua

from config.catalogue import TagCatalogue
from server.opcua import namespace as ns

UNECE_URI: Final = "http://www.opcfoundation.org/UA/units/un/cefact"

# unit symbol → (UNECE common code or "" when there is none, English name)
UNITS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "V": ("VLT", "volt"),
        "A": ("AMP", "ampere"),
        "kW": ("KWT", "kilowatt"),
        "kvar": ("KVR", "kilovar"),
        "Hz": ("HTZ", "hertz"),
        "kWh": ("KWH", "kilowatt hour"),
        "s": ("SEC", "second"),
        "fen": ("", "fen (0.01 yuan)"),
        "yuan/1e4 per kWh": ("", "0.0001 yuan per kilowatt hour"),
    }
)

COMM_STATE_TEXT: Final = "Communication state: 0 unknown, 1 online, 2 offline"
LINK_STATE_TEXT: Final = "Link state: 0 never reported, 1 online, 2 offline"

_KIND_TYPES: Final[Mapping[str, ua.VariantType]] = MappingProxyType(
    {"float": ua.VariantType.Double, "int": ua.VariantType.Int64, "bool": ua.VariantType.Boolean}
)
_DEFAULTS: Final[Mapping[ua.VariantType, object]] = MappingProxyType(
    {
        ua.VariantType.Double: math.nan,
        ua.VariantType.Int64: 0,
        ua.VariantType.Boolean: False,
        ua.VariantType.Byte: 0,
        ua.VariantType.String: "",
    }
)


def unit_id(code: str) -> int:
    """The EUInformation UnitId of a UNECE common code ("VLT" → 5655636); -1 for none."""
    if not code:
        return -1
    if len(code) > 3 or not code.isascii():
        raise ValueError(f"a UNECE common code has at most 3 ASCII characters, got {code!r}")
    value = 0
    for char in code:
        value = (value << 8) | ord(char)
    return value


def eu_information(unit: str) -> ua.EUInformation:
    """The EUInformation of a catalogue unit; an unknown unit is a `ValueError`."""
    if unit not in UNITS:
        raise ValueError(
            f"unit {unit!r} has no EngineeringUnits mapping (known: {', '.join(UNITS)})"
        )
    code, name = UNITS[unit]
    return ua.EUInformation(
        NamespaceUri=UNECE_URI if code else ns.NAMESPACE_URI,
        UnitId=unit_id(code),
        DisplayName=ua.LocalizedText(unit),
        Description=ua.LocalizedText(name),
    )


@dataclass(frozen=True, slots=True)
class Member:
    """One variable declaration of a type: name, OPC UA type, unit and description."""

    name: str
    variant: ua.VariantType
    unit: str
    text: str

    @property
    def default(self) -> object:
        """The value the declaration holds (NaN, 0, False or "")."""
        return _DEFAULTS[self.variant]


def meter_members(catalogue: TagCatalogue) -> tuple[Member, ...]:
    """MeterType's variables: every catalogue tag, then comm_state and billing."""
    tags = tuple(Member(t.name, _KIND_TYPES[t.kind], t.unit, t.text) for t in catalogue)
    return (
        *tags,
        Member("comm_state", ua.VariantType.Byte, "", COMM_STATE_TEXT),
        Member("billing", ua.VariantType.String, "", "Billing mode (prepaid, postpaid, unbilled)"),
    )


GATEWAY_MEMBERS: Final = (
    Member("link_state", ua.VariantType.Byte, "", LINK_STATE_TEXT),
    Member("protocol", ua.VariantType.String, "", "Southbound protocol of the link"),
)


@dataclass(frozen=True, slots=True)
class ParkTypes:
    """The installed types: namespace index, type node ids and their members."""

    idx: int
    meter_type: ua.NodeId
    gateway_type: ua.NodeId
    meter_members: tuple[Member, ...]
    gateway_members: tuple[Member, ...]


async def install_types(server: Server, catalogue: TagCatalogue) -> ParkTypes:
    """Register the park namespace and add MeterType and GatewayType to the server."""
    idx = await server.register_namespace(ns.NAMESPACE_URI)
    base = server.nodes.base_object_type
    meters = meter_members(catalogue)
    meter_type = await base.add_object_type(
        ns.node(ns.METER_TYPE, idx), ua.QualifiedName(ns.METER_TYPE, idx)
    )
    await _add_members(meter_type, ns.METER_TYPE, meters, idx)
    gateway_type = await base.add_object_type(
        ns.node(ns.GATEWAY_TYPE, idx), ua.QualifiedName(ns.GATEWAY_TYPE, idx)
    )
    await _add_members(gateway_type, ns.GATEWAY_TYPE, GATEWAY_MEMBERS, idx)
    return ParkTypes(idx, meter_type.nodeid, gateway_type.nodeid, meters, GATEWAY_MEMBERS)


async def _add_members(type_node: Node, owner: str, members: tuple[Member, ...], idx: int) -> None:
    """Add each member as a mandatory variable (with its EngineeringUnits) of the type."""
    for member in members:
        identifier = ns.member_id(owner, member.name)
        variable = await type_node.add_variable(
            ns.node(identifier, idx),
            ua.QualifiedName(member.name, idx),
            ua.Variant(member.default, member.variant),
        )
        await variable.write_attribute(
            ua.AttributeIds.Description,
            ua.DataValue(ua.Variant(ua.LocalizedText(member.text), ua.VariantType.LocalizedText)),
        )
        await variable.set_modelling_rule(True)
        if member.unit:
            prop = await variable.add_property(
                ns.node(ns.eu_id(identifier), idx),
                ua.QualifiedName(ns.EU_PROPERTY, 0),
                ua.Variant(eu_information(member.unit), ua.VariantType.ExtensionObject),
                datatype=ua.NodeId(ua.ObjectIds.EUInformation),
            )
            await prop.set_modelling_rule(True)
