# mypy: disable-error-code="attr-defined,arg-type,name-defined,union-attr"
# (asyncua 2.1 re-exports `ua.*`/`Server` implicitly and types scalars as NewTypes.)
"""A real client browses and reads the park built by the fast builder."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncua
import pytest
from asyncua import Client, ua

from config.demo import generate_site
from server.opcua import types as opcua_types
from tests.opcua.conftest import SMALL_SITE, running_park

Run = Callable[[Awaitable[Any]], Any]


def test_asyncua_is_the_pinned_version() -> None:
    # builder.py writes asyncua's NodeData/AttributeValue directly: re-check it on upgrades
    assert asyncua.__version__ == "2.1.0"
    from asyncua.server.address_space import AddressSpace, AttributeValue, NodeData

    assert set(vars(NodeData(ua.NodeId(1, 2)))) == {"nodeid", "attributes", "references", "call"}
    assert set(vars(AttributeValue(ua.DataValue()))) == {
        "value",
        "value_callback",
        "value_setter",
        "datachange_callbacks",
    }
    assert hasattr(AddressSpace(), "_nodes")


async def _names(client: Client, node: Any) -> dict[str, Any]:
    return {(await c.read_browse_name()).Name: c for c in await node.get_children()}


def test_small_site_browse_read(run: Run) -> None:
    async def main() -> None:
        async with running_park(SMALL_SITE) as park:
            client, idx = park.client, park.idx
            objects = await _names(client, client.nodes.objects)
            park_node = objects["Park"]
            top = await _names(client, park_node)
            assert set(top) == {"Areas", "Gateways"}
            areas = await _names(client, top["Areas"])
            assert set(areas) == {a.id for a in park.site.areas}
            buildings = await _names(client, areas["ENT"])
            assert "ENT-01" in buildings
            meters = await _names(client, buildings["ENT-01"])
            assert "E0001" in meters
            gateways = await _names(client, top["Gateways"])
            assert set(gateways) == {g.id for g in park.site.gateways}
            link = await _names(client, gateways["GW001"])
            assert "link_state" in link

            meter = meters["E0001"]
            type_def = await meter.read_type_definition()
            assert type_def == ua.NodeId("MeterType", idx)
            members = await _names(client, meter)
            for name in ("u_a", "relay", "balance_fen", "billing", "comm_state"):
                assert name in members
            u_a = client.get_node(ua.NodeId("Meter.E0001.u_a", idx))
            assert (await u_a.read_data_type()) == ua.NodeId(ua.ObjectIds.Double)
            eu = await u_a.get_child(["0:EngineeringUnits"])
            info = await eu.read_value()
            assert info.DisplayName.Text == "V"
            assert info.UnitId == opcua_types.unit_id("VLT") == 5655636
            fen = await client.get_node(ua.NodeId("Meter.E0001.balance_fen", idx)).get_child(
                ["0:EngineeringUnits"]
            )
            assert (await fen.read_value()).UnitId == -1
            billing = client.get_node(ua.NodeId("Meter.E0001.billing", idx))
            assert await billing.read_value() == "prepaid"
            # inverse references lead back up the tree
            parent = await u_a.get_parent()
            assert parent.nodeid == ua.NodeId("Meter.E0001", idx)
            assert (await meter.get_parent()).nodeid == ua.NodeId("Building.ENT-01", idx)
            assert (await eu.get_parent()).nodeid == u_a.nodeid
            assert (await u_a.read_attribute(ua.AttributeIds.NodeId)).Value.Value == u_a.nodeid
            # never read: bad status, no value
            never = await u_a.read_data_value(raise_on_bad_status=False)
            assert never.StatusCode.value == ua.StatusCodes.BadNoCommunication

    run(main())


def test_generated_park_builds_and_browses(run: Run, tmp_path: Path) -> None:
    generate_site(tmp_path / "site", seed=1)

    async def main() -> None:
        async with running_park(tmp_path / "site") as park:
            client, idx = park.client, park.idx
            last = park.site.meters[-1]
            node = client.get_node(ua.NodeId(f"Meter.{last.id}.relay", idx))
            assert (await node.read_browse_name()).Name == "relay"
            meter = client.get_node(ua.NodeId(f"Meter.{last.id}", idx))
            assert len(await meter.get_children()) == len(park.table.catalogue) + 2
            gateways = client.get_node(ua.NodeId("Park.Gateways", idx))
            assert len(await gateways.get_children()) == len(park.site.gateways)

    run(main())


def test_unknown_unit_is_named() -> None:
    with pytest.raises(ValueError, match="furlong"):
        opcua_types.eu_information("furlong")
    with pytest.raises(ValueError, match="UNECE"):
        opcua_types.unit_id("ABCD")
