"""Each meter's scan periods from the site's [acquisition] and its [[acquisition.groups]].

Precedence, period by period: a `meters` group naming the meter, then the group of its
gateway, then the group of its area, then the site-wide value. The config loader has
already refused a meter, gateway or area selected twice by groups of the same kind.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from config.model import SCAN_PERIODS, Acquisition, Meter, ScanGroup, Site

# the scan classes each period drives (demand is the meter's 15-minute window, read with energy)
PERIOD_CLASSES: Final = {
    "realtime_s": ("realtime", "poll_block"),
    "energy_s": ("energy", "demand"),
    "prepaid_s": ("prepaid",),
}


def _index(acquisition: Acquisition) -> dict[tuple[str, str], ScanGroup]:
    index: dict[tuple[str, str], ScanGroup] = {}
    for group in acquisition.groups:
        kind, targets = group.selector
        for target in targets:
            index.setdefault((kind, target), group)
    return index


def meter_periods(acquisition: Acquisition, meter: Meter) -> dict[str, int]:
    """The periods (SCAN_PERIODS keys, in seconds) that apply to `meter`."""
    index = _index(acquisition)
    return _resolve(acquisition, index, meter)


def _resolve(
    acquisition: Acquisition, index: dict[tuple[str, str], ScanGroup], meter: Meter
) -> dict[str, int]:
    chain = [
        index.get(("meters", meter.id)),
        index.get(("gateway", meter.gateway)) if meter.gateway is not None else None,
        index.get(("area", meter.area)),
    ]
    periods: dict[str, int] = {}
    for key in SCAN_PERIODS:
        found = (g.period(key) for g in chain if g is not None)
        periods[key] = next((v for v in found if v is not None), int(getattr(acquisition, key)))
    return periods


def site_class_intervals(site: Site) -> dict[str, npt.NDArray[np.float64]]:
    """Per scan class, the interval of every meter of the site, indexed by table row."""
    index = _index(site.acquisition)
    resolved = [_resolve(site.acquisition, index, meter) for meter in site.meters]
    out: dict[str, npt.NDArray[np.float64]] = {}
    for key, classes in PERIOD_CLASSES.items():
        column = np.array([p[key] for p in resolved], np.float64).reshape(len(resolved))
        for scan_class in classes:
            out[scan_class] = column
    return out
