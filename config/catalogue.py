"""The tag catalogue: every quantity the live tag database holds for each meter."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal, TypeAlias, cast

import numpy as np

Kind: TypeAlias = Literal["float", "int", "bool"]

KINDS: Final[tuple[Kind, ...]] = ("float", "int", "bool")

DTYPES: Final[Mapping[Kind, np.dtype[np.generic]]] = MappingProxyType(
    {
        "float": np.dtype(np.float64),
        "int": np.dtype(np.int64),
        "bool": np.dtype(np.uint8),
    }
)

DEFAULT_PATH: Final = Path(__file__).with_name("tags.toml")

# Tag and group names become OPC UA browse names, JSON keys and database columns.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")
_TAG_KEYS: Final = frozenset({"name", "group", "kind", "unit", "text"})
_TOP_KEYS: Final = frozenset({"groups", "tags"})


class CatalogueError(ValueError):
    """The tag catalogue file is invalid; the message names the file, entry and field."""


@dataclass(frozen=True, slots=True)
class TagDef:
    """One tag: its name, scan group, value kind, engineering unit and description."""

    name: str
    group: str
    kind: Kind
    unit: str
    text: str
    index: int

    @property
    def dtype(self) -> np.dtype[np.generic]:
        """The numpy dtype of the tag's column."""
        return DTYPES[self.kind]

    @property
    def fill(self) -> float | int:
        """The value of a column that was never read: NaN for floats, 0 otherwise."""
        return float("nan") if self.kind == "float" else 0


@dataclass(frozen=True)
class TagCatalogue:
    """The ordered, validated list of tags and the groups that read them."""

    groups: tuple[str, ...]
    tags: tuple[TagDef, ...]
    by_name: Mapping[str, TagDef] = field(init=False, repr=False, compare=False)
    _by_group: Mapping[str, tuple[TagDef, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = _problems(self.groups, self.tags)
        if problems:
            raise CatalogueError("; ".join(problems))
        object.__setattr__(self, "by_name", MappingProxyType({t.name: t for t in self.tags}))
        grouped = {g: tuple(t for t in self.tags if t.group == g) for g in self.groups}
        object.__setattr__(self, "_by_group", MappingProxyType(grouped))

    def __len__(self) -> int:
        return len(self.tags)

    def __iter__(self) -> Iterator[TagDef]:
        return iter(self.tags)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    @property
    def names(self) -> tuple[str, ...]:
        """Every tag name, in catalogue order."""
        return tuple(t.name for t in self.tags)

    def tag(self, name: str) -> TagDef:
        """The tag called `name`; a `KeyError` names the unknown tag."""
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"unknown tag {name!r}") from None

    def group_tags(self, group: str) -> tuple[TagDef, ...]:
        """The tags read by `group`, in catalogue order; a `KeyError` names an unknown group."""
        try:
            return self._by_group[group]
        except KeyError:
            known = ", ".join(self.groups)
            raise KeyError(f"unknown tag group {group!r} (known: {known})") from None

    def dtype(self, name: str) -> np.dtype[np.generic]:
        """The numpy dtype of the column of tag `name`."""
        return self.tag(name).dtype


def _problems(groups: Sequence[str], tags: Sequence[TagDef]) -> list[str]:
    """Every consistency problem between the groups and the tags, as messages."""
    problems: list[str] = []
    if not groups:
        problems.append("groups: at least one group is required")
    seen_groups: set[str] = set()
    for i, group in enumerate(groups):
        if not _NAME.fullmatch(group):
            problems.append(f"groups[{i}]: {group!r} is not a valid name ({_NAME.pattern})")
        if group in seen_groups:
            problems.append(f"groups[{i}]: {group!r} is listed twice")
        seen_groups.add(group)
    seen_tags: dict[str, int] = {}
    for i, tag in enumerate(tags):
        where = f"tags[{i}] ({tag.name})"
        if tag.index != i:
            problems.append(f"{where}: index is {tag.index}, expected {i}")
        if not _NAME.fullmatch(tag.name):
            problems.append(f"{where}: name is not a valid name ({_NAME.pattern})")
        if tag.name in seen_tags:
            problems.append(f"{where}: name already used by tags[{seen_tags[tag.name]}]")
        else:
            seen_tags[tag.name] = i
        if tag.group not in seen_groups:
            known = ", ".join(groups)
            problems.append(f"{where}: group {tag.group!r} is not one of the groups ({known})")
        if tag.kind not in KINDS:
            problems.append(f"{where}: kind {tag.kind!r} is not one of {', '.join(KINDS)}")
    used = {t.group for t in tags}
    problems.extend(
        f"groups[{i}]: group {g!r} has no tags" for i, g in enumerate(groups) if g not in used
    )
    return problems


def _string_field(entry: Mapping[str, object], key: str, where: str) -> str:
    """The string at `entry[key]`, or a `CatalogueError` naming the field."""
    if key not in entry:
        raise CatalogueError(f"{where}: missing field {key!r}")
    value = entry[key]
    if not isinstance(value, str):
        raise CatalogueError(f"{where}.{key}: must be a string, got {value!r}")
    return value


def parse_catalogue(data: Mapping[str, object], source: str = "tags.toml") -> TagCatalogue:
    """Build a validated catalogue from parsed TOML; errors are prefixed with `source`."""
    try:
        return _parse(data)
    except CatalogueError as exc:
        raise CatalogueError(f"{source}: {exc}") from None


def _parse(data: Mapping[str, object]) -> TagCatalogue:
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise CatalogueError(f"unknown key(s) {', '.join(unknown)}")
    groups = data.get("groups")
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise CatalogueError(f"groups: must be a list of strings, got {groups!r}")
    entries = data.get("tags")
    if not isinstance(entries, list):
        raise CatalogueError(f"tags: must be a list of tables, got {entries!r}")
    tags: list[TagDef] = []
    for i, entry in enumerate(entries):
        where = f"tags[{i}]"
        if not isinstance(entry, dict):
            raise CatalogueError(f"{where}: must be a table, got {entry!r}")
        extra = sorted(set(entry) - _TAG_KEYS)
        if extra:
            raise CatalogueError(f"{where}: unknown key(s) {', '.join(extra)}")
        kind = _string_field(entry, "kind", where)
        if kind not in KINDS:
            raise CatalogueError(f"{where}.kind: {kind!r} is not one of {', '.join(KINDS)}")
        tags.append(
            TagDef(
                name=_string_field(entry, "name", where),
                group=_string_field(entry, "group", where),
                kind=kind,
                unit=_string_field(entry, "unit", where),
                text=_string_field(entry, "text", where),
                index=i,
            )
        )
    return TagCatalogue(groups=tuple(cast(list[str], groups)), tags=tuple(tags))


def read_catalogue(path: Path) -> TagCatalogue:
    """Read and validate a tag catalogue file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"{path}: not UTF-8: {exc.reason}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path}: invalid TOML: {exc}") from None
    return parse_catalogue(data, str(path))


@cache
def default_catalogue() -> TagCatalogue:
    """The catalogue shipped beside this module (`config/tags.toml`), loaded once."""
    return read_catalogue(DEFAULT_PATH)
