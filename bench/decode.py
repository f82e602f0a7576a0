"""Benchmark "decode": southbound decoding for a full scan of the reference park.

Registers come from the simulator's physics, encoded through the same profiles the
driver decodes with, so the figures are for realistic values.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from bench.runner import Metric, ratio
from bench.timing import median_seconds
from config import load_site
from config.demo import generate_site
from config.profile import load_profile
from protocols.modbus_rtu import RegistersReply, decode_reply
from protocols.registers import decode_blocks, decode_poll_block, encode_blocks, encode_poll_block
from sim.fleet import Fleet

SCAN_CLASSES = ("realtime", "energy")
START = 1_717_200_000.0  # 2024-06-01, a Saturday in the summer TOU season


def _park() -> tuple[Fleet, dict[str, npt.NDArray[np.bool_]], ZoneInfo]:
    """The simulated demo park after one hour of running, and each model's meter mask."""
    with tempfile.TemporaryDirectory() as tmp:
        generate_site(Path(tmp) / "park", seed=1)
        site = load_site(Path(tmp) / "park", env={})
    fleet = Fleet.from_site(site, seed=1, start=START)
    fleet.step(START)
    fleet.step(START + 3600)
    models = np.array([m.model for m in site.meters])
    masks = {model: models == model for model in sorted(set(models))}
    return fleet, masks, ZoneInfo(site.park.timezone)


def _raw_by_model(
    fleet: Fleet, masks: Mapping[str, npt.NDArray[np.bool_]], tz: ZoneInfo
) -> dict[tuple[str, str], npt.NDArray[np.uint16]]:
    """Each model's raw plan registers for each scan class, for all its meters."""
    tags = fleet.tags()
    raw = {}
    for model, mask in masks.items():
        profile = load_profile(model)
        subset = {name: column[mask] for name, column in tags.items()}
        for scan in SCAN_CLASSES:
            raw[model, scan] = encode_blocks(profile, scan, subset, subset["pt"], subset["ct"], tz)
    return raw


def run() -> dict[str, Metric]:
    """Time register decoding, RTU reply parsing and 4G poll-block decoding."""
    fleet, masks, tz = _park()
    meters = sum(int(mask.sum()) for mask in masks.values())
    raw = _raw_by_model(fleet, masks, tz)
    tags = fleet.tags()
    pt_ct = {model: (tags["pt"][mask], tags["ct"][mask]) for model, mask in masks.items()}

    def decode_scan() -> None:
        for (model, scan), block in raw.items():
            pt, ct = pt_ct[model]
            decode_blocks(load_profile(model), scan, block, pt, ct, tz, now=START + 3600)

    scan_s = median_seconds(decode_scan, repeat=21)

    # One RTU reply per block read, as the dial-in links hand them over.
    frames: list[bytes] = []
    for (model, scan), block in raw.items():
        profile = load_profile(model)
        column = 0
        for plan_block in profile.plan(scan):
            words = block[:, column : column + plan_block.count]
            frames.extend(
                RegistersReply(1, 3, tuple(int(w) for w in row)).encode() for row in words[:500]
            )
            column += plan_block.count

    def parse_frames() -> None:
        for frame in frames:
            decode_reply(frame)

    frames_s = median_seconds(parse_frames, repeat=5, warmup=1)

    three_phase = masks["DTSY1352"]
    poll_profile = load_profile("DTSY1352")
    subset = {name: column[three_phase] for name, column in tags.items()}
    poll = encode_poll_block(poll_profile, subset, tz)
    poll_s = median_seconds(
        lambda: decode_poll_block(poll_profile, poll, tz, now=START + 3600), repeat=21
    )
    per_frame_us = frames_s / len(frames) * 1e6
    return {
        "scan_decode_ms": Metric(scan_s * 1e3, "ms", better="lower"),
        "scan_decode_meters_per_s": Metric(ratio(meters, scan_s), "meters/s", better="higher"),
        "rtu_reply_decode_us": Metric(per_frame_us, "us", better="lower"),
        "rtu_replies_per_s": Metric(ratio(1e6, per_frame_us), "replies/s", better="higher"),
        "poll_block_decode_ms": Metric(poll_s * 1e3, "ms", better="lower"),
        "poll_block_meters": Metric(float(len(poll)), "meters", better="higher"),
    }
