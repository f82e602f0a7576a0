"""The merchants' payment keys, loaded once from the site, by merchant and key serial."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from config.model import Alipay, Merchant, Site, WechatPay

APIV3_KEY_BYTES = 32


class PaymentKeyError(ValueError):
    """A merchant's credential file is missing, unreadable or holds the wrong kind of key."""


@dataclass(frozen=True, slots=True)
class WechatKeys:
    """What verifies a merchant's WeChat Pay notifications."""

    merchant: str
    mchid: str
    appid: str
    apiv3_key: bytes
    platform_keys: Mapping[str, RSAPublicKey]
    notify_path: str

    def platform_key(self, serial: str) -> RSAPublicKey | None:
        """The WeChat Pay platform public key with this serial, None when unknown."""
        return self.platform_keys.get(serial)


@dataclass(frozen=True, slots=True)
class AlipayKeys:
    """What verifies a merchant's Alipay notifications."""

    merchant: str
    app_id: str
    seller_id: str
    public_key: RSAPublicKey
    notify_path: str


class MerchantKeys:
    """Every merchant's WeChat Pay and Alipay keys, read from their files once."""

    def __init__(self, wechat: Iterable[WechatKeys], alipay: Iterable[AlipayKeys]) -> None:
        """Index the keys by merchant id."""
        self._wechat = MappingProxyType({keys.merchant: keys for keys in wechat})
        self._alipay = MappingProxyType({keys.merchant: keys for keys in alipay})

    @classmethod
    def from_site(cls, site: Site) -> MerchantKeys:
        """Load the keys of every merchant of `site` (PaymentKeyError names the bad file)."""
        return cls.from_merchants(site.merchants)

    @classmethod
    def from_merchants(cls, merchants: Iterable[Merchant]) -> MerchantKeys:
        """Load the keys of these merchants (PaymentKeyError names the bad file)."""
        wechat: list[WechatKeys] = []
        alipay: list[AlipayKeys] = []
        for merchant in merchants:
            if merchant.wechat is not None:
                wechat.append(_wechat_keys(merchant.id, merchant.wechat))
            if merchant.alipay is not None:
                alipay.append(_alipay_keys(merchant.id, merchant.alipay))
        return cls(wechat, alipay)

    @property
    def wechat_merchants(self) -> tuple[str, ...]:
        """The merchants that take WeChat Pay."""
        return tuple(self._wechat)

    @property
    def alipay_merchants(self) -> tuple[str, ...]:
        """The merchants that take Alipay."""
        return tuple(self._alipay)

    def wechat(self, merchant: str) -> WechatKeys:
        """A merchant's WeChat Pay keys (KeyError naming the merchant when it has none)."""
        try:
            return self._wechat[merchant]
        except KeyError:
            raise KeyError(f"merchant {merchant!r} has no WeChat Pay account") from None

    def alipay(self, merchant: str) -> AlipayKeys:
        """A merchant's Alipay keys (KeyError naming the merchant when it has none)."""
        try:
            return self._alipay[merchant]
        except KeyError:
            raise KeyError(f"merchant {merchant!r} has no Alipay account") from None


def _read(path: Path, merchant: str, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as problem:
        raise PaymentKeyError(
            f"merchant {merchant}: cannot read {what} {path}: {problem}"
        ) from None


def read_apiv3_key(path: Path, merchant: str) -> bytes:
    """The 32-byte APIv3 key held (without surrounding whitespace) in `path`."""
    key = _read(path, merchant, "the APIv3 key file").strip()
    if len(key) != APIV3_KEY_BYTES or not key.isascii():
        raise PaymentKeyError(
            f"merchant {merchant}: {path} must hold the {APIV3_KEY_BYTES}-character APIv3 key, "
            f"found {len(key)} bytes"
        )
    return key


def read_rsa_public_key(path: Path, merchant: str, what: str) -> RSAPublicKey:
    """An RSA public key from a PEM file."""
    data = _read(path, merchant, what)
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError) as problem:
        raise PaymentKeyError(
            f"merchant {merchant}: {what} {path} is not a PEM public key: {problem}"
        ) from None
    if not isinstance(key, RSAPublicKey):
        raise PaymentKeyError(
            f"merchant {merchant}: {what} {path} holds a {type(key).__name__}, not an RSA key"
        )
    return key


def _wechat_keys(merchant: str, account: WechatPay) -> WechatKeys:
    platform = {
        serial: read_rsa_public_key(path, merchant, f"WeChat Pay platform key {serial}")
        for serial, path in account.platform_keys
    }
    if not platform:
        raise PaymentKeyError(f"merchant {merchant}: WeChat Pay needs a platform public key")
    return WechatKeys(
        merchant=merchant,
        mchid=account.mchid,
        appid=account.appid,
        apiv3_key=read_apiv3_key(account.apiv3_key_file, merchant),
        platform_keys=MappingProxyType(platform),
        notify_path=account.notify_path,
    )


def _alipay_keys(merchant: str, account: Alipay) -> AlipayKeys:
    return AlipayKeys(
        merchant=merchant,
        app_id=account.app_id,
        seller_id=account.seller_id,
        public_key=read_rsa_public_key(
            account.alipay_public_key_file, merchant, "the Alipay public key"
        ),
        notify_path=account.notify_path,
    )
