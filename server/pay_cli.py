"""`parkgrid pay wechat`: a WeChat-Pay-style recharge of a demo or test site, end to end.

It creates a recharge order as the payment page would, then plays WeChat Pay: it builds
the API v3 TRANSACTION.SUCCESS notification, encrypts its resource with the merchant's
APIv3 key (AEAD_AES_256_GCM), signs it with the platform private key the demo keeps under
`keys/<merchant>/sim/`, and POSTs it to the running server's notify URL. The server
verifies it exactly as it would a real one.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import string
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config import Site, SiteInvalid, load_site
from config.demo_keys import merchant_key_files
from config.money import format_fen
from config.values import Endpoint, parse_endpoint
from server.account_cli import yuan_to_fen
from server.clock import SystemClock
from server.prepaid.ledger import Ledger
from server.prepaid.payments.keys import MerchantKeys, PaymentKeyError, WechatKeys
from server.prepaid.payments.orders import Order, OrderError, PaymentOrders
from server.prepaid.payments.wechat import ALGORITHM, PAID_EVENT, PAID_STATE, signed_message
from server.prepaid.records import LedgerError

EXIT_OK, EXIT_FAILED = 0, 1
NO_CONTENT = 204
HTTP_TIMEOUT_S = 30.0
_NONCE_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class SignedNotification:
    """What WeChat Pay would POST: the Wechatpay-* headers and the JSON body."""

    headers: dict[str, str]
    body: bytes
    transaction_id: str


def _nonce(length: int) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def encrypt_resource(apiv3_key: bytes, plaintext: bytes, associated_data: str) -> dict[str, str]:
    """The `resource` object of a notification: AES-256-GCM with a 12-character nonce."""
    nonce = _nonce(12)
    sealed = AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return {
        "original_type": "transaction",
        "algorithm": ALGORITHM,
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def wechat_notification(
    keys: WechatKeys, order: Order, serial: str, private_key: RSAPrivateKey, *, now: float
) -> SignedNotification:
    """A signed TRANSACTION.SUCCESS notification paying `order` in full."""
    stamp = datetime.fromtimestamp(now, UTC).astimezone()
    transaction_id = f"4200{stamp:%Y%m%d}{secrets.randbelow(10**18):018d}"
    transaction = {
        "mchid": keys.mchid,
        "appid": keys.appid,
        "out_trade_no": order.out_trade_no,
        "transaction_id": transaction_id,
        "trade_type": "NATIVE",
        "trade_state": PAID_STATE,
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "success_time": stamp.isoformat(timespec="seconds"),
        "payer": {"openid": "o" + _nonce(27)},
        "amount": {
            "total": order.amount_fen,
            "payer_total": order.amount_fen,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }
    plaintext = json.dumps(transaction, ensure_ascii=False).encode("utf-8")
    envelope = {
        "id": _nonce(8) + "-" + _nonce(4) + "-" + _nonce(12),
        "create_time": stamp.isoformat(timespec="seconds"),
        "resource_type": "encrypt-resource",
        "event_type": PAID_EVENT,
        "summary": "支付成功",
        "resource": encrypt_resource(keys.apiv3_key, plaintext, "transaction"),
    }
    body = json.dumps(envelope, ensure_ascii=False).encode("utf-8")
    timestamp, nonce = str(int(now)), _nonce(32)
    signature = private_key.sign(
        signed_message(timestamp, nonce, body), padding.PKCS1v15(), hashes.SHA256()
    )
    headers = {
        "Content-Type": "application/json",
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": base64.b64encode(signature).decode("ascii"),
        "Wechatpay-Serial": serial,
    }
    return SignedNotification(headers, body, transaction_id)


def simulated_platform_key(site: Site, keys: WechatKeys) -> tuple[str, RSAPrivateKey]:
    """The demo's WeChat Pay platform private key of a merchant and its public key's serial."""
    path = site.folder / merchant_key_files(keys.merchant).sim_wechat_platform_private
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PaymentKeyError(
            f"merchant {keys.merchant}: cannot load the simulated WeChat Pay platform key"
            f" {path}: {exc} (generated sites have it; `parkgrid gen-site` writes one)"
        ) from None
    if not isinstance(loaded, RSAPrivateKey):
        raise PaymentKeyError(f"merchant {keys.merchant}: {path} is not an RSA private key")
    public = loaded.public_key().public_numbers()
    for serial, key in keys.platform_keys.items():
        if key.public_numbers() == public:
            return serial, loaded
    raise PaymentKeyError(
        f"merchant {keys.merchant}: {path} matches none of its WeChat Pay platform keys"
        f" ({', '.join(keys.platform_keys)})"
    )


def post_notification(url: str, notification: SignedNotification) -> tuple[int, str]:
    """POST the notification; the HTTP status and body text of the answer."""
    request = urllib.request.Request(  # noqa: S310 - the URL is built from http:// below
        url, data=notification.body, headers=notification.headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:  # noqa: S310
            return int(answer.status), answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as answer:
        return int(answer.code), answer.read().decode("utf-8", "replace")


def base_url(listen: Endpoint) -> str:
    """The URL this machine reaches a listen endpoint on (a wildcard host means loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(  # noqa: S104
        listen.host, listen.host
    )
    return f"http://[{host}]:{listen.port}" if ":" in host else f"http://{host}:{listen.port}"


def add_parser(sub: Any, default_site: Path) -> None:
    """Register the `pay` subcommand on the CLI's subparsers."""
    pay = sub.add_parser("pay", help="recharge a meter through a simulated payment provider")
    providers = pay.add_subparsers(dest="provider", required=True)
    wechat = providers.add_parser("wechat", help="a signed WeChat Pay v3 notification")
    wechat.add_argument("--site", type=Path, default=default_site)
    wechat.add_argument("--meter", required=True)
    wechat.add_argument("--yuan", required=True, help="amount in yuan, e.g. 50")
    wechat.add_argument(
        "--server", default=None, help="HOST:PORT of the server's web app ([services].hmi_listen)"
    )
    pay.set_defaults(func=run)


def _pay(site: Site, conn: psycopg2.extensions.connection, args: argparse.Namespace) -> int:
    amount = yuan_to_fen(args.yuan, "--yuan")
    if amount <= 0:
        raise ValueError(f"--yuan: a recharge must be more than 0, got {args.yuan!r}")
    listen = parse_endpoint(args.server) if args.server else site.services.hmi_listen
    root = base_url(listen)
    orders = PaymentOrders(conn, site, notify_base_url=root)
    merchant = orders.merchant_of(args.meter)
    keys = MerchantKeys.from_merchants([merchant]).wechat(merchant.id)
    serial, private_key = simulated_platform_key(site, keys)
    order = orders.create_order(args.meter, amount, "wechat")
    notification = wechat_notification(keys, order, serial, private_key, now=time.time())
    url = root + keys.notify_path
    print(f"order {order.out_trade_no}: {format_fen(amount)} yuan for meter {args.meter}")
    print(f"POST {url} (WeChat Pay transaction {notification.transaction_id})")
    try:
        status, text = post_notification(url, notification)
    except OSError as exc:
        raise ConnectionError(f"cannot reach the server at {url}: {exc}") from None
    print(f"HTTP {status}{' ' + text if text else ''}")
    balance = Ledger(conn, clock=SystemClock()).balance(args.meter)
    print(f"meter {args.meter}: balance {format_fen(balance)} yuan")
    return EXIT_OK if status == NO_CONTENT else EXIT_FAILED


def run(args: argparse.Namespace) -> int:
    """Carry out `parkgrid pay wechat ...`."""
    try:
        site = load_site(args.site)
    except SiteInvalid as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    try:
        conn = psycopg2.connect(site.services.db_url, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        print(f"parkgrid pay: cannot reach PostgreSQL: {str(exc).strip()}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return _pay(site, conn, args)
    except (ValueError, KeyError, OrderError, LedgerError, ConnectionError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"parkgrid pay: {message}", file=sys.stderr)
        return EXIT_FAILED
    except psycopg2.Error as exc:
        print(
            f"parkgrid pay: database error: {str(exc).strip().splitlines()[0]}"
            " (is the schema migrated? `parkgrid run` migrates it)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        conn.close()
