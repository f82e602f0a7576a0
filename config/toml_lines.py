"""Maps TOML key paths such as `gateways[3].port` back to line numbers in the text.

`tomllib` keeps no positions, so this scanner walks the (already valid) text once and
records the line of every key, table header, array-of-tables element and array element.
"""

from __future__ import annotations

import re
import tomllib

from config.errors import KeyPath

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_VALUE_END = frozenset(",]}#\r\n")
_PATH_PART = re.compile(r'\[([0-9]+)\]|\.?("(?:[^"\\]|\\.)*"|[A-Za-z0-9_-]+)')


def parse_path(text: str) -> KeyPath:
    """Parse `tariffs[0].versions[1].prices.peak` into ("tariffs", 0, "versions", 1, ...)."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _PATH_PART.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"not a key path: {text!r}")
        index, key = match.groups()
        if index is not None:
            parts.append(int(index))
        elif key.startswith('"'):
            parts.append(key[1:-1].replace('\\"', '"'))
        else:
            parts.append(key)
        pos = match.end()
    return tuple(parts)


class TomlLines:
    """Line numbers of the keys, tables and array elements of one TOML document."""

    def __init__(self, text: str) -> None:
        """Scan `text`, which tomllib has already accepted."""
        self._lines: dict[KeyPath, int] = {}
        _Scanner(text, self._lines).run()

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, else of its nearest enclosing element, key or table header."""
        for end in range(len(path), 0, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None


class _Scanner:
    """A forgiving single pass over valid TOML that records where each path begins."""

    def __init__(self, text: str, lines: dict[KeyPath, int]) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines = lines
        self.array_tables: dict[KeyPath, int] = {}  # [[x]] path -> elements seen so far

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def advance(self, count: int = 1) -> None:
        end = min(self.pos + count, len(self.text))
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end

    def skip_space(self, *, newlines: bool) -> None:
        while True:
            char = self.peek()
            if char in (" ", "\t") or (newlines and char in ("\r", "\n")):
                self.advance()
            elif char == "#":
                end = self.text.find("\n", self.pos)
                self.advance((len(self.text) if end < 0 else end) - self.pos)
            else:
                return

    def record(self, path: KeyPath, line: int) -> None:
        for end in range(1, len(path) + 1):
            self.lines.setdefault(path[:end], line)

    def run(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_space(newlines=True)
            if self.peek() == "":
                return
            start = self.pos
            if self.peek() == "[":
                table = self.header()
            else:
                self.key_value(table)
            if self.pos == start:  # never loop on text this scanner does not understand
                self.advance()

    def header(self) -> KeyPath:
        line = self.line
        is_array = self.peek(1) == "["
        self.advance(2 if is_array else 1)
        self.skip_space(newlines=False)
        keys = self.key()
        self.skip_space(newlines=False)
        self.advance(2 if is_array else 1)
        path = (*self.resolve(keys[:-1]), keys[-1]) if keys else ()
        if is_array:
            count = self.array_tables.get(path, 0)
            self.array_tables[path] = count + 1
            path = (*path, count)
            self.lines[path] = line
        self.record(path, line)
        return path

    def resolve(self, keys: list[str]) -> KeyPath:
        """Turn header keys into a path, stepping into the last element of each [[array]]."""
        path: KeyPath = ()
        for key in keys:
            path = (*path, key)
            count = self.array_tables.get(path)
            if count:
                path = (*path, count - 1)
        return path

    def key_value(self, table: KeyPath) -> None:
        line = self.line
        keys = self.key()
        self.skip_space(newlines=False)
        if self.peek() != "=":
            return
        self.advance()
        self.skip_space(newlines=False)
        path = (*table, *keys)
        self.record(path, line)
        self.value(path)

    def key(self) -> list[str]:
        keys: list[str] = []
        while True:
            char = self.peek()
            if char in ('"', "'"):
                start = self.pos
                self.string()
                raw = self.text[start : self.pos]
                keys.append(str(tomllib.loads(f"k = {raw}")["k"]))
            else:
                start = self.pos
                while self.peek() in _BARE_KEY_CHARS and self.peek() != "":
                    self.advance()
                if self.pos == start:
                    return keys
                keys.append(self.text[start : self.pos])
            self.skip_space(newlines=False)
            if self.peek() != ".":
                return keys
            self.advance()
            self.skip_space(newlines=False)

    def value(self, path: KeyPath) -> None:
        char = self.peek()
        if char == "[":
            self.array(path)
        elif char == "{":
            self.inline_table(path)
        elif char in ('"', "'"):
            self.string()
        else:
            while self.peek() != "" and self.peek() not in _VALUE_END:
                self.advance()

    def array(self, path: KeyPath) -> None:
        self.advance()
        index = 0
        while True:
            self.skip_space(newlines=True)
            char = self.peek()
            if char in ("]", ""):
                self.advance()
                return
            start = self.pos
            element = (*path, index)
            self.lines.setdefault(element, self.line)
            self.value(element)
            self.skip_space(newlines=True)
            if self.peek() == ",":
                self.advance()
            if self.pos == start:
                self.advance()
            index += 1

    def inline_table(self, path: KeyPath) -> None:
        self.advance()
        while True:
            self.skip_space(newlines=True)
            char = self.peek()
            if char in ("}", ""):
                self.advance()
                return
            start = self.pos
            line = self.line
            keys = self.key()
            self.skip_space(newlines=False)
            if self.peek() == "=":
                self.advance()
                self.skip_space(newlines=False)
                inner = (*path, *keys)
                self.record(inner, line)
                self.value(inner)
            self.skip_space(newlines=True)
            if self.peek() == ",":
                self.advance()
            if self.pos == start:
                self.advance()

    def string(self) -> None:
        quote = self.peek()
        if self.text.startswith(quote * 3, self.pos):
            self.advance(3)
            self.string_body(quote * 3, escapes=quote == '"')
            while self.peek() == quote:  # up to two quotes may end the content itself
                self.advance()
        else:
            self.advance()
            self.string_body(quote, escapes=quote == '"')

    def string_body(self, closer: str, *, escapes: bool) -> None:
        while self.pos < len(self.text):
            if escapes and self.peek() == "\\":
                self.advance(2)
            elif self.text.startswith(closer, self.pos):
                self.advance(len(closer))
                return
            else:
                self.advance()
