"""Money that must go back (issue 14): refunds beyond payments and payments for cancelled orders
are kept (the money moved) but never pass quietly."""

from decimal import Decimal

import pytest

from alerts.engine import check_alerts, ensure_builtin_rules
from alerts.models import Alert
from orders import services
from orders.models import CaseKind, ExceptionCase
from orders.tests.factories import SKUFactory, make_order, ops_actor
from reconciliation.models import Discrepancy, DiscrepancyKind, FundVoucher
from reconciliation.tests.factories import notice
from reconciliation.vouchers import record_notice

pytestmark = pytest.mark.django_db


def paid_order(amount="30.00"):
    order = make_order(status="pending_payment", lines=[(SKUFactory(), 1, amount)])
    record_notice(notice(order.order_no, amount))
    order.refresh_from_db()
    assert order.status == "paid"
    return order


def test_refunds_beyond_the_payments_are_kept_and_raise_a_difference_and_an_alert():
    order = paid_order("30.00")
    record_notice(notice(order.order_no, "20.00", kind="refund"))
    assert not Discrepancy.objects.filter(order_no=order.order_no).exists()

    record_notice(notice(order.order_no, "15.00", kind="refund"))

    assert FundVoucher.objects.filter(order=order, kind="refund").count() == 2  # the money moved
    difference = Discrepancy.objects.get(order_no=order.order_no)
    assert (difference.kind, difference.expected, difference.actual, difference.difference) == (
        DiscrepancyKind.REFUND_EXCEEDS_PAYMENT, Decimal("30.00"), Decimal("35.00"), Decimal("-5.00"))
    ensure_builtin_rules()
    check_alerts()
    assert Alert.objects.filter(rule__code="refund-problem", subject=f"discrepancy:{difference.pk}").exists()


def test_a_payment_for_a_cancelled_order_is_a_refund_owed_with_a_case_and_an_alert():
    order = make_order(status="pending_payment", lines=[(SKUFactory(), 1, "30.00")])
    services.cancel_order(order.order_no, "buyer gave up", ops_actor())

    record_notice(notice(order.order_no, "30.00"))

    order.refresh_from_db()
    assert order.status == "cancelled"
    difference = Discrepancy.objects.get(order_no=order.order_no)
    assert (difference.kind, difference.difference) == (DiscrepancyKind.REFUND_OWED, Decimal("30.00"))
    case = ExceptionCase.objects.get(order=order)
    assert (case.kind, case.owner_role) == (CaseKind.REFUND_OWED, "finance")
    ensure_builtin_rules()
    check_alerts()
    assert Alert.objects.filter(rule__code="refund-problem", subject=f"discrepancy:{difference.pk}").exists()
