"""How a worker process runs, and its command line (shared by the worker and the pool)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from config.values import Endpoint

DRIVES: Final = ("schedule", "continuous")
WORKER_MODULE: Final = "server.scaleout.worker"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How one worker runs: its name, the bus, where gateways are, how it scans."""

    worker: str
    redis_url: str
    park: str = "park"
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    heartbeat_ttl: float = 10.0
    frozen_at: float | None = None  # scan on a clock stopped here (tests compare tables)
    drive: str = "schedule"  # "continuous": back-to-back realtime scans (the bench)
    intervals: Mapping[str, float] = field(default_factory=dict)
    request_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.drive not in DRIVES:
            raise ValueError(f"drive must be one of {', '.join(DRIVES)}, got {self.drive!r}")

    def argv(self, site_dir: Path) -> list[str]:
        """The arguments after `python -m server.scaleout.worker` that give these options."""
        args = ["--site", str(site_dir), "--worker-id", self.worker, "--redis", self.redis_url]
        args += ["--park", self.park, "--heartbeat-ttl", repr(self.heartbeat_ttl)]
        args += ["--drive", self.drive]
        for gateway, endpoint in self.endpoints.items():
            args += ["--endpoint", f"{gateway}={endpoint.host}:{endpoint.port}"]
        for scan_class, seconds in self.intervals.items():
            args += ["--interval", f"{scan_class}={seconds!r}"]
        if self.request_timeout is not None:
            args += ["--request-timeout", repr(self.request_timeout)]
        if self.frozen_at is not None:
            args += ["--frozen-at", repr(self.frozen_at)]
        return args


def client_name(park: str, who: str) -> str:
    """The Redis CLIENT SETNAME of a pool process (lets an operator find and kill them)."""
    return f"parkgrid-{park}-{who}"


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"--{what} {item!r}: expected NAME=VALUE")
        pairs[key] = value
    return pairs


def parse_args(argv: Sequence[str] | None = None) -> tuple[Path, WorkerOptions]:
    """The site folder and the worker's options from the command line."""
    parser = argparse.ArgumentParser(prog=f"python -m {WORKER_MODULE}")
    parser.add_argument("--site", required=True, type=Path, help="the site folder")
    parser.add_argument("--worker-id", required=True, help="unique worker name")
    parser.add_argument("--redis", required=True, help="Redis URL of the bus")
    parser.add_argument("--park", default="park", help="the bus key prefix (BusKeys.park)")
    parser.add_argument("--endpoint", action="append", default=[], help="GATEWAY=HOST:PORT")
    parser.add_argument("--interval", action="append", default=[], help="CLASS=SECONDS")
    parser.add_argument("--heartbeat-ttl", type=float, default=10.0)
    parser.add_argument("--request-timeout", type=float, default=None)
    parser.add_argument("--frozen-at", type=float, default=None, help="scan on a stopped clock")
    parser.add_argument("--drive", choices=DRIVES, default="schedule")
    args = parser.parse_args(argv)
    endpoints = {}
    for gateway, address in _pairs(args.endpoint, "endpoint").items():
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise SystemExit(f"--endpoint {gateway}={address}: expected HOST:PORT")
        endpoints[gateway] = Endpoint(host, int(port))
    try:
        intervals = {k: float(v) for k, v in _pairs(args.interval, "interval").items()}
    except ValueError as exc:
        raise SystemExit(f"--interval: {exc}") from None
    try:
        options = WorkerOptions(
            worker=args.worker_id,
            redis_url=args.redis,
            park=args.park,
            endpoints=endpoints,
            heartbeat_ttl=args.heartbeat_ttl,
            frozen_at=args.frozen_at,
            drive=args.drive,
            intervals=intervals,
            request_timeout=args.request_timeout,
        )
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    return args.site, options
