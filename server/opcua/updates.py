# mypy: disable-error-code="attr-defined,arg-type,name-defined"
# (asyncua 2.1 re-exports `ua.*`/`Server` implicitly and types scalars as NewTypes.)
"""Live values: tag-table change sets written into the OPC UA variables that changed.

Each changed value goes in with the group's quality as its StatusCode (a bad code carries
a null value, as OPC UA Part 4 §7.7.1 asks), the reading's source timestamp and the
table's server timestamp. A variable that a client monitors is written through
`AddressSpace.write_attribute_value`, which runs the subscriptions' data-change
callbacks; one nobody monitors gets the same DataValue stored directly, which is all
that call would do for it, at a fraction of the cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from asyncua import Server, ua
from asyncua.server.address_space import AddressSpace, AttributeValue

from server.opcua import namespace as ns
from server.opcua.types import ParkTypes
from server.tags import ChangeSet, CommChange, TagTable
from server.tags.quality import is_bad

_VALUE = ua.AttributeIds.Value
_GOOD = 0


@dataclass(frozen=True, slots=True)
class ValueSlots:
    """The variables of one member across all meters (or gateways), by table row."""

    variant: ua.VariantType
    nodes: list[ua.NodeId]
    values: list[AttributeValue]


@dataclass(slots=True)
class ValueIndex:
    """Where each live value is held: meter members by table row, gateways by id."""

    meters: dict[str, ValueSlots]
    gateways: dict[str, tuple[ua.NodeId, AttributeValue]]

    @classmethod
    def from_address_space(
        cls, server: Server, types: ParkTypes, tree: ns.ParkTree, table: TagTable
    ) -> ValueIndex:
        """Find the Value attribute of every meter variable and gateway link state."""
        aspace: AddressSpace = server.iserver.aspace
        if len(tree.meters) != len(table) or any(m.meter != table.ids[m.row] for m in tree.meters):
            raise ValueError("the site's meters and the tag table's rows do not match")
        ordered = sorted(tree.meters, key=lambda m: m.row)
        meters: dict[str, ValueSlots] = {}
        for member in types.meter_members:
            if member.name == "billing":
                continue
            # the stored node ids, not the lookup keys: one NodeId object per node
            found = [
                aspace[ns.node(ns.member_id(ns.meter_id(m.meter), member.name), types.idx)]
                for m in ordered
            ]
            meters[member.name] = ValueSlots(
                member.variant, [d.nodeid for d in found], [d.attributes[_VALUE] for d in found]
            )
        gateways = {}
        for gateway in tree.gateways:
            node = ns.node(ns.member_id(ns.gateway_id(gateway.gateway), "link_state"), types.idx)
            gateways[gateway.gateway] = (node, aspace[node].attributes[_VALUE])
        return cls(meters, gateways)


@dataclass(slots=True)
class UpdateStats:
    """How many values were written and how long the last change set took."""

    batches: int = 0
    values: int = 0
    notified: int = 0
    last_ms: float = 0.0
    total_s: float = 0.0


def _timestamps(seconds: npt.NDArray[np.float64]) -> list[datetime | None]:
    """Unix seconds as UTC datetimes, None where not a number."""
    return [None if math.isnan(s) else datetime.fromtimestamp(s, UTC) for s in seconds.tolist()]


class OpcUaValues:
    """Keeps the OPC UA variables equal to the tag table; feed it the table's changes."""

    def __init__(self, server: Server, table: TagTable, index: ValueIndex) -> None:
        self.aspace: AddressSpace = server.iserver.aspace
        self.table = table
        self.index = index
        self.stats = UpdateStats()
        self._codes: dict[int, ua.StatusCode] = {}
        unknown = [t.name for t in table.catalogue if t.name not in index.meters]
        if unknown:
            raise ValueError(f"the address space has no variables for tag(s) {', '.join(unknown)}")

    async def load(self) -> None:
        """Write the table's current state into every variable (call once after the build)."""
        rows = np.arange(len(self.table), dtype=np.int64)
        now = self._now(self.table.clock.time())
        for group in self.table.catalogue.groups:
            for tag in self.table.catalogue.group_tags(group):
                await self._write_tag(tag.name, group, rows, now)
        await self._write_comm(rows, self.table.comm[rows], self.table.comm_since[rows], now)

    async def on_batch(self, changes: ChangeSet) -> None:
        """Write the values (and qualities) that one `TagTable.apply` changed."""
        started = time.perf_counter()
        if changes:
            now = self._now(changes.server_ts)
            for tag, mask in changes.values.items():
                rows = changes.rows[mask | changes.quality]
                if len(rows):
                    await self._write_tag(tag, changes.group, rows, now)
        self._count(started)

    async def on_comm(self, change: CommChange) -> None:
        """Write the communication states that one `TagTable.set_comm` changed."""
        if change:
            now = self._now(self.table.clock.time())
            await self._write_comm(change.rows, change.state, change.since, now)

    async def on_gateway(self, gateway: str, online: bool, at: float) -> None:
        """Write a gateway's link state (1 online, 2 offline); a `KeyError` names an unknown one."""
        try:
            node, attval = self.index.gateways[gateway]
        except KeyError:
            raise KeyError(f"no gateway {gateway!r} in the OPC UA address space") from None
        stamp = _timestamps(np.array([at]))[0]
        value = ua.DataValue(
            ua.Variant(1 if online else 2, ua.VariantType.Byte),
            self._code(_GOOD),
            SourceTimestamp=stamp,
            ServerTimestamp=self._now(self.table.clock.time()),
        )
        await self._store(node, attval, value)

    def _count(self, started: float) -> None:
        elapsed = time.perf_counter() - started
        self.stats.batches += 1
        self.stats.last_ms = elapsed * 1000.0
        self.stats.total_s += elapsed

    async def _write_tag(
        self, tag: str, group: str, rows: npt.NDArray[np.int64], now: datetime | None
    ) -> None:
        slots = self.index.meters[tag]
        values = self.table.column(tag)[rows]
        quality = self.table.quality(group)[rows]
        stamps = _timestamps(self.table.source_ts(group)[rows])
        await self._write(slots, rows, values, quality, stamps, now)

    async def _write_comm(
        self,
        rows: npt.NDArray[np.int64],
        states: npt.NDArray[np.uint8],
        since: npt.NDArray[np.float64],
        now: datetime | None,
    ) -> None:
        quality = np.zeros(len(rows), dtype=np.uint32)
        slots = self.index.meters["comm_state"]
        await self._write(slots, rows, states, quality, _timestamps(since), now)

    async def _write(
        self,
        slots: ValueSlots,
        rows: npt.NDArray[np.int64],
        values: npt.NDArray[np.generic],
        quality: npt.NDArray[np.uint32],
        stamps: Sequence[datetime | None],
        now: datetime | None,
    ) -> None:
        """One DataValue per row; bad rows get a null value with their bad code.

        Bad rows with the same code and timestamp share one DataValue: a gateway that
        stops answering turns thousands of values bad at once.
        """
        variant = slots.variant
        bad = is_bad(quality).tolist()
        if variant == ua.VariantType.Boolean:
            python_values: list[object] = [bool(v) for v in values.tolist()]
        else:
            python_values = values.tolist()
        null = ua.Variant(None, ua.VariantType.Null)
        code = self._code
        nodes, attvals = slots.nodes, slots.values
        codes = quality.tolist()
        if all(bad) and len(set(codes)) == 1 and len(set(stamps)) == 1:
            # all bad alike (never read, a link down): one shared DataValue
            data = ua.DataValue(
                null, code(codes[0]), SourceTimestamp=stamps[0], ServerTimestamp=now
            )
            for row in rows.tolist():
                await self._store(nodes[row], attvals[row], data)
            self.stats.values += len(codes)
            return
        shared: dict[tuple[int, datetime | None], ua.DataValue] = {}
        for row, value, status, is_bad_row, stamp in zip(
            rows.tolist(), python_values, codes, bad, stamps, strict=True
        ):
            if is_bad_row:
                data = shared.get((status, stamp))  # type: ignore[assignment]
                if data is None:
                    data = shared[(status, stamp)] = ua.DataValue(
                        null, code(status), SourceTimestamp=stamp, ServerTimestamp=now
                    )
            else:
                data = ua.DataValue(
                    ua.Variant(value, variant),
                    code(status),
                    SourceTimestamp=stamp,
                    ServerTimestamp=now,
                )
            attval = attvals[row]
            if attval.datachange_callbacks or attval.value_setter is not None:
                await self.aspace.write_attribute_value(nodes[row], _VALUE, data)
                self.stats.notified += 1
            else:
                attval.value = data
                attval.value_callback = None
        self.stats.values += len(python_values)

    async def _store(self, node: ua.NodeId, attval: AttributeValue, value: ua.DataValue) -> None:
        if attval.datachange_callbacks or attval.value_setter is not None:
            await self.aspace.write_attribute_value(node, _VALUE, value)
            self.stats.notified += 1
        else:
            attval.value = value
            attval.value_callback = None

    def _code(self, code: int) -> ua.StatusCode:
        found = self._codes.get(code)
        if found is None:
            found = self._codes[code] = ua.StatusCode(code)
        return found

    @staticmethod
    def _now(seconds: float) -> datetime | None:
        return None if math.isnan(seconds) else datetime.fromtimestamp(seconds, UTC)
