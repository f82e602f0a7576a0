"""Run every atheris fuzz target in tests/fuzz/ for a bounded time, as `make test` promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).resolve().parent / "fuzz"
TARGETS = sorted(FUZZ_DIR.glob("fuzz_*.py"))
SECONDS = 4


def test_there_are_targets() -> None:
    assert len(TARGETS) >= 4


@pytest.mark.parametrize("target", TARGETS, ids=[t.stem for t in TARGETS])
def test_fuzz_target_survives(target: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(target),
            f"-max_total_time={SECONDS}",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS * 10 + 30,
        check=False,
    )
    tail = result.stderr[-3000:]
    assert result.returncode == 0, f"{target.name} found a crash:\n{tail}"
    assert "Done" in result.stderr, tail
