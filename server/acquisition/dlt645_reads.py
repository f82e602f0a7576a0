"""Reads of the DL/T 645 read plan from one meter behind a DTU gateway, as tag values.

The plan (config/dlt645_reads.toml) says which DIs a scan class reads and which tags
their values fill. One meter's reads for one class go out one frame at a time; the poll
group puts the values of all its meters into columns and submits the same batches as
for Modbus meters. The meters serve secondary-side values: each is multiplied by the
ratio the plan gives it (PT, CT or PT × CT from meters.csv).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from config.catalogue import TagCatalogue
from config.dlt645_plan import DiRead, Dlt645Plan
from protocols.dialin import DialinListener
from protocols.dlt645_di import DayHour, FieldValue, Value
from protocols.dlt645_messages import ReadReply, ReadRequest, parse_message
from protocols.errors import FrameError
from protocols.link_errors import BadReply

TagValue = float | int


def flatten(value: Value) -> list[FieldValue]:
    """The field values of a reply in order (a block of multi-field elements, flattened)."""
    if isinstance(value, tuple) and not isinstance(value, DayHour):
        out: list[FieldValue] = []
        for part in value:
            out.extend(flatten(part))
        return out
    return [value]


class Dlt645Reader:
    """Reads the plan's DIs from the meters behind one DL/T 645 gateway."""

    def __init__(
        self,
        listener: DialinListener,
        gateway_id: str,
        plan: Dlt645Plan,
        catalogue: TagCatalogue,
        tz: tzinfo,
        addresses: Mapping[str, str],
        three_phase: Mapping[str, bool],
    ) -> None:
        """`addresses` and `three_phase` are by meter id, for the gateway's meters."""
        self.listener = listener
        self.gateway_id = gateway_id
        self.plan = plan
        self.catalogue = catalogue
        self.tz = tz
        self.addresses = dict(addresses)
        self.three_phase = dict(three_phase)

    def columns(self, scan_class: str, count: int) -> dict[str, npt.NDArray[np.generic]]:
        """Empty columns (NaN or 0) for the tags `scan_class` fills, `count` rows each."""
        names = dict.fromkeys(t for r in self.plan.for_class(scan_class) for t in r.tags if t)
        out: dict[str, npt.NDArray[np.generic]] = {}
        for name in names:
            tag = self.catalogue.tag(name)
            out[name] = np.full(count, tag.fill, tag.dtype)
        return out

    async def read_meter(
        self, meter_id: str, scan_class: str, pt: int, ct: int
    ) -> dict[str, TagValue]:
        """The tag values of one meter for `scan_class`; raises LinkError or FrameError."""
        address = self.addresses[meter_id]
        three_phase = self.three_phase[meter_id]
        values: dict[str, TagValue] = {}
        for read in self.plan.for_class(scan_class):
            reply = await self.listener.request_dlt645(
                self.gateway_id, ReadRequest(address, read.di).to_frame()
            )
            message = parse_message(reply)
            if not isinstance(message, ReadReply) or message.di != read.di:
                raise BadReply(self.gateway_id, f"{meter_id}: DI {read.di:08X}: got {message!r}")
            fields = flatten(message.value())
            names = read.filled(three_phase)
            if len(fields) != len(names):
                raise FrameError(
                    f"{meter_id}: DI {read.di:08X} gave {len(fields)} values, "
                    f"the plan names {len(names)}"
                )
            for name, field in zip(names, fields, strict=True):
                if name:
                    value = self._value(name, field, read, pt, ct)
                    values[name] = values.get(name, 0) + value
        return values

    def _value(self, name: str, field: FieldValue, read: DiRead, pt: int, ct: int) -> TagValue:
        ratio = {"1": 1, "pt": pt, "ct": ct, "pt*ct": pt * ct}[read.ratio]
        if self.catalogue.tag(name).kind != "float":
            if not isinstance(field, int) or isinstance(field, bool):
                raise FrameError(f"DI {read.di:08X}: {name} needs an integer, got {field!r}")
            return read.sign * field * ratio
        if field is None:
            return float("nan")
        if isinstance(field, datetime):
            return field.replace(tzinfo=self.tz).timestamp()
        if isinstance(field, Decimal | int) and not isinstance(field, bool):
            return read.sign * float(field) * ratio
        raise FrameError(f"DI {read.di:08X}: {name} cannot hold {field!r}")
