"""`parkgrid account`: open prepaid wallets, recharge at the counter, show balances and postings.

The ledger is in PostgreSQL, so this works beside a running server. A counter recharge
runs the prepaid engine's recharge follow-up in the posting's transaction: when the new
balance allows it, the relay settlement opened is queued to close, and the server's
dispatcher carries that command to the meter.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import psycopg2.extensions

from config import Site, SiteInvalid, load_site
from config.model import Meter
from config.money import format_fen, parse_fen
from server.clock import SystemClock
from server.commands import CommandOutbox
from server.prepaid.engine import PrepaidEngine
from server.prepaid.ledger import Ledger
from server.prepaid.records import LedgerError, Page, Posted, TransactionFilter
from server.prepaid_service import RelayOnRecharge, merchant_names

EXIT_OK, EXIT_FAILED = 0, 1
OPENING_PROVIDER = "opening"  # the opening credit is keyed by wallet: never given twice
CHANNEL = "cli"


def add_parser(sub: Any, default_site: Path) -> None:
    """Register the `account` subcommand on the CLI's subparsers."""
    account = sub.add_parser("account", help="prepaid wallets: open, recharge, balance")
    account.add_argument("--site", type=Path, default=default_site)
    account.add_argument("--actor", default=None, help="who acts (default: the login name)")
    actions = account.add_subparsers(dest="action", required=True)

    opening = actions.add_parser("open", help="open a meter's wallet")
    opening.add_argument("--meter", required=True)
    opening.add_argument("--tenant", default=None, help="tenant name (default: the meter owner)")
    opening.add_argument("--opening-yuan", default="0", help="opening credit in yuan, e.g. 0.10")

    recharge = actions.add_parser("recharge", help="counter recharge (柜台充值)")
    recharge.add_argument("--meter", required=True)
    recharge.add_argument("--yuan", required=True, help="amount in yuan, e.g. 50 or 12.50")
    recharge.add_argument("--reason", default="counter recharge")

    balance = actions.add_parser("balance", help="a meter's wallet balance")
    balance.add_argument("--meter", required=True)

    listing = actions.add_parser("transactions", help="a meter's postings, newest first")
    listing.add_argument("--meter", required=True)
    listing.add_argument("--limit", type=int, default=20)

    every = actions.add_parser("open-all", help="open the wallet of every meter of a billing")
    every.add_argument("--billing", required=True, choices=("prepaid",))
    every.add_argument("--opening-yuan", default="0", help="opening credit of each new wallet")
    account.set_defaults(func=run)


def yuan_to_fen(text: str, what: str) -> int:
    """Yuan text as fen, or a ValueError naming the option."""
    try:
        return parse_fen(text.strip())
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def merchant_of(site: Site, meter: Meter) -> str:
    """The merchant that holds a prepaid meter's wallet: the meter's own, else its area's."""
    if meter.billing != "prepaid":
        raise ValueError(f"meter {meter.id} is billed {meter.billing}, not prepaid")
    merchant = meter.merchant or site.area(meter.area).merchant
    if merchant is None:
        raise ValueError(f"meter {meter.id} has no merchant (neither it nor area {meter.area})")
    return merchant


def _meter(site: Site, meter_id: str) -> Meter:
    try:
        return site.meter(meter_id)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None


@dataclass(frozen=True, slots=True)
class Accounts:
    """The ledger, and what a counter recharge needs to close a relay, on one connection."""

    site: Site
    conn: psycopg2.extensions.connection
    ledger: Ledger
    actor: str

    @classmethod
    def connect(cls, site: Site, actor: str) -> Accounts:
        """Connect to the site's database (psycopg2.OperationalError when it is away)."""
        conn = psycopg2.connect(site.services.db_url, connect_timeout=5)
        ledger = Ledger(conn, clock=SystemClock(), merchant_names=merchant_names(site))
        return cls(site, conn, ledger, actor)

    def open(self, meter: Meter, opening_fen: int, tenant: str | None = None) -> Posted | None:
        """Open the meter's wallet (if none is open) and credit it `opening_fen` once."""
        merchant = merchant_of(self.site, meter)
        with self.conn, self.conn.cursor() as cur:
            wallet = self.ledger.open_wallet(
                meter.id, merchant, tenant=meter.owner if tenant is None else tenant, cur=cur
            )
            if opening_fen <= 0:
                return None
            return self.ledger.post(
                "counter_recharge",
                meter=meter.id,
                amount_fen=opening_fen,
                operator=self.actor,
                channel=CHANNEL,
                reason="opening balance",
                provider=OPENING_PROVIDER,
                provider_event_id=f"wallet:{wallet.id}",
                cur=cur,
            )

    def recharge(self, meter: Meter, amount_fen: int, reason: str) -> tuple[Posted, list[int]]:
        """A counter recharge and, in its transaction, the relay close it allows."""
        merchant_of(self.site, meter)
        from server.process import build_tag_table  # the engine needs the meter columns

        clock = SystemClock()
        outbox = CommandOutbox(self.conn, self.site, clock=clock)
        table = build_tag_table(self.site, clock)
        engine = PrepaidEngine(self.site, table, self.conn, outbox, self.ledger, clock=clock)
        follow_up = RelayOnRecharge(engine)
        with self.conn, self.conn.cursor() as cur:
            follow_up.before_recharge(meter.id, cur=cur)
            posted = self.ledger.post(
                "counter_recharge",
                meter=meter.id,
                amount_fen=amount_fen,
                operator=self.actor,
                channel=CHANNEL,
                reason=reason,
                cur=cur,
            )
            enqueued = engine.on_recharge(meter.id, posted, cur=cur)
        if enqueued is None:
            return posted, []
        outbox.publish(enqueued.events)
        return posted, [c.id for c in enqueued.commands]


def _stamp(site: Site, at: float) -> str:
    return datetime.fromtimestamp(at, ZoneInfo(site.park.timezone)).strftime("%Y-%m-%d %H:%M:%S")


def _act(accounts: Accounts, args: argparse.Namespace) -> int:
    site = accounts.site
    if args.action == "open-all":
        opening = yuan_to_fen(args.opening_yuan, "--opening-yuan")
        meters = [m for m in site.meters if m.billing == args.billing]
        had = set(accounts.ledger.balances([m.id for m in meters]))
        credited = sum(1 for m in meters if accounts.open(m, opening) is not None)
        print(
            f"{len(meters)} {args.billing} meters: {len(meters) - len(had)} wallet(s) opened,"
            f" {len(had)} already open; {credited} credited {format_fen(opening)} yuan"
            " (each wallet at most once)"
        )
        return EXIT_OK
    meter = _meter(site, args.meter)
    if args.action == "open":
        posted = accounts.open(meter, yuan_to_fen(args.opening_yuan, "--opening-yuan"), args.tenant)
        if posted is not None and posted.duplicate:
            print(f"meter {meter.id}: wallet already open and credited")
        elif posted is not None:
            print(f"meter {meter.id}: wallet open, opening credit receipt {posted.receipt_no}")
        else:
            print(f"meter {meter.id}: wallet open")
        print(f"balance {format_fen(accounts.ledger.balance(meter.id))} yuan")
        return EXIT_OK
    if args.action == "recharge":
        amount = yuan_to_fen(args.yuan, "--yuan")
        if amount <= 0:
            raise ValueError(f"--yuan: a recharge must be more than 0, got {args.yuan!r}")
        posted, commands = accounts.recharge(meter, amount, args.reason)
        print(
            f"meter {meter.id}: recharged {format_fen(amount)} yuan, receipt {posted.receipt_no},"
            f" balance {format_fen(posted.balance_after_fen)} yuan"
        )
        for command in commands:
            print(f"relay_close queued as command #{command}")
        return EXIT_OK
    if args.action == "balance":
        print(f"meter {meter.id}: balance {format_fen(accounts.ledger.balance(meter.id))} yuan")
        return EXIT_OK
    if args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    found = accounts.ledger.transactions(TransactionFilter(meter=meter.id), Page(limit=args.limit))
    for tx in found:
        print(
            f"{_stamp(site, tx.created_at)}  #{tx.id} {tx.receipt_no}  {tx.type:<16}"
            f" {format_fen(tx.amount_fen):>10}  balance {format_fen(tx.balance_after_fen):>10}"
            f"  {tx.operator}/{tx.channel}  {tx.reason}"
        )
    print(f"{len(found)} transaction(s) of meter {meter.id}, newest first")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Carry out `parkgrid account ...`."""
    try:
        site = load_site(args.site)
    except SiteInvalid as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    try:
        accounts = Accounts.connect(site, args.actor or getpass.getuser())
    except psycopg2.OperationalError as exc:
        print(f"parkgrid account: cannot reach PostgreSQL: {str(exc).strip()}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return _act(accounts, args)
    except (ValueError, LedgerError) as exc:
        print(f"parkgrid account: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except psycopg2.Error as exc:
        print(
            f"parkgrid account: database error: {str(exc).strip().splitlines()[0]}"
            " (is the schema migrated? `parkgrid run` migrates it)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        accounts.conn.close()
