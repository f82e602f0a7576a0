"""The [alarms] section: site-wide alarm limits and per-area or per-meter overrides."""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from config.model import AlarmLimits, AlarmOverride, Alarms
from config.toml_table import TomlTable

# key -> (low, high) for each limit; integers where the default is an integer.
RANGES: Final[dict[str, tuple[float, float]]] = {
    "undervoltage_ratio": (0.05, 1.0),
    "undervoltage_delay_s": (0, 86400),
    "overvoltage_ratio": (1.0, 2.0),
    "overvoltage_delay_s": (0, 86400),
    "phase_loss_low_ratio": (0.0, 1.0),
    "phase_loss_high_ratio": (0.0, 1.0),
    "phase_loss_delay_s": (0, 86400),
    "lost_comm_polls": (1, 1000),
    "gateway_down_s": (1, 86400),
    "off_delay_s": (0, 86400),
    "deadband_ratio": (0.0, 0.5),
}
_DEFAULTS: Final = AlarmLimits()


def _read_limit(table: TomlTable, key: str) -> float | int:
    low, high = RANGES[key]
    default = getattr(_DEFAULTS, key)
    if isinstance(default, int):
        return table.integer(key, int(low), int(high), default)
    return table.real(key, low, high, default)


def _consistency(table: TomlTable, limits: AlarmLimits) -> None:
    if limits.phase_loss_low_ratio >= limits.phase_loss_high_ratio:
        table.error(
            "phase_loss_low_ratio",
            f"must be below phase_loss_high_ratio ({limits.phase_loss_high_ratio}),"
            f" got {limits.phase_loss_low_ratio}",
        )


def read_alarms(
    root: TomlTable, areas: Collection[str]
) -> tuple[Alarms, list[tuple[TomlTable, str]]]:
    """The limits and overrides; also the (table, meter id) pairs to check against meters.csv."""
    table = root.table("alarms")
    if table is None:
        return Alarms(), []
    values = {key: _read_limit(table, key) for key in RANGES if table.has(key)}
    limits = _DEFAULTS.updated(values.items())
    _consistency(table, limits)
    overrides: list[AlarmOverride] = []
    meter_refs: list[tuple[TomlTable, str]] = []
    targets: dict[tuple[str, str], int] = {}
    for index, override in enumerate(table.tables("overrides")):
        has_area, has_meter = override.has("area"), override.has("meter")
        area = override.optional_ident("area")
        meter = override.optional_ident("meter")
        if has_area == has_meter:
            override.error("meter" if has_meter else None, "needs exactly one of area or meter")
        if area is not None and area not in areas:
            override.error("area", f"unknown area {area}")
        target = ("area", area) if area is not None else ("meter", meter or "")
        if target[1] and target in targets:
            message = f"{target[0]} {target[1]} already has overrides[{targets[target]}]"
            override.error(target[0], message)
        elif target[1]:
            targets[target] = index
        if meter is not None:
            meter_refs.append((override, meter))
        changes = {key: _read_limit(override, key) for key in RANGES if override.has(key)}
        if not changes:
            override.error(None, "changes no limit")
        if changes.keys() & {"phase_loss_low_ratio", "phase_loss_high_ratio"}:
            _consistency(override, limits.updated(changes.items()))
        override.finish()
        overrides.append(AlarmOverride(area, meter, tuple(sorted(changes.items()))))
    table.finish()
    return Alarms(limits, tuple(overrides)), meter_refs
