"""The simulated meters' register space: every read plan encoded for all meters, sliced per read.

The plans of each meter model (config/profiles) are encoded together, once per fleet state,
into one compact image: a column for every register that some plan reads. A request for
(meter, address, count) takes those columns of the meter's row, so serving a read costs a
slice, not an encode. Freeze blocks are encoded on demand, block by block.

A value outside its register's range saturates: a negative balance reads as 0 in its U32
register (the status word's arrears bit tells why), a power beyond I16 reads as ±32767.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from config.profile import FREEZE, POLL_BLOCK, Plan, RegisterProfile, load_profile
from protocols.registers import encode_blocks, encode_freeze_block, encode_poll_block
from sim.fleet import Fleet

Registers = npt.NDArray[np.uint16]
IntArray = npt.NDArray[np.int64]

_RANGES: Final = {
    "u16": (0, 0xFFFF),
    "i16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF),
    "i32": (-0x80000000, 0x7FFFFFFF),
}
_UNMAPPED: Final = -1


class IllegalAddress(LookupError):
    """A read of registers that the meter does not have (Modbus exception 02)."""

    exception_code: Final = 2


def _saturated(
    plan: Plan, tags: dict[str, npt.NDArray[Any]], ratio: dict[str, Any]
) -> dict[str, npt.NDArray[Any]]:
    """The plan's word tags clipped to what their registers can hold; NaN words become 0."""
    out: dict[str, npt.NDArray[Any]] = {}
    for f in plan.fields:
        values = tags[f.tag]
        if f.type in _RANGES:
            lo, hi = _RANGES[f.type]
            if f.kind == "int":
                values = np.clip(values, lo * int(f.scale), hi * int(f.scale))
            else:
                unit = f.scale * ratio[f.ratio]
                values = np.clip(np.nan_to_num(values, nan=0.0), lo * unit, hi * unit)
        out[f.tag] = values
    return out


def _owned(plan: Plan) -> dict[int, int]:
    """Register number → column in the plan's raw array, for registers that carry a field."""
    owned: dict[int, int] = {}
    for f in plan.fields:
        for k in range(1 if f.type == "bits" else f.count):
            owned[f.address + k] = f.column + k
    return owned


def _block_columns(plan: Plan) -> list[tuple[int, int]]:
    """(register number, column) of every register of every block of the plan."""
    pairs: list[tuple[int, int]] = []
    column = 0
    for block in plan.blocks:
        pairs.extend((block.start + k, column + k) for k in range(block.count))
        column += block.count
    return pairs


class ModelImage:
    """The register image of the meters of one model: (meters, mapped registers) uint16."""

    def __init__(self, profile: RegisterProfile, rows: IntArray) -> None:
        """Map every register of every plan but the freeze blocks to a column."""
        self.profile = profile
        self.rows = rows
        self.plans = [p for name, p in profile.plans.items() if name != FREEZE]
        self.column_of = np.full(0x10000, _UNMAPPED, dtype=np.int64)
        owner: dict[int, str] = {}
        for plan in self.plans:
            for register, _ in _block_columns(plan):
                if self.column_of[register] == _UNMAPPED:
                    self.column_of[register] = 0  # numbered below, in address order
            for register in _owned(plan):
                if register in owner:
                    raise ValueError(
                        f"{profile.model}: register 0x{register:04X} carries a field of both "
                        f"plans {owner[register]} and {plan.name}"
                    )
                owner[register] = plan.name
        mapped = np.flatnonzero(self.column_of != _UNMAPPED)
        self.column_of[mapped] = np.arange(mapped.size)
        self.width = int(mapped.size)
        self._targets = []
        for plan in self.plans:
            owned = _owned(plan)
            registers = np.array(sorted(owned), dtype=np.int64)
            sources = np.array([owned[r] for r in registers.tolist()], dtype=np.int64)
            self._targets.append((plan, self.column_of[registers], sources))

    def encode(self, fleet: Fleet, tags: dict[str, npt.NDArray[Any]], tz: ZoneInfo) -> Registers:
        """The image of this model's meters for the fleet's current tag columns."""
        n = self.rows.size
        image = np.zeros((n, self.width), dtype=np.uint16)
        pt, ct = fleet.pt[self.rows], fleet.ct[self.rows]
        ratio = {"": 1.0, "pt": pt, "ct": ct, "ptct": pt * ct}
        mine = {name: column[self.rows] for name, column in tags.items()}
        for plan, targets, sources in self._targets:
            values = _saturated(plan, mine, ratio)
            if plan.name == POLL_BLOCK:
                raw = encode_poll_block(self.profile, values | {"pt": pt, "ct": ct}, tz)
                image[:, self.column_of[plan.blocks[0].start]] = raw[:, 0]
            else:
                raw = encode_blocks(self.profile, plan.name, values, pt, ct, tz)
            image[:, targets] = raw[:, sources]
        return image


class RegisterImage:
    """Serves register reads of any meter of the fleet from images refreshed per fleet state.

    The image follows the fleet's time and fault table by itself; a command that changes a
    meter (relay, prices, money, load) must be followed by `invalidate()`.
    """

    def __init__(self, fleet: Fleet, models: Sequence[str]) -> None:
        """`models` names each fleet row's meter model (a profile in config/profiles)."""
        if len(models) != len(fleet):
            raise ValueError(f"models: {len(models)} given for {len(fleet)} meters")
        self.fleet = fleet
        self.tz = fleet.tz
        names = np.array(models, dtype=np.str_)
        self.model_of = np.zeros(len(fleet), dtype=np.int64)
        self.position = np.zeros(len(fleet), dtype=np.int64)
        self.models: list[ModelImage] = []
        for m, model in enumerate(dict.fromkeys(models)):
            rows = np.flatnonzero(names == model)
            self.models.append(ModelImage(load_profile(model), rows))
            self.model_of[rows] = m
            self.position[rows] = np.arange(rows.size)
        self._images: list[Registers] | None = None
        self._freezes: dict[tuple[int, int], Registers] = {}
        self._key: tuple[float, int] | None = None

    def profile(self, row: int) -> RegisterProfile:
        """The register profile of the meter at `row`."""
        return self.models[int(self.model_of[row])].profile

    def invalidate(self) -> None:
        """Forget the encoded images: the next read encodes the fleet's state afresh."""
        self._images = None
        self._freezes.clear()
        self._key = None

    def _fresh(self) -> list[Registers]:
        key = (self.fleet.now, self.fleet.faults.version)
        if self._images is None or key != self._key:
            tags = self.fleet.tags()
            self._images = [m.encode(self.fleet, tags, self.tz) for m in self.models]
            self._freezes.clear()
            self._key = key
        return self._images

    def read(self, row: int, address: int, count: int) -> list[int]:
        """`count` registers of the meter at `row` from PDU `address`; unmapped: IllegalAddress."""
        model = self.models[int(self.model_of[row])]
        start = address + model.profile.address_base
        if not 1 <= count <= 125 or start < 0 or start + count > 0x10000:
            raise IllegalAddress(f"a read of {count} registers at PDU {address} is out of range")
        block = self._freeze_read(model, row, start, count)
        if block is not None:
            return block
        columns = model.column_of[start : start + count]
        if np.any(columns == _UNMAPPED):
            first = start + int(np.argmax(columns == _UNMAPPED))
            raise IllegalAddress(
                f"{model.profile.model}: register 0x{first:04X} is not in any read plan"
            )
        image = self._fresh()[int(self.model_of[row])]
        values: list[int] = image[self.position[row], columns].tolist()
        return values

    def _freeze_read(self, model: ModelImage, row: int, start: int, count: int) -> list[int] | None:
        """A read from the start of a freeze block, or None when `start` begins none."""
        spec = model.profile.freeze
        offset = start - spec.base
        if offset < 0 or offset % spec.stride or offset // spec.stride >= spec.depth:
            return None
        width = model.profile.read_plan(FREEZE).width
        if count > width:
            raise IllegalAddress(f"a freeze block has {width} registers, {count} were asked for")
        n = offset // spec.stride + 1
        self._fresh()
        m = int(self.model_of[row])
        if (m, n) not in self._freezes:
            self._freezes[(m, n)] = self._encode_freeze(model, n)
        values: list[int] = self._freezes[(m, n)][self.position[row], :count].tolist()
        return values

    def _encode_freeze(self, model: ModelImage, n: int) -> Registers:
        block = self.fleet.freeze_block(n, model.rows)
        plan = model.profile.read_plan(FREEZE)
        width = plan.width
        if not block["month"].size or int(block["month"][0]) == 0:
            return np.zeros((model.rows.size, width), dtype=np.uint16)
        pt, ct = self.fleet.pt[model.rows], self.fleet.ct[model.rows]
        ratio = {"": 1.0, "pt": pt, "ct": ct, "ptct": pt * ct}
        values = _saturated(plan, block, ratio)
        return encode_freeze_block(model.profile, block["month"], values, pt, ct, self.tz)

    def poll_blocks(self, rows: IntArray) -> Registers:
        """The 48-register compact poll block of each meter in `rows` (as the 4G meters upload)."""
        images = self._fresh()
        out = np.zeros((rows.size, 0), dtype=np.uint16)
        for m, model in enumerate(self.models):
            mine = np.flatnonzero(self.model_of[rows] == m)
            if not mine.size:
                continue
            block = model.profile.read_plan(POLL_BLOCK).blocks[0]
            if out.shape[1] == 0:
                out = np.zeros((rows.size, block.count), dtype=np.uint16)
            columns = model.column_of[block.start : block.end]
            out[mine] = images[m][np.ix_(self.position[rows[mine]], columns)]
        return out
