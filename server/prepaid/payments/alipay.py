"""Alipay asynchronous payment notifications (RSA2): canonical string, signature, checks."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from config.money import parse_fen
from server.prepaid.payments.keys import AlipayKeys
from server.prepaid.payments.rejection import forged, malformed, mismatch

MAX_BODY_BYTES = 64 * 1024
PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
KNOWN_STATUSES = PAID_STATUSES | {"WAIT_BUYER_PAY", "TRADE_CLOSED"}
UNSIGNED_FIELDS = frozenset({"sign", "sign_type"})
REQUIRED_FIELDS = ("notify_id", "app_id", "out_trade_no", "trade_no", "trade_status")
CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk", "gb2312": "gbk"}
_CHARSET = re.compile(r"(?:^|&)charset=([A-Za-z0-9-]{1,16})(?:&|$)")


@dataclass(frozen=True, slots=True)
class AlipayPayment:
    """A verified Alipay notification of one merchant; `paid` only for a paid status."""

    merchant: str
    notify_id: str
    app_id: str
    seller_id: str
    out_trade_no: str
    trade_no: str
    trade_status: str
    total_fen: int

    @property
    def paid(self) -> bool:
        """Whether the status means the money arrived (TRADE_SUCCESS or TRADE_FINISHED)."""
        return self.trade_status in PAID_STATUSES


def parse_form(body: bytes) -> dict[str, str]:
    """The URL-decoded fields of a form body; a field given twice is refused."""
    if len(body) > MAX_BODY_BYTES:
        raise malformed(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise malformed("form body must be URL-encoded ASCII") from None
    # Percent-escapes are in the `charset` the notification names (UTF-8 unless it says GBK).
    named = _CHARSET.search(text)
    charset = CHARSETS.get(named.group(1).lower(), "") if named else "utf-8"
    if not charset:
        raise malformed(f"charset {named.group(1) if named else ''!r} is not UTF-8 or GBK")
    fields: dict[str, str] = {}
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            encoding=charset,
            errors="strict",
        )
    except (ValueError, UnicodeDecodeError) as problem:
        raise malformed(f"form body does not parse: {problem}") from None
    for key, value in pairs:
        if key in fields:
            raise malformed(f"form field {key!r} appears twice")
        fields[key] = value
    return fields


def canonical_content(fields: Mapping[str, str]) -> bytes:
    """What Alipay signs: non-empty fields but sign/sign_type, sorted by key, `k=v&...`."""
    items = sorted(
        (key, value) for key, value in fields.items() if key not in UNSIGNED_FIELDS and value != ""
    )
    return "&".join(f"{key}={value}" for key, value in items).encode("utf-8")


def verify_alipay_notification(keys: AlipayKeys, body: bytes) -> AlipayPayment:
    """Verify a notification's RSA2 signature and fields, or raise CallbackRejected."""
    fields = parse_form(body)
    sign_type = fields.get("sign_type", "")
    if sign_type != "RSA2":
        raise malformed(f"sign_type {sign_type!r} is not RSA2")
    try:
        signature = base64.b64decode(fields.get("sign", ""), validate=True)
    except (binascii.Error, ValueError):
        raise forged("sign is not base64") from None
    if not signature:
        raise malformed("sign is missing")
    try:
        keys.public_key.verify(
            signature, canonical_content(fields), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise forged(f"sign does not verify with merchant {keys.merchant}'s Alipay key") from None
    return _payment(keys, fields)


def _payment(keys: AlipayKeys, fields: Mapping[str, str]) -> AlipayPayment:
    for name in REQUIRED_FIELDS:
        if not fields.get(name):
            raise malformed(f"field {name} is missing")
    if fields["app_id"] != keys.app_id:
        raise mismatch(f"app_id {fields['app_id']} is not merchant {keys.merchant}'s")
    seller_id = fields.get("seller_id", "")
    if seller_id != keys.seller_id:
        raise mismatch(f"seller_id {seller_id!r} is not merchant {keys.merchant}'s")
    status = fields["trade_status"]
    if status not in KNOWN_STATUSES:
        raise malformed(f"trade_status {status!r} is not one Alipay sends")
    try:
        total_fen = parse_fen(fields.get("total_amount", ""))
    except ValueError as problem:
        raise malformed(f"total_amount {problem}") from None
    if total_fen <= 0:
        raise malformed("total_amount must be more than zero")
    return AlipayPayment(
        merchant=keys.merchant,
        notify_id=fields["notify_id"],
        app_id=fields["app_id"],
        seller_id=seller_id,
        out_trade_no=fields["out_trade_no"],
        trade_no=fields["trade_no"],
        trade_status=status,
        total_fen=total_fen,
    )
