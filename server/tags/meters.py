"""The fixed attributes of the tag table's rows: meter id, area, gateway and phase count."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

RowArray = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

DIRECT = -1
"""The gateway code of a meter with no gateway (a 4G meter that dials in by itself)."""

_MAX_LISTED = 5


class MeterIndex:
    """Row lookup and vectorised masks over the meters' fixed attributes."""

    def __init__(
        self,
        meter_ids: Sequence[str],
        *,
        areas: Sequence[str],
        gateways: Sequence[str | None],
        three_phase: Sequence[bool],
    ) -> None:
        count = len(meter_ids)
        for name, column in (
            ("areas", areas),
            ("gateways", gateways),
            ("three_phase", three_phase),
        ):
            if len(column) != count:
                raise ValueError(
                    f"{name} has {len(column)} entries, expected one per meter ({count})"
                )
        row_of: dict[str, int] = {}
        for row, meter_id in enumerate(meter_ids):
            if not isinstance(meter_id, str) or not meter_id:
                raise ValueError(f"meter_ids[{row}]: must be a non-empty string, got {meter_id!r}")
            if meter_id in row_of:
                raise ValueError(
                    f"meter_ids[{row}]: {meter_id!r} already used by row {row_of[meter_id]}"
                )
            row_of[meter_id] = row
        for row, area in enumerate(areas):
            if not isinstance(area, str) or not area:
                raise ValueError(f"areas[{row}]: must be a non-empty string, got {area!r}")
        for row, gateway in enumerate(gateways):
            if gateway is not None and (not isinstance(gateway, str) or not gateway):
                raise ValueError(
                    f"gateways[{row}]: must be a non-empty string or None, got {gateway!r}"
                )
        self._row_of = row_of
        self.ids: npt.NDArray[np.str_] = np.array(list(meter_ids), dtype=np.str_)
        self.area_names: tuple[str, ...] = tuple(dict.fromkeys(areas))
        self.gateway_names: tuple[str, ...] = tuple(dict.fromkeys(g for g in gateways if g))
        area_code = {a: i for i, a in enumerate(self.area_names)}
        gateway_code = {g: i for i, g in enumerate(self.gateway_names)}
        self.area_codes: npt.NDArray[np.int32] = np.array(
            [area_code[a] for a in areas], dtype=np.int32
        )
        self.gateway_codes: npt.NDArray[np.int32] = np.array(
            [DIRECT if g is None else gateway_code[g] for g in gateways], dtype=np.int32
        )
        self.three_phase: Mask = np.array([bool(p) for p in three_phase], dtype=np.bool_)
        for array in (self.ids, self.area_codes, self.gateway_codes, self.three_phase):
            array.flags.writeable = False

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, meter_id: str) -> int:
        """The row of one meter; a `KeyError` names an unknown id."""
        try:
            return self._row_of[meter_id]
        except KeyError:
            raise KeyError(f"unknown meter id {meter_id!r}") from None

    def rows_for(self, meter_ids: Iterable[str]) -> RowArray:
        """The rows of the given meters, in the given order (cache them per poll group)."""
        ids = list(meter_ids)
        rows = [self._row_of.get(m, -1) for m in ids]
        if -1 in rows:
            unknown = [m for m, r in zip(ids, rows, strict=True) if r == -1]
            raise ValueError(f"unknown meter ids: {_listing(unknown)}")
        return np.array(rows, dtype=np.int64).reshape(len(rows))

    def area_mask(self, areas: str | Iterable[str]) -> Mask:
        """Rows in any of the named areas; an unknown area is a `ValueError`."""
        codes = _codes(self.area_names, areas, "area")
        return np.isin(self.area_codes, codes)

    def gateway_mask(self, gateways: str | Iterable[str]) -> Mask:
        """Rows behind any of the named gateways; an unknown gateway is a `ValueError`."""
        codes = _codes(self.gateway_names, gateways, "gateway")
        return np.isin(self.gateway_codes, codes)

    def direct_mask(self) -> Mask:
        """Rows of meters with no gateway (direct 4G)."""
        return np.equal(self.gateway_codes, DIRECT)

    def area_of(self, rows: RowArray) -> list[str]:
        """The area name of each row."""
        return [self.area_names[c] for c in self.area_codes[rows].tolist()]

    def gateway_of(self, rows: RowArray) -> list[str | None]:
        """The gateway id of each row, or None for a direct meter."""
        return [
            None if c == DIRECT else self.gateway_names[c]
            for c in self.gateway_codes[rows].tolist()
        ]


def _codes(names: tuple[str, ...], wanted: str | Iterable[str], what: str) -> npt.NDArray[np.int32]:
    """The codes of `wanted` names among `names`; a `ValueError` lists the unknown ones."""
    chosen = [wanted] if isinstance(wanted, str) else list(wanted)
    known = {n: i for i, n in enumerate(names)}
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise ValueError(f"unknown {what}(s): {_listing(unknown)}")
    return np.array([known[n] for n in chosen], dtype=np.int32)


def _listing(names: Sequence[object]) -> str:
    """A short comma list of names, saying how many more were left out."""
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return f"{shown} (and {more} more)" if more > 0 else shown
