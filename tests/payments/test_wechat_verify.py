"""WeChat Pay notification verification: valid ones pass, every forgery is refused."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.prepaid.payments import CallbackRejected, MerchantKeys, verify_wechat_notification
from server.prepaid.payments.wechat import TIMESTAMP_WINDOW_S, decrypt_resource
from tests.payments.conftest import NOW
from tests.payments.signing import (
    ProviderSide,
    encrypt_resource,
    rsa_key,
    wechat_body,
    wechat_headers,
    wechat_transaction,
)

TS = int(NOW)


def signed(
    side: ProviderSide, total: int = 5000, **changes: object
) -> tuple[dict[str, str], bytes]:
    body = wechat_body(side, wechat_transaction(side, "PGORDER1", "4200001", total, **changes))
    return wechat_headers(side, body, TS), body


def test_valid_notification_is_decrypted(merchant_keys, sides):
    headers, body = signed(sides["M1"])
    payment = verify_wechat_notification(merchant_keys.wechat("M1"), headers, body, now=NOW)
    assert payment.merchant == "M1"
    assert payment.out_trade_no == "PGORDER1"
    assert payment.transaction_id == "4200001"
    assert payment.total_fen == 5000
    assert payment.mchid == "1900000001"


def test_headers_are_case_insensitive(merchant_keys, sides):
    headers, body = signed(sides["M1"])
    lowered = {name.lower(): value for name, value in headers.items()}
    verify_wechat_notification(merchant_keys.wechat("M1"), lowered, body, now=NOW)


@pytest.mark.parametrize("skew", [-TIMESTAMP_WINDOW_S, 0, TIMESTAMP_WINDOW_S])
def test_timestamp_inside_window_passes(merchant_keys, sides, skew):
    headers, body = signed(sides["M1"])
    verify_wechat_notification(merchant_keys.wechat("M1"), headers, body, now=NOW + skew)


def rejection(
    merchant_keys: MerchantKeys,
    merchant: str,
    headers: dict[str, str],
    body: bytes,
    now: float = NOW,
) -> CallbackRejected:
    with pytest.raises(CallbackRejected) as caught:
        verify_wechat_notification(merchant_keys.wechat(merchant), headers, body, now=now)
    return caught.value


def test_forged_signature(merchant_keys, sides):
    headers, body = signed(sides["M1"])
    headers["Wechatpay-Signature"] = base64.b64encode(b"\x01" * 256).decode()
    problem = rejection(merchant_keys, "M1", headers, body)
    assert (problem.status, problem.code) == (401, "SIGNATURE")


def test_signature_probe(merchant_keys, sides):
    headers, body = signed(sides["M1"])
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    assert rejection(merchant_keys, "M1", headers, body).status == 401


def test_signature_not_base64(merchant_keys, sides):
    headers, body = signed(sides["M1"])
    headers["Wechatpay-Signature"] = "not*base64"
    assert rejection(merchant_keys, "M1", headers, body).status == 401


def test_tampered_body(merchant_keys, sides):
    headers, body = signed(sides["M1"])
    tampered = body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCESS ")
    assert rejection(merchant_keys, "M1", headers, tampered).status == 401


def test_tampered_nonce(merchant_keys, sides):
    headers, body = signed(sides["M1"])
    headers["Wechatpay-Nonce"] = headers["Wechatpay-Nonce"][::-1]
    assert rejection(merchant_keys, "M1", headers, body).status == 401


@pytest.mark.parametrize("skew", [TIMESTAMP_WINDOW_S + 1, -TIMESTAMP_WINDOW_S - 1, 86_400])
def test_replayed_old_or_future_timestamp(merchant_keys, sides, skew):
    headers, body = signed(sides["M1"])
    problem = rejection(merchant_keys, "M1", headers, body, now=NOW + skew)
    assert problem.status == 401
    assert "outside" in problem.message


def test_unknown_serial(merchant_keys, sides):
    headers, body = signed(sides["M1"])
    headers["Wechatpay-Serial"] = "PUB_KEY_ID_9999"
    problem = rejection(merchant_keys, "M1", headers, body)
    assert problem.status == 401
    assert "PUB_KEY_ID_9999" in problem.message


def test_other_merchants_key_and_serial(merchant_keys, sides):
    """M2's platform key signs a notification sent to M1's endpoint."""
    side = sides["M1"]
    body = wechat_body(side, wechat_transaction(side, "PGORDER1", "4200001", 5000))
    headers = wechat_headers(side, body, TS, key=sides["M2"].wechat_private)
    assert rejection(merchant_keys, "M1", headers, body).status == 401
    headers = wechat_headers(sides["M2"], body, TS)
    assert rejection(merchant_keys, "M1", headers, body).status == 401


def test_stranger_key_with_right_serial(merchant_keys, sides):
    headers, body = signed(sides["M1"])
    headers = wechat_headers(sides["M1"], body, TS, key=rsa_key("stranger"))
    assert rejection(merchant_keys, "M1", headers, body).status == 401


def test_wrong_apiv3_key(merchant_keys, sides):
    side = sides["M1"]
    txn = wechat_transaction(side, "PGORDER1", "4200001", 5000)
    body = wechat_body(side, txn, apiv3_key=sides["M2"].apiv3_key)
    problem = rejection(merchant_keys, "M1", wechat_headers(side, body, TS), body)
    assert (problem.status, problem.code) == (400, "MALFORMED")
    assert "decrypt" in problem.message


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"mchid": "1900000002"}, 409),
        ({"appid": "wx0000000000000002"}, 409),
        ({"trade_state": "NOTPAY"}, 422),
        ({"trade_state": "REFUND"}, 422),
        ({"amount": {"total": 0, "currency": "CNY"}}, 400),
        ({"amount": {"total": 12.5, "currency": "CNY"}}, 400),
        ({"amount": {"total": True, "currency": "CNY"}}, 400),
        ({"amount": {"total": 100, "currency": "USD"}}, 409),
        ({"amount": "100"}, 400),
        ({"transaction_id": ""}, 400),
        ({"out_trade_no": None}, 400),
    ],
)
def test_transaction_fields_checked(merchant_keys, sides, changes, status):
    headers, body = signed(sides["M1"], **changes)
    assert rejection(merchant_keys, "M1", headers, body).status == status


def test_other_event_type(merchant_keys, sides):
    side = sides["M1"]
    body = wechat_body(side, wechat_transaction(side, "O", "T", 1), event_type="REFUND.SUCCESS")
    assert rejection(merchant_keys, "M1", wechat_headers(side, body, TS), body).status == 422


def signed_envelope(side: ProviderSide, envelope: object) -> tuple[dict[str, str], bytes]:
    body = json.dumps(envelope).encode()
    return wechat_headers(side, body, TS), body


def test_bad_base64_ciphertext(merchant_keys, sides):
    side = sides["M1"]
    envelope = json.loads(signed(side)[1])
    envelope["resource"]["ciphertext"] = "%%%not base64%%%"
    problem = rejection(merchant_keys, "M1", *signed_envelope(side, envelope))
    assert problem.status == 400
    assert "base64" in problem.message


def test_wrong_aes_tag(merchant_keys, sides):
    side = sides["M1"]
    envelope = json.loads(signed(side)[1])
    sealed = bytearray(base64.b64decode(envelope["resource"]["ciphertext"]))
    sealed[-1] ^= 0x01
    envelope["resource"]["ciphertext"] = base64.b64encode(bytes(sealed)).decode()
    problem = rejection(merchant_keys, "M1", *signed_envelope(side, envelope))
    assert problem.status == 400
    assert "decrypt" in problem.message


def test_wrong_associated_data(merchant_keys, sides):
    side = sides["M1"]
    envelope = json.loads(signed(side)[1])
    envelope["resource"]["associated_data"] = "certificate"
    assert rejection(merchant_keys, "M1", *signed_envelope(side, envelope)).status == 400


@pytest.mark.parametrize(
    "envelope",
    [
        {"id": "EV", "event_type": "TRANSACTION.SUCCESS"},
        {"id": "EV", "event_type": "TRANSACTION.SUCCESS", "resource": "x"},
        {"id": "EV", "event_type": "TRANSACTION.SUCCESS", "resource": {"algorithm": "RSA"}},
        {"event_type": "TRANSACTION.SUCCESS", "resource": {}},
        [1, 2, 3],
    ],
)
def test_malformed_envelopes(merchant_keys, sides, envelope):
    assert rejection(merchant_keys, "M1", *signed_envelope(sides["M1"], envelope)).status == 400


def test_short_gcm_nonce(merchant_keys, sides):
    side = sides["M1"]
    envelope = json.loads(signed(side)[1])
    envelope["resource"] = encrypt_resource(side.apiv3_key, b"{}")
    envelope["resource"]["nonce"] = "abc"
    assert rejection(merchant_keys, "M1", *signed_envelope(side, envelope)).status == 400


@pytest.mark.parametrize(
    "missing", ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"]
)
def test_missing_header(merchant_keys, sides, missing):
    headers, body = signed(sides["M1"])
    del headers[missing]
    problem = rejection(merchant_keys, "M1", headers, body)
    assert problem.status == 400
    assert missing.lower() in problem.message


def test_timestamp_not_a_number(merchant_keys, sides):
    headers, body = signed(sides["M1"])
    headers["Wechatpay-Timestamp"] = "1.7e9"
    assert rejection(merchant_keys, "M1", headers, body).status == 400


def test_decrypt_round_trip(sides):
    key = sides["M1"].apiv3_key
    assert decrypt_resource(key, encrypt_resource(key, b"hello")) == b"hello"


@given(
    body=st.binary(max_size=512), extra=st.dictionaries(st.text(max_size=20), st.text(max_size=40))
)
def test_arbitrary_input_only_rejected(merchant_keys, sides, body, extra):
    """Any body and headers give a payment or CallbackRejected, never another exception."""
    headers = wechat_headers(sides["M1"], body, TS)
    headers.update(extra)
    try:
        verify_wechat_notification(merchant_keys.wechat("M1"), headers, body, now=NOW)
    except CallbackRejected as problem:
        assert 400 <= problem.status < 500


@given(st.binary(max_size=600))
def test_arbitrary_signed_json_only_rejected(merchant_keys, sides, noise):
    """A correctly signed but arbitrary body is refused cleanly."""
    body = noise
    headers = wechat_headers(sides["M1"], body, TS)
    with pytest.raises(CallbackRejected):
        verify_wechat_notification(merchant_keys.wechat("M1"), headers, body, now=NOW)
