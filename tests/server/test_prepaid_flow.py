"""The prepaid loop in the live process: credit runs out, the relay trips, WeChat Pay closes it."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from config import load_site
from config.demo_keys import write_merchant_keys
from config.values import Endpoint
from server.cli import main as cli
from server.pay_cli import post_notification, wechat_notification
from server.prepaid.payments.keys import MerchantKeys
from server.prepaid.payments.orders import PaymentOrders
from server.process import ParkServer, StartupError
from server.tags import CommState
from sim.runner import Simulator

Run = Callable[[Awaitable[Any]], Any]
SMALL = Path(__file__).resolve().parents[2] / "config" / "examples" / "small"
METER = "D0001"  # a prepaid dormitory meter of merchant M2 (moved onto the Modbus DTU GW001)
LOAD_KW = 15.0  # about 0.22 fen of the TIER tariff per second


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _until(condition: Callable[[], bool], within: float, what: str) -> None:
    """Wait in real time (the server runs on the system clock) until `condition` holds."""
    try:
        async with asyncio.timeout(within):
            while not await asyncio.to_thread(condition):  # noqa: ASYNC110 - polls the DB
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"not within {within} s: {what}")


@pytest.fixture
def fast_site(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The small example site scanning energy every second, its own web port, demo keys of M2."""
    folder = tmp_path / "site"
    shutil.copytree(SMALL, folder)
    toml = folder / "site.toml"
    text = toml.read_text(encoding="utf-8")
    text = text.replace("realtime_s = 60", "realtime_s = 1")
    text = text.replace("energy_s = 1800", "energy_s = 1")
    text = text.replace('hmi_listen = "127.0.0.1:8080"', f'hmi_listen = "127.0.0.1:{_free_port()}"')
    toml.write_text(text, encoding="utf-8")
    # DL/T 645 gateways are not polled yet, so D0001 answers Modbus behind GW001 here, as
    # the demo's dormitory meters do; it would trip itself after a minute over 2.2 kW.
    csv = folder / "meters.csv"
    rows = csv.read_text(encoding="utf-8")
    rows = rows.replace("000000000011,GW002,1,", "000000000011,GW001,4,")
    rows = rows.replace(",TIER,2.2,20.00,10.00,", ",TIER,,20.00,10.00,")
    csv.write_text(rows, encoding="utf-8")
    write_merchant_keys(folder, "M2")  # fresh keys with the simulated platform private key
    monkeypatch.setenv("PARKGRID_DB_URL", db_url)
    return folder


def _ledger(db_url: str, meter: str) -> list[tuple[str, int, int]]:
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT type, amount_fen, balance_after_fen FROM ledger_transactions"
            " WHERE meter = %s ORDER BY id",
            (meter,),
        )
        found = [(str(t), int(a), int(b)) for t, a, b in cur.fetchall()]
    conn.close()
    return found


def _wallet_sum(db_url: str, meter: str) -> int:
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COALESCE(SUM(p.amount_fen), 0) FROM ledger_postings p"
            " JOIN ledger_accounts a ON a.id = p.account_id"
            " WHERE a.kind = 'wallet' AND a.meter = %s AND a.closed_at IS NULL",
            (meter,),
        )
        row = cur.fetchone()
    conn.close()
    assert row is not None
    return int(row[0])


def test_credit_runs_out_the_relay_trips_and_wechat_pay_closes_it(
    run: Run, fast_site: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    site = load_site(fast_site)
    assert site.meter(METER).credit_limit_fen == 0
    listen = Endpoint("127.0.0.1", _free_port())
    row = site.meter_row(METER)
    account = ["account", "--site", str(fast_site), "--actor", "finance1"]
    assert cli([*account, "open", "--meter", METER, "--opening-yuan", "0.02"]) == 0
    assert "balance 0.02 yuan" in capsys.readouterr().out

    async def main() -> None:
        sim = Simulator(
            site, dialin=listen, modbus_any_port=True, serve_control=False, backoff_s=(0.05, 0.2)
        )
        await sim.start()
        ports = {g: Endpoint("127.0.0.1", sim.modbus_port(g)) for g in sim.modbus}
        server = ParkServer(site, dialin_listen=listen, gateway_endpoints=ports)
        try:
            await server.start()
            assert server.tags is not None and server.commands is not None
            assert server.web is not None and server.prepaid is not None
            tags, outbox = server.tags, server.commands.outbox
            await _until(lambda: tags.comm[row] == CommState.ONLINE, 15, f"{METER} online")
            sim.fleet.set_load([row], LOAD_KW)
            sim.image.invalidate()

            def commanded(kind: str) -> bool:
                page = outbox.find(meter=METER, state="done", kind=kind)
                return bool(page.items)

            await _until(lambda: commanded("relay_open"), 60, "relay_open done, credit gone")
            assert not sim.fleet.tags([row])["relay"][0], "the simulated relay is still closed"
            tripped = _ledger(db_url, METER)
            assert tripped[-1][0] == "energy_deduction" and tripped[-1][2] < 0

            health_url = f"http://127.0.0.1:{server.web.port}/healthz"
            status, text = await asyncio.to_thread(_get, health_url)
            health = json.loads(text)
            assert status == 200 and health["db"]["reachable"] is True
            assert health["meters"]["total"] == len(site.meters)
            assert health["meters"]["online"] >= 1

            # A notification signed with a key that is not WeChat Pay's: refused, nothing posted.
            status, _ = await asyncio.to_thread(_forged_notification, site, fast_site)
            assert status == 401
            assert [t for t, _, _ in _ledger(db_url, METER)].count("wechat_recharge") == 0

            pay = ["pay", "wechat", "--site", str(fast_site), "--meter", METER, "--yuan", "50"]
            assert await asyncio.to_thread(cli, pay) == 0
            assert "HTTP 204" in capsys.readouterr().out
            await _until(lambda: commanded("relay_close"), 30, "relay_close done after recharge")
            assert sim.fleet.tags([row])["relay"][0], "the simulated relay is still open"
            sim.fleet.set_load([row], float("nan"))
        finally:
            await server.stop()
            await sim.stop()

    run(main())
    steps = _ledger(db_url, METER)
    kinds = [kind for kind, _, _ in steps]
    assert kinds[0] == "counter_recharge" and steps[0][1] == 2
    assert kinds.count("wechat_recharge") == 1
    assert kinds.count("energy_deduction") >= 1
    recharge = kinds.index("wechat_recharge")
    assert steps[recharge][1] == 5000 and steps[recharge][2] >= 0
    assert sum(amount for _, amount, _ in steps) == steps[-1][2] == _wallet_sum(db_url, METER)
    # Every step also shows through the operator's command line.
    assert cli([*account, "transactions", "--meter", METER, "--limit", "500"]) == 0
    listing = capsys.readouterr().out
    assert "wechat_recharge" in listing and "energy_deduction" in listing
    assert cli([*account, "balance", "--meter", METER]) == 0
    assert f"balance {steps[-1][2] // 100}." in capsys.readouterr().out


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return int(answer.status), answer.read().decode()


def _forged_notification(site: Any, folder: Path) -> tuple[int, str]:
    """A well-formed notification for a real order, signed by a key WeChat Pay never had."""
    keys = MerchantKeys.from_site(site).wechat("M2")
    conn = psycopg2.connect(site.services.db_url)
    try:
        orders = PaymentOrders(conn, site, notify_base_url="http://127.0.0.1")
        order = orders.create_order(METER, 5000, "wechat")
    finally:
        conn.close()
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    serial = next(iter(keys.platform_keys))
    forged = wechat_notification(keys, order, serial, impostor, now=time.time())
    url = f"http://{site.services.hmi_listen}{keys.notify_path}"
    return post_notification(url, forged)


def test_account_cli_names_what_is_wrong(
    fast_site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["account", "--site", str(fast_site), "--actor", "finance1"]
    assert cli([*base, "balance", "--meter", "NOPE"]) == 1
    assert "NOPE" in capsys.readouterr().err
    assert cli([*base, "open", "--meter", "E0003", "--opening-yuan", "-1"]) == 1
    assert "--opening-yuan: must not be negative" in capsys.readouterr().err
    assert cli([*base, "open", "--meter", "E0002"]) == 1
    assert "E0002 is billed postpaid, not prepaid" in capsys.readouterr().err
    assert cli([*base, "recharge", "--meter", "E0003", "--yuan", "5"]) == 1
    assert "E0003 has no wallet" in capsys.readouterr().err
    assert cli([*base, "open", "--meter", "E0003", "--opening-yuan", "1.50"]) == 0
    assert cli([*base, "open", "--meter", "E0003", "--opening-yuan", "1.50"]) == 0
    assert "already open and credited" in capsys.readouterr().out
    assert cli([*base, "recharge", "--meter", "E0003", "--yuan", "-5"]) == 1
    assert "--yuan: must not be negative" in capsys.readouterr().err
    assert cli([*base, "recharge", "--meter", "E0003", "--yuan", "0"]) == 1
    assert "more than 0" in capsys.readouterr().err
    assert cli([*base, "recharge", "--meter", "E0003", "--yuan", "abc"]) == 1
    assert "--yuan: must be money" in capsys.readouterr().err
    assert cli([*base, "recharge", "--meter", "E0003", "--yuan", "2.25"]) == 0
    out = capsys.readouterr().out
    assert "recharged 2.25 yuan" in out and "balance 3.75 yuan" in out
    assert "relay_close" not in out  # settlement never opened this relay
    assert cli(["pay", "wechat", "--site", str(fast_site), "--meter", "E0002", "--yuan", "5"]) == 1
    assert "E0002 is postpaid, not prepaid" in capsys.readouterr().err


def test_a_taken_web_port_stops_the_start_with_a_clear_error(
    run: Run, fast_site: Path, db_url: str
) -> None:
    site = load_site(fast_site)
    listen = Endpoint("127.0.0.1", _free_port())

    async def main() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = Endpoint("127.0.0.1", taken.getsockname()[1])
            server = ParkServer(site, dialin_listen=listen, hmi_listen=busy)
            with pytest.raises(StartupError, match=f"web application on {busy}"):
                await server.start()
            assert server.prepaid is None and server.acquisition is None

    run(main())
