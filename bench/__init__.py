"""Benchmarks that print the measured figures: `parkgrid bench [NAME...]`.

A benchmark is a module `bench/NAME.py` with `run() -> dict[str, Metric]`; modules whose
name starts with an underscore, and the framework's own modules, are not benchmarks.
"""

from bench.runner import Metric, ratio, run_benchmarks

__all__ = ["Metric", "ratio", "run_benchmarks"]
