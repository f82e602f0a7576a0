"""`parkgrid fault` drives the simulator's faults through its control API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from server.cli import main
from sim.runner import Simulator
from tests.test_sim_control import Api, with_api

Run = Callable[[Awaitable[Any]], Any]


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in a thread, as a user's shell would beside the running simulator."""
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_and_clear_faults(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    async def test(sim: Simulator, api: Api, clock: Any) -> None:
        control = f"127.0.0.1:{sim.control_port}"
        code, out, _ = await _cli(
            capsys,
            "fault",
            "--control",
            control,
            "add",
            "phase_loss",
            "--meter",
            "E0001",
            "--set",
            "phases=BC",
            "--duration",
            "600",
        )
        assert code == 0
        faults = json.loads(out)["faults"]
        assert [f["kind"] for f in faults] == ["phase_loss"]
        assert sim.fleet.tags()["u_b"][sim.fleet.faults.rows_of(["E0001"])[0]] < 50

        code, out, _ = await _cli(capsys, "fault", "--control", control, "list")
        assert code == 0 and len(json.loads(out)["faults"]) == 1

        code, out, _ = await _cli(capsys, "fault", "--control", control, "clear")
        assert code == 0 and json.loads(out)["faults"] == []
        _, state = await api.call("GET", "/meters/E0001")
        assert state["faults"] == [] and state["tags"]["u_b"] > 150

    with_api(run, test)


def test_refusals_are_printed_with_the_reason(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    async def test(sim: Simulator, api: Api, clock: Any) -> None:
        control = f"127.0.0.1:{sim.control_port}"
        code, _, err = await _cli(
            capsys,
            "fault",
            "--control",
            control,
            "add",
            "phase_loss",
            "--meter",
            "NOPE",
            "--set",
            "phases=B",
        )
        assert code == 1 and "simulator refused" in err and "NOPE" in err
        code, _, err = await _cli(
            capsys,
            "fault",
            "--control",
            control,
            "add",
            "silent",
            "--meter",
            "E0001",
            "--set",
            "oops",
        )
        assert code == 1 and "--set 'oops': expected KEY=VALUE" in err

    with_api(run, test)


def test_unreachable_simulator_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fault", "--control", "127.0.0.1:1", "list"]) == 1
    assert "cannot reach the simulator at http://127.0.0.1:1" in capsys.readouterr().err
