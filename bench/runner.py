"""The benchmark runner: find benchmarks by name, run them, print a table and write JSON."""

from __future__ import annotations

import importlib
import json
import math
import os
import pkgutil
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

Better = Literal["lower", "higher"]
Benchmark = Callable[[], Mapping[str, "Metric"]]

DEFAULT_OUT_DIR = Path("var/bench")

# Modules of the `bench` package that hold the framework rather than a benchmark.
FRAMEWORK_MODULES = frozenset({"runner", "timing"})

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNKNOWN = 2


@dataclass(frozen=True, slots=True)
class Metric:
    """One measured figure, with its unit and (optionally) the target it should meet."""

    value: float
    unit: str
    target: float | None = None
    better: Better = "lower"

    def __post_init__(self) -> None:
        if self.better not in ("lower", "higher"):
            raise ValueError(f"better must be 'lower' or 'higher', got {self.better!r}")
        if self.target is not None and not math.isfinite(self.target):
            raise ValueError(f"target must be a finite number or None, got {self.target!r}")

    @property
    def ok(self) -> bool | None:
        """Whether the value meets the target; None when there is no target."""
        if self.target is None:
            return None
        if not math.isfinite(self.value):
            return False
        if self.better == "lower":
            return self.value <= self.target
        return self.value >= self.target

    def to_json(self) -> dict[str, object]:
        """The JSON form: value (null when not finite), unit, target and better."""
        value = self.value if math.isfinite(self.value) else None
        return {"value": value, "unit": self.unit, "target": self.target, "better": self.better}


def ratio(numerator: float, denominator: float) -> float:
    """`numerator / denominator`, NaN when the denominator is zero (a figure, not a crash)."""
    return numerator / denominator if denominator else math.nan


def discover(package: str = "bench") -> dict[str, str]:
    """The benchmark modules of `package` by name: every public module but the framework's."""
    root = importlib.import_module(package)
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(root.__path__):
        if info.ispkg or info.name.startswith("_") or info.name in FRAMEWORK_MODULES:
            continue
        found[info.name] = f"{package}.{info.name}"
    return dict(sorted(found.items()))


def load(module_name: str) -> Benchmark:
    """The `run` function of a benchmark module."""
    module = importlib.import_module(module_name)
    run = getattr(module, "run", None)
    if not callable(run):
        raise TypeError(f"benchmark module {module_name} has no run() function")
    benchmark: Benchmark = run
    return benchmark


def format_number(value: float | None) -> str:
    """A figure for people: thousands separated, about four significant digits."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def render_table(name: str, metrics: Mapping[str, Metric]) -> str:
    """The results of one benchmark as an aligned text table."""
    header = ("metric", "value", "unit", "target", "better", "status")
    lines = [header]
    for key, metric in metrics.items():
        status = {None: "", True: "ok", False: "MISS"}[metric.ok]
        lines.append(
            (
                key,
                format_number(metric.value),
                metric.unit,
                format_number(metric.target),
                metric.better,
                status,
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    numeric = {1, 3}
    out = [f"== {name} =="]
    for row in lines:
        cells = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def write_json(path: Path, metrics: Mapping[str, Metric]) -> None:
    """Write the metrics as `{"metric": {"value", "unit", "target", "better"}}`, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {key: metric.to_json() for key, metric in metrics.items()}
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _checked(name: str, result: object) -> dict[str, Metric]:
    """The result of a benchmark, or a `TypeError` when it is not a mapping of Metric."""
    if not isinstance(result, Mapping):
        raise TypeError(f"benchmark {name} returned {type(result).__name__}, not a dict")
    metrics: dict[str, Metric] = {}
    for key, metric in result.items():
        if not isinstance(key, str) or not isinstance(metric, Metric):
            raise TypeError(f"benchmark {name}: {key!r} is not a str -> Metric entry")
        metrics[key] = metric
    return metrics


def run_benchmarks(
    names: Iterable[str] = (),
    out_dir: Path = DEFAULT_OUT_DIR,
    *,
    registry: Mapping[str, Benchmark] | None = None,
    stream: TextIO | None = None,
) -> int:
    """Run the named benchmarks (all when none are named); return a process exit code.

    Each prints a table and writes `out_dir/NAME.json`. A missed target is printed as
    MISS but does not fail the run: 0 when every benchmark ran, 1 when one raised, 2
    for an unknown name (nothing is run then).
    """
    out = stream if stream is not None else sys.stdout
    modules = discover() if registry is None else {}
    known = sorted(registry) if registry is not None else sorted(modules)
    wanted = list(dict.fromkeys(names)) or known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(known) or 'none'}",
            file=out,
        )
        return EXIT_UNKNOWN
    status = EXIT_OK
    for name in wanted:
        try:
            benchmark = registry[name] if registry is not None else load(modules[name])
            metrics = _checked(name, benchmark())
        except Exception:
            print(f"== {name} == FAILED\n{traceback.format_exc()}", file=out)
            status = EXIT_FAILED
            continue
        path = out_dir / f"{name}.json"
        write_json(path, metrics)
        print(render_table(name, metrics), file=out)
        print(f"wrote {path}\n", file=out, flush=True)
    return status
