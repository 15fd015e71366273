"""Ten identical payment callbacks at once, over HTTP, on PostgreSQL: one voucher, paid once.
Also for money whose order does not exist yet (no order row to lock: the unique transaction
number alone decides)."""

from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from oms.tests.threads import run_together
from orders.models import OrderEvent, Status
from orders.tests.factories import make_order
from reconciliation.models import FundVoucher, PaymentCallback
from reconciliation.providers import testing

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
SECRET = "concurrency-secret"


@pytest.fixture(autouse=True)
def generic_secret(settings):
    settings.OMS_PAYMENT_GENERIC_SECRET = SECRET


def post_callback(body: dict):
    headers, raw = testing.generic_notification(body, secret=SECRET)
    return APIClient().generic("POST", "/api/v1/payments/notify/generic/", raw, content_type="application/json",
                               headers={k: v for k, v in headers.items() if k.startswith("X-OMS")}).status_code


@pytest.mark.parametrize("known_order", [True, False])
def test_ten_concurrent_identical_callbacks_make_one_voucher(known_order):
    order = make_order(status="pending_payment", payable=Decimal("66.60")) if known_order else None
    body = {"transaction_no": "GEN-CONCURRENT-1", "order_no": order.order_no if order else "NOT-YET-1",
            "amount": "66.60", "currency": "CNY", "paid_at": timezone.now().isoformat(), "provider": "minipay"}
    results = run_together([lambda: post_callback(body)] * 10)
    assert [r for r in results if r != ("ok", 200)] == []
    assert FundVoucher.objects.filter(transaction_no="GEN-CONCURRENT-1").count() == 1
    outcomes = sorted(PaymentCallback.objects.values_list("outcome", flat=True))
    assert outcomes == ["created"] + ["duplicate"] * 9
    if order:
        order.refresh_from_db()
        assert order.status == Status.PAID
        assert OrderEvent.objects.filter(order=order, to_state="paid").count() == 1


def test_two_different_payments_of_one_order_at_once_pay_it_once():
    order = make_order(status="pending_payment", payable=Decimal("10.00"))
    bodies = [{"transaction_no": f"GEN-TWIN-{i}", "order_no": order.order_no, "amount": "10.00",
               "currency": "CNY", "paid_at": timezone.now().isoformat()} for i in range(2)]
    run_together([lambda b=b: post_callback(b) for b in bodies])
    order.refresh_from_db()
    assert order.status == Status.PAID
    assert FundVoucher.objects.filter(order=order).count() == 2  # both kept: a duplicate payment
    assert OrderEvent.objects.filter(order=order, to_state="paid").count() == 1
