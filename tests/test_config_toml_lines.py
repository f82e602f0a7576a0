"""The TOML line locator maps key paths back to lines, and formats and parses paths."""

from __future__ import annotations

import tomllib

import pytest

from config.errors import format_path
from config.toml_lines import TomlLines, parse_path

DOC = '''\
# comment with [brackets] and "quotes"
title = "a # not a comment"        # 2

[park]                             # 4
name = """multi
line [x] = "y"
"""                                # 5..7
"dotted.key" = 1                   # 8
a.b.c = 2                          # 9

[[gateways]]                       # 11
id = "GW001"                       # 12

[[gateways]]                       # 14
id = 'GW002'                       # 15
port = 1502                        # 16

[[tariffs]]                        # 18
id = "T"
  [[tariffs.versions]]             # 20
  effective = 2024-01-01T00:00:00+08:00
  prices = { sharp = "1", peak = { x = 1, y = [1, 2] } }    # 22
    [[tariffs.versions.seasons]]   # 23
    months = [1,
      2, 3,                        # 25
      4]
    periods = [                    # 27
      { start = "00:00", end = "08:00" },   # 28
      { start = "08:00", end = "24:00" },   # 29
      "a string element",                   # 30
    ]
  [[tariffs.versions]]             # 32
  effective = 2025-01-01 00:00:00+08:00
    [[tariffs.versions.seasons]]   # 34
    months = [[5], [6, 7]]         # 35

[[tariffs]]                        # 37
id = "U"
[tariffs.extra]                    # 39
k = 'C:\\path'                     # 40
[merchants.wechat]                 # 41
platform_keys = { "PUB_KEY.1" = "k.pem" }   # 42
'''


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ("title", 2),
        ("park", 4),
        ("park.name", 5),
        ('park."dotted.key"', 8),
        ("park.a.b.c", 9),
        ("park.a", 9),
        ("gateways[0]", 11),
        ("gateways[0].id", 12),
        ("gateways[1]", 14),
        ("gateways[1].id", 15),
        ("gateways[1].port", 16),
        ("gateways[1].host", 14),  # absent key: the element's header
        ("tariffs[0]", 18),
        ("tariffs[0].versions[0]", 20),
        ("tariffs[0].versions[0].prices.sharp", 22),
        ("tariffs[0].versions[0].prices.peak.y[1]", 22),
        ("tariffs[0].versions[0].seasons", 23),
        ("tariffs[0].versions[0].seasons[0]", 23),
        ("tariffs[0].versions[0].seasons[0].months", 24),
        ("tariffs[0].versions[0].seasons[0].months[0]", 24),
        ("tariffs[0].versions[0].seasons[0].months[2]", 25),
        ("tariffs[0].versions[0].seasons[0].months[3]", 26),
        ("tariffs[0].versions[0].seasons[0].periods", 27),
        ("tariffs[0].versions[0].seasons[0].periods[0].end", 28),
        ("tariffs[0].versions[0].seasons[0].periods[1]", 29),
        ("tariffs[0].versions[0].seasons[0].periods[1].end", 29),
        ("tariffs[0].versions[0].seasons[0].periods[2]", 30),
        ("tariffs[0].versions[0].seasons[0].periods[1].bucket", 29),  # absent: the element
        ("tariffs[0].versions[0].seasons[0].periods[7]", 27),  # no such element: the array
        ("tariffs[0].versions[1]", 32),
        ("tariffs[0].versions[1].effective", 33),
        ("tariffs[0].versions[1].seasons[0]", 34),
        ("tariffs[0].versions[1].seasons[0].months[1][1]", 35),
        ("tariffs[1]", 37),
        ("tariffs[1].id", 38),
        ("tariffs[1].extra.k", 40),
        ("merchants.wechat", 41),
        ('merchants.wechat.platform_keys."PUB_KEY.1"', 42),
        ("merchants.wechat.platform_keys.missing", 42),
    ],
)
def test_line_of(path: str, line: int) -> None:
    assert TomlLines(DOC).line_of(parse_path(path)) == line


def test_the_document_is_valid_toml() -> None:
    assert tomllib.loads(DOC)["tariffs"][0]["versions"][0]["seasons"][0]["months"] == [1, 2, 3, 4]


def test_unknown_top_level_path_has_no_line() -> None:
    assert TomlLines(DOC).line_of(("nothing", 0)) is None
    assert TomlLines(DOC).line_of(()) is None


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("gateways[3].port", ("gateways", 3, "port")),
        (
            "tariffs[0].versions[1].seasons[0].periods[2].end",
            ("tariffs", 0, "versions", 1, "seasons", 0, "periods", 2, "end"),
        ),
        (
            'merchants[0].wechat.platform_keys."PUB.KEY"',
            ("merchants", 0, "wechat", "platform_keys", "PUB.KEY"),
        ),
        ("a[1][2]", ("a", 1, 2)),
    ],
)
def test_paths_round_trip(text: str, parts: tuple[str | int, ...]) -> None:
    assert parse_path(text) == parts
    assert format_path(parts) == text


@pytest.mark.parametrize("text", ["", "a..b", "a[x]", "a[1", "a b"])
def test_bad_path(text: str) -> None:
    if text == "":
        assert parse_path(text) == ()
        return
    with pytest.raises(ValueError, match="not a key path"):
        parse_path(text)
