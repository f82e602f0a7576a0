"""Configuration errors: one per problem, each naming the file, the line and the field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, TypeAlias

KeyPath: TypeAlias = tuple[str | int, ...]

SITE_TOML = "site.toml"
METERS_CSV = "meters.csv"
ENVIRONMENT = "environment"

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: KeyPath) -> str:
    """Render a key path as `gateways[3].port` (keys that are not bare are quoted)."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            key = part if _BARE_KEY.fullmatch(part) else '"' + part.replace('"', '\\"') + '"'
            out.append(f".{key}" if out else key)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class ConfigError:
    """One problem in a site: where it is and what is wrong."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        """`site.toml:42: gateways[3].port: must be ...` (line and field only when known)."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class LineLocator(Protocol):
    """What ErrorLog needs from a TOML locator (config.toml_lines.TomlLines is one)."""

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest enclosing key, table or element."""


def _order(error: ConfigError) -> tuple[str, int, str]:
    return (error.file, error.line if error.line is not None else 0, error.field)


class SiteInvalid(Exception):
    """A site that failed validation; holds every error found, sorted by file and line."""

    def __init__(self, errors: list[ConfigError]) -> None:
        """Keep the errors sorted by file, line and field."""
        self.errors: list[ConfigError] = sorted(errors, key=_order)
        super().__init__("\n".join(str(error) for error in self.errors))

    def __str__(self) -> str:
        """All errors, one per line."""
        return "\n".join(str(error) for error in self.errors)


class ErrorLog:
    """Collects the errors of one load; TOML key paths become lines through a locator."""

    def __init__(self) -> None:
        """Start empty, with no TOML locator yet."""
        self.errors: list[ConfigError] = []
        self._locate: LineLocator | None = None

    def use_locator(self, locate: LineLocator) -> None:
        """Resolve TOML key paths to lines with `locate` from now on."""
        self._locate = locate

    def toml(self, path: KeyPath, message: str) -> None:
        """An error in site.toml at a key path."""
        line = self._locate.line_of(path) if self._locate is not None else None
        self.errors.append(ConfigError(SITE_TOML, line, format_path(path), message))

    def csv(self, line: int, field: str, message: str) -> None:
        """An error in meters.csv at a physical line."""
        self.errors.append(ConfigError(METERS_CSV, line, field, message))

    def env(self, variable: str, message: str) -> None:
        """An error in an environment override."""
        self.errors.append(ConfigError(ENVIRONMENT, None, variable, message))

    def file(self, file: str, line: int | None, message: str) -> None:
        """An error about a whole file (missing, unreadable, bad syntax)."""
        self.errors.append(ConfigError(file, line, "", message))

    def raise_if_any(self) -> None:
        """Raise SiteInvalid with everything collected, if anything was."""
        if self.errors:
            raise SiteInvalid(self.errors)
