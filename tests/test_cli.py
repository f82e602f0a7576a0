"""The `parkgrid` command line: gen-site, check-config and run, as a user calls them."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "examples" / "small"


def test_check_config_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert " ok " in capsys.readouterr().out


def test_check_config_lists_every_error_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "broken"
    shutil.copytree(EXAMPLE, site)
    with (site / "meters.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    rows[2][rows[0].index("ct")] = "-5"
    rows.append(rows[1])
    with (site / "meters.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)

    assert main(["check-config", str(site)]) == 1
    err = capsys.readouterr().err
    assert "meters.csv:3: ct:" in err
    assert f"meters.csv:{len(rows)}: id:" in err


def test_gen_site_then_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "park"
    assert main(["gen-site", "--out", str(out), "--seed", "7"]) == 0
    assert main(["check-config", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "5407 meters, 224 gateways" in printed


def test_run_refuses_an_invalid_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--site", str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err


def test_run_serves_until_sigterm(tmp_path: Path, db_url: str) -> None:
    env = dict(os.environ, PARKGRID_DB_URL=db_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "run", "--site", str(EXAMPLE)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "acquisition started" in line:
                break
        else:
            pytest.fail("server exited before it was ready")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_run_names_an_unreachable_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PARKGRID_DB_URL", "postgresql://postgres:secret@127.0.0.1:1/parkgrid")
    assert main(["run", "--site", str(EXAMPLE)]) == 1
    err = capsys.readouterr().err
    assert "cannot reach PostgreSQL at postgresql://postgres:***@127.0.0.1:1/parkgrid" in err
    assert "secret" not in err
