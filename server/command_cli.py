"""`parkgrid command`: send, list and re-issue meter commands through the durable outbox.

The outbox is a PostgreSQL table, so this command works beside a running server: it
enqueues, and the server's dispatcher carries the command to the meter and confirms it
by reading it back. With `--wait` it follows the outcome until every command is final.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg2

from config import SiteInvalid, load_site
from config.values import parse_fields
from server.commands import CommandOutbox, Target
from server.commands.kinds import KINDS
from server.commands.states import Command

POLL_S = 0.5
EXIT_DONE, EXIT_FAILED, EXIT_PENDING = 0, 1, 2


def add_parser(sub: Any, default_site: Path) -> None:
    """Register the `command` subcommand on the CLI's subparsers."""
    command = sub.add_parser("command", help="send, list or re-issue meter commands")
    command.add_argument("--site", type=Path, default=default_site)
    command.add_argument("--actor", default=None, help="who asks (default: the login name)")
    actions = command.add_subparsers(dest="action", required=True)

    send = actions.add_parser("send", help="queue a command for meters")
    send.add_argument("kind", choices=KINDS)
    send.add_argument("--meter", action="append", default=[], help="meter id (repeatable)")
    send.add_argument("--area", help="every meter of an area")
    send.add_argument("--building", help="with --area: one building of it")
    send.add_argument("--gateway", help="every meter behind a gateway")
    send.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a command parameter, e.g. reason=holiday, expires_at=1767225600, kw=4.4",
    )
    send.add_argument("--key", help="idempotency key: the same key twice is one request")
    send.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help="follow the outcome for up to S seconds",
    )

    listing = actions.add_parser("list", help="recent commands, newest first")
    listing.add_argument("--meter")
    listing.add_argument("--state")
    listing.add_argument("--limit", type=int, default=20)

    reissue = actions.add_parser("reissue", help="send a failed command again")
    reissue.add_argument("id", type=int)
    reissue.add_argument("--wait", type=float, default=0.0, metavar="S")
    command.set_defaults(func=run)


def _target(args: argparse.Namespace) -> Target:
    if args.meter and (args.area or args.gateway):
        raise ValueError("give either --meter or --area/--gateway, not both")
    if args.meter:
        return Target.meters(args.meter)
    if args.building and not args.area:
        raise ValueError("--building needs --area")
    if args.area or args.gateway:
        return Target.matching(area=args.area, building=args.building, gateway=args.gateway)
    raise ValueError("name the meters: --meter ID, --area AREA or --gateway GW")


def _line(command: Command) -> str:
    error = f"  ({command.last_error})" if command.last_error else ""
    return (
        f"#{command.id} {command.kind} {command.meter}: {command.state}, "
        f"attempt {command.attempts}/{command.max_attempts}{error}"
    )


def _follow(outbox: CommandOutbox, ids: Sequence[int], wait_s: float) -> int:
    """Print each command's state, following them for up to `wait_s`; the exit code."""
    deadline = time.monotonic() + wait_s
    while True:
        commands = [outbox.get(i) for i in ids]
        if all(c.finished for c in commands) or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    for command in commands:
        print(_line(command))
    if any(c.state == "failed" for c in commands):
        return EXIT_FAILED
    return EXIT_DONE if all(c.finished for c in commands) else EXIT_PENDING


def run(args: argparse.Namespace) -> int:
    """Carry out `parkgrid command ...`."""
    actor = args.actor or getpass.getuser()
    try:
        site = load_site(args.site)
        conn = psycopg2.connect(site.services.db_url, connect_timeout=5)
    except SiteInvalid as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    except psycopg2.OperationalError as exc:
        print(f"parkgrid command: cannot reach PostgreSQL: {str(exc).strip()}", file=sys.stderr)
        return EXIT_FAILED
    try:
        outbox = CommandOutbox(conn, site)
        if args.action == "send":
            params = parse_fields(args.param, "--param")
            queued = outbox.enqueue(
                args.kind, params, _target(args), actor=actor, channel="cli", key=args.key
            )
            if not queued.created:
                print(f"request {queued.request_id} was already queued under this key")
            return _follow(outbox, [c.id for c in queued.commands], args.wait)
        if args.action == "reissue":
            again = outbox.reissue(args.id, actor=actor, channel="cli")
            return _follow(outbox, [again.command.id], args.wait)
        page = outbox.find(meter=args.meter, state=args.state, limit=args.limit)
        for command in page.items:
            print(_line(command))
        print(f"{len(page.items)} of {page.total}")
        return EXIT_DONE
    except (ValueError, KeyError, LookupError) as exc:
        print(f"parkgrid command: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        conn.close()
