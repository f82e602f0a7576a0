"""Test-only provider side: fresh RSA keys, and notifications signed with them."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config.demo_keys import new_apiv3_key
from config.model import Merchant, Site


# The string-to-sign rules are written here again, from the providers' documentation, so
# the tests do not borrow the code they check.
def yuan_text(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def alipay_content(fields: dict[str, str]) -> bytes:
    kept = sorted((k, v) for k, v in fields.items() if k not in ("sign", "sign_type") and v)
    return "&".join(f"{k}={v}" for k, v in kept).encode()


# Generating RSA-2048 keys is slow; tests share these few.
_KEY_CACHE: dict[str, rsa.RSAPrivateKey] = {}


def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 private key, generated once per test session per name."""
    if name not in _KEY_CACHE:
        _KEY_CACHE[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEY_CACHE[name]


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class ProviderSide:
    """What WeChat Pay and Alipay hold for one merchant: their private keys and the APIv3 key."""

    merchant: Merchant
    wechat_serial: str
    wechat_private: rsa.RSAPrivateKey
    apiv3_key: bytes
    alipay_private: rsa.RSAPrivateKey | None


def site_with_fresh_keys(site: Site, folder: Path) -> tuple[Site, dict[str, ProviderSide]]:
    """`site` with every merchant's credential files replaced by keys generated now."""
    merchants: list[Merchant] = []
    sides: dict[str, ProviderSide] = {}
    for merchant in site.merchants:
        base = folder / merchant.id
        base.mkdir(parents=True, exist_ok=True)
        wechat = merchant.wechat
        assert wechat is not None
        serial = wechat.platform_keys[0][0]
        wechat_key = rsa_key(f"wechat-{merchant.id}")
        (base / "wechatpay_pub.pem").write_bytes(public_pem(wechat_key))
        apiv3 = new_apiv3_key().encode()
        (base / "apiv3.key").write_bytes(apiv3)
        wechat = replace(
            wechat,
            apiv3_key_file=base / "apiv3.key",
            platform_keys=((serial, base / "wechatpay_pub.pem"),),
        )
        alipay = merchant.alipay
        alipay_key = None
        if alipay is not None:
            alipay_key = rsa_key(f"alipay-{merchant.id}")
            (base / "alipay_pub.pem").write_bytes(public_pem(alipay_key))
            alipay = replace(alipay, alipay_public_key_file=base / "alipay_pub.pem")
        changed = replace(merchant, wechat=wechat, alipay=alipay)
        merchants.append(changed)
        sides[merchant.id] = ProviderSide(changed, serial, wechat_key, apiv3, alipay_key)
    return replace(site, merchants=tuple(merchants)), sides


def wechat_transaction(
    side: ProviderSide,
    out_trade_no: str,
    transaction_id: str,
    total_fen: int,
    /,
    **changes: object,
) -> dict[str, object]:
    """The decrypted `resource` of a TRANSACTION.SUCCESS notification."""
    wechat = side.merchant.wechat
    assert wechat is not None
    txn: dict[str, object] = {
        "mchid": wechat.mchid,
        "appid": wechat.appid,
        "out_trade_no": out_trade_no,
        "transaction_id": transaction_id,
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "success_time": "2026-11-25T22:45:24+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": total_fen, "payer_total": total_fen, "currency": "CNY"},
    }
    txn.update(changes)
    return txn


def encrypt_resource(
    apiv3_key: bytes, plaintext: bytes, associated: str = "transaction"
) -> dict[str, str]:
    """An AEAD_AES_256_GCM resource as WeChat Pay sends it (tag at the end of the ciphertext)."""
    nonce = secrets.token_hex(6)  # 12 characters
    sealed = AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext, associated.encode())
    return {
        "original_type": "transaction",
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": associated,
        "nonce": nonce,
    }


def wechat_body(
    side: ProviderSide,
    txn: dict[str, object],
    *,
    event_type: str = "TRANSACTION.SUCCESS",
    apiv3_key: bytes | None = None,
) -> bytes:
    """A notification body with `txn` encrypted under the merchant's (or the given) APIv3 key."""
    resource = encrypt_resource(apiv3_key or side.apiv3_key, json.dumps(txn).encode())
    envelope = {
        "id": f"EV-{secrets.token_hex(8)}",
        "create_time": "2026-11-25T22:45:24+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功",
        "resource": resource,
    }
    return json.dumps(envelope, ensure_ascii=False).encode()


def wechat_headers(
    side: ProviderSide,
    body: bytes,
    timestamp: int,
    *,
    key: rsa.RSAPrivateKey | None = None,
    serial: str | None = None,
) -> dict[str, str]:
    """The Wechatpay-* headers signing `body` at `timestamp`."""
    nonce = secrets.token_hex(16)
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    signature = (key or side.wechat_private).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return {
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": base64.b64encode(signature).decode(),
        "Wechatpay-Serial": serial or side.wechat_serial,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        "Content-Type": "application/json",
    }


def alipay_fields(
    side: ProviderSide, out_trade_no: str, trade_no: str, total_fen: int, /, **changes: str
) -> dict[str, str]:
    """The fields of a TRADE_SUCCESS notification, before signing."""
    alipay = side.merchant.alipay
    assert alipay is not None
    fields = {
        "notify_time": "2026-11-25 22:45:24",
        "notify_type": "trade_status_sync",
        "notify_id": f"ac05099524730693a8b330c5ecf72da{secrets.token_hex(4)}",
        "charset": "utf-8",
        "version": "1.0",
        "app_id": alipay.app_id,
        "seller_id": alipay.seller_id,
        "out_trade_no": out_trade_no,
        "trade_no": trade_no,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": yuan_text(total_fen),
        "receipt_amount": yuan_text(total_fen),
        "subject": "电费充值 E0001",
        "buyer_logon_id": "159****5620",
        "passback_params": "",
    }
    fields.update(changes)
    return fields


def alipay_body(
    side: ProviderSide, fields: dict[str, str], *, key: rsa.RSAPrivateKey | None = None
) -> bytes:
    """`fields` signed RSA2 and form-encoded, as Alipay posts them."""
    signer = key or side.alipay_private
    assert signer is not None
    signature = signer.sign(alipay_content(fields), padding.PKCS1v15(), hashes.SHA256())
    signed = {**fields, "sign_type": "RSA2", "sign": base64.b64encode(signature).decode()}
    return urlencode(signed).encode("ascii")
