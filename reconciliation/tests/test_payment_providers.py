"""Payment-provider callbacks: verification and parsing with real RSA signatures and AES-GCM."""

import base64
import json
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.http import QueryDict

from oms import signing
from reconciliation.providers import (
    NoticeError,
    PaymentNotice,
    SignatureError,
    alipay,
    generic,
    wechatpay,
)
from reconciliation.providers import testing as providers_testing

SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
API_V3_KEY = b"0123456789abcdef0123456789abcdef"
APP_ID = "2021000000000001"
SECRET = b"generic-provider-secret"
BEIJING = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def platform_keys():
    """WeChat platform key pair, plus a stranger's, generated once: RSA generation is slow."""
    private, public = providers_testing.generate_rsa_keypair()
    stranger, _ = providers_testing.generate_rsa_keypair()
    return private, public, stranger


@pytest.fixture(scope="module")
def alipay_keys():
    return providers_testing.generate_rsa_keypair()


# --- WeChat Pay -------------------------------------------------------------------------------


def transaction(**changes) -> dict:
    """The decrypted example of the field notes (3.1)."""
    plain = {
        "appid": "wx0000000000000001",
        "mchid": "1900000001",
        "out_trade_no": "MP20250301000123",
        "transaction_id": "4200002500202503010000000001",
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "shop=mini",
        "success_time": "2025-03-01T10:03:39+08:00",
        "payer": {"openid": "oAbc-0001"},
        "amount": {
            "total": 11800,
            "payer_total": 11800,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }
    plain.update(changes)
    return plain


def refund(**changes) -> dict:
    plain = {
        "mchid": "1900000001",
        "out_trade_no": "MP20250301000123",
        "transaction_id": "4200002500202503010000000001",
        "out_refund_no": "RF20250301000001",
        "refund_id": "50300000012025030100000001",
        "refund_status": "SUCCESS",
        "success_time": "2025-03-01T15:20:00+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {"total": 11800, "refund": 5900, "payer_total": 11800, "payer_refund": 5900},
    }
    plain.update(changes)
    return plain


def notify(keys, plain, **options):
    private, _, _ = keys
    options.setdefault("platform_private_key", private)
    return providers_testing.wechatpay_notification(
        plain, serial=SERIAL, api_v3_key=API_V3_KEY, **options
    )


def parse_wechat(keys, headers, body, **options):
    _, public, _ = keys
    options.setdefault("platform_keys", {SERIAL: public})
    options.setdefault("api_v3_key", API_V3_KEY)
    return wechatpay.parse_notification(headers, body, **options)


def signed_envelope(keys, envelope: dict):
    """A body WeChat signed but whose resource we choose, to test decryption on its own."""
    body = json.dumps(envelope, separators=(",", ":")).encode()
    return providers_testing.sign_wechatpay(body, platform_private_key=keys[0], serial=SERIAL), body


def test_wechat_payment_maps_the_transaction(platform_keys):
    headers, body = notify(platform_keys, transaction())

    notice = parse_wechat(platform_keys, headers, body)

    assert notice == PaymentNotice(
        provider="wechatpay",
        transaction_no="4200002500202503010000000001",
        order_no="MP20250301000123",
        amount=Decimal("118.00"),
        currency="CNY",
        occurred_at=datetime(2025, 3, 1, 2, 3, 39, tzinfo=UTC),
        kind="payment",
        succeeded=True,
        raw=notice.raw,
    )
    assert notice.raw["event_type"] == "TRANSACTION.SUCCESS"
    assert notice.raw["resource"] == transaction()
    assert json.loads(json.dumps(notice.raw)) == notice.raw


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [(1, "0.01"), (10, "0.10"), (99, "0.99"), (100, "1.00"), (123456789, "1234567.89")],
)
def test_wechat_fen_convert_exactly(platform_keys, fen, yuan):
    headers, body = notify(platform_keys, transaction(amount={"total": fen, "currency": "CNY"}))

    amount = parse_wechat(platform_keys, headers, body).amount

    assert amount == Decimal(yuan)
    assert str(amount) == yuan


def test_wechat_missing_currency_means_cny(platform_keys):
    headers, body = notify(platform_keys, transaction(amount={"total": 5}))

    assert parse_wechat(platform_keys, headers, body).currency == "CNY"


def test_wechat_refund_success(platform_keys):
    headers, body = notify(platform_keys, refund(), event_type="REFUND.SUCCESS")

    notice = parse_wechat(platform_keys, headers, body)

    assert notice.kind == "refund"
    assert notice.succeeded is True
    assert notice.transaction_no == "50300000012025030100000001"
    assert notice.order_no == "MP20250301000123"
    assert notice.amount == Decimal("59.00")
    assert notice.currency == "CNY"
    assert notice.occurred_at == datetime(2025, 3, 1, 7, 20, tzinfo=UTC)
    assert notice.raw["resource"]["refund_status"] == "SUCCESS"


def test_wechat_closed_refund_is_not_a_success_and_is_dated_by_the_notification(platform_keys):
    stamp = int(time.time())
    plain = refund(refund_status="CLOSED")
    del plain["success_time"]
    headers, body = notify(platform_keys, plain, event_type="REFUND.CLOSED", timestamp=stamp)

    notice = parse_wechat(platform_keys, headers, body)

    assert (notice.kind, notice.succeeded) == ("refund", False)
    assert notice.occurred_at == datetime.fromtimestamp(stamp, UTC)


@pytest.mark.parametrize("state", ["NOTPAY", "CLOSED", "PAYERROR", "USERPAYING", "REVOKED"])
def test_wechat_non_success_trade_state(platform_keys, state):
    plain = transaction(trade_state=state)
    del plain["success_time"]
    headers, body = notify(platform_keys, plain, event_type="TRANSACTION.FAIL")

    notice = parse_wechat(platform_keys, headers, body)

    assert (notice.kind, notice.succeeded) == ("payment", False)


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_wechat_header_names_are_case_insensitive(platform_keys, case):
    headers, body = notify(platform_keys, transaction())

    notice = parse_wechat(platform_keys, {case(k): v for k, v in headers.items()}, body)

    assert notice.succeeded


def test_wechat_accepts_a_platform_key_given_as_pem(platform_keys):
    headers, body = notify(platform_keys, transaction())
    pem = providers_testing.public_key_pem(platform_keys[1])

    assert parse_wechat(platform_keys, headers, body, platform_keys={SERIAL: pem}).succeeded


def test_wechat_tampered_body_is_refused(platform_keys):
    headers, body = notify(platform_keys, transaction())
    tampered = body.replace(b'"summary":"', b'"summary":"x', 1)

    with pytest.raises(SignatureError, match="does not verify"):
        parse_wechat(platform_keys, headers, tampered)


def test_wechat_signature_by_another_key_is_refused(platform_keys):
    headers, body = notify(platform_keys, transaction(), platform_private_key=platform_keys[2])

    with pytest.raises(SignatureError, match="does not verify"):
        parse_wechat(platform_keys, headers, body)


def test_wechat_unknown_serial_is_refused(platform_keys):
    headers, body = notify(platform_keys, transaction())
    headers["Wechatpay-Serial"] = "0000000000000000000000000000000000000000"

    with pytest.raises(SignatureError, match="unknown Wechatpay-Serial"):
        parse_wechat(platform_keys, headers, body)


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-301, False), (-299, True), (299, True), (301, False)]
)
def test_wechat_timestamp_window(platform_keys, offset, accepted):
    now = datetime(2025, 3, 1, 2, 10, tzinfo=UTC)
    stamp = int(now.timestamp()) + offset
    headers, body = notify(platform_keys, transaction(), timestamp=stamp)

    if accepted:
        assert parse_wechat(platform_keys, headers, body, now=now).succeeded
    else:
        with pytest.raises(SignatureError, match="outside"):
            parse_wechat(platform_keys, headers, body, now=now)


def test_wechat_skew_is_configurable(platform_keys):
    now = datetime(2025, 3, 1, 2, 10, tzinfo=UTC)
    headers, body = notify(platform_keys, transaction(), timestamp=int(now.timestamp()) - 60)

    with pytest.raises(SignatureError):
        parse_wechat(platform_keys, headers, body, now=now, max_skew_seconds=30)


@pytest.mark.parametrize(
    "name", ["Wechatpay-Serial", "Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce"]
)
def test_wechat_missing_header_is_refused(platform_keys, name):
    headers, body = notify(platform_keys, transaction())
    del headers[name]

    with pytest.raises(SignatureError, match=name):
        parse_wechat(platform_keys, headers, body)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # WeChat's own probe: it checks that merchants really verify.
        ("Wechatpay-Signature", "WECHATPAY/SIGNTEST/abc=="),
        ("Wechatpay-Timestamp", "1e9"),
        ("Wechatpay-Signature-Type", "WECHATPAY2-SM2-WITH-SM3"),
    ],
)
def test_wechat_malformed_header_is_refused(platform_keys, name, value):
    headers, body = notify(platform_keys, transaction())
    headers[name] = value

    with pytest.raises(SignatureError):
        parse_wechat(platform_keys, headers, body)


def test_wechat_tampered_ciphertext_fails_the_gcm_tag(platform_keys):
    _, body = notify(platform_keys, transaction())
    envelope = json.loads(body)
    ciphertext = bytearray(base64.b64decode(envelope["resource"]["ciphertext"]))
    ciphertext[3] ^= 0x01
    envelope["resource"]["ciphertext"] = base64.b64encode(bytes(ciphertext)).decode()
    headers, body = signed_envelope(platform_keys, envelope)

    with pytest.raises(SignatureError, match="decrypt"):
        parse_wechat(platform_keys, headers, body)


@pytest.mark.parametrize(
    ("field", "value"),
    [("associated_data", "refund"), ("nonce", "AAAAAAAAAAAA"), ("ciphertext", "not base64!")],
)
def test_wechat_tampered_resource_fails_to_decrypt(platform_keys, field, value):
    _, body = notify(platform_keys, transaction())
    envelope = json.loads(body)
    envelope["resource"][field] = value
    headers, body = signed_envelope(platform_keys, envelope)

    with pytest.raises(SignatureError, match="decrypt"):
        parse_wechat(platform_keys, headers, body)


def test_wechat_wrong_api_v3_key_fails_to_decrypt(platform_keys):
    headers, body = notify(platform_keys, transaction())

    with pytest.raises(SignatureError, match="decrypt"):
        parse_wechat(platform_keys, headers, body, api_v3_key=b"f" * 32)


def test_wechat_api_v3_key_of_the_wrong_size_is_a_configuration_error(platform_keys):
    headers, body = notify(platform_keys, transaction())

    with pytest.raises(ValueError, match="32 bytes"):
        parse_wechat(platform_keys, headers, body, api_v3_key=b"short")


def test_wechat_api_v3_key_may_be_text(platform_keys):
    headers, body = notify(platform_keys, transaction())

    assert parse_wechat(platform_keys, headers, body, api_v3_key=API_V3_KEY.decode()).succeeded


@pytest.mark.parametrize("field", ["transaction_id", "out_trade_no", "trade_state", "amount"])
def test_wechat_missing_transaction_field_is_named(platform_keys, field):
    plain = transaction()
    del plain[field]
    headers, body = notify(platform_keys, plain)

    with pytest.raises(NoticeError, match=f"^{field}"):
        parse_wechat(platform_keys, headers, body)


def test_wechat_success_without_success_time_is_refused(platform_keys):
    plain = transaction()
    del plain["success_time"]
    headers, body = notify(platform_keys, plain)

    with pytest.raises(NoticeError, match="^success_time"):
        parse_wechat(platform_keys, headers, body)


@pytest.mark.parametrize("field", ["refund_id", "out_trade_no", "refund_status"])
def test_wechat_missing_refund_field_is_named(platform_keys, field):
    plain = refund()
    del plain[field]
    headers, body = notify(platform_keys, plain, event_type="REFUND.SUCCESS")

    with pytest.raises(NoticeError, match=f"^{field}"):
        parse_wechat(platform_keys, headers, body)


@pytest.mark.parametrize("total", ["11800", 118.0, 0, -1, True, None])
def test_wechat_bad_amount_is_refused(platform_keys, total):
    headers, body = notify(platform_keys, transaction(amount={"total": total, "currency": "CNY"}))

    with pytest.raises(NoticeError, match=r"^amount\.total"):
        parse_wechat(platform_keys, headers, body)


def test_wechat_unknown_event_type_is_refused(platform_keys):
    headers, body = notify(platform_keys, transaction(), event_type="PROFITSHARING.SUCCESS")

    with pytest.raises(NoticeError, match="^event_type"):
        parse_wechat(platform_keys, headers, body)


def test_wechat_signed_body_that_is_not_json_is_a_notice_error(platform_keys):
    body = b"<xml>v2</xml>"
    headers = providers_testing.sign_wechatpay(
        body, platform_private_key=platform_keys[0], serial=SERIAL
    )

    with pytest.raises(NoticeError, match="^body"):
        parse_wechat(platform_keys, headers, body)


def test_wechat_replies():
    assert wechatpay.success_reply() == (200, b"")
    status, body = wechatpay.failure_reply("验签失败", status=401)
    assert status == 401
    assert json.loads(body) == {"code": "FAIL", "message": "验签失败"}
    assert wechatpay.failure_reply()[0] == 500
    with pytest.raises(ValueError):
        wechatpay.failure_reply("ok?", status=200)


def self_signed_certificate(private_key) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    start = datetime(2025, 1, 1, tzinfo=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(int(SERIAL, 16))
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365))
        .sign(private_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_load_public_key_forms(platform_keys):
    private, public, _ = platform_keys
    pem = providers_testing.public_key_pem(public)
    pkcs1 = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bare_base64 = base64.b64encode(der).decode()  # how the Alipay console shows its key

    for form in (pem, pem.decode(), pkcs1, self_signed_certificate(private), bare_base64):
        assert wechatpay.load_public_key(form).public_numbers() == public.public_numbers()


def test_load_public_key_refuses_garbage_and_non_rsa_keys():
    with pytest.raises(ValueError):
        wechatpay.load_public_key(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValueError, match="RSA"):
        wechatpay.load_public_key(ec_pem)


# --- Alipay -----------------------------------------------------------------------------------


def alipay_now(shift: timedelta = timedelta(0)) -> str:
    """notify_time is the send time (Shanghai): a fresh notice's is now."""
    return (datetime.now(UTC) + timedelta(hours=8) + shift).strftime("%Y-%m-%d %H:%M:%S")


def alipay_params(**changes) -> dict:
    """The example body of the field notes (3.2), unsigned."""
    params = {
        "notify_type": "trade_status_sync",
        "notify_id": "2025030100222102221000000000001",
        "notify_time": alipay_now(),
        "app_id": APP_ID,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": "2025030122001400000000000001",
        "out_trade_no": "MP20250301000124",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "59.00",
        "receipt_amount": "59.00",
        "buyer_pay_amount": "59.00",
        "gmt_create": "2025-03-01 10:02:11",
        "gmt_payment": "2025-03-01 10:02:20",
        "seller_id": "2088000000000002",
        "subject": "订单MP20250301000124 纯棉T恤 & 袜子",
    }
    params.update(changes)
    return {key: value for key, value in params.items() if value is not None}


def alipay_form(keys, **changes) -> dict:
    return providers_testing.alipay_notification(alipay_params(**changes), private_key=keys[0])


def parse_alipay(keys, form, **options):
    return alipay.parse_notification(form, alipay_public_key=keys[1], **options)


def test_alipay_payment_maps_the_notice(alipay_keys):
    form = alipay_form(alipay_keys)

    notice = parse_alipay(alipay_keys, form, app_id=APP_ID)

    assert notice == PaymentNotice(
        provider="alipay",
        transaction_no="2025030122001400000000000001",
        order_no="MP20250301000124",
        amount=Decimal("59.00"),
        currency="CNY",
        occurred_at=datetime(2025, 3, 1, 2, 2, 20, tzinfo=UTC),
        kind="payment",
        succeeded=True,
        raw=form,
    )
    assert json.loads(json.dumps(notice.raw)) == form


def test_alipay_url_encoded_post_through_django_querydict(alipay_keys):
    """The form as a view gets it: percent-encoded on the wire, decoded by Django."""
    wire = urlencode(alipay_form(alipay_keys))
    assert "%26" in wire  # the "&" inside subject travels encoded

    notice = parse_alipay(alipay_keys, QueryDict(wire), app_id=APP_ID)

    assert notice.amount == Decimal("59.00")
    assert notice.raw["subject"] == "订单MP20250301000124 纯棉T恤 & 袜子"


def test_alipay_sign_with_plus_decoded_to_space_still_verifies(alipay_keys):
    for attempt in range(100):
        form = alipay_form(alipay_keys, notify_id=f"2025030100222102221{attempt:012d}")
        if "+" in form["sign"]:
            break
    form["sign"] = form["sign"].replace("+", " ")

    assert parse_alipay(alipay_keys, form).succeeded


def test_alipay_empty_values_are_not_signed(alipay_keys):
    form = alipay_form(alipay_keys)
    form["passback_params"] = ""

    assert parse_alipay(alipay_keys, form).succeeded


def test_alipay_trade_finished_is_paid(alipay_keys):
    notice = parse_alipay(alipay_keys, alipay_form(alipay_keys, trade_status="TRADE_FINISHED"))

    assert (notice.kind, notice.succeeded) == ("payment", True)


def test_alipay_wait_buyer_pay_is_not_paid(alipay_keys):
    form = alipay_form(alipay_keys, trade_status="WAIT_BUYER_PAY", gmt_payment=None)

    notice = parse_alipay(alipay_keys, form)

    assert (notice.kind, notice.succeeded) == ("payment", False)
    assert notice.occurred_at == datetime(2025, 3, 1, 10, 2, 11, tzinfo=BEIJING)


def test_alipay_closed_unpaid_trade_is_not_paid(alipay_keys):
    form = alipay_form(
        alipay_keys, trade_status="TRADE_CLOSED", gmt_payment=None, gmt_close="2025-03-01 10:32:11"
    )

    notice = parse_alipay(alipay_keys, form)

    assert (notice.kind, notice.succeeded) == ("payment", False)
    assert notice.occurred_at == datetime(2025, 3, 1, 10, 32, 11, tzinfo=BEIJING)


def test_alipay_partial_refund(alipay_keys):
    form = alipay_form(
        alipay_keys,
        refund_fee="20.10",
        gmt_refund="2025-03-02 09:00:00",
        out_biz_no="RF20250302000001",
    )

    notice = parse_alipay(alipay_keys, form)

    assert notice.kind == "refund"
    assert notice.succeeded is True
    assert notice.transaction_no == "RF20250302000001"
    assert notice.order_no == "MP20250301000124"
    assert notice.amount == Decimal("20.10")
    assert notice.occurred_at == datetime(2025, 3, 2, 1, 0, tzinfo=UTC)


def test_alipay_full_refund_closes_the_trade(alipay_keys):
    form = alipay_form(
        alipay_keys,
        trade_status="TRADE_CLOSED",
        refund_fee="59.00",
        gmt_refund="2025-03-02 09:00:00",
        gmt_close="2025-03-02 09:00:00",
        out_biz_no="RF20250302000002",
    )

    notice = parse_alipay(alipay_keys, form)

    assert (notice.kind, notice.succeeded, notice.amount) == ("refund", True, Decimal("59.00"))


def test_alipay_zero_refund_fee_on_a_payment_is_still_a_payment(alipay_keys):
    notice = parse_alipay(alipay_keys, alipay_form(alipay_keys, refund_fee="0.00"))

    assert (notice.kind, notice.amount) == ("payment", Decimal("59.00"))


def test_alipay_bad_refund_fee_is_named(alipay_keys):
    form = alipay_form(alipay_keys, refund_fee="ten", out_biz_no="RF1", gmt_refund=None)

    with pytest.raises(NoticeError, match="^refund_fee"):
        parse_alipay(alipay_keys, form)


def test_alipay_refund_without_out_biz_no_is_refused(alipay_keys):
    form = alipay_form(alipay_keys, refund_fee="1.00", gmt_refund="2025-03-02 09:00:00")

    with pytest.raises(NoticeError, match="^out_biz_no"):
        parse_alipay(alipay_keys, form)


@pytest.mark.parametrize(
    ("field", "value"),
    [("total_amount", "590.00"), ("trade_status", "TRADE_FINISHED"), ("out_trade_no", "MP2")],
)
def test_alipay_tampered_value_is_refused(alipay_keys, field, value):
    form = alipay_form(alipay_keys)
    form[field] = value

    with pytest.raises(SignatureError, match="does not verify"):
        parse_alipay(alipay_keys, form)


def test_alipay_added_parameter_is_refused(alipay_keys):
    form = alipay_form(alipay_keys)
    form["refund_fee"] = "59.00"

    with pytest.raises(SignatureError):
        parse_alipay(alipay_keys, form)


def test_alipay_signature_by_another_key_is_refused(alipay_keys, platform_keys):
    form = providers_testing.alipay_notification(alipay_params(), private_key=platform_keys[2])

    with pytest.raises(SignatureError, match="does not verify"):
        parse_alipay(alipay_keys, form)


@pytest.mark.parametrize(
    "changes",
    [{"sign_type": "RSA"}, {"sign_type": None}, {"sign": None}, {"sign": "%%%"}],
    ids=["rsa1", "no-sign-type", "no-sign", "not-base64"],
)
def test_alipay_missing_or_weak_signature_is_refused(alipay_keys, changes):
    form = alipay_form(alipay_keys)
    for field, value in changes.items():
        if value is None:
            del form[field]
        else:
            form[field] = value

    with pytest.raises(SignatureError):
        parse_alipay(alipay_keys, form)


def test_alipay_other_app_id_is_refused(alipay_keys):
    form = alipay_form(alipay_keys, app_id="2021000000000999")

    assert parse_alipay(alipay_keys, form).succeeded  # not checked unless asked
    with pytest.raises(SignatureError, match="app_id"):
        parse_alipay(alipay_keys, form, app_id=APP_ID)


def test_alipay_key_may_be_given_as_text(alipay_keys):
    der = alipay_keys[1].public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    notice = alipay.parse_notification(
        alipay_form(alipay_keys), alipay_public_key=base64.b64encode(der).decode()
    )

    assert notice.succeeded


@pytest.mark.parametrize(
    "field", ["out_trade_no", "trade_no", "trade_status", "total_amount", "gmt_payment"]
)
def test_alipay_missing_field_is_named(alipay_keys, field):
    form = alipay_form(alipay_keys, **{field: None})

    with pytest.raises(NoticeError, match=f"^{field}"):
        parse_alipay(alipay_keys, form)


@pytest.mark.parametrize(
    "amount", ["1.005", "abc", "-1.00", "0.00", "1e3", "1_000", " 1.00", "NaN"]
)
def test_alipay_bad_amount_is_refused(alipay_keys, amount):
    with pytest.raises(NoticeError, match="^total_amount"):
        parse_alipay(alipay_keys, alipay_form(alipay_keys, total_amount=amount))


def test_alipay_unknown_trade_status_is_refused(alipay_keys):
    with pytest.raises(NoticeError, match="^trade_status"):
        parse_alipay(alipay_keys, alipay_form(alipay_keys, trade_status="TRADE_PENDING"))


def test_alipay_bad_time_is_refused(alipay_keys):
    with pytest.raises(NoticeError, match="^gmt_payment"):
        parse_alipay(alipay_keys, alipay_form(alipay_keys, gmt_payment="2025-03-01T10:02:20"))


def test_alipay_yuan_amounts_add_up_exactly(alipay_keys):
    amounts = [
        parse_alipay(alipay_keys, alipay_form(alipay_keys, total_amount=value)).amount
        for value in ("0.10", "0.20", "0.01", "0.1")
    ]

    assert amounts[0] + amounts[1] == Decimal("0.30")
    assert str(amounts[2]) == "0.01"
    assert str(amounts[3]) == "0.10"


def test_alipay_reply_is_the_seven_bytes():
    assert alipay.SUCCESS_REPLY == b"success"


# --- generic ----------------------------------------------------------------------------------


def generic_body(**changes) -> dict:
    body = {
        "transaction_no": "GW20250301000001",
        "order_no": "MP20250301000125",
        "amount": "88.80",
        "currency": "CNY",
        "paid_at": "2025-03-01T10:05:00+08:00",
        "provider": "lakala",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def generic_request(**changes):
    return providers_testing.generic_notification(generic_body(**changes), secret=SECRET)


def test_generic_payment_maps_the_body():
    headers, body = generic_request()

    notice = generic.parse_notification(headers, body, secret=SECRET)

    assert notice == PaymentNotice(
        provider="lakala",
        transaction_no="GW20250301000001",
        order_no="MP20250301000125",
        amount=Decimal("88.80"),
        currency="CNY",
        occurred_at=datetime(2025, 3, 1, 2, 5, tzinfo=UTC),
        kind="payment",
        succeeded=True,
        raw=generic_body(),
    )


def test_generic_defaults_provider_and_accepts_refunds():
    headers, body = generic_request(provider=None, kind="refund")

    notice = generic.parse_notification(headers, body, secret=SECRET)

    assert (notice.provider, notice.kind) == ("generic", "refund")


def test_generic_json_numbers_are_exact():
    amounts = []
    for value in (0.1, 0.2, 5):
        headers, body = generic_request(amount=value)
        amounts.append(generic.parse_notification(headers, body, secret=SECRET))

    assert amounts[0].amount + amounts[1].amount == Decimal("0.30")
    assert amounts[2].amount == Decimal("5.00")
    assert json.loads(json.dumps(amounts[0].raw)) == amounts[0].raw


def test_generic_number_finer_than_a_fen_is_refused_not_rounded():
    body = (
        b'{"transaction_no":"T","order_no":"O","amount":0.105,"currency":"CNY",'
        b'"paid_at":"2025-03-01T10:05:00Z"}'
    )
    headers = signing.sign(SECRET, body)

    with pytest.raises(NoticeError, match="^amount"):
        generic.parse_notification(headers, body, secret=SECRET)


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_generic_header_and_hex_case_insensitive(case):
    headers, body = generic_request()
    value = headers["X-OMS-Signature"]
    headers = {case("X-OMS-Signature"): "sha256=" + value.removeprefix("sha256=").upper(),
               case("X-OMS-Timestamp"): headers["X-OMS-Timestamp"]}

    assert generic.parse_notification(headers, body, secret=SECRET).succeeded


def test_generic_tampered_body_is_refused():
    headers, body = generic_request()

    with pytest.raises(SignatureError):
        generic.parse_notification(headers, body.replace(b"88.80", b"888.0"), secret=SECRET)


def test_generic_wrong_secret_is_refused():
    headers, body = generic_request()

    with pytest.raises(SignatureError):
        generic.parse_notification(headers, body, secret=b"another secret")


@pytest.mark.parametrize("value", [None, "", "sha1=abc", "deadbeef", "sha256=xyz"])
def test_generic_missing_or_malformed_signature_is_refused(value):
    headers, body = generic_request()
    headers = {} if value is None else {"X-OMS-Signature": value}

    with pytest.raises(SignatureError, match="X-OMS-Signature"):
        generic.parse_notification(headers, body, secret=SECRET)


def test_generic_empty_secret_is_a_configuration_error():
    headers, body = generic_request()

    with pytest.raises(ValueError, match="OMS_PAYMENT_GENERIC_SECRET"):
        generic.parse_notification(headers, body, secret=b"")


@pytest.mark.parametrize("field", ["transaction_no", "order_no", "amount", "currency", "paid_at"])
def test_generic_missing_field_is_named(field):
    headers, body = generic_request(**{field: None})

    with pytest.raises(NoticeError, match=f"^{field}"):
        generic.parse_notification(headers, body, secret=SECRET)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "abc"),
        ("amount", -1),
        ("amount", 0),
        ("amount", True),
        ("amount", "1.005"),
        ("currency", "RMB¥"),
        ("paid_at", "2025-03-01 10:05:00"),
        ("paid_at", "yesterday"),
        ("kind", "chargeback"),
        ("transaction_no", 12345),
        ("provider", ""),
    ],
)
def test_generic_bad_value_is_named(field, value):
    headers, body = generic_request(**{field: value})

    with pytest.raises(NoticeError, match=f"^{field}"):
        generic.parse_notification(headers, body, secret=SECRET)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"amount": NaN}'])
def test_generic_body_that_is_not_a_json_object_is_refused(body):
    headers = signing.sign(SECRET, body)

    with pytest.raises(NoticeError, match="^body"):
        generic.parse_notification(headers, body, secret=SECRET)


def test_generic_signature_is_version_2_and_refuses_a_replay_or_a_version_1_signature():
    body = providers_testing.generic_notification(generic_body(), secret=SECRET)[1]
    stale = signing.sign(SECRET, body, now=time.time() - 301)
    with pytest.raises(SignatureError, match="X-OMS-Timestamp is more than 300 s"):
        generic.parse_notification(stale, body, secret=SECRET)
    with pytest.raises(SignatureError, match="X-OMS-Timestamp"):
        generic.parse_notification(signing.sign(SECRET, body, version=1), body, secret=SECRET)
    assert generic.parse_notification(signing.sign(SECRET, body, now=time.time() - 299), body, secret=SECRET)


def test_alipay_replays_of_old_notices_are_refused(alipay_keys):
    for age, accepted in ((timedelta(hours=-25), True), (timedelta(hours=-27), False),
                          (timedelta(days=-2500), False), (timedelta(minutes=10), False)):
        form = alipay_form(alipay_keys, notify_time=alipay_now(age))
        if accepted:
            assert parse_alipay(alipay_keys, form, app_id=APP_ID).succeeded
        else:
            with pytest.raises(SignatureError, match="notify_time"):
                parse_alipay(alipay_keys, form, app_id=APP_ID)
