"""The [[merchants]] of site.toml: payment accounts and the credential files they name."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from config.model import Alipay, Merchant, WechatPay
from config.toml_table import TomlTable, UniqueIds

_DIGITS = re.compile(r"[0-9]{1,32}")
_APPID = re.compile(r"[A-Za-z0-9_]{1,32}")
_KEY_SERIAL = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NOTIFY_PATH = re.compile(r"/[A-Za-z0-9_./-]*")
APIV3_KEY_LENGTH = 32


def _digits(text: str) -> str:
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"must be 1..32 decimal digits, got {text!r}")
    return text


def _appid(text: str) -> str:
    if not _APPID.fullmatch(text):
        raise ValueError(f"must be 1..32 letters, digits or _, got {text!r}")
    return text


def _notify_path(text: str) -> str:
    if not _NOTIFY_PATH.fullmatch(text):
        raise ValueError(
            f"must be a URL path starting with / (letters, digits, _.-/), got {text!r}"
        )
    return text


class CredentialFiles:
    """Resolves credential paths against the site folder and checks what each file holds."""

    def __init__(self, folder: Path) -> None:
        """Resolve relative paths against `folder`."""
        self.folder = folder

    def resolve(self, table: TomlTable, key: str, text: str) -> Path | None:
        """The absolute path of an existing file, else log an error (at `key`) and None."""
        path = self.folder / text
        if not path.is_file():
            table.error(key, f"credential file {text} does not exist (relative to {self.folder})")
            return None
        return path

    def apiv3_key(self, table: TomlTable, key: str) -> Path:
        """A file holding the 32-character WeChat Pay APIv3 key."""
        text = table.text(key)
        path = self.resolve(table, key, text) if text else None
        if path is None:
            return self.folder / text
        try:
            content = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as problem:
            table.error(key, f"cannot read {text}: {problem}")
            return path
        if len(content) != APIV3_KEY_LENGTH or not content.isprintable():
            table.error(
                key,
                f"{text} must hold the {APIV3_KEY_LENGTH}-character APIv3 key, "
                f"found {len(content)} characters",
            )
        return path

    def public_key(self, table: TomlTable, key: str, text: object) -> Path:
        """A file holding a PEM public key."""
        if text is None:
            return self.folder  # missing: already reported as required
        if not isinstance(text, str) or not text:
            table.error(key, "must be the path of a PEM public key file")
            return self.folder
        path = self.resolve(table, key, text)
        if path is None:
            return self.folder / text
        try:
            load_pem_public_key(path.read_bytes())
        except (OSError, ValueError, TypeError) as problem:
            table.error(key, f"{text} is not a PEM public key: {problem}")
        return path


def read_merchants(root: TomlTable, folder: Path) -> tuple[Merchant, ...]:
    """Every [[merchants]] entry; notify paths are unique across all merchants."""
    files = CredentialFiles(folder)
    merchants: list[Merchant] = []
    ids = UniqueIds("merchants")
    notify_paths = UniqueIds("merchants")
    for index, table in enumerate(root.tables("merchants")):
        merchant_id = table.ident("id")
        ids.claim(table, "id", merchant_id, index, f"merchant {merchant_id}")
        name = table.text("name")
        wechat = None
        wechat_table = table.table("wechat")
        if wechat_table is not None:
            wechat = _read_wechat(wechat_table, files)
            notify_paths.claim(wechat_table, "notify_path", wechat.notify_path, index, "this path")
            wechat_table.finish()
        alipay = None
        alipay_table = table.table("alipay")
        if alipay_table is not None:
            alipay = _read_alipay(alipay_table, files)
            notify_paths.claim(alipay_table, "notify_path", alipay.notify_path, index, "this path")
            alipay_table.finish()
        table.finish()
        merchants.append(Merchant(merchant_id, name, wechat, alipay))
    return tuple(merchants)


def _read_wechat(table: TomlTable, files: CredentialFiles) -> WechatPay:
    mchid = table.text_as("mchid", _digits) or ""
    appid = table.text_as("appid", _appid) or ""
    apiv3_key_file = files.apiv3_key(table, "apiv3_key_file")
    platform_keys: list[tuple[str, Path]] = []
    keys = table.table("platform_keys")
    if keys is None:
        table.error("platform_keys", 'is required: { KEY_SERIAL = "path/to/key.pem" }')
    else:
        if not keys.data:
            keys.error(None, "needs at least one platform public key")
        for serial, path_text in keys.data.items():
            keys.raw(serial)
            if not _KEY_SERIAL.fullmatch(serial):
                keys.error(
                    serial, f"key serial must be 1..64 letters, digits, _ or -, got {serial!r}"
                )
            platform_keys.append((serial, files.public_key(keys, serial, path_text)))
        keys.finish()
    notify_path = table.text_as("notify_path", _notify_path) or ""
    return WechatPay(mchid, appid, apiv3_key_file, tuple(platform_keys), notify_path)


def _read_alipay(table: TomlTable, files: CredentialFiles) -> Alipay:
    app_id = table.text_as("app_id", _digits) or ""
    seller_id = table.text_as("seller_id", _digits) or ""
    key_file = files.public_key(
        table, "alipay_public_key_file", table.raw("alipay_public_key_file", required=True)
    )
    notify_path = table.text_as("notify_path", _notify_path) or ""
    return Alipay(app_id, seller_id, key_file, notify_path)
