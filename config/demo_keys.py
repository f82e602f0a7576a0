"""Random credential files of the demo site: merchant payment keys and HMI user passwords."""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from config.demo_records import DemoUser
from config.demo_toml import TomlDocument

APIV3_KEY_LENGTH = 32
RSA_KEY_BITS = 2048
PASSWORD_BYTES = 12  # token_urlsafe: 16 characters, 96 bits
USERS_FILE = "secrets/users.toml"
PASSWORDS_FILE = "secrets/initial-passwords.txt"


@dataclass(frozen=True)
class MerchantKeyFiles:
    """Where a merchant's credential files live, relative to the site folder.

    The `sim_*` private keys are what WeChat Pay and Alipay would sign with; the simulator
    uses them to sign test notifications that the server verifies with the public keys.
    """

    apiv3_key: str
    wechat_platform_public: str
    alipay_public: str
    sim_wechat_platform_private: str
    sim_alipay_private: str


def merchant_key_files(merchant_id: str) -> MerchantKeyFiles:
    """The credential file paths of one merchant."""
    base = f"keys/{merchant_id}"
    return MerchantKeyFiles(
        apiv3_key=f"{base}/apiv3.key",
        wechat_platform_public=f"{base}/wechatpay_pub.pem",
        alipay_public=f"{base}/alipay_pub.pem",
        sim_wechat_platform_private=f"{base}/sim/wechatpay_private.pem",
        sim_alipay_private=f"{base}/sim/alipay_private.pem",
    )


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` to a file only its owner can read (0600), in a 0700 folder if new."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
        path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)


def _write_public_file(path: Path, data: bytes) -> None:
    """Write a file that may be world-readable, such as a public key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _rsa_pair() -> tuple[bytes, bytes]:
    """A fresh RSA-2048 key pair as (PKCS#8 private PEM, SubjectPublicKeyInfo PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def new_apiv3_key() -> str:
    """A random 32-character APIv3 key of letters and digits, as WeChat Pay issues them."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(APIV3_KEY_LENGTH))


def write_merchant_keys(site: Path, merchant_id: str) -> MerchantKeyFiles:
    """Write fresh credential files for one merchant and return their paths."""
    files = merchant_key_files(merchant_id)
    (site / files.wechat_platform_public).parent.mkdir(parents=True, exist_ok=True)
    # The APIv3 key is written without a trailing newline: the file is exactly the key.
    write_private_file(site / files.apiv3_key, new_apiv3_key().encode("ascii"))
    wechat_private, wechat_public = _rsa_pair()
    _write_public_file(site / files.wechat_platform_public, wechat_public)
    write_private_file(site / files.sim_wechat_platform_private, wechat_private)
    alipay_private, alipay_public = _rsa_pair()
    _write_public_file(site / files.alipay_public, alipay_public)
    write_private_file(site / files.sim_alipay_private, alipay_private)
    return files


def new_password() -> str:
    """A random initial password."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def write_user_secrets(site: Path, users: Sequence[DemoUser]) -> dict[str, str]:
    """Write secrets/users.toml (argon2id hashes) and the plain initial passwords.

    Returns the plain passwords by user name.
    """
    hasher = PasswordHasher()  # argon2id with the library's recommended cost
    passwords = {user.name: new_password() for user in users}
    doc = TomlDocument()
    doc.comment("HMI users' argon2id password hashes, written by parkgrid gen-site.")
    for user in users:
        doc.blank()
        doc.table(f"users.{user.name}")
        doc.set("password_hash", hasher.hash(passwords[user.name]))
    write_private_file(site / USERS_FILE, doc.text().encode("utf-8"))
    width = max(len(name) for name in passwords)
    lines = [
        "# Initial HMI passwords written by parkgrid gen-site: user, password.",
        "# Change them after the first login, then delete this file.",
        *(f"{name:<{width}}  {password}" for name, password in passwords.items()),
    ]
    write_private_file(site / PASSWORDS_FILE, ("\n".join(lines) + "\n").encode("utf-8"))
    return passwords
