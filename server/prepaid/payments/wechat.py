"""WeChat Pay API v3 payment notifications: signature, time window, decryption and checks."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.prepaid.payments.keys import WechatKeys
from server.prepaid.payments.rejection import (
    UNPROCESSABLE,
    CallbackRejected,
    forged,
    malformed,
    mismatch,
)

TIMESTAMP_WINDOW_S = 300
MAX_BODY_BYTES = 64 * 1024
PAID_EVENT = "TRANSACTION.SUCCESS"
PAID_STATE = "SUCCESS"
ALGORITHM = "AEAD_AES_256_GCM"
SIGNATURE_HEADERS = (
    "wechatpay-timestamp",
    "wechatpay-nonce",
    "wechatpay-signature",
    "wechatpay-serial",
)
# WeChat Pay sends signature probes whose signature starts with this; they must fail.
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"


@dataclass(frozen=True, slots=True)
class WechatPayment:
    """A verified, decrypted TRANSACTION.SUCCESS notification of one merchant."""

    merchant: str
    notification_id: str
    out_trade_no: str
    transaction_id: str
    mchid: str
    appid: str
    trade_state: str
    total_fen: int
    success_time: str


def signed_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """The bytes WeChat Pay signs: timestamp, nonce and raw body, each ending in a newline."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def verify_wechat_notification(
    keys: WechatKeys, headers: Mapping[str, str], body: bytes, *, now: float
) -> WechatPayment:
    """Verify and decrypt a notification, or raise CallbackRejected saying what is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise malformed(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    timestamp, nonce, signature, serial = _signature_headers(headers)
    _check_timestamp(timestamp, now)
    _check_signature(keys, serial, signature, signed_message(timestamp, nonce, body))
    envelope = _json_object(body, "body")
    event_type = _text(envelope, "event_type", "body")
    if event_type != PAID_EVENT:
        raise CallbackRejected(
            UNPROCESSABLE, "EVENT", f"event_type {event_type!r} is not {PAID_EVENT}"
        )
    resource = envelope.get("resource")
    if not isinstance(resource, dict):
        raise malformed("body.resource must be an object")
    transaction = _json_object(decrypt_resource(keys.apiv3_key, resource), "resource")
    return _payment(keys, _text(envelope, "id", "body"), transaction)


def decrypt_resource(apiv3_key: bytes, resource: Mapping[str, object]) -> bytes:
    """The plaintext of an AEAD_AES_256_GCM `resource` (tag is the last 16 bytes)."""
    algorithm = _text(resource, "algorithm", "resource")
    if algorithm != ALGORITHM:
        raise malformed(f"resource.algorithm {algorithm!r} is not {ALGORITHM}")
    nonce = _text(resource, "nonce", "resource")
    associated = resource.get("associated_data", "")
    if not isinstance(associated, str):
        raise malformed("resource.associated_data must be a string")
    try:
        ciphertext = base64.b64decode(_text(resource, "ciphertext", "resource"), validate=True)
    except (binascii.Error, ValueError):
        raise malformed("resource.ciphertext is not base64") from None
    try:
        return AESGCM(apiv3_key).decrypt(nonce.encode(), ciphertext, associated.encode())
    except InvalidTag:
        raise malformed("resource does not decrypt: wrong APIv3 key or altered data") from None
    except ValueError as problem:
        raise malformed(f"resource cannot be decrypted: {problem}") from None


def _signature_headers(headers: Mapping[str, str]) -> tuple[str, str, str, str]:
    found = {name.lower(): value for name, value in headers.items()}
    values: list[str] = []
    for name in SIGNATURE_HEADERS:
        value = found.get(name, "").strip()
        if not value:
            raise malformed(f"header {name} is missing")
        if not value.isascii() or not value.isprintable():
            raise malformed(f"header {name} holds characters other than printable ASCII")
        values.append(value)
    return values[0], values[1], values[2], values[3]


def _check_timestamp(timestamp: str, now: float) -> None:
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise malformed(f"Wechatpay-Timestamp {timestamp!r} is not Unix seconds")
    skew = int(timestamp) - now
    if not math.isfinite(now) or abs(skew) > TIMESTAMP_WINDOW_S:
        raise forged(
            f"Wechatpay-Timestamp is {skew:+.0f} s from now, outside ±{TIMESTAMP_WINDOW_S} s"
        )


def _check_signature(keys: WechatKeys, serial: str, signature: str, message: bytes) -> None:
    if signature.startswith(PROBE_PREFIX):
        raise forged("signature probe: signature is not valid")
    key = keys.platform_key(serial)
    if key is None:
        raise forged(f"Wechatpay-Serial {serial!r} is not a platform key of {keys.merchant}")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise forged("Wechatpay-Signature is not base64") from None
    try:
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise forged(f"signature does not verify with platform key {serial}") from None


def _json_object(data: bytes, what: str) -> dict[str, object]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise malformed(f"{what} is not UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise malformed(f"{what} is not a JSON object")
    return value


def _text(obj: Mapping[str, object], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise malformed(f"{where}.{key} must be a non-empty string")
    return value


def _payment(keys: WechatKeys, notification_id: str, txn: dict[str, object]) -> WechatPayment:
    mchid = _text(txn, "mchid", "transaction")
    appid = _text(txn, "appid", "transaction")
    if mchid != keys.mchid:
        raise mismatch(f"mchid {mchid} is not merchant {keys.merchant}'s {keys.mchid}")
    if appid != keys.appid:
        raise mismatch(f"appid {appid} is not merchant {keys.merchant}'s {keys.appid}")
    state = _text(txn, "trade_state", "transaction")
    if state != PAID_STATE:
        raise CallbackRejected(
            UNPROCESSABLE, "TRADE_STATE", f"trade_state {state!r} is not {PAID_STATE}"
        )
    amount = txn.get("amount")
    if not isinstance(amount, dict):
        raise malformed("transaction.amount must be an object")
    total = amount.get("total")
    if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
        raise malformed(f"transaction.amount.total must be a positive integer fen, got {total!r}")
    currency = amount.get("currency", "CNY")
    if currency != "CNY":
        raise mismatch(f"transaction.amount.currency {currency!r} is not CNY")
    success_time = txn.get("success_time", "")
    return WechatPayment(
        merchant=keys.merchant,
        notification_id=notification_id,
        out_trade_no=_text(txn, "out_trade_no", "transaction"),
        transaction_id=_text(txn, "transaction_id", "transaction"),
        mchid=mchid,
        appid=appid,
        trade_state=state,
        total_fen=total,
        success_time=success_time if isinstance(success_time, str) else "",
    )
