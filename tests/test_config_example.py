"""The example site loads, its lookups work, and missing files are clear errors."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from config import Endpoint, Site, SiteInvalid, load_site

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "examples" / "small"
CST = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(EXAMPLE, env={})


def test_park_services_and_acquisition(site: Site) -> None:
    assert site.folder == EXAMPLE
    assert site.park.name.startswith("示范工业园")
    assert (site.park.timezone, site.park.nominal_voltage) == ("Asia/Shanghai", 220.0)
    assert site.services.hmi_listen == Endpoint("127.0.0.1", 8080)
    assert str(site.services.dialin_listen) == "0.0.0.0:7700"
    assert site.services.var_dir == Path("var")
    assert site.acquisition.energy_s == 1800


def test_meter_lookups(site: Site) -> None:
    assert [m.id for m in site.meters] == [
        "E0001",
        "E0002",
        "E0003",
        "D0001",
        "D0002",
        "P0001",
        "G0001",
        "G0002",
    ]
    assert site.meter_row("D0001") == 3
    e1 = site.meter("E0001")
    assert (e1.gateway, e1.slave, e1.serial, e1.line) == ("GW001", 1, None, 2)
    assert e1.three_phase and not site.meter("E0003").three_phase
    assert (e1.alarm1_fen, e1.alarm2_fen, e1.credit_limit_fen) == (50000, 10000, 20000)
    assert e1.power_limit_kw == Decimal("80.5")
    assert site.meter("E0002").owner == "精工电子, 二分厂"
    assert site.meter("G0002").alarm1_fen == 1050
    with pytest.raises(KeyError, match="no meter 'NOPE'"):
        site.meter("NOPE")


def test_merchant_comes_from_the_area_unless_the_row_names_one(site: Site) -> None:
    assert site.meter("E0001").merchant == "M1"  # area ENT default
    assert site.meter("E0003").merchant == "M2"  # named in the row
    assert site.meter("D0001").merchant == "M2"  # area DORM default
    assert site.meter("P0001").merchant == "M1"  # area PUB has none; named in the row


def test_gateway_lookups(site: Site) -> None:
    assert [m.id for m in site.meters_on("GW001")] == ["E0001", "E0002", "E0003"]
    assert [m.id for m in site.meters_on("GW003")] == ["P0001"]
    assert [m.id for m in site.direct_meters()] == ["G0001", "G0002"]
    assert site.gateway("GW001").registration == b"GW001"
    assert site.gateway("GW001").heartbeat == b"HB"
    assert site.gateway("GW002").registration == bytes.fromhex("A1B2C3D4")
    gw3 = site.gateway("GW003")
    assert (gw3.kind, gw3.host, gw3.port, gw3.registration) == (
        "modbus_tcp",
        "127.0.0.1",
        1502,
        None,
    )
    with pytest.raises(KeyError):
        site.meters_on("GW999")


def test_area_tariff_merchant_route_lookups(site: Site) -> None:
    assert [b.id for b in site.area("ENT").buildings] == ["ENT-01", "ENT-02"]
    assert site.area("PUB").merchant is None
    assert site.tariff("FLAT").versions[0].price_e4 == 6000
    steps = site.tariff("TIER").versions[0].steps
    assert [(s.up_to_kwh, s.price_e4) for s in steps] == [(200, 5283), (400, 5783), (None, 8283)]
    m1 = site.merchant("M1")
    assert m1.wechat is not None and m1.alipay is not None
    assert m1.wechat.apiv3_key_file == EXAMPLE / "keys/M1/apiv3.key"
    assert dict(m1.wechat.platform_keys) == {
        "PUB_KEY_ID_0001": EXAMPLE / "keys/M1/wechatpay_pub.pem"
    }
    assert site.merchant("M2").alipay is None
    route = site.route("maint-dorm")
    assert (route.escalate_to, route.escalate_after_min, route.format) == ("maint-lead", 15, "json")
    assert site.route("maint-lead").format is None
    assert [(u.name, u.role) for u in site.users] == [("admin", "admin"), ("op1", "operator")]


def test_tou_tariff_versions(site: Site) -> None:
    tou = site.tariff("TOU-JS")
    first = tou.version_at(datetime(2024, 7, 15, 10, 30, tzinfo=CST))
    assert first.prices is not None and first.prices.of("sharp") == 11850
    assert first.bucket_at(datetime(2024, 7, 15, 10, 30)) == "sharp"
    assert first.bucket_at(datetime(2024, 3, 16, 9, 0)) == "flat"  # a Saturday: weekend table
    assert first.bucket_at(datetime(2024, 3, 15, 9, 0)) == "peak"
    second = tou.version_at(datetime(2025, 7, 1, tzinfo=CST))
    assert second.prices is not None and second.prices.sharp_e4 == 12000


def test_alarm_limits_per_meter(site: Site) -> None:
    assert site.alarms.limits.undervoltage_ratio == 0.85
    dorm = site.alarms.limits_for(site.meter("D0001"))
    assert (dorm.undervoltage_ratio, dorm.lost_comm_polls) == (0.80, 3)
    e1 = site.alarms.limits_for(site.meter("E0001"))
    assert (e1.undervoltage_ratio, e1.lost_comm_polls) == (0.85, 5)


def test_site_is_immutable(site: Site) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        site.meters = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        site.meter("E0001").ct = 5  # type: ignore[misc]
    assert isinstance(site.meters, tuple) and isinstance(site.area("ENT").buildings, tuple)


def test_environment_overrides_services() -> None:
    env = {
        "PARKGRID_DB_URL": "postgresql://u@db.example:5433/other",
        "PARKGRID_REDIS_URL": "redis://cache:6380/2",
        "PARKGRID_HMI_LISTEN": "[::1]:0",
        "PARKGRID_OPCUA_ENDPOINT": "opc.tcp://opc:4841/x",
        "PARKGRID_DIALIN_LISTEN": "127.0.0.1:17700",
        "PARKGRID_SIM_CONTROL": "localhost:7791",
        "PARKGRID_VAR_DIR": "/srv/parkgrid",
        "UNRELATED": "ignored",
    }
    services = load_site(EXAMPLE, env=env).services
    assert services.db_url == "postgresql://u@db.example:5433/other"
    assert services.redis_url == "redis://cache:6380/2"
    assert services.hmi_listen == Endpoint("::1", 0)
    assert str(services.hmi_listen) == "[::1]:0"
    assert services.opcua_endpoint == "opc.tcp://opc:4841/x"
    assert services.dialin_listen == Endpoint("127.0.0.1", 17700)
    assert services.sim_control == Endpoint("localhost", 7791)
    assert services.var_dir == Path("/srv/parkgrid")


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARKGRID_SIM_CONTROL", "127.0.0.1:9999")
    assert load_site(EXAMPLE).services.sim_control.port == 9999
    monkeypatch.setenv("PARKGRID_SIM_CONTROL", "nonsense")
    with pytest.raises(SiteInvalid, match="environment: PARKGRID_SIM_CONTROL: must be host:port"):
        load_site(EXAMPLE)


def test_defaults_when_optional_sections_are_absent(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    text = (folder / "site.toml").read_text(encoding="utf-8")
    start, end = text.index("[services]"), text.index("[[areas]]")
    (folder / "site.toml").write_text(text[:start] + text[end:], encoding="utf-8")
    site = load_site(folder, env={})
    assert site.services.db_url == "postgresql://postgres@127.0.0.1:5432/parkgrid"
    assert site.services.sim_control == Endpoint("127.0.0.1", 7790)
    assert site.acquisition.prepaid_s == 86400 and site.acquisition.request_timeout_ms == 1000


def test_empty_weekend_table_means_none(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    text = (folder / "site.toml").read_text(encoding="utf-8")
    start = text.index("weekend_periods = [")
    end = text.index("]", start) + 1
    (folder / "site.toml").write_text(text[:start] + "weekend_periods = [ ]" + text[end:])
    version = load_site(folder, env={}).tariff("TOU-JS").versions[0]
    assert version.seasons[1].weekend_periods == ()
    assert version.bucket_at(datetime(2024, 3, 16, 9, 0)) == "peak"  # Saturday: weekday table


def test_missing_park_table(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    text = (folder / "site.toml").read_text(encoding="utf-8")
    start, end = text.index("[park]"), text.index("[services]")
    (folder / "site.toml").write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(SiteInvalid) as caught:
        load_site(folder, env={})
    assert [str(e) for e in caught.value.errors] == [
        "site.toml: park: the [park] table is required"
    ]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SiteInvalid) as caught:
        load_site(tmp_path / "nowhere", env={})
    [error] = caught.value.errors
    assert error.file == str(tmp_path / "nowhere") and error.message == "site folder does not exist"


@pytest.mark.parametrize("name", ["site.toml", "meters.csv"])
def test_missing_file(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    (folder / name).unlink()
    with pytest.raises(SiteInvalid) as caught:
        load_site(folder, env={})
    [error] = caught.value.errors
    assert (error.file, error.line, error.field) == (name, None, "")
    assert str(error) == f"{name}: missing: the site needs {folder / name}"
