"""Alipay RSA2 notification verification: canonical string, signature and field checks."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.prepaid.payments import CallbackRejected, MerchantKeys, verify_alipay_notification
from server.prepaid.payments.alipay import canonical_content, parse_form
from tests.payments.signing import (
    ProviderSide,
    alipay_body,
    alipay_content,
    alipay_fields,
    rsa_key,
)


def signed(side: ProviderSide, total: int = 1250, **changes: str) -> bytes:
    return alipay_body(side, alipay_fields(side, "PGORDER2", "2026112522001", total, **changes))


def rejection(merchant_keys: MerchantKeys, body: bytes, merchant: str = "M1") -> CallbackRejected:
    with pytest.raises(CallbackRejected) as caught:
        verify_alipay_notification(merchant_keys.alipay(merchant), body)
    return caught.value


def test_valid_notification(merchant_keys, sides):
    payment = verify_alipay_notification(merchant_keys.alipay("M1"), signed(sides["M1"]))
    assert payment.paid
    assert payment.total_fen == 1250
    assert payment.trade_no == "2026112522001"
    assert payment.out_trade_no == "PGORDER2"
    assert payment.app_id == "2021000000000001"


def test_trade_finished_is_paid(merchant_keys, sides):
    body = signed(sides["M1"], trade_status="TRADE_FINISHED")
    assert verify_alipay_notification(merchant_keys.alipay("M1"), body).paid


@pytest.mark.parametrize("status", ["WAIT_BUYER_PAY", "TRADE_CLOSED"])
def test_unpaid_statuses_verify_but_are_not_paid(merchant_keys, sides, status):
    body = signed(sides["M1"], trade_status=status)
    assert not verify_alipay_notification(merchant_keys.alipay("M1"), body).paid


def test_canonical_content_matches_the_documented_rule() -> None:
    fields = {"b": "2", "a": "1", "sign": "x", "sign_type": "RSA2", "empty": "", "c": "中 文"}
    assert canonical_content(fields) == "a=1&b=2&c=中 文".encode()
    assert canonical_content(fields) == alipay_content(fields)


@given(
    st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_characters="&="), min_size=1, max_size=8),
        st.text(max_size=12),
        max_size=8,
    )
)
def test_canonical_content_property(fields: dict[str, str]) -> None:
    assert canonical_content(fields) == alipay_content(fields)


def test_forged_signature(merchant_keys, sides):
    body = alipay_body(
        sides["M1"], alipay_fields(sides["M1"], "O", "T", 100), key=rsa_key("stranger")
    )
    problem = rejection(merchant_keys, body)
    assert (problem.status, problem.code) == (401, "SIGNATURE")


def test_other_merchants_key(merchant_keys, sides):
    """Signed with another key of the same merchant (its WeChat Pay platform key)."""
    side = sides["M1"]
    body = alipay_body(side, alipay_fields(side, "O", "T", 100), key=rsa_key("wechat-M1"))
    assert rejection(merchant_keys, body).status == 401


def tamper(body: bytes, key: str, value: str) -> bytes:
    fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    fields[key] = value
    return urlencode(fields).encode()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("total_amount", "1250.00"),
        ("out_trade_no", "PGOTHER"),
        ("trade_status", "TRADE_FINISHED"),
        ("passback_params", "now set"),
        ("trade_no", "2026112522002"),
    ],
)
def test_tampered_field(merchant_keys, sides, key, value):
    assert rejection(merchant_keys, tamper(signed(sides["M1"]), key, value)).status == 401


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"app_id": "2021000000000002"}, 409),
        ({"seller_id": "2088000000000002"}, 409),
        ({"seller_id": ""}, 409),
        ({"total_amount": "12.505"}, 400),
        ({"total_amount": "-1.00"}, 400),
        ({"total_amount": "0.00"}, 400),
        ({"total_amount": "1e3"}, 400),
        ({"trade_status": "TRADE_PAID"}, 400),
        ({"notify_id": ""}, 400),
        ({"trade_no": ""}, 400),
    ],
)
def test_fields_checked(merchant_keys, sides, changes, status):
    assert rejection(merchant_keys, signed(sides["M1"], **changes)).status == status


def test_sign_type_must_be_rsa2(merchant_keys, sides):
    assert rejection(merchant_keys, tamper(signed(sides["M1"]), "sign_type", "RSA")).status == 400


def test_sign_not_base64(merchant_keys, sides):
    assert rejection(merchant_keys, tamper(signed(sides["M1"]), "sign", "@@@")).status == 401


def test_duplicate_field_refused(merchant_keys, sides):
    body = signed(sides["M1"]) + b"&total_amount=1.00"
    problem = rejection(merchant_keys, body)
    assert problem.status == 400
    assert "twice" in problem.message


def test_gbk_charset(merchant_keys, sides):
    side = sides["M1"]
    fields = alipay_fields(side, "PGGBK", "T-GBK", 100, charset="gbk", subject="电费")
    body = alipay_body(side, fields).decode()
    body = body.replace(
        urlencode({"subject": "电费"}), urlencode({"subject": "电费"}, encoding="gbk")
    )
    assert verify_alipay_notification(merchant_keys.alipay("M1"), body.encode()).paid


@pytest.mark.parametrize("body", [b"", b"a", b"\xff=1", b"charset=latin9&a=1", b"sign=%zz"])
def test_malformed_forms(merchant_keys, body):
    assert rejection(merchant_keys, body).status in (400, 401)


def test_parse_form_keeps_blank_values() -> None:
    assert parse_form(b"a=&b=2") == {"a": "", "b": "2"}


@given(st.binary(max_size=400))
def test_arbitrary_bodies_only_rejected(merchant_keys, body):
    with pytest.raises(CallbackRejected) as caught:
        verify_alipay_notification(merchant_keys.alipay("M1"), body)
    assert 400 <= caught.value.status < 500
