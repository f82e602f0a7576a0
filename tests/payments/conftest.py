"""Fixtures for the payment tests: the example site with keys made here, orders and a ledger."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg2.extensions
import pytest

from config import Site, load_site
from server.clock import ManualClock
from server.prepaid.ledger import Ledger
from server.prepaid.payments import MerchantKeys, Order, PaymentOrders
from tests.payments.signing import ProviderSide, site_with_fresh_keys

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "small"
NOW = 1_764_081_924.0  # 2025-11-25T14:45:24Z
NOTIFY_BASE = "https://pay.example.org"


@pytest.fixture(scope="session")
def keyed_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Site, dict[str, ProviderSide]]:
    example = load_site(EXAMPLE, env={})
    return site_with_fresh_keys(example, tmp_path_factory.mktemp("payment-keys"))


@pytest.fixture(scope="session")
def site(keyed_site: tuple[Site, dict[str, ProviderSide]]) -> Site:
    return keyed_site[0]


@pytest.fixture(scope="session")
def sides(keyed_site: tuple[Site, dict[str, ProviderSide]]) -> dict[str, ProviderSide]:
    return keyed_site[1]


@pytest.fixture(scope="session")
def merchant_keys(site: Site) -> MerchantKeys:
    return MerchantKeys.from_site(site)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def ledger(db: psycopg2.extensions.connection, clock: ManualClock) -> Ledger:
    return Ledger(db, clock=clock)


@pytest.fixture
def orders(db: psycopg2.extensions.connection, site: Site, clock: ManualClock) -> PaymentOrders:
    return PaymentOrders(db, site, notify_base_url=NOTIFY_BASE, clock=clock)


@pytest.fixture
def new_order(orders: PaymentOrders, ledger: Ledger) -> Callable[[str, int, str], Order]:
    """Create an order for a meter whose wallet is open."""

    def make(meter: str, amount_fen: int, provider: str) -> Order:
        ledger.open_wallet(meter, orders.merchant_of(meter).id)
        return orders.create_order(meter, amount_fen, provider)

    return make


def count_postings(conn: psycopg2.extensions.connection, provider: str, event_id: str) -> int:
    """How many ledger transactions carry this provider event id."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM ledger_transactions"
            " WHERE provider = %s AND provider_event_id = %s",
            (provider, event_id),
        )
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def order_postings(conn: psycopg2.extensions.connection, out_trade_no: str) -> int:
    """How many ledger transactions were booked for an order (by the reason the callback gives)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM ledger_transactions WHERE reason = %s",
            (f"order {out_trade_no}",),
        )
        row = cur.fetchone()
    assert row is not None
    return int(row[0])
