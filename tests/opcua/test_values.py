# mypy: disable-error-code="attr-defined,arg-type,name-defined,union-attr"
# (asyncua 2.1 re-exports `ua.*`/`Server` implicitly and types scalars as NewTypes.)
"""Table changes reach OPC UA values, status codes, timestamps and subscriptions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from asyncua import Server, ua

from config.loader import load_site
from server.clock import ManualClock
from server.opcua import ParkTree, build_fast, build_naive
from server.process import build_tag_table
from server.tags import Batch, CommState, StatusCode
from tests.opcua.conftest import SMALL_SITE, running_park

Run = Callable[[Awaitable[Any]], Any]


def test_batch_changes_value_status_and_timestamp(run: Run) -> None:
    async def main() -> None:
        async with running_park(SMALL_SITE) as park:
            table, idx = park.table, park.idx
            row = table.meters.row("E0001")
            u_a = park.client.get_node(ua.NodeId("Meter.E0001.u_a", idx))
            relay = park.client.get_node(ua.NodeId("Meter.E0001.relay", idx))
            park.clock.advance(5)
            read_at = park.clock.time() - 1
            changes = table.apply(
                Batch(
                    "realtime",
                    [row],
                    {"u_a": np.array([231.5]), "relay": np.array([1], np.uint8)},
                    source_ts=read_at,
                )
            )
            await park.values.on_batch(changes)
            value = await u_a.read_data_value()
            assert value.Value.Value == 231.5
            assert value.StatusCode.is_good()
            assert value.SourceTimestamp == datetime.fromtimestamp(read_at, UTC)
            assert value.ServerTimestamp is not None
            assert await relay.read_value() is True
            # a failed poll: bad code, null value, new source timestamp
            park.clock.advance(5)
            changes = table.apply(
                Batch(
                    "realtime",
                    [row],
                    {"u_a": np.array([0.0])},
                    quality=StatusCode.BAD_TIMEOUT,
                    source_ts=park.clock.time(),
                )
            )
            await park.values.on_batch(changes)
            bad = await u_a.read_data_value(raise_on_bad_status=False)
            assert bad.StatusCode.value == StatusCode.BAD_TIMEOUT
            assert bad.Value.Value is None
            assert bad.SourceTimestamp == datetime.fromtimestamp(park.clock.time(), UTC)
            # comm state and gateway link state
            await park.values.on_comm(table.set_comm([row], CommState.OFFLINE))
            comm = park.client.get_node(ua.NodeId("Meter.E0001.comm_state", idx))
            assert await comm.read_value() == CommState.OFFLINE
            await park.values.on_gateway("GW001", False, park.clock.time())
            link = park.client.get_node(ua.NodeId("Gateway.GW001.link_state", idx))
            assert await link.read_value() == 2

    run(main())


class _Changes:
    def __init__(self) -> None:
        self.seen: asyncio.Queue[tuple[ua.NodeId, object]] = asyncio.Queue()

    def datachange_notification(self, node: Any, val: object, data: Any) -> None:
        self.seen.put_nowait((node.nodeid, val))


def test_subscription_receives_change(run: Run) -> None:
    async def main() -> None:
        async with running_park(SMALL_SITE) as park:
            table, idx = park.table, park.idx
            handler = _Changes()
            sub = await park.client.create_subscription(20, handler)
            nodes = [
                park.client.get_node(ua.NodeId(f"Meter.E0001.{tag}", idx))
                for tag in ("u_a", "p", "relay")
            ]
            await sub.subscribe_data_change(nodes)
            for _ in nodes:  # the initial values
                await asyncio.wait_for(handler.seen.get(), 10)
            row = table.meters.row("E0001")
            changes = table.apply(
                Batch("realtime", [row], {"p": np.array([4.25])}, source_ts=park.clock.time())
            )
            await park.values.on_batch(changes)
            node, value = await asyncio.wait_for(handler.seen.get(), 10)
            assert node == ua.NodeId("Meter.E0001.p", idx) and value == 4.25
            assert park.values.stats.notified == 1
            await sub.delete()

    run(main())


async def _tree(server: Server, idx: int) -> dict[ua.NodeId, tuple[Any, ...]]:
    """Every park node: browse name, node class and its references (both directions)."""
    aspace = server.iserver.aspace
    found = {}
    for nodeid in list(aspace.keys()):
        if nodeid.NamespaceIndex != idx:
            continue
        data = aspace[nodeid]
        browse = aspace.read_attribute_value(nodeid, ua.AttributeIds.BrowseName).Value.Value
        refs = sorted(
            (
                str(r.ReferenceTypeId),
                r.IsForward,
                str(r.NodeId),
                r.BrowseName.to_string(),
                int(r.NodeClass),
                str(r.TypeDefinition),
            )
            for r in data.references
        )
        found[nodeid] = (browse.to_string(), tuple(refs))
    return found


def test_fast_and_naive_builds_agree(run: Run) -> None:
    site = load_site(SMALL_SITE)
    table = build_tag_table(site, ManualClock())

    async def build(kind: str) -> dict[ua.NodeId, tuple[Any, ...]]:
        server = Server()
        await server.init()
        builder = build_fast if kind == "fast" else build_naive
        types = await builder(server, site, table.catalogue)
        billing = server.get_node(ua.NodeId("Meter.E0002.billing", types.idx))
        assert await billing.read_value() == "postpaid"
        return await _tree(server, types.idx)

    fast = run(build("fast"))
    naive = run(build("naive"))
    assert fast.keys() == naive.keys()
    for nodeid in naive:
        assert fast[nodeid] == naive[nodeid], nodeid
    tree = ParkTree.from_site(site)
    assert len(fast) > len(tree.meters) * len(table.catalogue)
