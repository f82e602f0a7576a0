"""`parkgrid fault`: inject, list and clear simulator faults through its control API."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from config import SiteInvalid, load_site
from config.values import parse_endpoint, parse_fields

TIMEOUT_S = 10.0


def add_parser(sub: Any, default_site: Path) -> None:
    """Register the `fault` subcommand on the CLI's subparsers."""
    fault = sub.add_parser("fault", help="inject, list or clear simulator faults")
    where = fault.add_mutually_exclusive_group()
    where.add_argument("--site", type=Path, default=default_site, help="site (for sim_control)")
    where.add_argument("--control", help="HOST:PORT of the simulator's control API")
    actions = fault.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the active faults")
    add = actions.add_parser("add", help="inject a fault")
    add.add_argument(
        "kind", help="phase_loss, undervoltage, silent, corrupt, slow, meter_fault or gateway_down"
    )
    add.add_argument("--meter", action="append", default=[], help="meter id (repeatable)")
    add.add_argument("--gateway", help="gateway id (gateway_down)")
    add.add_argument("--duration", type=float, help="seconds of simulated time")
    add.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a fault field, e.g. phases=BC, ratio=0.8, delay_ms=500, period_s=60",
    )
    clear = actions.add_parser("clear", help="end faults (all, or by kind, meter, gateway)")
    clear.add_argument("--kind")
    clear.add_argument("--meter")
    clear.add_argument("--gateway")
    fault.set_defaults(func=run)


def request(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to the control API; its JSON answer, or ValueError with its error message."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)  # noqa: S310 - http only
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as answer:  # noqa: S310
            return json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        raise ValueError(f"simulator refused: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ValueError(f"cannot reach the simulator at {base}: {reason}") from None


def _base(args: argparse.Namespace) -> str:
    if args.control:
        endpoint = parse_endpoint(args.control)
    else:
        endpoint = load_site(args.site).services.sim_control
    host = "127.0.0.1" if endpoint.host in ("0.0.0.0", "") else endpoint.host  # noqa: S104
    return f"http://{host}:{endpoint.port}"


def run(args: argparse.Namespace) -> int:
    """Carry out `parkgrid fault ...` and print the active faults as JSON."""
    try:
        base = _base(args)
        if args.action == "list":
            answer = request(base, "GET", "/faults")
        elif args.action == "add":
            body: dict[str, Any] = {"kind": args.kind, **parse_fields(args.set)}
            if args.meter:
                body["meters"] = args.meter
            if args.gateway:
                body["gateway"] = args.gateway
            if args.duration is not None:
                body["duration_s"] = args.duration
            answer = request(base, "POST", "/faults", body)
        else:
            query = {k: v for k in ("kind", "meter", "gateway") if (v := getattr(args, k))}
            suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
            answer = request(base, "DELETE", f"/faults{suffix}")
    except (ValueError, SiteInvalid) as exc:
        print(f"parkgrid fault: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0
