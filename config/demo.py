"""Writes the deterministic reference park (5,407 meters, 224 gateways) as a site folder."""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

from config.demo_keys import write_merchant_keys, write_user_secrets
from config.demo_park import build_park
from config.demo_records import METER_COLUMNS, THREE_PHASE_MODEL, DemoPark
from config.demo_site_toml import TARIFF_IDS, render_site_toml

MARKER_FILE = ".parkgrid-demo-site"
MARKER_TEXT = "This folder was written by `parkgrid gen-site`; gen-site may overwrite it.\n"
# What a previous generation wrote; removed before writing again so nothing stale remains.
GENERATED_ENTRIES = ("site.toml", "meters.csv", "keys", "secrets")


class DemoSiteError(Exception):
    """The demo site cannot be written where it was asked to go."""


@dataclass(frozen=True)
class DemoSummary:
    """Counts of what a generated site holds, for printing."""

    folder: Path
    seed: int
    meters: int
    three_phase: int
    single_phase: int
    direct_4g: int
    gateways: int
    dtu_gateways: int
    modbus_tcp_gateways: int
    areas: int
    buildings: int
    enterprises: int
    prepaid: int
    postpaid: int
    unbilled: int
    merchants: int
    tariffs: int
    users: int

    def lines(self) -> list[str]:
        """A short human-readable report, one line per fact."""
        return [
            f"demo site written to {self.folder} (seed {self.seed})",
            f"meters: {self.meters} ({self.three_phase} three-phase, "
            f"{self.single_phase} single-phase; {self.direct_4g} direct 4G)",
            f"gateways: {self.gateways} ({self.dtu_gateways} dial-in DTU, "
            f"{self.modbus_tcp_gateways} Modbus TCP)",
            f"areas: {self.areas}, buildings: {self.buildings}, enterprises: {self.enterprises}",
            f"billing: {self.prepaid} prepaid, {self.postpaid} post-paid, "
            f"{self.unbilled} without account",
            f"merchants: {self.merchants}, tariffs: {self.tariffs}, users: {self.users} "
            "(initial passwords in secrets/initial-passwords.txt)",
        ]


def render_meters_csv(park: DemoPark) -> str:
    """The full text of meters.csv for `park`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METER_COLUMNS)
    writer.writerows(meter.row() for meter in park.meters)
    return buffer.getvalue()


def summarize(park: DemoPark, folder: Path) -> DemoSummary:
    """The counts of `park` as written to `folder`."""
    meters = park.meters
    three_phase = sum(1 for m in meters if m.model == THREE_PHASE_MODEL)
    tcp = sum(1 for g in park.gateways if g.kind == "modbus_tcp")
    return DemoSummary(
        folder=folder,
        seed=park.seed,
        meters=len(meters),
        three_phase=three_phase,
        single_phase=len(meters) - three_phase,
        direct_4g=sum(1 for m in meters if not m.gateway),
        gateways=len(park.gateways),
        dtu_gateways=len(park.gateways) - tcp,
        modbus_tcp_gateways=tcp,
        areas=len(park.areas),
        buildings=sum(len(area.buildings) for area in park.areas),
        enterprises=park.enterprises,
        prepaid=sum(1 for m in meters if m.billing == "prepaid"),
        postpaid=sum(1 for m in meters if m.billing == "postpaid"),
        unbilled=sum(1 for m in meters if m.billing == "none"),
        merchants=len(park.merchants),
        tariffs=len(TARIFF_IDS),
        users=len(park.users),
    )


def prepare_folder(out: Path) -> None:
    """Make `out` ready for a new site; refuse a folder that holds anything else."""
    if out.exists() and not out.is_dir():
        raise DemoSiteError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER_FILE).is_file():
            raise DemoSiteError(
                f"{out}: folder is not empty and was not written by gen-site "
                f"(no {MARKER_FILE}); choose an empty or new folder"
            )
        for name in GENERATED_ENTRIES:
            entry = out / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER_FILE).write_text(MARKER_TEXT, encoding="utf-8")


def generate_site(out: Path, seed: int = 1, modbus_tcp_gateways: int = 8) -> DemoSummary:
    """Write the reference park for `seed` into the folder `out`.

    site.toml and meters.csv are byte-identical for the same seed and options; the key
    files and passwords are fresh random values on every run.
    """
    park = build_park(seed, modbus_tcp_gateways)
    out = Path(out)
    prepare_folder(out)
    (out / "site.toml").write_bytes(render_site_toml(park).encode("utf-8"))
    (out / "meters.csv").write_bytes(render_meters_csv(park).encode("utf-8"))
    for merchant in park.merchants:
        write_merchant_keys(out, merchant.id)
    write_user_secrets(out, park.users)
    return summarize(park, out)
