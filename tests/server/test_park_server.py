"""The whole process against the simulator: a command reaches the relay, an alarm is journaled."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from config import load_site
from config.values import Endpoint
from server.cli import main as cli
from server.process import ParkServer
from server.tags import CommState
from sim.runner import Simulator
from tests.conftest import TEST_REDIS_URL

Run = Callable[[Awaitable[Any]], Any]
SMALL = Path(__file__).resolve().parents[2] / "config" / "examples" / "small"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _until(condition: Callable[[], bool], within: float, what: str) -> None:
    """Wait in real time (the server runs on the system clock) until `condition` holds."""
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - state owned by other tasks
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not within {within} s: {what}")


@pytest.fixture
def fast_site(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The small example site scanning every second, with a 1 s phase-loss delay."""
    folder = tmp_path / "site"
    shutil.copytree(SMALL, folder)
    toml = folder / "site.toml"
    text = toml.read_text(encoding="utf-8")
    text = text.replace("realtime_s = 60", "realtime_s = 1")
    text = text.replace("phase_loss_delay_s = 10", "phase_loss_delay_s = 1")
    toml.write_text(text, encoding="utf-8")
    monkeypatch.setenv("PARKGRID_DB_URL", db_url)
    monkeypatch.setenv("PARKGRID_VAR_DIR", str(tmp_path / "var"))
    return folder


def test_command_reaches_the_relay_and_an_alarm_is_journaled(
    run: Run, fast_site: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    site = load_site(fast_site)
    port = _free_port()
    listen = Endpoint("127.0.0.1", port)

    async def main() -> None:
        sim = Simulator(
            site, dialin=listen, modbus_any_port=True, serve_control=False, backoff_s=(0.05, 0.2)
        )
        await sim.start()
        ports = {g: Endpoint("127.0.0.1", sim.modbus_port(g)) for g in sim.modbus}
        server = ParkServer(
            site,
            dialin_listen=listen,
            gateway_endpoints=ports,
            hmi_listen=Endpoint("127.0.0.1", 0),
        )
        try:
            await server.start()
            assert server.tags is not None and server.commands is not None
            assert server.alarms is not None
            tags, outbox = server.tags, server.commands.outbox
            e1, p1 = site.meter_row("E0001"), site.meter_row("P0001")
            await _until(
                lambda: tags.comm[e1] == CommState.ONLINE and tags.comm[p1] == CommState.ONLINE,
                15,
                "E0001 and P0001 online",
            )

            command = outbox.enqueue(
                "relay_open", {}, "E0001", actor="tester", channel="cli"
            ).commands[0]
            await _until(lambda: outbox.get(command.id).state == "done", 15, "relay_open done")
            assert not sim.fleet.tags([e1])["relay"][0]

            # The operator's command line beside the running server: enqueue, then follow.
            argv = [
                "command",
                "--site",
                str(fast_site),
                "--actor",
                "op1",
                "send",
                "relay_close",
                "--meter",
                "E0001",
                "--wait",
                "15",
            ]
            assert await asyncio.to_thread(cli, argv) == 0
            assert sim.fleet.tags([e1])["relay"][0]
            assert "relay_close E0001: done" in capsys.readouterr().out

            sim.fleet.faults.phase_loss(sim.fleet.faults.rows_of(["P0001"]), "B")
            sim.image.invalidate()
            engine = server.alarms.engine
            await _until(
                lambda: engine.state("phase_loss", "P0001").name.lower() != "normal",
                15,
                "phase loss raised on P0001",
            )
        finally:
            await server.stop()
            await sim.stop()

    run(main())
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT to_state FROM alarm_transitions WHERE kind = 'phase_loss' AND target = 'P0001'"
        )
        assert [r[0] for r in cur.fetchall()][:1] == ["unacked"]
    conn.close()


def test_command_cli_refuses_bad_requests(
    fast_site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["command", "--site", str(fast_site), "send"]
    assert cli([*base, "relay_open"]) == 1
    assert "name the meters" in capsys.readouterr().err
    assert cli([*base, "relay_open", "--meter", "NOPE"]) == 1
    assert "NOPE" in capsys.readouterr().err
    assert (
        cli(
            [
                *base,
                "price_set",
                "--meter",
                "E0001",
                "--param",
                "sharp_e4=-1",
                "--param",
                "peak_e4=1",
                "--param",
                "flat_e4=1",
                "--param",
                "valley_e4=1",
            ]
        )
        == 1
    )
    assert "sharp_e4" in capsys.readouterr().err


def test_acquisition_workers_poll_and_carry_commands(
    run: Run, fast_site: Path, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARKGRID_REDIS_URL", TEST_REDIS_URL)
    site = load_site(fast_site)
    listen = Endpoint("127.0.0.1", _free_port())

    async def serve() -> None:
        sim = Simulator(
            site, dialin=listen, modbus_any_port=True, serve_control=False, backoff_s=(0.05, 0.2)
        )
        await sim.start()
        ports = {g: Endpoint("127.0.0.1", sim.modbus_port(g)) for g in sim.modbus}
        server = ParkServer(
            site,
            dialin_listen=listen,
            gateway_endpoints=ports,
            hmi_listen=Endpoint("127.0.0.1", 0),
            acquisition_workers=1,
        )
        try:
            await server.start()
            assert server.tags is not None and server.commands is not None
            assert server.pool is not None
            tags, outbox = server.tags, server.commands.outbox
            p1, e1 = site.meter_row("P0001"), site.meter_row("E0001")
            # P0001 sits behind the Modbus TCP gateway the worker polls; E0001 dials in.
            await _until(
                lambda: tags.comm[p1] == CommState.ONLINE and tags.comm[e1] == CommState.ONLINE,
                30,
                "P0001 (worker) and E0001 (core) online",
            )
            command = outbox.enqueue(
                "relay_open", {}, "P0001", actor="tester", channel="cli"
            ).commands[0]
            await _until(lambda: outbox.get(command.id).state == "done", 30, "relay_open done")
            assert not sim.fleet.tags([p1])["relay"][0]
        finally:
            await server.stop()
            await sim.stop()

    run(serve())
