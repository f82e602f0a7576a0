"""Every meters.csv rule of SITE_FORMAT.md: each bad edit of the example gives its error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config import ConfigError, SiteInvalid, load_site
from config.meters_csv import COLUMNS

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "examples" / "small"

# Lines of the example: header 1, E0001 2, E0002 3, E0003 4, D0001 5, D0002 6, P0001 7,
# G0001 8, G0002 9.
E0001 = "E0001,DTSY1352,000000000001,GW001,1,,ENT,ENT-01,101,华东机械有限公司,prepaid,50,1,,TOU-JS,80.5,500.00,100.00,200.00"  # noqa: E501
E0003 = (
    "E0003,DDSY1352,000000000003,GW001,3,,ENT,ENT-02,201,小王便利店,prepaid,1,1,M2,FLAT,5,50,20,0"
)
D0002 = "D0002,DDSY1352,000000000012,GW002,2,,DORM,DORM-A,A-102,,none,1,1,,,,,,"
P0001 = "P0001,DTSY1352,000000000021,GW003,1,,PUB,,泵房,物业公共,prepaid,200,10,M1,FLAT,,1000,,"
G0002 = "G0002,DDSY1352,000000000032,,,860000000000002,DORM,,A-201,李四,prepaid,1,1,,TIER,,10.5,,5"

# (id, old text, new text, line, field, message part)
CASES = [
    ("duplicate meter id", "G0002,", "E0001,", 9, "id", "meter E0001 is already defined on line 2"),
    (
        "slave used twice on a gateway",
        "E0002,DTSY1352,000000000002,GW001,2,",
        "E0002,DTSY1352,000000000002,GW001,1,",
        3,
        "slave",
        "1 is already used on gateway GW001 by meter E0001 (line 2)",
    ),
    ("unknown gateway", "GW003,1,", "GW009,1,", 7, "gateway", "unknown gateway GW009"),
    ("unknown tariff", "M2,FLAT,", "M2,FLATX,", 4, "tariff", "unknown tariff FLATX"),
    ("unknown area", ",DORM,,A-201", ",DORMX,,A-201", 9, "area", "unknown area DORMX"),
    ("unknown building", "DORM-A,A-101", "DORM-Z,A-101", 5, "building", "unknown building DORM-Z"),
    (
        "building of another area",
        "ENT,ENT-02,203",
        "ENT,DORM-A,203",
        8,
        "building",
        "building DORM-A is in area DORM, not ENT",
    ),
    ("unknown merchant", "M2,FLAT,", "M7,FLAT,", 4, "merchant", "unknown merchant M7"),
    (
        "merchant required without area default",
        "M1,FLAT,",
        ",FLAT,",
        7,
        "merchant",
        "area PUB has no default merchant",
    ),
    ("tariff required", "M2,FLAT,", "M2,,", 4, "tariff", "is required"),
    ("owner required", "李四,prepaid", ",prepaid", 9, "owner", "is required for a prepaid meter"),
    (
        "negative CT",
        "prepaid,200,10,",
        "prepaid,-200,10,",
        7,
        "ct",
        "must be an integer 1..65535, got '-200'",
    ),
    (
        "zero PT",
        "prepaid,200,10,",
        "prepaid,200,0,",
        7,
        "pt",
        "must be an integer 1..65535, got '0'",
    ),
    ("CT not an integer", "prepaid,200,10,", "prepaid,2.5,10,", 7, "ct", "must be an integer"),
    (
        "address too short",
        ",000000000001,",
        ",00000000001,",
        2,
        "dlt645_address",
        "must be 12 decimal digits",
    ),
    (
        "address too long",
        ",000000000001,",
        ",0000000000001,",
        2,
        "dlt645_address",
        "must be 12 decimal digits",
    ),
    (
        "address not digits",
        ",000000000001,",
        ",00000000000A,",
        2,
        "dlt645_address",
        "must be 12 decimal digits",
    ),
    (
        "broadcast address",
        "000000000021",
        "999999999999",
        7,
        "dlt645_address",
        "999999999999 is the broadcast address",
    ),
    (
        "duplicate address",
        "000000000012",
        "000000000011",
        6,
        "dlt645_address",
        "is already used by meter D0001 (line 5)",
    ),
    (
        "duplicate serial",
        ",860000000000002,",
        ",860000000000001,",
        9,
        "serial",
        "is already used by meter G0001 (line 8)",
    ),
    (
        "gateway meter with serial",
        "GW001,1,,ENT",
        "GW001,1,SN1,ENT",
        2,
        "serial",
        "must be empty for a meter behind a gateway",
    ),
    (
        "4G meter with slave",
        ",,,860000000000002",
        ",,3,860000000000002",
        9,
        "slave",
        "must be empty for a direct 4G meter",
    ),
    (
        "4G meter without serial",
        ",,,860000000000002",
        ",,,",
        9,
        "serial",
        "is required for a direct 4G meter",
    ),
    (
        "serial too long",
        "860000000000002",
        "8600000000000000000002",
        9,
        "serial",
        "1..20 printable ASCII",
    ),
    ("slave out of range", "GW003,1,", "GW003,248,", 7, "slave", "1..247, got '248'"),
    ("slave missing", "GW003,1,", "GW003,,", 7, "slave", "1..247, got ''"),
    (
        "alarm2 above alarm1",
        ",50,20,0",
        ",50,60,0",
        4,
        "alarm2_yuan",
        "must not exceed alarm1_yuan",
    ),
    (
        "money with 3 decimals",
        "500.00,100.00",
        "500.001,100.00",
        2,
        "alarm1_yuan",
        "at most 2 decimals",
    ),
    ("negative money", "10.5,,5", "10.5,,-5", 9, "credit_limit_yuan", "must not be negative"),
    ("money not a number", "10.5,,5", "10.5,,5 yuan", 9, "credit_limit_yuan", "money in yuan"),
    (
        "power limit with 4 decimals",
        ",80.5,",
        ",80.5001,",
        2,
        "power_limit_kw",
        "at most 3 decimals",
    ),
    (
        "bad model",
        "P0001,DTSY1352",
        "P0001,DTSY9999",
        7,
        "model",
        "must be one of DTSY1352 | DDSY1352",
    ),
    (
        "bad billing",
        "prepaid,50,1,",
        "prepay,50,1,",
        2,
        "billing",
        "must be one of prepaid | postpaid | none",
    ),
    ("bad meter id", "P0001,", "P 0001,", 7, "id", "identifier"),
    ("ragged row (too few fields)", D0002, D0002[:-1], 6, "", "has 18 fields, the header has 19"),
    ("ragged row (too many fields)", D0002, D0002 + ",", 6, "", "has 20 fields, the header has 19"),
    ("bad quoting", "P0001,", '"P0001"x,', 7, "", "not valid CSV"),
]


def make_site(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    path = folder / "meters.csv"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return folder


def load_errors(folder: Path) -> list[ConfigError]:
    with pytest.raises(SiteInvalid) as caught:
        load_site(folder, env={})
    return caught.value.errors


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_meters_csv_error(
    tmp_path: Path, old: str, new: str, line: int, field: str, message: str
) -> None:
    errors = load_errors(make_site(tmp_path, old, new))
    assert [(e.file, e.line, e.field) for e in errors] == [("meters.csv", line, field)], "\n".join(
        map(str, errors)
    )
    assert message in errors[0].message
    prefix = f"meters.csv:{line}: {field}: " if field else f"meters.csv:{line}: "
    assert str(errors[0]).startswith(prefix)


def test_every_bad_field_of_a_row_is_reported(tmp_path: Path) -> None:
    bad = "P0001,DTSY1,999999999999,GW003,0,,PUB,X,泵房,物业公共,prepaid,0,0,M9,NOPE,-1,1.001,,x"
    errors = load_errors(make_site(tmp_path, P0001, bad))
    assert {e.line for e in errors} == {7}
    assert [e.field for e in errors] == sorted(
        [
            "model",
            "dlt645_address",
            "slave",
            "building",
            "ct",
            "pt",
            "merchant",
            "tariff",
            "power_limit_kw",
            "alarm1_yuan",
            "credit_limit_yuan",
        ]
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (",".join(COLUMNS[:-1]), "missing credit_limit_yuan"),
        (",".join((*COLUMNS, "notes")), "unknown 'notes'"),
        (",".join(COLUMNS).replace("gateway,slave", "slave,gateway"), "column 4 must be gateway"),
        (",".join(COLUMNS).replace("room", "Room"), "missing room; unknown 'Room'"),
    ],
)
def test_bad_header(tmp_path: Path, header: str, message: str) -> None:
    errors = load_errors(make_site(tmp_path, ",".join(COLUMNS), header))
    assert [(e.file, e.line, e.field) for e in errors] == [("meters.csv", 1, "header")]
    assert message in errors[0].message


def test_empty_file(tmp_path: Path) -> None:
    folder = make_site(tmp_path, "E0001,", "E0001,")
    (folder / "meters.csv").write_bytes(b"")
    [error] = load_errors(folder)
    assert (error.file, error.line, error.field) == ("meters.csv", 1, "header")
    assert "empty" in error.message


def test_header_only_is_a_site_without_meters(tmp_path: Path) -> None:
    folder = make_site(tmp_path, "E0001,", "E0001,")
    (folder / "meters.csv").write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
    site_toml = folder / "site.toml"
    site_toml.write_text(
        site_toml.read_text(encoding="utf-8").replace('meter = "E0001"', 'area = "ENT"'),
        encoding="utf-8",
    )
    assert load_site(folder, env={}).meters == ()


def test_bad_utf8_names_each_bad_line(tmp_path: Path) -> None:
    folder = make_site(tmp_path, "E0001,", "E0001,")
    path = folder / "meters.csv"
    raw = path.read_bytes()
    raw = raw.replace("小王便利店".encode(), b"\xff\xfe", 1).replace("李四".encode(), b"\xc3", 1)
    path.write_bytes(raw)
    errors = load_errors(folder)
    assert [(e.file, e.line, e.field, e.message) for e in errors] == [
        ("meters.csv", 4, "", "not valid UTF-8"),
        ("meters.csv", 9, "", "not valid UTF-8"),
    ]


def test_lines_are_physical_across_quoted_newlines(tmp_path: Path) -> None:
    folder = make_site(tmp_path, '"精工电子, 二分厂"', '"精工电子\n二分厂"')
    path = folder / "meters.csv"
    text = path.read_text(encoding="utf-8").replace(G0002, G0002.replace("DORM", "MOON"))
    path.write_text(text, encoding="utf-8")
    errors = load_errors(folder)
    assert [(e.line, e.field) for e in errors] == [(10, "area")]
    assert load_site(make_site(tmp_path / "ok", '"精工电子, 二分厂"', '"精工电子\n二分厂"'), env={})


def test_byte_order_mark_and_crlf_are_accepted(tmp_path: Path) -> None:
    folder = make_site(tmp_path, "E0001,", "E0001,")
    path = folder / "meters.csv"
    text = path.read_text(encoding="utf-8")
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    site = load_site(folder, env={})
    assert [m.line for m in site.meters] == list(range(2, 10))


def test_billing_none_needs_no_owner_merchant_or_tariff(tmp_path: Path) -> None:
    folder = make_site(
        tmp_path, P0001, P0001.replace("物业公共,prepaid", ",none").replace("M1,FLAT", ",")
    )
    meter = load_site(folder, env={}).meter("P0001")
    assert (meter.billing, meter.owner, meter.merchant, meter.tariff) == ("none", "", None, None)


def test_meter_fields_are_parsed_exactly(tmp_path: Path) -> None:
    folder = make_site(tmp_path, E0003, E0003.replace(",5,50,20,0", ",0.125,50.5,0.01,12"))
    meter = load_site(folder, env={}).meter("E0003")
    assert (meter.alarm1_fen, meter.alarm2_fen, meter.credit_limit_fen) == (5050, 1, 1200)
    assert str(meter.power_limit_kw) == "0.125"
    assert meter.merchant == "M2"  # given in the row, not the area's M1


def test_example_rows_match_the_constants() -> None:
    text = (EXAMPLE / "meters.csv").read_text(encoding="utf-8")
    for row in (E0001, E0003, D0002, P0001, G0002):
        assert row in text.splitlines()
