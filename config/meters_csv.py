"""Reads meters.csv: one meter per row, every field and cross-reference checked."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from config.errors import ErrorLog
from config.model import BILLING_MODES, METER_MODELS, Area, Gateway, Meter
from config.money import parse_fen, parse_kw
from config.values import parse_dlt645_address, parse_ident, parse_serial

COLUMNS: Final = (
    "id",
    "model",
    "dlt645_address",
    "gateway",
    "slave",
    "serial",
    "area",
    "building",
    "room",
    "owner",
    "billing",
    "ct",
    "pt",
    "merchant",
    "tariff",
    "power_limit_kw",
    "alarm1_yuan",
    "alarm2_yuan",
    "credit_limit_yuan",
)
MAX_RATIO: Final = 65535  # PT and CT are 16-bit registers in the meter


@dataclass(frozen=True, slots=True)
class SiteRefs:
    """What meter rows may refer to, from site.toml."""

    gateways: Mapping[str, Gateway]
    areas: Mapping[str, Area]
    merchants: Collection[str]
    tariffs: Collection[str]


@dataclass(slots=True)
class _Seen:
    """The first line that used each unique value."""

    ids: dict[str, int] = field(default_factory=dict)
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    serials: dict[str, tuple[str, int]] = field(default_factory=dict)
    slaves: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)


def read_meters(data: bytes, refs: SiteRefs, log: ErrorLog) -> tuple[Meter, ...]:
    """Parse and check meters.csv; errors go to `log`, rows with errors are left out."""
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    utf8_ok = not _has_escapes(data)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as problem:
        log.csv(1, "header", f"not valid CSV: {problem}")
        return ()
    if header is None:
        log.csv(1, "header", "the file is empty; it needs the header " + ",".join(COLUMNS))
        return ()
    if not _header_ok(header, log):
        return ()
    building_area: dict[str, str] = {}
    for area in refs.areas.values():
        for building in area.buildings:
            building_area.setdefault(building.id, area.id)  # a duplicate is reported in site.toml
    seen = _Seen()
    meters: list[Meter] = []
    line = reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as problem:
            log.csv(start, "", f"not valid CSV: {problem}")
            break
        line = reader.line_num
        if not cells:
            continue
        if not utf8_ok and any("\udc80" <= char <= "\udcff" for cell in cells for char in cell):
            log.csv(start, "", "not valid UTF-8")
            continue
        if len(cells) != len(COLUMNS):
            log.csv(start, "", f"has {len(cells)} fields, the header has {len(COLUMNS)}")
            continue
        meter = _RowCheck(start, cells, refs, building_area, log).meter()
        if meter is not None and _unique(meter, seen, log):
            meters.append(meter)
    return tuple(meters)


def _has_escapes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _header_ok(header: list[str], log: ErrorLog) -> bool:
    if tuple(header) == COLUMNS:
        return True
    missing = [name for name in COLUMNS if name not in header]
    extra = [name for name in header if name not in COLUMNS]
    parts = []
    if missing:
        parts.append("missing " + ", ".join(missing))
    if extra:
        parts.append("unknown " + ", ".join(repr(name) for name in extra))
    if not parts:
        wrong = next(i for i, (a, b) in enumerate(zip(header, COLUMNS, strict=False)) if a != b)
        parts.append(f"column {wrong + 1} must be {COLUMNS[wrong]}, got {header[wrong]}")
    log.csv(1, "header", "; ".join(parts) + "; the columns are, in order: " + ",".join(COLUMNS))
    return False


def _unique(meter: Meter, seen: _Seen, log: ErrorLog) -> bool:
    ok = True
    if meter.id in seen.ids:
        log.csv(
            meter.line, "id", f"meter {meter.id} is already defined on line {seen.ids[meter.id]}"
        )
        return False
    if meter.dlt645_address in seen.addresses:
        other, line = seen.addresses[meter.dlt645_address]
        log.csv(meter.line, "dlt645_address", f"is already used by meter {other} (line {line})")
        ok = False
    if meter.serial is not None and meter.serial in seen.serials:
        other, line = seen.serials[meter.serial]
        log.csv(meter.line, "serial", f"is already used by meter {other} (line {line})")
        ok = False
    slave_key = (meter.gateway, meter.slave) if meter.gateway and meter.slave else None
    if slave_key is not None and slave_key in seen.slaves:
        other, line = seen.slaves[slave_key]
        where = f"on gateway {meter.gateway} by meter {other} (line {line})"
        log.csv(meter.line, "slave", f"{meter.slave} is already used {where}")
        ok = False
    if ok:
        seen.ids[meter.id] = meter.line
        seen.addresses[meter.dlt645_address] = (meter.id, meter.line)
        if meter.serial is not None:
            seen.serials[meter.serial] = (meter.id, meter.line)
        if slave_key is not None:
            seen.slaves[slave_key] = (meter.id, meter.line)
    return ok


class _RowCheck:
    """Checks the fields of one row and builds its Meter when all are valid."""

    def __init__(
        self,
        line: int,
        cells: list[str],
        refs: SiteRefs,
        building_area: Mapping[str, str],
        log: ErrorLog,
    ) -> None:
        self.line = line
        self.cell = dict(zip(COLUMNS, cells, strict=True))
        self.refs = refs
        self.building_area = building_area
        self.log = log
        self.failed = False

    def error(self, column: str, message: str) -> None:
        self.log.csv(self.line, column, message)
        self.failed = True

    def ident(self, column: str, *, required: bool) -> str | None:
        text = self.cell[column]
        if not text:
            if required:
                self.error(column, "is required")
            return None
        try:
            return parse_ident(text)
        except ValueError as problem:
            self.error(column, str(problem))
            return None

    def ratio(self, column: str) -> int:
        text = self.cell[column]
        if not (text.isdigit() and text.isascii() and 1 <= int(text) <= MAX_RATIO):
            self.error(column, f"must be an integer 1..{MAX_RATIO}, got {text!r}")
            return 1
        return int(text)

    def money(self, column: str) -> int | None:
        text = self.cell[column]
        if not text:
            return None
        try:
            return parse_fen(text)
        except ValueError as problem:
            self.error(column, str(problem))
            return None

    def power_limit(self) -> Decimal | None:
        text = self.cell["power_limit_kw"]
        if not text:
            return None
        try:
            return parse_kw(text)
        except ValueError as problem:
            self.error("power_limit_kw", str(problem))
            return None

    def meter(self) -> Meter | None:
        cell = self.cell
        meter_id = self.ident("id", required=True)
        if cell["model"] not in METER_MODELS:
            self.error("model", f"must be one of {' | '.join(METER_MODELS)}, got {cell['model']!r}")
        try:
            parse_dlt645_address(cell["dlt645_address"])
        except ValueError as problem:
            self.error("dlt645_address", str(problem))
        gateway, slave, serial = self.link()
        area = self.ident("area", required=True)
        if area is not None and area not in self.refs.areas:
            self.error("area", f"unknown area {area}")
        building = self.building(area)
        billing = cell["billing"]
        if billing not in BILLING_MODES:
            self.error("billing", f"must be one of {' | '.join(BILLING_MODES)}, got {billing!r}")
        needed = billing != "none"
        if needed and not cell["owner"].strip():
            self.error("owner", f"is required for a {billing or 'billed'} meter")
        merchant = self.merchant(area, needed)
        tariff = self.ident("tariff", required=needed)
        if tariff is not None and tariff not in self.refs.tariffs:
            self.error("tariff", f"unknown tariff {tariff}")
        ct, pt = self.ratio("ct"), self.ratio("pt")
        power_limit = self.power_limit()
        alarm1, alarm2 = self.money("alarm1_yuan"), self.money("alarm2_yuan")
        if alarm1 is not None and alarm2 is not None and alarm2 > alarm1:
            self.error("alarm2_yuan", f"must not exceed alarm1_yuan ({cell['alarm1_yuan']})")
        credit = self.money("credit_limit_yuan")
        if self.failed or meter_id is None or area is None:
            return None
        return Meter(
            id=meter_id,
            model=cell["model"],
            dlt645_address=cell["dlt645_address"],
            gateway=gateway,
            slave=slave,
            serial=serial,
            area=area,
            building=building,
            room=cell["room"],
            owner=cell["owner"],
            billing=billing,
            ct=ct,
            pt=pt,
            merchant=merchant,
            tariff=tariff,
            power_limit_kw=power_limit,
            alarm1_fen=alarm1,
            alarm2_fen=alarm2,
            credit_limit_fen=credit or 0,
            line=self.line,
        )

    def link(self) -> tuple[str | None, int | None, str | None]:
        """Gateway and slave address, or the serial of a direct 4G meter."""
        gateway = self.ident("gateway", required=False)
        slave_text, serial_text = self.cell["slave"], self.cell["serial"]
        if gateway is not None and gateway not in self.refs.gateways:
            self.error("gateway", f"unknown gateway {gateway}")
        if self.cell["gateway"]:
            if serial_text:
                self.error("serial", "must be empty for a meter behind a gateway")
            if not (slave_text.isdigit() and slave_text.isascii() and 1 <= int(slave_text) <= 247):
                self.error("slave", f"must be a slave address 1..247, got {slave_text!r}")
                return gateway, None, None
            return gateway, int(slave_text), None
        if slave_text:
            self.error("slave", "must be empty for a direct 4G meter (no gateway)")
        if not serial_text:
            self.error("serial", "is required for a direct 4G meter (no gateway)")
            return None, None, None
        try:
            return None, None, parse_serial(serial_text)
        except ValueError as problem:
            self.error("serial", str(problem))
            return None, None, None

    def building(self, area: str | None) -> str | None:
        building = self.ident("building", required=False)
        if building is None:
            return None
        owner = self.building_area.get(building)
        if owner is None:
            self.error("building", f"unknown building {building}")
        elif area is not None and owner != area:
            self.error("building", f"building {building} is in area {owner}, not {area}")
        return building

    def merchant(self, area: str | None, needed: bool) -> str | None:
        merchant = self.ident("merchant", required=False)
        if merchant is not None:
            if merchant not in self.refs.merchants:
                self.error("merchant", f"unknown merchant {merchant}")
            return merchant
        if self.cell["merchant"]:
            return None  # a bad identifier, reported already
        if area is None or area not in self.refs.areas:
            return None  # the area is reported already
        default = self.refs.areas[area].merchant
        if default is None and needed:
            self.error("merchant", f"is required: area {area} has no default merchant")
        return default
