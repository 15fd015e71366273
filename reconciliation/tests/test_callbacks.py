"""Payment callbacks over HTTP with real signatures: WeChat Pay v3, Alipay RSA2, generic HMAC."""

import json
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from orders.models import OrderEvent, Status
from orders.tests.factories import make_order
from reconciliation.models import Discrepancy, FundVoucher, PaymentCallback
from reconciliation.providers import testing

pytestmark = pytest.mark.django_db

API_V3_KEY = "0123456789abcdef0123456789abcdef"
SERIAL = "5157F09EFDC096DE15EBE81A47057A72"
GENERIC_SECRET = "generic-test-secret"


@pytest.fixture(scope="module")
def wechat_keys():
    return testing.generate_rsa_keypair()


@pytest.fixture(scope="module")
def alipay_keys():
    return testing.generate_rsa_keypair()


@pytest.fixture(autouse=True)
def provider_settings(settings, wechat_keys, alipay_keys):
    settings.OMS_WECHATPAY_API_V3_KEY = API_V3_KEY
    settings.OMS_WECHATPAY_PLATFORM_KEYS = {SERIAL: testing.public_key_pem(wechat_keys[1])}
    settings.OMS_ALIPAY_PUBLIC_KEY = testing.public_key_pem(alipay_keys[1]).decode()
    settings.OMS_ALIPAY_APP_ID = "2021000000000001"
    settings.OMS_PAYMENT_GENERIC_SECRET = GENERIC_SECRET


def unpaid(payable="88.80"):
    return make_order(status="pending_payment", payable=Decimal(payable))


def wechat_post(order, fen, wechat_keys, transaction_id="4200001234202611220000000001", **kwargs):
    transaction = {
        "appid": "wx1234567890", "mchid": "1900000001", "out_trade_no": order.order_no,
        "transaction_id": transaction_id, "trade_type": "JSAPI", "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功", "bank_type": "CMC", "success_time": timezone.now().isoformat(),
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": fen, "payer_total": fen, "currency": "CNY", "payer_currency": "CNY"},
    }
    headers, body = testing.wechatpay_notification(
        transaction, platform_private_key=wechat_keys[0], serial=SERIAL, api_v3_key=API_V3_KEY, **kwargs
    )
    return APIClient().generic("POST", "/api/v1/payments/notify/wechatpay/", body,
                               content_type="application/json",
                               headers={k: v for k, v in headers.items() if k.lower() != "content-type"})


def test_wechatpay_payment_is_booked_and_answered_as_wechat_expects(wechat_keys):
    order = unpaid("88.80")
    reply = wechat_post(order, 8880, wechat_keys)
    assert reply.status_code in (200, 204) and reply.content == b""
    order.refresh_from_db()
    assert order.status == Status.PAID
    voucher = FundVoucher.objects.get()
    assert (voucher.amount, voucher.provider, voucher.order) == (Decimal("88.80"), "wechatpay", order)
    assert voucher.raw["resource"]["transaction_id"] == voucher.transaction_no


def test_wechatpay_repeats_get_success_and_book_nothing_more(wechat_keys):
    order = unpaid("88.80")
    replies = [wechat_post(order, 8880, wechat_keys).status_code for _ in range(3)]
    assert set(replies) <= {200, 204}
    assert FundVoucher.objects.count() == 1
    assert OrderEvent.objects.filter(order=order, to_state="paid").count() == 1
    assert list(PaymentCallback.objects.order_by("id").values_list("outcome", flat=True)) == [
        "created", "duplicate", "duplicate"]


def test_a_forged_wechatpay_callback_is_refused_and_logged(wechat_keys):
    order = unpaid()
    forger = testing.generate_rsa_keypair()
    reply = wechat_post(order, 8880, forger)
    assert reply.status_code == 401
    assert json.loads(reply.content)["code"] == "FAIL"
    assert FundVoucher.objects.count() == 0
    assert PaymentCallback.objects.get().outcome == "rejected"


def test_a_stale_wechatpay_timestamp_is_refused(wechat_keys):
    reply = wechat_post(unpaid(), 8880, wechat_keys, timestamp=int(timezone.now().timestamp()) - 3600)
    assert reply.status_code == 401 and FundVoucher.objects.count() == 0


def test_a_wrong_amount_over_wechatpay_leaves_the_order_unpaid(wechat_keys):
    order = unpaid("88.80")
    assert wechat_post(order, 8850, wechat_keys).status_code in (200, 204)
    order.refresh_from_db()
    assert order.status == Status.PENDING_PAYMENT
    assert FundVoucher.objects.get().status == "pending_check"


def alipay_form(order, amount, alipay_keys, trade_no="2026112222001400000000000001", **extra):
    params = {
        "notify_time": timezone.localtime().strftime("%Y-%m-%d %H:%M:%S"), "notify_type": "trade_status_sync",
        "notify_id": uuid.uuid4().hex, "app_id": "2021000000000001", "charset": "utf-8",
        "version": "1.0", "trade_no": trade_no, "out_trade_no": order.order_no,
        "trade_status": "TRADE_SUCCESS", "total_amount": amount, "receipt_amount": amount,
        "gmt_create": "2026-11-22 09:59:00", "gmt_payment": "2026-11-22 09:59:30", **extra,
    }
    return testing.alipay_notification(params, private_key=alipay_keys[0])


def test_alipay_payment_answers_success(alipay_keys):
    order = unpaid("12.30")
    reply = APIClient().post("/api/v1/payments/notify/alipay/", alipay_form(order, "12.30", alipay_keys))
    assert reply.content == b"success"
    order.refresh_from_db()
    assert order.status == Status.PAID


def test_alipay_tampered_amount_is_refused(alipay_keys):
    order = unpaid("12.30")
    form = alipay_form(order, "12.30", alipay_keys)
    form["total_amount"] = "0.01"
    reply = APIClient().post("/api/v1/payments/notify/alipay/", form)
    assert reply.content == b"fail" and FundVoucher.objects.count() == 0


def test_alipay_wait_buyer_pay_books_nothing_but_stops_retries(alipay_keys):
    order = unpaid("12.30")
    form = alipay_form(order, "12.30", alipay_keys, trade_status="WAIT_BUYER_PAY")
    reply = APIClient().post("/api/v1/payments/notify/alipay/", form)
    assert reply.content == b"success" and FundVoucher.objects.count() == 0


def generic_post(body, secret=GENERIC_SECRET):
    headers, raw = testing.generic_notification(body, secret=secret)
    return APIClient().generic("POST", "/api/v1/payments/notify/generic/", raw,
                               content_type="application/json",
                               headers={k: v for k, v in headers.items() if k.startswith("X-OMS")})


def test_generic_callback_books_once_and_refuses_bad_signatures():
    order = unpaid("5.00")
    body = {"transaction_no": "GEN-1", "order_no": order.order_no, "amount": "5.00",
            "currency": "CNY", "paid_at": timezone.now().isoformat(), "provider": "minipay"}
    assert generic_post(body).status_code == 200
    assert generic_post(body).status_code == 200
    assert generic_post(body, secret="wrong").status_code == 401
    assert FundVoucher.objects.get().provider == "minipay"
    assert PaymentCallback.objects.filter(outcome="rejected").count() == 1


def test_generic_callback_names_the_bad_field():
    reply = generic_post({"transaction_no": "GEN-2", "order_no": "X", "amount": "abc",
                          "currency": "CNY", "paid_at": timezone.now().isoformat()})
    assert reply.status_code == 400 and "amount" in reply.json()["detail"]


def test_an_unconfigured_provider_refuses_everything(settings):
    settings.OMS_PAYMENT_GENERIC_SECRET = ""
    reply = generic_post({"transaction_no": "GEN-3"}, secret="anything")
    assert reply.status_code == 401 and FundVoucher.objects.count() == 0


def alipay_refund(order, alipay_keys, out_biz_no, refund_fee, **extra):
    return alipay_form(order, "30.00", alipay_keys, refund_fee=refund_fee, out_biz_no=out_biz_no,
                       gmt_refund="2026-11-22 11:00:00", **extra)


def post_alipay(form):
    reply = APIClient().post("/api/v1/payments/notify/alipay/", form)
    assert reply.content == b"success"


def refunds_of(order):
    return sorted(FundVoucher.objects.filter(order=order, kind="refund").values_list(
        "transaction_no", "amount", "status"))


def test_alipay_refunds_in_order_are_each_booked_at_their_own_amount(alipay_keys):
    order = unpaid("30.00")
    post_alipay(alipay_form(order, "30.00", alipay_keys))
    post_alipay(alipay_refund(order, alipay_keys, "RF-A", "10.00"))
    post_alipay(alipay_refund(order, alipay_keys, "RF-B", "30.00"))
    assert refunds_of(order) == [("RF-A", Decimal("-10.00"), "confirmed"), ("RF-B", Decimal("-20.00"), "confirmed")]


def test_alipay_refunds_out_of_order_never_book_a_positive_refund_and_are_checked(alipay_keys):
    # Refunds of 10 then 20; the second notice (running total 30) arrives first. It was booked
    # −30 and −(−20)=+20 before: now the total stays right and the late one waits for a check.
    order = unpaid("30.00")
    post_alipay(alipay_form(order, "30.00", alipay_keys))
    post_alipay(alipay_refund(order, alipay_keys, "RF-B", "30.00"))
    post_alipay(alipay_refund(order, alipay_keys, "RF-A", "10.00"))

    assert refunds_of(order) == [("RF-A", Decimal("-10.00"), "pending_check"), ("RF-B", Decimal("-30.00"), "confirmed")]
    order.refresh_from_db()
    assert order.refunded_amount == Decimal("30.00")
    difference = Discrepancy.objects.get(transaction_no="RF-A")
    assert "RF-B" in difference.detail


def test_alipay_send_back_fee_is_the_refunds_own_amount_whatever_the_order(alipay_keys):
    order = unpaid("30.00")
    post_alipay(alipay_form(order, "30.00", alipay_keys))
    post_alipay(alipay_refund(order, alipay_keys, "RF-B", "30.00", send_back_fee="20.00"))
    post_alipay(alipay_refund(order, alipay_keys, "RF-A", "10.00", send_back_fee="10.00"))
    assert refunds_of(order) == [("RF-A", Decimal("-10.00"), "confirmed"), ("RF-B", Decimal("-20.00"), "confirmed")]
