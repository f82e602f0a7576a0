"""The `parkgrid` command line: gen-site, check-config, run, sim, demo, account, pay, bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from config import Site, SiteInvalid, load_site
from config.values import Endpoint
from server import account_cli, command_cli, pay_cli
from sim import fault_cli

DEFAULT_SITE = Path("var/demo-site")


def _gen_site(args: argparse.Namespace) -> int:
    from config.demo import DemoSiteError, generate_site

    try:
        summary = generate_site(args.out, seed=args.seed)
    except DemoSiteError as exc:
        print(f"parkgrid gen-site: {exc}", file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


def _load(folder: Path) -> Site | None:
    """The site in `folder`, or None after printing every error."""
    try:
        return load_site(folder)
    except SiteInvalid as exc:
        print(f"{folder}: {len(exc.errors)} error(s)", file=sys.stderr)
        print(exc, file=sys.stderr)
        return None


async def _until_signalled(serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `serve(stop)` with `stop` set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(stop)


def _check_config(args: argparse.Namespace) -> int:
    site = _load(args.site)
    if site is None:
        return 1
    print(
        f"{args.site}: ok — {len(site.meters)} meters, {len(site.gateways)} gateways, "
        f"{len(site.areas)} areas, {len(site.tariffs)} tariffs, {len(site.merchants)} merchants"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from server.process import ParkServer, StartupError

    site = _load(args.site)
    if site is None:
        return 1
    try:
        server = ParkServer(site, acquisition_workers=args.acquisition_workers)
        asyncio.run(_until_signalled(server.serve))
    except (StartupError, ValueError) as exc:
        print(f"parkgrid: {exc}", file=sys.stderr)
        return 1
    return 0


def _sim(args: argparse.Namespace) -> int:
    from config.values import parse_endpoint
    from sim.runner import Simulator

    site = _load(args.site)
    if site is None:
        return 1
    try:
        dialin = parse_endpoint(args.dialin) if args.dialin else None
        simulator = Simulator(site, seed=args.seed, speed=args.speed, dialin=dialin)
    except ValueError as exc:
        print(f"parkgrid sim: {exc}", file=sys.stderr)
        return 1

    async def serve(stop: asyncio.Event) -> None:
        await simulator.start()
        try:
            await stop.wait()
        finally:
            await simulator.stop()

    try:
        asyncio.run(_until_signalled(serve))
    except OSError as exc:
        print(f"parkgrid sim: {exc}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from config.demo import DemoSiteError, generate_site
    from server.process import StartupError

    folder: Path = args.site
    if not (folder / "site.toml").exists():
        try:
            generate_site(folder, seed=args.seed)
        except DemoSiteError as exc:
            print(f"parkgrid demo: {exc}", file=sys.stderr)
            return 1
        print(f"generated the demo park in {folder}")
    site = _load(folder)
    if site is None:
        return 1
    if not args.verbose:  # one line per device coming online is too much for a demo screen
        logging.getLogger("protocols").setLevel(logging.WARNING)
    try:
        asyncio.run(_until_signalled(lambda stop: _demo_serve(site, args, stop)))
    except (StartupError, OSError) as exc:
        print(f"parkgrid demo: {exc}", file=sys.stderr)
        return 1
    return 0


async def _demo_serve(site: Site, args: argparse.Namespace, stop: asyncio.Event) -> None:
    """The simulator in this process dialling into the server; a status line every few seconds."""
    from server.process import ParkServer
    from sim.runner import Simulator

    began = time.monotonic()
    # The control API lets `parkgrid fault` and load changes drive the demo's field.
    simulator = Simulator(site, seed=args.seed, modbus_any_port=True)
    await simulator.start()
    try:
        ports = {g: Endpoint("127.0.0.1", simulator.modbus_port(g)) for g in simulator.modbus}
        server = ParkServer(site, gateway_endpoints=ports)
        await server.start()
        web = f"http://{server.hmi_listen.host}:{server.web.port if server.web else '-'}"
        print(f"web (health, payment callbacks): {web}/healthz", flush=True)
        print(f"simulator control: http://{site.services.sim_control}/healthz", flush=True)
        print(f"dial-in devices: {site.services.dialin_listen}", flush=True)
        try:
            live_at: float | None = None
            while not stop.is_set():
                assert server.acquisition is not None
                status = server.acquisition.status()
                elapsed = time.monotonic() - began
                meters = status["meters"]
                if live_at is None and meters["online"] >= meters["total"] - meters["unpolled"]:
                    live_at = elapsed
                    print(f"all {meters['online']} polled meters live after {elapsed:.1f} s")
                print(_status_line(status, elapsed), flush=True)
                try:
                    async with asyncio.timeout(args.every):
                        await stop.wait()
                except TimeoutError:
                    pass
        finally:
            await server.stop()
    finally:
        await simulator.stop()


def _status_line(status: dict[str, object], elapsed: float) -> str:
    """One line for people: meters online / total, gateways online, the last realtime scan."""
    meters = status["meters"]
    links = status["links"]
    last = status["last_scan"]
    assert isinstance(meters, dict) and isinstance(links, dict) and isinstance(last, dict)
    gateways_on = links["modbus_tcp"]["online"] + links["dtu"]["online"]
    gateways = sum(
        links[k]["online"] + links[k]["offline"] + links[k]["unknown"]
        for k in ("modbus_tcp", "dtu")
    )
    scan = last.get("realtime") or last.get("poll_block")
    when = "-"
    if scan:
        stamp = time.strftime("%H:%M:%S", time.localtime(scan["at"]))
        when = f"{stamp} ({scan['duration_s']:.2f} s)"
    return (
        f"[{elapsed:6.1f} s] meters online {meters['online']}/{meters['total']}"
        f" (offline {meters['offline']}), gateways online {gateways_on}/{gateways},"
        f" 4G meters connected {links['meter4g']['online']}, last realtime scan {when}"
    )


def _bench(args: argparse.Namespace) -> int:
    from bench import run_benchmarks

    if not args.verbose:  # benchmarks start whole parks: one line per device drowns the table
        logging.getLogger().setLevel(logging.WARNING)
    return run_benchmarks(args.names)


def parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    top = argparse.ArgumentParser(prog="parkgrid", description=__doc__)
    top.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = top.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("gen-site", help="write the reference demo park (5,407 meters)")
    gen.add_argument("--out", type=Path, default=DEFAULT_SITE, help="site folder to write")
    gen.add_argument("--seed", type=int, default=1, help="generator seed (deterministic)")
    gen.set_defaults(func=_gen_site)

    check = sub.add_parser("check-config", help="validate a site folder and list every error")
    check.add_argument("site", type=Path, nargs="?", default=DEFAULT_SITE)
    check.set_defaults(func=_check_config)

    run = sub.add_parser("run", help="run the server for a site")
    run.add_argument("--site", type=Path, default=DEFAULT_SITE)
    run.add_argument(
        "--acquisition-workers",
        type=int,
        default=0,
        metavar="N",
        help="poll the Modbus TCP gateways in N worker processes over Redis (default: none)",
    )
    run.set_defaults(func=_run)

    sim = sub.add_parser("sim", help="simulate the site's meters over the real protocols")
    sim.add_argument("--site", type=Path, default=DEFAULT_SITE)
    sim.add_argument("--seed", type=int, default=1, help="physics seed (deterministic)")
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    sim.add_argument("--dialin", help="HOST:PORT of the server's dial-in listener")
    sim.set_defaults(func=_sim)

    demo = sub.add_parser("demo", help="generate the demo park, simulate it and serve it live")
    demo.add_argument("--site", type=Path, default=DEFAULT_SITE)
    demo.add_argument("--seed", type=int, default=1, help="park and physics seed")
    demo.add_argument("--every", type=float, default=3.0, help="seconds between status lines")
    demo.set_defaults(func=_demo)

    fault_cli.add_parser(sub, DEFAULT_SITE)
    command_cli.add_parser(sub, DEFAULT_SITE)
    account_cli.add_parser(sub, DEFAULT_SITE)
    pay_cli.add_parser(sub, DEFAULT_SITE)

    bench = sub.add_parser("bench", help="run benchmarks; writes var/bench/NAME.json")
    bench.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    bench.set_defaults(func=_bench)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `parkgrid` command."""
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
