"""The demo-park generator: counts, uniqueness, determinism, secrets and the site format."""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
import re
import stat
import subprocess
import sys
import tomllib
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from config import load_site
from config.demo import MARKER_FILE, DemoSiteError, generate_site, render_meters_csv
from config.demo_keys import merchant_key_files
from config.demo_park import build_park
from config.demo_records import METER_COLUMNS, format_fen, format_watts_as_kw
from config.demo_site_toml import render_site_toml
from config.demo_toml import toml_string, toml_value

IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
MONEY = re.compile(r"\d+(\.\d{1,2})?")
SiteToml = dict[str, Any]
CT_RATIOS = {1, 20, 30, 40, 60, 80, 100, 150, 200, 300, 400}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "site"
    generate_site(folder, seed=1)
    return folder


@pytest.fixture(scope="module")
def toml(site: Path) -> SiteToml:
    return tomllib.loads((site / "site.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def meters(site: Path) -> list[dict[str, str]]:
    with (site / "meters.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_counts(site: Path, toml: SiteToml, meters: list[dict[str, str]]) -> None:
    assert len(meters) == 5407
    assert len(toml["gateways"]) == 224
    three = [m for m in meters if m["model"] == "DTSY1352"]
    single = [m for m in meters if m["model"] == "DDSY1352"]
    assert 1050 <= len(three) <= 1150
    assert len(three) + len(single) == 5407
    assert all(m["gateway"] == "" and m["serial"] and m["slave"] == "" for m in three)
    assert all(m["gateway"] and m["serial"] == "" and m["slave"] for m in single)
    dorm_areas = {a["id"] for a in toml["areas"] if a["kind"] == "dormitory"}
    assert {m["area"] for m in single} == dorm_areas
    common = [a["id"] for a in toml["areas"] if a["kind"] == "common"]
    assert len(common) == 1
    assert 1 <= sum(1 for m in meters if m["area"] == common[0]) <= 20


def test_gateways_carry_19_or_20_meters_with_slaves_1_to_n(
    toml: SiteToml, meters: list[dict[str, str]]
) -> None:
    slaves: dict[str, list[int]] = {}
    for meter in meters:
        if meter["gateway"]:
            slaves.setdefault(meter["gateway"], []).append(int(meter["slave"]))
    assert set(slaves) == {g["id"] for g in toml["gateways"]}
    for gateway, used in slaves.items():
        assert len(used) in (19, 20), gateway
        assert sorted(used) == list(range(1, len(used) + 1)), gateway
    assert Counter(len(used) for used in slaves.values()) == {19: 173, 20: 51}


def test_gateway_kinds(toml: SiteToml) -> None:
    dtu = [g for g in toml["gateways"] if g["kind"] == "dtu"]
    tcp = [g for g in toml["gateways"] if g["kind"] == "modbus_tcp"]
    assert len(dtu) == 216 and len(tcp) == 8
    assert all(g["protocol"] == "modbus_rtu" for g in toml["gateways"])
    assert all(re.fullmatch(r"GSM500-\d{4}", g["registration"]) for g in dtu)
    assert all("host" not in g and "port" not in g for g in dtu)
    assert all(g["host"] == "127.0.0.1" and "registration" not in g for g in tcp)
    assert sorted(g["port"] for g in tcp) == list(range(15020, 15028))


def test_modbus_tcp_gateway_option() -> None:
    assert all(g.kind == "dtu" for g in build_park(1, modbus_tcp_gateways=0).gateways)
    park = build_park(1, modbus_tcp_gateways=224)
    assert [g.port for g in park.gateways] == list(range(15020, 15020 + 224))
    with pytest.raises(ValueError, match="modbus_tcp_gateways"):
        build_park(1, modbus_tcp_gateways=225)


def test_uniqueness(toml: SiteToml, meters: list[dict[str, str]]) -> None:
    ids = [m["id"] for m in meters]
    addresses = [m["dlt645_address"] for m in meters]
    serials = [m["serial"] for m in meters if m["serial"]]
    assert len(set(ids)) == len(ids)
    assert len(set(addresses)) == len(addresses)
    assert len(set(serials)) == len(serials) == 1100
    gateway_ids = [g["id"] for g in toml["gateways"]]
    registrations = [g["registration"] for g in toml["gateways"] if "registration" in g]
    buildings = [b["id"] for a in toml["areas"] for b in a["buildings"]]
    for values in (gateway_ids, registrations, buildings, [a["id"] for a in toml["areas"]]):
        assert len(set(values)) == len(values)
    pairs = [(m["gateway"], m["slave"]) for m in meters if m["gateway"]]
    assert len(set(pairs)) == len(pairs)


def _luhn_ok(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char) * (2 if index % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def test_meter_rows_follow_the_spec(toml: SiteToml, meters: list[dict[str, str]]) -> None:
    areas = {a["id"]: a for a in toml["areas"]}
    tariffs = {t["id"] for t in toml["tariffs"]}
    merchants = {m["id"] for m in toml["merchants"]}
    for m in meters:
        where = m["id"]
        assert IDENT.fullmatch(m["id"]), where
        assert re.fullmatch(r"\d{12}", m["dlt645_address"]), where
        assert m["dlt645_address"] != "999999999999"
        if m["serial"]:
            assert len(m["serial"]) <= 20 and m["serial"].isascii(), where
            assert _luhn_ok(m["serial"]), where
        assert m["area"] in areas, where
        if m["building"]:
            assert m["building"] in {b["id"] for b in areas[m["area"]]["buildings"]}, where
        assert m["billing"] in ("prepaid", "postpaid", "none"), where
        assert int(m["pt"]) == 1
        if m["billing"] != "none":
            assert m["owner"], where
            assert m["tariff"] in tariffs, where
            assert (m["merchant"] or areas[m["area"]]["merchant"]) in merchants, where
        if m["power_limit_kw"]:
            assert re.fullmatch(r"\d+(\.\d{1,3})?", m["power_limit_kw"]), where
        for column in ("alarm1_yuan", "alarm2_yuan", "credit_limit_yuan"):
            assert m[column] == "" or MONEY.fullmatch(m[column]), where
        if m["alarm1_yuan"] and m["alarm2_yuan"]:
            assert Decimal(m["alarm2_yuan"]) <= Decimal(m["alarm1_yuan"]), where
        assert int(m["ct"]) in CT_RATIOS, where


def test_loader_accepts_the_generated_site(site: Path) -> None:
    loaded = load_site(site, env={})  # raises SiteInvalid listing every error
    assert len(loaded.meters) == 5407 and len(loaded.gateways) == 224
    assert [m.id for m in loaded.merchants] == ["M1", "M2", "M3"]
    assert sum(1 for m in loaded.meters if m.three_phase) == 1100
    dorm = next(m for m in loaded.meters if m.billing == "prepaid" and not m.three_phase)
    assert (dorm.alarm1_fen, dorm.alarm2_fen, dorm.credit_limit_fen) == (2000, 500, 1000)
    assert dorm.power_limit_kw == Decimal("4.4")


def test_meters_csv_header(site: Path) -> None:
    header = (site / "meters.csv").read_text(encoding="utf-8").split("\n", 1)[0]
    assert header == ",".join(METER_COLUMNS)


def test_meter_mix(meters: list[dict[str, str]]) -> None:
    enterprise = [m for m in meters if m["area"].startswith("ENT-")]
    dorm = [m for m in meters if m["model"] == "DDSY1352"]
    assert {int(m["ct"]) for m in enterprise} == CT_RATIOS
    assert all(m["ct"] == "1" for m in dorm)
    rooms = [m["room"] for m in enterprise + dorm]
    assert all(re.fullmatch(r"[A-D]\d{1,2}-\d{3}|\d{1,2}-\d{3}", room) for room in rooms)
    billed = [m for m in enterprise if m["billing"] != "none"]
    owners = {m["owner"]: m["billing"] for m in billed}
    postpaid = sum(1 for billing in owners.values() if billing == "postpaid")
    assert len(owners) > 1000
    assert all("有限公司" in owner for owner in owners)
    assert 0.06 <= postpaid / len(owners) <= 0.14
    vacant = sum(1 for m in dorm if m["billing"] == "none")
    assert vacant == round(len(dorm) * 0.03)
    assert sum(1 for m in meters if m["tariff"] == "RES-TIER") == 60
    occupied = [m for m in dorm if m["billing"] == "prepaid"]
    assert {
        (m["power_limit_kw"], m["alarm1_yuan"], m["alarm2_yuan"], m["credit_limit_yuan"])
        for m in occupied
    } == {("4.400", "20.00", "5.00", "10.00")}
    assert all(m["alarm1_yuan"] == "" for m in meters if m["billing"] == "postpaid")
    assert any(m["merchant"] for m in meters), "no meter binds a merchant directly"


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def test_tariffs(toml: SiteToml) -> None:
    kinds = {t["id"]: t["kind"] for t in toml["tariffs"]}
    assert sorted(kinds.values()) == ["flat", "tiered", "tou"]
    for tariff in toml["tariffs"]:
        assert tariff["versions"], tariff["id"]
        for version in tariff["versions"]:
            assert version["effective"].utcoffset() is not None
    tou = next(t for t in toml["tariffs"] if t["kind"] == "tou")
    version = tou["versions"][0]
    prices = {k: Decimal(v) for k, v in version["prices"].items()}
    assert prices["sharp"] > prices["peak"] > prices["flat"] > prices["valley"]
    months = sorted(m for season in version["seasons"] for m in season["months"])
    assert months == list(range(1, 13))
    for season in version["seasons"]:
        periods = season["periods"]
        assert 1 <= len(periods) <= 14
        assert periods[0]["start"] == "00:00" and periods[-1]["end"] == "24:00"
        for before, after in itertools.pairwise(periods):
            assert before["end"] == after["start"]
            assert _minutes(before["start"]) < _minutes(before["end"])
        has_sharp = any(p["bucket"] == "sharp" for p in periods)
        assert has_sharp == (season["months"] == [7, 8])
    tiered = next(t for t in toml["tariffs"] if t["kind"] == "tiered")
    steps = tiered["versions"][0]["steps"]
    assert "up_to_kwh" not in steps[-1]
    bounds = [s["up_to_kwh"] for s in steps[:-1]]
    assert bounds == sorted(set(bounds))


def test_merchants_alarms_routes_users(toml: SiteToml, meters: list[dict[str, str]]) -> None:
    merchants = toml["merchants"]
    assert [m["id"] for m in merchants] == ["M1", "M2", "M3"]
    paths = [m[p]["notify_path"] for m in merchants for p in ("wechat", "alipay")]
    assert len(set(paths)) == 6 and all(p.startswith("/") for p in paths)
    assert all(a["merchant"] in {"M1", "M2", "M3"} for a in toml["areas"])
    areas = {a["id"] for a in toml["areas"]}
    meter_ids = {m["id"] for m in meters}
    for override in toml["alarms"]["overrides"]:
        assert ("area" in override) != ("meter" in override)
        assert override.get("area", "") in areas or override.get("meter", "") in meter_ids
    routes = {r["id"]: r for r in toml["routes"]}
    assert {r["channel"] for r in routes.values()} == {"webhook", "email", "sms"}
    for route in routes.values():
        assert route.get("escalate_to", route["id"]) in routes
        assert set(route.get("areas", [])) <= areas
    roles = {u["name"]: u["role"] for u in toml["users"]}
    assert sorted(roles.values()) == ["admin", "finance", "operator", "viewer"]


def test_merchant_credential_files(site: Path, toml: SiteToml) -> None:
    for merchant in toml["merchants"]:
        key = (site / merchant["wechat"]["apiv3_key_file"]).read_bytes()
        assert re.fullmatch(rb"[A-Za-z0-9]{32}", key)
        [(serial, pem_path)] = merchant["wechat"]["platform_keys"].items()
        assert serial.startswith("PUB_KEY_ID_")
        files = merchant_key_files(merchant["id"])
        pairs = (
            (pem_path, files.sim_wechat_platform_private),
            (merchant["alipay"]["alipay_public_key_file"], files.sim_alipay_private),
        )
        for public_path, private_path in pairs:
            public = serialization.load_pem_public_key((site / public_path).read_bytes())
            private = serialization.load_pem_private_key(
                (site / private_path).read_bytes(), password=None
            )
            assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
            assert isinstance(private, rsa.RSAPrivateKey)
            assert private.public_key().public_numbers() == public.public_numbers()
            assert stat.S_IMODE((site / private_path).stat().st_mode) == 0o600
        assert stat.S_IMODE((site / files.apiv3_key).stat().st_mode) == 0o600


def test_user_secrets(site: Path, toml: SiteToml) -> None:
    users_file = site / "secrets" / "users.toml"
    passwords_file = site / "secrets" / "initial-passwords.txt"
    for path in (users_file, passwords_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    hashes = tomllib.loads(users_file.read_text(encoding="utf-8"))["users"]
    lines = passwords_file.read_text(encoding="utf-8").splitlines()
    passwords = dict(line.split() for line in lines if not line.startswith("#"))
    assert set(passwords) == set(hashes) == {u["name"] for u in toml["users"]}
    site_text = (site / "site.toml").read_text(encoding="utf-8")
    csv_text = (site / "meters.csv").read_text(encoding="utf-8")
    hasher = PasswordHasher()
    for name, password in passwords.items():
        assert len(password) >= 16
        assert hashes[name]["password_hash"].startswith("$argon2id$")
        assert hasher.verify(hashes[name]["password_hash"], password)
        assert password not in site_text and password not in csv_text
    assert "password" not in site_text.replace("passwords in secrets/", "")
    assert len(set(passwords.values())) == len(passwords)


def test_same_seed_gives_identical_bytes(site: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_site(again, seed=1)
    for name in ("site.toml", "meters.csv"):
        assert (again / name).read_bytes() == (site / name).read_bytes(), name
    other = tmp_path / "other"
    generate_site(other, seed=2)
    for name in ("site.toml", "meters.csv"):
        assert (other / name).read_bytes() != (site / name).read_bytes(), name
    key = "keys/M1/apiv3.key"
    assert (again / key).read_bytes() != (site / key).read_bytes()


def test_output_does_not_depend_on_hash_seed(site: Path) -> None:
    script = (
        "import hashlib; from config.demo_park import build_park; "
        "from config.demo import render_meters_csv; "
        "from config.demo_site_toml import render_site_toml; p = build_park(1); "
        "print(hashlib.sha256((render_site_toml(p) + render_meters_csv(p)).encode()).hexdigest())"
    )
    expected = hashlib.sha256(
        (site / "site.toml").read_bytes() + (site / "meters.csv").read_bytes()
    ).hexdigest()
    for hash_seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
        )
        assert result.stdout.strip() == expected


def test_renderers_match_written_files(site: Path) -> None:
    park = build_park(1)
    assert render_site_toml(park).encode() == (site / "site.toml").read_bytes()
    assert render_meters_csv(park).encode() == (site / "meters.csv").read_bytes()


def test_refuses_a_foreign_folder(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DemoSiteError, match=r"not empty.*gen-site"):
        generate_site(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DemoSiteError, match="not a folder"):
        generate_site(a_file)


def test_overwrites_a_previous_site(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    generate_site(folder, seed=3)
    stale = folder / "keys" / "M9"
    stale.mkdir()
    summary = generate_site(folder, seed=3)
    assert (folder / MARKER_FILE).is_file()
    assert not stale.exists()
    assert summary.meters == 5407 and summary.gateways == 224
    assert any("5407" in line for line in summary.lines())
    empty = tmp_path / "empty"
    empty.mkdir()
    generate_site(empty)
    assert (empty / "site.toml").is_file()


def test_summary_counts(tmp_path: Path) -> None:
    summary = generate_site(tmp_path / "s", seed=5, modbus_tcp_gateways=3)
    assert (summary.meters, summary.gateways, summary.modbus_tcp_gateways) == (5407, 224, 3)
    assert summary.three_phase == summary.direct_4g
    assert summary.prepaid + summary.postpaid + summary.unbilled == 5407
    assert summary.dtu_gateways == 221 and summary.merchants == 3 and summary.tariffs == 3


@given(st.text())
def test_toml_string_round_trips(text: str) -> None:
    assert tomllib.loads(f"v = {toml_string(text)}")["v"] == text


_scalars = st.one_of(
    st.text(max_size=10),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(_values)
def test_toml_value_round_trips(value: object) -> None:
    assert tomllib.loads(f"v = {toml_value(value)}")["v"] == value  # type: ignore[arg-type]


@given(st.integers(0, 10**12))
def test_money_and_power_formats(amount: int) -> None:
    assert Decimal(format_fen(amount)) * 100 == amount
    assert Decimal(format_watts_as_kw(amount)) * 1000 == amount
    assert MONEY.fullmatch(format_fen(amount))


def test_formats_refuse_negative_values() -> None:
    with pytest.raises(ValueError, match="money"):
        format_fen(-1)
    with pytest.raises(ValueError, match="power"):
        format_watts_as_kw(-1)
