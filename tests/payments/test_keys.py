"""Loading merchant payment keys: by merchant and serial, with errors that name the file."""

from __future__ import annotations

from dataclasses import replace

import pytest

from server.prepaid.payments import MerchantKeys, PaymentKeyError


def test_keys_by_merchant_and_serial(merchant_keys: MerchantKeys) -> None:
    assert merchant_keys.wechat_merchants == ("M1", "M2")
    assert merchant_keys.alipay_merchants == ("M1",)
    m1 = merchant_keys.wechat("M1")
    assert m1.platform_key("PUB_KEY_ID_0001") is not None
    assert m1.platform_key("PUB_KEY_ID_0002") is None
    assert len(m1.apiv3_key) == 32
    assert merchant_keys.alipay("M1").seller_id == "2088000000000001"


def test_unknown_merchant_is_named(merchant_keys: MerchantKeys) -> None:
    with pytest.raises(KeyError, match=r"M2.*Alipay"):
        merchant_keys.alipay("M2")
    with pytest.raises(KeyError, match="M9"):
        merchant_keys.wechat("M9")


def test_missing_file_is_named(site, tmp_path):
    merchant = site.merchant("M1")
    gone = tmp_path / "gone.key"
    broken = replace(merchant, wechat=replace(merchant.wechat, apiv3_key_file=gone))
    with pytest.raises(PaymentKeyError, match=r"M1.*gone\.key"):
        MerchantKeys.from_merchants([broken])


def test_short_apiv3_key(site, tmp_path):
    short = tmp_path / "apiv3.key"
    short.write_text("tooshort")
    merchant = site.merchant("M1")
    broken = replace(merchant, wechat=replace(merchant.wechat, apiv3_key_file=short))
    with pytest.raises(PaymentKeyError, match="32-character"):
        MerchantKeys.from_merchants([broken])


def test_not_a_pem(site, tmp_path):
    bad = tmp_path / "pub.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    merchant = site.merchant("M1")
    broken = replace(merchant, alipay=replace(merchant.alipay, alipay_public_key_file=bad))
    with pytest.raises(PaymentKeyError, match="not a PEM public key"):
        MerchantKeys.from_merchants([broken])


def test_ec_key_refused(site, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = tmp_path / "ec.pem"
    pem.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    merchant = site.merchant("M1")
    broken = replace(merchant, alipay=replace(merchant.alipay, alipay_public_key_file=pem))
    with pytest.raises(PaymentKeyError, match="not an RSA key"):
        MerchantKeys.from_merchants([broken])
