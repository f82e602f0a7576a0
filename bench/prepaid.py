"""Benchmark "prepaid": WeChat Pay notifications over HTTP, one posting per payment.

The same signed notification is sent 1,000 times at once (a provider retry storm) and
must post exactly once; then many different payments measure the settling rate. Runs
against a scratch PostgreSQL database (PARKGRID_BENCH_DB_URL) that it creates and drops.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from bench.runner import Metric, ratio
from config import Site, load_site
from config.demo_keys import merchant_key_files, write_merchant_keys
from historian.databases import scratch_database
from server.clock import SystemClock
from server.prepaid.ledger import Ledger
from server.prepaid.payments import PaymentOrders, SettlementWorkers, callback_routes

DB_URL = os.environ.get(
    "PARKGRID_BENCH_DB_URL", "postgresql://postgres@127.0.0.1:5432/parkgrid_bench_prepaid"
)
EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "examples" / "small"
COPIES = 1_000
DISTINCT = 300
WORKERS = 8
METER = "G0001"
MERCHANT = "M1"
AMOUNT_FEN = 5_000


@dataclass(frozen=True)
class Signer:
    """The WeChat Pay side of one merchant, from the simulator's private key files."""

    serial: str
    private_key: RSAPrivateKey
    apiv3_key: bytes
    mchid: str
    appid: str

    def notification(self, out_trade_no: str, transaction_id: str, total: int) -> bytes:
        """A TRANSACTION.SUCCESS body with the transaction AES-256-GCM encrypted."""
        txn = {
            "mchid": self.mchid,
            "appid": self.appid,
            "out_trade_no": out_trade_no,
            "transaction_id": transaction_id,
            "trade_state": "SUCCESS",
            "amount": {"total": total, "currency": "CNY"},
        }
        nonce = secrets.token_hex(6)
        sealed = AESGCM(self.apiv3_key).encrypt(
            nonce.encode(), json.dumps(txn).encode(), b"transaction"
        )
        resource = {
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(sealed).decode(),
            "associated_data": "transaction",
            "nonce": nonce,
        }
        envelope = {"id": secrets.token_hex(8), "event_type": "TRANSACTION.SUCCESS"}
        return json.dumps({**envelope, "resource": resource}).encode()

    def headers(self, body: bytes) -> dict[str, str]:
        """The Wechatpay-* headers signing `body` now."""
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        signature = self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": base64.b64encode(signature).decode(),
            "Wechatpay-Serial": self.serial,
        }


def keyed_site(folder: Path) -> tuple[Site, Signer]:
    """The example site copied to `folder` with fresh keys, and merchant M1's signer."""
    shutil.copytree(EXAMPLE, folder, dirs_exist_ok=True)
    for merchant_id in ("M1", "M2"):
        write_merchant_keys(folder, merchant_id)
    site = load_site(folder, env={})
    wechat = site.merchant(MERCHANT).wechat
    if wechat is None:
        raise RuntimeError(f"the example merchant {MERCHANT} has no WeChat Pay account")
    files = merchant_key_files(MERCHANT)
    private = load_pem_private_key((folder / files.sim_wechat_platform_private).read_bytes(), None)
    if not isinstance(private, RSAPrivateKey):
        raise RuntimeError("the simulator's WeChat Pay key is not an RSA key")
    signer = Signer(
        wechat.platform_keys[0][0],
        private,
        wechat.apiv3_key_file.read_bytes().strip(),
        wechat.mchid,
        wechat.appid,
    )
    return site, signer


async def _post_all(site: Site, url: str, requests: list[tuple[bytes, dict[str, str]]]) -> float:
    """Serve the callbacks and send every request at once; seconds until all answered."""
    clock = SystemClock()
    workers = SettlementWorkers(
        url, lambda conn: Ledger(conn, clock=clock), workers=WORKERS, clock=clock
    )
    sockets = bind_sockets(0, "127.0.0.1", backlog=2 * COPIES)
    server = HTTPServer(Application(callback_routes(site, workers)))
    server.add_sockets(sockets)
    target = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/pay/wechat/{MERCHANT}"
    client = AsyncHTTPClient(force_instance=True, max_clients=len(requests))
    try:
        start = time.perf_counter()
        answers = await asyncio.gather(
            *(
                client.fetch(
                    target,
                    method="POST",
                    body=body,
                    headers=headers,
                    raise_error=False,
                    connect_timeout=60,
                    request_timeout=120,
                )
                for body, headers in requests
            )
        )
        elapsed = time.perf_counter() - start
    finally:
        client.close()
        server.stop()
        await server.close_all_connections()
        workers.close()
    refused = [answer.code for answer in answers if answer.code != 204]
    if refused:
        raise RuntimeError(f"{len(refused)} notifications refused, e.g. HTTP {refused[0]}")
    return elapsed


def _count(conn: psycopg2.extensions.connection, query: str, *args: object) -> int:
    with conn, conn.cursor() as cur:
        cur.execute(query, args)
        row = cur.fetchone()
    return int(row[0]) if row is not None else 0


def _measure(site: Site, signer: Signer, url: str) -> dict[str, Metric]:
    conn = psycopg2.connect(url, connect_timeout=5)
    try:
        ledger = Ledger(conn, clock=SystemClock())
        orders = PaymentOrders(conn, site, notify_base_url="https://pay.example.org")
        ledger.open_wallet(METER, MERCHANT)
        before = ledger.balance(METER)
        order = orders.create_order(METER, AMOUNT_FEN, "wechat")
        body = signer.notification(order.out_trade_no, "4200BENCHSTORM", AMOUNT_FEN)
        headers = signer.headers(body)
        storm_s = asyncio.run(_post_all(site, url, [(body, headers)] * COPIES))
        postings = _count(
            conn,
            "SELECT count(*) FROM ledger_transactions"
            " WHERE provider = 'wechat' AND provider_event_id = %s",
            "4200BENCHSTORM",
        )
        changes = _count(conn, "SELECT count(*) FROM ledger_transactions WHERE meter = %s", METER)
        balance_change = ledger.balance(METER) - before
        distinct = []
        for index in range(DISTINCT):
            paid = orders.create_order(METER, 100 + index, "wechat")
            one = signer.notification(paid.out_trade_no, f"4200BENCH{index:06d}", 100 + index)
            distinct.append((one, signer.headers(one)))
        distinct_s = asyncio.run(_post_all(site, url, distinct))
        settled = _count(
            conn,
            "SELECT count(*) FROM payment_orders WHERE state = 'paid' AND meter = %s",
            METER,
        )
    finally:
        conn.close()
    if postings == 0:
        raise RuntimeError("the duplicate storm posted nothing: the payment was lost")
    if balance_change != postings * AMOUNT_FEN:
        raise RuntimeError(f"the balance moved {balance_change} fen for {postings} postings")
    if settled != DISTINCT + 1:
        raise RuntimeError(f"{settled} of {DISTINCT + 1} orders were settled")
    return {
        "duplicate_callback_postings": Metric(postings, "postings", target=1, better="lower"),
        "duplicate_balance_changes": Metric(changes, "changes", target=1, better="lower"),
        "duplicate_callbacks_per_s": Metric(ratio(COPIES, storm_s), "callbacks/s", better="higher"),
        "distinct_callbacks_per_s": Metric(
            ratio(DISTINCT, distinct_s), "callbacks/s", better="higher"
        ),
    }


def run() -> dict[str, Metric]:
    """1,000 copies of one notification, then distinct payments, against a scratch database."""
    with (
        tempfile.TemporaryDirectory(prefix="parkgrid-bench-prepaid-") as folder,
        scratch_database(DB_URL) as url,
    ):
        site, signer = keyed_site(Path(folder))
        return _measure(site, signer, url)
