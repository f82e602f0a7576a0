"""The DL/T 645 read plan (config/dlt645_reads.toml): DI → tags, scan class and ratio."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from config.catalogue import TagCatalogue, default_catalogue
from config.errors import KeyPath, format_path
from config.toml_lines import TomlLines

DEFAULT_PATH: Final = Path(__file__).resolve().parent / "dlt645_reads.toml"
RATIOS: Final = ("1", "pt", "ct", "pt*ct")
_KEYS: Final = frozenset({"class", "di", "tags", "single_phase", "ratio", "sign"})


class PlanError(ValueError):
    """The read plan is invalid; the message lists every problem with its line and field."""


@dataclass(frozen=True, slots=True)
class DiRead:
    """One DI a scan class reads: the tags its values fill, and how they are scaled."""

    scan_class: str
    di: int
    tags: tuple[str, ...]
    single_phase: tuple[str, ...]
    ratio: str
    sign: int = 1

    def filled(self, three_phase: bool) -> tuple[str, ...]:
        """The tag of each value of the reply ("" for a value left out) for this meter kind."""
        if three_phase:
            return self.tags
        return tuple(t if t in self.single_phase else "" for t in self.tags)


@dataclass(frozen=True, slots=True)
class Dlt645Plan:
    """Every DI read, in file order."""

    reads: tuple[DiRead, ...]

    @property
    def classes(self) -> tuple[str, ...]:
        """The scan classes the plan reads, in first-use order."""
        return tuple(dict.fromkeys(r.scan_class for r in self.reads))

    def for_class(self, scan_class: str) -> tuple[DiRead, ...]:
        """The reads of one scan class."""
        return tuple(r for r in self.reads if r.scan_class == scan_class)


class _Problems:
    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = TomlLines(text)
        self.found: list[str] = []

    def add(self, path: KeyPath, message: str) -> None:
        line = self.lines.line_of(path)
        where = self.source if line is None else f"{self.source}:{line}"
        self.found.append(f"{where}: {format_path(path)}: {message}")


def parse_plan(text: str, catalogue: TagCatalogue, source: str = "dlt645_reads.toml") -> Dlt645Plan:
    """Validate a plan's text against the tag catalogue; PlanError lists every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{source}: invalid TOML: {exc}") from None
    problems = _Problems(source, text)
    for key in data:
        if key != "reads":
            problems.add((key,), "unknown key")
    entries = data.get("reads")
    if not isinstance(entries, list) or not entries:
        problems.add(("reads",), "needs at least one [[reads]] entry")
        entries = []
    reads: list[DiRead] = []
    first: dict[tuple[str, int], int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.add(("reads", index), "must be a table")
            continue
        read = _read(entry, ("reads", index), catalogue, problems)
        if read is None:
            continue
        taken = first.setdefault((read.scan_class, read.di), index)
        if taken != index:
            problems.add(
                ("reads", index, "di"), f"DI {read.di:08X} is already read by reads[{taken}]"
            )
        reads.append(read)
    if problems.found:
        raise PlanError("\n".join(problems.found))
    return Dlt645Plan(tuple(reads))


def _read(
    entry: Mapping[str, object], path: KeyPath, catalogue: TagCatalogue, problems: _Problems
) -> DiRead | None:
    before = len(problems.found)
    for key in entry:
        if key not in _KEYS:
            problems.add((*path, key), "unknown key")
    scan_class = entry.get("class")
    if scan_class not in catalogue.groups:
        allowed = " | ".join(catalogue.groups)
        problems.add((*path, "class"), f"must be one of {allowed}, got {scan_class!r}")
    di_text = entry.get("di")
    di = 0
    if (
        isinstance(di_text, str)
        and len(di_text) == 8
        and all(c in "0123456789abcdefABCDEF" for c in di_text)
    ):
        di = int(di_text, 16)
    else:
        problems.add((*path, "di"), f'must be 8 hex digits like "0201FF00", got {di_text!r}')
    tags = _names(entry, "tags", path, problems, required=True)
    single = _names(entry, "single_phase", path, problems, required=False)
    ratio = entry.get("ratio")
    if ratio not in RATIOS:
        problems.add((*path, "ratio"), f"must be one of {' | '.join(RATIOS)}, got {ratio!r}")
    sign = entry.get("sign", 1)
    if sign not in (1, -1) or isinstance(sign, bool):
        problems.add((*path, "sign"), f"must be 1 or -1, got {sign!r}")
    for position, tag in enumerate(tags):
        if not tag:
            continue
        if tag not in catalogue:
            problems.add((*path, "tags", position), f"unknown tag {tag}")
            continue
        tag_def = catalogue.tag(tag)
        if tag_def.group != scan_class:
            problems.add(
                (*path, "tags", position), f"tag {tag} is read by {tag_def.group}, not {scan_class}"
            )
        if tag_def.kind != "float" and ratio != "1":
            problems.add((*path, "ratio"), f"{tag} is an integer tag: its ratio must be 1")
    for position, tag in enumerate(single):
        if tag not in tags:
            problems.add((*path, "single_phase", position), f"{tag} is not one of this read's tags")
    if len(problems.found) > before:
        return None
    return DiRead(
        str(scan_class),
        di,
        tags,
        single if "single_phase" in entry else tags,
        str(ratio),
        int(str(sign)),
    )


def _names(
    entry: Mapping[str, object], key: str, path: KeyPath, problems: _Problems, *, required: bool
) -> tuple[str, ...]:
    value = entry.get(key)
    if value is None:
        if required:
            problems.add((*path, key), "is required")
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add((*path, key), "must be an array of tag names")
        return ()
    if required and not any(value):
        problems.add((*path, key), "must name at least one tag")
    return tuple(str(v) for v in value)


def read_plan(path: Path, catalogue: TagCatalogue | None = None) -> Dlt645Plan:
    """Read and validate the plan at `path` (against the default catalogue unless given)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: cannot read: {exc}") from None
    return parse_plan(text, catalogue or default_catalogue(), str(path))


@cache
def default_plan() -> Dlt645Plan:
    """The plan shipped in config/dlt645_reads.toml, loaded once."""
    return read_plan(DEFAULT_PATH)
