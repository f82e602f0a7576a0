# mypy: disable-error-code="attr-defined,arg-type,name-defined"
# (asyncua 2.1 re-exports `ua.*`/`Server` implicitly and types scalars as NewTypes.)
"""The park's OPC UA namespace: its URI, the string node-id scheme and the site's tree.

Node ids are strings in the park namespace, built from configuration ids only, so they
stay the same across restarts: `Park`, `Park.Areas`, `Area.<id>`, `Building.<id>`,
`Meter.<id>`, `Meter.<id>.<tag>`, `Meter.<id>.<tag>.EngineeringUnits`, `Park.Gateways`,
`Gateway.<id>`, `Gateway.<id>.<member>`, and `MeterType` / `GatewayType` for the types.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncua import ua

from config.model import Site

NAMESPACE_URI = "urn:parkgrid:park"
EU_PROPERTY = "EngineeringUnits"

PARK = "Park"
AREAS = "Park.Areas"
GATEWAYS = "Park.Gateways"
METER_TYPE = "MeterType"
GATEWAY_TYPE = "GatewayType"


def area_id(area: str) -> str:
    """The node id string of an area object."""
    return f"Area.{area}"


def building_id(building: str) -> str:
    """The node id string of a building object."""
    return f"Building.{building}"


def meter_id(meter: str) -> str:
    """The node id string of a meter object."""
    return f"Meter.{meter}"


def gateway_id(gateway: str) -> str:
    """The node id string of a gateway object."""
    return f"Gateway.{gateway}"


def member_id(owner: str, member: str) -> str:
    """The node id string of a component (tag variable) of an object or type."""
    return f"{owner}.{member}"


def eu_id(variable: str) -> str:
    """The node id string of a variable's EngineeringUnits property."""
    return f"{variable}.{EU_PROPERTY}"


def node(identifier: str, idx: int) -> ua.NodeId:
    """A string node id in namespace `idx`."""
    return ua.NodeId(identifier, idx, ua.NodeIdType.String)


@dataclass(frozen=True, slots=True)
class FolderNode:
    """An organising object of the tree: the park, an area, a building or a folder."""

    identifier: str
    name: str
    parent: str | None  # None: under the server's Objects folder


@dataclass(frozen=True, slots=True)
class MeterNode:
    """Where one meter sits in the tree, with its tag-table row and billing mode."""

    meter: str
    row: int
    parent: str
    billing: str


@dataclass(frozen=True, slots=True)
class GatewayNode:
    """One gateway object under Park.Gateways."""

    gateway: str
    protocol: str


@dataclass(frozen=True, slots=True)
class ParkTree:
    """The instance tree of a site, in the order the builders create it."""

    folders: tuple[FolderNode, ...]
    meters: tuple[MeterNode, ...]
    gateways: tuple[GatewayNode, ...]

    @classmethod
    def from_site(cls, site: Site) -> ParkTree:
        """Park → Areas → areas → buildings → meters (building-less meters under the area)."""
        folders = [
            FolderNode(PARK, PARK, None),
            FolderNode(AREAS, "Areas", PARK),
            FolderNode(GATEWAYS, "Gateways", PARK),
        ]
        buildings: dict[str, str] = {}
        for area in site.areas:
            folders.append(FolderNode(area_id(area.id), area.id, AREAS))
            for building in area.buildings:
                folders.append(FolderNode(building_id(building.id), building.id, area_id(area.id)))
                buildings[building.id] = building_id(building.id)
        meters = []
        for row, meter in enumerate(site.meters):
            if meter.building is not None and meter.building in buildings:
                parent = buildings[meter.building]
            else:
                parent = area_id(meter.area)
            meters.append(MeterNode(meter.id, row, parent, meter.billing))
        gateways = tuple(GatewayNode(g.id, g.protocol) for g in site.gateways)
        return cls(tuple(folders), tuple(meters), gateways)
