"""Which meters a command goes to: one meter, a list, an area, or a filter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from config.model import BILLING_MODES, METER_MODELS, Site
from server.tags import TagTable

_MAX_LISTED = 5


@dataclass(frozen=True, slots=True)
class Target:
    """A choice of meters: listed ids and/or site fields, optionally narrowed by live flags.

    Every field given must match (an `ids` list with an `area` keeps the listed meters in
    that area). `flags` are bool tags of the live tag table, e.g. `(("relay", False),)`.
    """

    ids: tuple[str, ...] | None = None
    area: str | None = None
    building: str | None = None
    gateway: str | None = None
    billing: str | None = None
    model: str | None = None
    flags: tuple[tuple[str, bool], ...] = ()

    @classmethod
    def meter(cls, meter_id: str) -> Target:
        """One meter."""
        return cls(ids=(meter_id,))

    @classmethod
    def meters(cls, meter_ids: Iterable[str]) -> Target:
        """A list of meters."""
        return cls(ids=tuple(meter_ids))

    @classmethod
    def in_area(cls, area: str, building: str | None = None) -> Target:
        """Every meter of an area (or of one building in it)."""
        return cls(area=area, building=building)

    @classmethod
    def matching(
        cls,
        *,
        area: str | None = None,
        building: str | None = None,
        gateway: str | None = None,
        billing: str | None = None,
        model: str | None = None,
        flags: Mapping[str, bool] | None = None,
    ) -> Target:
        """Every meter matching the filter."""
        return cls(
            area=area,
            building=building,
            gateway=gateway,
            billing=billing,
            model=model,
            flags=tuple(sorted((flags or {}).items())),
        )

    def describe(self) -> dict[str, object]:
        """The target as JSON-ready data, for the request row and the audit log."""
        out: dict[str, object] = {}
        if self.ids is not None:
            out["ids"] = list(self.ids)
        for name in ("area", "building", "gateway", "billing", "model"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.flags:
            out["flags"] = dict(self.flags)
        return out


def _listed(names: Iterable[str]) -> str:
    shown = [repr(n) for n in names]
    more = len(shown) - _MAX_LISTED
    return ", ".join(shown[:_MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def _check_ids(site: Site, ids: tuple[str, ...]) -> set[str]:
    if not ids:
        raise ValueError("target.ids: the list of meters is empty")
    bad = [i for i in ids if not isinstance(i, str)]
    if bad:
        raise ValueError(f"target.ids: meter ids must be text, got {_listed(map(str, bad))}")
    unknown = []
    for meter_id in dict.fromkeys(ids):
        try:
            site.meter_row(meter_id)
        except KeyError:
            unknown.append(meter_id)
    if unknown:
        raise ValueError(f"target.ids: unknown meter(s) {_listed(unknown)}")
    return set(ids)


def _check_fields(site: Site, target: Target) -> None:
    if target.area is not None:
        try:
            area = site.area(target.area)
        except KeyError:
            raise ValueError(f"target.area: no area {target.area!r}") from None
        if target.building is not None and target.building not in {b.id for b in area.buildings}:
            raise ValueError(
                f"target.building: area {area.id!r} has no building {target.building!r}"
            )
    elif target.building is not None and not any(
        b.id == target.building for a in site.areas for b in a.buildings
    ):
        raise ValueError(f"target.building: no building {target.building!r}")
    if target.gateway is not None:
        try:
            site.gateway(target.gateway)
        except KeyError:
            raise ValueError(f"target.gateway: no gateway {target.gateway!r}") from None
    if target.billing is not None and target.billing not in BILLING_MODES:
        raise ValueError(
            f"target.billing: must be one of {', '.join(BILLING_MODES)}, got {target.billing!r}"
        )
    if target.model is not None and target.model not in METER_MODELS:
        raise ValueError(
            f"target.model: must be one of {', '.join(METER_MODELS)}, got {target.model!r}"
        )


def resolve(target: Target | str, site: Site, tags: TagTable | None = None) -> tuple[str, ...]:
    """The meter ids `target` selects, in site order; a `ValueError` names what is wrong."""
    if isinstance(target, str):
        target = Target.meter(target)
    if not isinstance(target, Target):
        raise ValueError(f"target must be a meter id or a Target, got {target!r}")
    wanted = _check_ids(site, target.ids) if target.ids is not None else None
    _check_fields(site, target)
    if wanted is None and target == Target(flags=target.flags):
        raise ValueError("target: give meter ids or at least one of area, gateway, billing, model")
    chosen = [
        m.id
        for m in site.meters
        if (wanted is None or m.id in wanted)
        and target.area in (None, m.area)
        and target.building in (None, m.building)
        and target.gateway in (None, m.gateway)
        and target.billing in (None, m.billing)
        and target.model in (None, m.model)
    ]
    if target.flags and chosen:
        if tags is None:
            raise ValueError("target.flags: filtering on live flags needs the tag table")
        rows = tags.select(ids=chosen, flags=dict(target.flags))
        live = {str(i) for i in tags.ids[rows]}
        chosen = [m for m in chosen if m in live]
    if not chosen:
        raise ValueError(f"target: no meter matches {target.describe()}")
    return tuple(chosen)
