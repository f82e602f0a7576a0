"""Per-meter alarm limit columns, built once from the site and rebuilt on a settings change."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alarms.kinds import METER_KINDS, AlarmKind
from config.model import Site
from server.tags import TagTable

Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

NO_LEVEL = np.iinfo(np.int64).min
"""The balance-level column value of a meter with no such level (nothing is below it)."""


@dataclass(frozen=True, slots=True, eq=False)
class LimitColumns:
    """Every meter's limits as numpy columns aligned with the tag table's rows.

    Voltages are in volts (ratios × the park's nominal voltage); `on_delay` and `off_delay`
    are (meter kinds × meters) matrices in seconds; `gateway_down_s` and
    `gateway_off_delay_s` are per gateway code (the table's `meters.gateway_names`).
    """

    undervoltage_v: Floats
    overvoltage_v: Floats
    phase_loss_low_v: Floats
    phase_loss_high_v: Floats
    voltage_deadband_v: Floats
    power_limit_kw: Floats
    power_deadband_kw: Floats
    lost_comm_s: Floats
    alarm1_fen: npt.NDArray[np.int64]
    alarm2_fen: npt.NDArray[np.int64]
    prepaid: Mask
    balance_watched: Mask
    three_phase: Mask
    on_delay: Floats
    off_delay: Floats
    gateway_down_s: Floats
    gateway_off_delay_s: Floats

    @classmethod
    def from_site(cls, site: Site, table: TagTable) -> LimitColumns:
        """The limits of every meter of `site`, whose meters must be the table's rows in order."""
        ids = [meter.id for meter in site.meters]
        if ids != table.ids.tolist():
            raise ValueError(
                "alarm limits: the tag table's rows are not the site's meters in file order"
                f" ({len(table)} rows, {len(ids)} meters)"
            )
        meter_gateways = [meter.gateway for meter in site.meters]
        if meter_gateways != table.meters.gateway_of(np.arange(len(ids), dtype=np.int64)):
            raise ValueError("alarm limits: the tag table's gateways differ from the site's")
        count = len(ids)
        nominal = float(site.park.nominal_voltage)
        realtime_s = float(site.acquisition.realtime_s)
        per_meter = [site.alarms.limits_for(meter) for meter in site.meters]

        def column(name: str) -> Floats:
            return np.array([float(getattr(lim, name)) for lim in per_meter], dtype=np.float64)

        deadband = column("deadband_ratio")
        power = np.array(
            [np.nan if m.power_limit_kw is None else float(m.power_limit_kw) for m in site.meters],
            dtype=np.float64,
        )
        on_delay = np.zeros((len(METER_KINDS), count), dtype=np.float64)
        on_delay[AlarmKind.UNDERVOLTAGE] = column("undervoltage_delay_s")
        on_delay[AlarmKind.OVERVOLTAGE] = column("overvoltage_delay_s")
        on_delay[AlarmKind.PHASE_LOSS] = column("phase_loss_delay_s")
        off_delay = np.broadcast_to(column("off_delay_s"), on_delay.shape).copy()
        gateway_codes = table.meters.gateway_codes
        gateways = len(table.meters.gateway_names)
        behind = gateway_codes >= 0
        gateway_down = np.full(gateways, np.inf)
        np.minimum.at(gateway_down, gateway_codes[behind], column("gateway_down_s")[behind])
        gateway_off = np.full(gateways, np.inf)
        np.minimum.at(gateway_off, gateway_codes[behind], column("off_delay_s")[behind])
        result = cls(
            undervoltage_v=column("undervoltage_ratio") * nominal,
            overvoltage_v=column("overvoltage_ratio") * nominal,
            phase_loss_low_v=column("phase_loss_low_ratio") * nominal,
            phase_loss_high_v=column("phase_loss_high_ratio") * nominal,
            voltage_deadband_v=deadband * nominal,
            power_limit_kw=power,
            power_deadband_kw=np.nan_to_num(deadband * power, nan=0.0),
            lost_comm_s=column("lost_comm_polls") * realtime_s,
            alarm1_fen=_levels([m.alarm1_fen for m in site.meters]),
            alarm2_fen=_levels([m.alarm2_fen for m in site.meters]),
            prepaid=np.array([m.billing == "prepaid" for m in site.meters], dtype=np.bool_),
            balance_watched=np.array([m.billing != "none" for m in site.meters], dtype=np.bool_),
            three_phase=table.meters.three_phase.copy(),
            on_delay=on_delay,
            off_delay=off_delay,
            gateway_down_s=gateway_down,
            gateway_off_delay_s=gateway_off,
        )
        for value in (getattr(result, name) for name in cls.__slots__):
            value.flags.writeable = False
        return result


def _levels(levels: list[int | None]) -> npt.NDArray[np.int64]:
    """Balance levels in fen, `NO_LEVEL` where a meter has none."""
    return np.array([NO_LEVEL if v is None else v for v in levels], dtype=np.int64)
