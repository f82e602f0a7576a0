"""The benchmark runner: registry, table, JSON output and exit codes."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

import bench
from bench.runner import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNKNOWN,
    Metric,
    discover,
    format_number,
    load,
    ratio,
    render_table,
    run_benchmarks,
)
from bench.timing import median_seconds


def fake() -> dict[str, Metric]:
    return {
        "scan_s": Metric(1.7, "s", 2.0, "lower"),
        "rate_per_s": Metric(120_000.0, "values/s", 150_000.0, "higher"),
        "rows": Metric(540.0, "rows"),
        "speedup": Metric(ratio(10.0, 4.0), "x", None, "higher"),
    }


def broken() -> dict[str, Metric]:
    raise RuntimeError("simulator not reachable")


def test_runner_writes_json_and_prints_a_table(tmp_path: Path) -> None:
    out = io.StringIO()
    code = run_benchmarks(["fake"], tmp_path, registry={"fake": fake}, stream=out)
    assert code == EXIT_OK
    written = json.loads((tmp_path / "fake.json").read_text(encoding="utf-8"))
    assert written == {
        "scan_s": {"value": 1.7, "unit": "s", "target": 2.0, "better": "lower"},
        "rate_per_s": {
            "value": 120000.0,
            "unit": "values/s",
            "target": 150000.0,
            "better": "higher",
        },
        "rows": {"value": 540.0, "unit": "rows", "target": None, "better": "lower"},
        "speedup": {"value": 2.5, "unit": "x", "target": None, "better": "higher"},
    }
    text = out.getvalue()
    assert "== fake ==" in text
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert lines["metric"] == ["metric", "value", "unit", "target", "better", "status"]
    assert lines["scan_s"] == ["scan_s", "1.7", "s", "2", "lower", "ok"]
    assert lines["rate_per_s"] == ["rate_per_s", "120,000", "values/s", "150,000", "higher", "MISS"]
    assert lines["rows"] == ["rows", "540", "rows", "-", "lower"]
    assert f"wrote {tmp_path / 'fake.json'}" in text


def test_no_names_runs_every_registered_benchmark(tmp_path: Path) -> None:
    registry = {"b": fake, "a": fake}
    assert run_benchmarks([], tmp_path, registry=registry, stream=io.StringIO()) == EXIT_OK
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_unknown_name_is_an_error_and_runs_nothing(tmp_path: Path) -> None:
    out = io.StringIO()
    code = run_benchmarks(["fake", "nope"], tmp_path, registry={"fake": fake}, stream=out)
    assert code == EXIT_UNKNOWN
    assert "unknown benchmark(s): nope; known: fake" in out.getvalue()
    assert not list(tmp_path.iterdir())


def test_a_failing_benchmark_fails_the_run_but_not_the_others(tmp_path: Path) -> None:
    out = io.StringIO()
    registry = {"broken": broken, "fake": fake}
    code = run_benchmarks(["broken", "fake"], tmp_path, registry=registry, stream=out)
    assert code == EXIT_FAILED
    assert "== broken == FAILED" in out.getvalue()
    assert "simulator not reachable" in out.getvalue()
    assert [p.name for p in tmp_path.iterdir()] == ["fake.json"]


@pytest.mark.parametrize(
    "result",
    [
        [1, 2],
        {"x": 1.0},
        {1: Metric(1.0, "s")},
    ],
)
def test_a_benchmark_must_return_metrics(tmp_path: Path, result: Any) -> None:
    out = io.StringIO()
    code = run_benchmarks(["odd"], tmp_path, registry={"odd": lambda: result}, stream=out)
    assert code == EXIT_FAILED
    assert "TypeError" in out.getvalue()


def test_non_finite_values_are_written_as_null_and_miss(tmp_path: Path) -> None:
    registry = {"nan": lambda: {"ratio": Metric(ratio(1.0, 0.0), "x", 2.0, "higher")}}
    run_benchmarks(["nan"], tmp_path, registry=registry, stream=io.StringIO())
    written = json.loads((tmp_path / "nan.json").read_text(encoding="utf-8"))
    assert written["ratio"]["value"] is None
    assert Metric(math.nan, "x", 2.0, "higher").ok is False


@pytest.mark.parametrize(
    ("metric", "ok"),
    [
        (Metric(2.0, "s", 2.0, "lower"), True),
        (Metric(2.1, "s", 2.0, "lower"), False),
        (Metric(2.0, "s", 2.0, "higher"), True),
        (Metric(1.9, "s", 2.0, "higher"), False),
        (Metric(1.9, "s"), None),
    ],
)
def test_metric_ok(metric: Any, ok: Any) -> None:
    assert metric.ok is ok


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"better": "faster"}, "better must be"),
        ({"target": math.inf}, "target must be a finite number"),
    ],
)
def test_metric_is_validated(kwargs: Any, message: Any) -> None:
    with pytest.raises(ValueError, match=message):
        Metric(1.0, "s", **kwargs)


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (0.57732, "0.5773"), (1234567.8, "1,234,568"), (math.inf, "inf"), (5.0, "5")],
)
def test_format_number(value: Any, text: Any) -> None:
    assert format_number(value) == text


def test_render_table_aligns_columns() -> None:
    lines = render_table("fake", fake()).splitlines()
    assert lines[0] == "== fake =="
    value_ends = {line.index(line.split()[1]) + len(line.split()[1]) for line in lines[1:]}
    assert len(value_ends) == 1


def test_the_package_registers_the_tags_benchmark() -> None:
    found = discover()
    assert found["tags"] == "bench.tags"
    assert "runner" not in found and "timing" not in found
    assert callable(load("bench.tags"))
    assert bench.run_benchmarks is run_benchmarks


def test_load_rejects_a_module_without_run() -> None:
    with pytest.raises(TypeError, match=r"bench\.timing has no run"):
        load("bench.timing")


def test_median_seconds_runs_setup_and_action_each_time() -> None:
    calls = {"setup": 0, "action": 0}

    def setup() -> None:
        calls["setup"] += 1

    def action() -> None:
        calls["action"] += 1

    assert median_seconds(action, repeat=5, warmup=2, setup=setup) >= 0.0
    assert calls == {"setup": 7, "action": 7}
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        median_seconds(action, repeat=0)


def test_tags_benchmark_reports_every_figure(tmp_path: Path) -> None:
    code = run_benchmarks(["tags"], tmp_path, stream=io.StringIO())
    assert code == EXIT_OK
    written = json.loads((tmp_path / "tags.json").read_text(encoding="utf-8"))
    assert written["realtime_apply_ms"]["target"] == 5.0
    assert written["deltas_10pct_rows"]["value"] == 540
    for name in ("realtime_apply_ms", "energy_apply_ms", "snapshot_ms", "columnar_speedup"):
        assert written[name]["value"] > 0, name
