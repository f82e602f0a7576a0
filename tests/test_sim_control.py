"""The simulator's HTTP control API: state, faults, commands, speed, and 400s for bad input."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from config import load_site
from config.values import Endpoint
from protocols.modbus_rtu import ReadHoldingRegisters, RegistersReply
from server.clock import ManualClock
from sim.runner import Simulator
from tests.test_sim_modbus_tcp import TcpMaster

Run = Callable[[Awaitable[Any]], Any]
SMALL = Path(__file__).resolve().parent.parent / "config" / "examples" / "small"
START = datetime(2024, 6, 3, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.client = AsyncHTTPClient(force_instance=True)

    async def call(self, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        elif method == "POST":
            data = b""
        try:
            response = await self.client.fetch(
                self.base + path, method=method, body=data, raise_error=True
            )
        except HTTPClientError as exc:
            assert exc.response is not None
            return exc.code, json.loads(exc.response.body)
        return response.code, json.loads(response.body)


def with_api(run: Run, test: Callable[[Simulator, Api, ManualClock], Awaitable[None]]) -> None:
    async def main() -> None:
        clock = ManualClock(START)
        sim = Simulator(
            load_site(SMALL),
            clock=clock,
            dial_in=False,
            modbus_any_port=True,
            control=Endpoint("127.0.0.1", 0),
        )
        await sim.start()
        api = Api(sim.control_port or 0)
        try:
            await test(sim, api, clock)
        finally:
            api.client.close()
            await sim.stop()

    run(main())


def test_health_and_meter_state(run: Run) -> None:
    async def test(sim: Simulator, api: Api, clock: ManualClock) -> None:
        code, health = await api.call("GET", "/healthz")
        assert code == 200 and health["ok"] and health["meters"] == 8
        code, state = await api.call("GET", "/meters/E0001")
        assert code == 200 and state["relay"] == "closed" and state["gateway"] == "GW001"
        assert state["tags"]["ct"] == 50 and state["faults"] == []
        assert state["tags"]["u_b"] > 150

    with_api(run, test)


def test_phase_loss_and_clearing(run: Run) -> None:
    async def test(sim: Simulator, api: Api, clock: ManualClock) -> None:
        body = {"kind": "phase_loss", "meters": ["E0001"], "phases": "B", "duration_s": 600}
        code, faults = await api.call("POST", "/faults", body)
        assert code == 201 and faults["faults"][0]["phases"] == "B"
        _, state = await api.call("GET", "/meters/E0001")
        assert state["tags"]["u_b"] < 0.3 * 220 and state["tags"]["u_a"] > 0.9 * 220
        assert state["faults"][0]["kind"] == "phase_loss"
        code, cleared = await api.call("DELETE", "/faults?kind=phase_loss&meter=E0001")
        assert code == 200 and cleared["faults"] == []
        _, state = await api.call("GET", "/meters/E0001")
        assert state["tags"]["u_b"] > 0.9 * 220

    with_api(run, test)


def test_silence_and_gateway_outage_through_the_api(run: Run) -> None:
    async def test(sim: Simulator, api: Api, clock: ManualClock) -> None:
        port = sim.modbus_port("GW003")
        await api.call("POST", "/faults", {"kind": "silence", "meter": "P0001"})
        master = await TcpMaster().open(port)
        with pytest.raises(TimeoutError):
            await master.request(ReadHoldingRegisters(1, 0x61, 3), within=0.3)
        await master.close()
        await api.call("DELETE", "/faults")
        body = {"kind": "gateway_outage", "gateway": "GW003", "period_s": 60, "down_s": 20}
        code, _ = await api.call("POST", "/faults", body)
        assert code == 201
        master = await TcpMaster().open(port)
        with pytest.raises(ConnectionError):
            await master.request(ReadHoldingRegisters(1, 0x61, 3))
        await master.close()
        clock.advance(30)  # in the up part of the flap
        master = await TcpMaster().open(port)
        assert isinstance(await master.request(ReadHoldingRegisters(1, 0x61, 3)), RegistersReply)
        await master.close()

    with_api(run, test)


def test_commands_and_speed(run: Run) -> None:
    async def test(sim: Simulator, api: Api, clock: ManualClock) -> None:
        code, result = await api.call("POST", "/meters/E0001/relay", {"action": "open"})
        assert code == 200 and result["relay"] == "open"
        before = int(sim.fleet.money.balance_fen[sim.site.meter_row("E0001")])
        code, result = await api.call("POST", "/meters/E0001/recharge", {"fen": 5000})
        assert code == 200 and result["balance_fen"] == before + 5000
        code, _ = await api.call("POST", "/meters/E0001/load", {"kw": 12.5})
        assert code == 200
        code, _ = await api.call("POST", "/meters/E0001/load", {"kw": None})
        assert code == 200
        code, speed = await api.call("POST", "/speed", {"speed": 60})
        assert code == 200 and speed["speed"] == 60.0 and sim.clock.factor == 60.0

    with_api(run, test)


@pytest.mark.parametrize(
    ("method", "path", "body", "needle"),
    [
        ("POST", "/faults", b"{not json", "not valid JSON"),
        ("POST", "/faults", [1, 2], "JSON object"),
        ("POST", "/faults", {"kind": "gremlins", "meters": ["E0001"]}, "kind"),
        ("POST", "/faults", {"kind": "silent", "meters": ["NOPE"]}, "unknown meter 'NOPE'"),
        ("POST", "/faults", {"kind": "silent"}, "meters"),
        ("POST", "/faults", {"kind": "phase_loss", "meter": "E0001", "phases": "D"}, "phases"),
        ("POST", "/faults", {"kind": "corrupt", "meter": "E0001", "probability": 2}, "probability"),
        ("POST", "/faults", {"kind": "gateway_down", "gateway": "GW999"}, "GW999"),
        ("GET", "/meters/NOPE", None, "unknown meter"),
        ("POST", "/meters/E0001/recharge", {"fen": 1.5}, "fen"),
        ("POST", "/meters/E0001/recharge", {"fen": -3}, "fen"),
        ("POST", "/meters/E0001/relay", {"action": "explode"}, "action"),
        ("POST", "/meters/E0001/load", {}, "kw"),
        ("POST", "/speed", {"speed": 0}, "speed"),
        ("POST", "/speed", {"speed": "fast"}, "speed"),
        ("DELETE", "/faults?gateway=GW999", None, "GW999"),
    ],
)
def test_bad_input_is_a_400_with_a_message(
    run: Run, method: str, path: str, body: object, needle: str
) -> None:
    async def test(sim: Simulator, api: Api, clock: ManualClock) -> None:
        code, error = await api.call(method, path, body)
        assert code == 400
        assert needle in error["error"]

    with_api(run, test)
