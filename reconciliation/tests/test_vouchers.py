from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from oms.errors import Conflict, Invalid
from oms.tests.factories import UserFactory
from orders.models import OrderEvent, Status
from orders.tests.factories import make_order
from reconciliation.models import (
    Discrepancy,
    DiscrepancyKind,
    FundVoucher,
    PaymentCallback,
    VoucherKind,
    VoucherStatus,
)
from reconciliation.tests.factories import notice, pay
from reconciliation.vouchers import accept_voucher, received_amount, record_notice, reverse_voucher

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance():
    return UserFactory(role="finance")


def unpaid(payable="99.00"):
    return make_order(status="pending_payment", payable=Decimal(payable))


def test_a_payment_marks_the_order_paid_and_reserves_its_stock():
    order = unpaid()
    voucher, outcome = record_notice(notice(order.order_no, "99.00"))
    order.refresh_from_db()
    assert outcome == "created"
    assert order.status == Status.PAID
    assert voucher.order == order and voucher.status == VoucherStatus.CONFIRMED
    assert received_amount(order) == Decimal("99.00")
    assert order.reservations.filter(status="active").exists()
    event = OrderEvent.objects.filter(order=order, kind="payment").get()
    assert voucher.transaction_no in event.summary


def test_repeats_make_one_voucher_and_pay_once():
    order = unpaid()
    same = notice(order.order_no, "99.00")
    outcomes = [record_notice(same)[1] for _ in range(5)]
    assert outcomes == ["created"] + ["duplicate"] * 4
    assert FundVoucher.objects.count() == 1
    assert OrderEvent.objects.filter(order=order, to_state="paid").count() == 1
    assert PaymentCallback.objects.filter(outcome="duplicate").count() == 4


def test_a_wrong_amount_is_kept_but_the_order_stays_unpaid_with_a_discrepancy():
    order = unpaid("99.00")
    voucher, _ = record_notice(notice(order.order_no, "98.70"))
    order.refresh_from_db()
    assert order.status == Status.PENDING_PAYMENT
    assert voucher.status == VoucherStatus.PENDING_CHECK
    assert received_amount(order) == Decimal("0.00")
    mismatch = Discrepancy.objects.get(kind=DiscrepancyKind.AMOUNT_MISMATCH)
    assert (mismatch.expected, mismatch.actual, mismatch.difference) == (
        Decimal("99.00"), Decimal("98.70"), Decimal("-0.30"))
    assert OrderEvent.objects.filter(order=order, kind="alert").exists()


def test_finance_accepts_a_held_payment_with_a_reason(finance):
    order = unpaid("99.00")
    voucher, _ = record_notice(notice(order.order_no, "98.70"))
    with pytest.raises(Invalid):
        accept_voucher(voucher.transaction_no, finance, "  ")
    accept_voucher(voucher.transaction_no, finance, "agreed discount by phone")
    order.refresh_from_db()
    assert order.status == Status.PAID
    assert received_amount(order) == Decimal("98.70")


def test_money_before_its_order_is_kept_unlinked():
    voucher, outcome = record_notice(notice("MP2026112200001", "10.00"))
    assert outcome == "created" and voucher.order is None


def test_a_failed_trade_state_books_nothing():
    order = unpaid()
    voucher, outcome = record_notice(notice(order.order_no, "99.00", succeeded=False))
    assert voucher is None and outcome == "ignored"
    assert FundVoucher.objects.count() == 0
    assert PaymentCallback.objects.get().outcome == "ignored"


def test_reversal_books_the_negative_twin_once(finance):
    order = unpaid()
    voucher = pay(order.order_no, "99.00")
    reversal = reverse_voucher(voucher.transaction_no, "booked twice by the old system", finance)
    voucher.refresh_from_db()
    assert reversal.kind == VoucherKind.REVERSAL and reversal.amount == Decimal("-99.00")
    assert reversal.reverses == voucher and voucher.status == VoucherStatus.REVERSED
    assert received_amount(order) == Decimal("0.00")
    assert OrderEvent.objects.filter(order=order, summary__contains="reversed").exists()
    with pytest.raises(Conflict, match="already reversed"):
        reverse_voucher(voucher.transaction_no, "again", finance)
    with pytest.raises(Conflict, match="itself a reversal"):
        reverse_voucher(reversal.transaction_no, "undo", finance)
    with pytest.raises(Invalid):
        reverse_voucher(pay(order.order_no, "1.00").transaction_no, "", finance)


def test_received_amount_is_always_the_sum_of_the_orders_vouchers(finance):
    order = unpaid("50.00")
    a = pay(order.order_no, "50.00")
    pay(order.order_no, "50.00")  # a second payment of the same order
    record_notice(notice(order.order_no, "20.00", kind="refund"))
    reverse_voucher(a.transaction_no, "duplicate", finance)
    counted = FundVoucher.objects.filter(order=order, status__in=["confirmed", "reversed"])
    assert received_amount(order) == sum(v.amount for v in counted) == Decimal("30.00")


@pytest.mark.postgres
def test_amounts_are_never_edited_in_place_even_by_sql():
    voucher = pay(unpaid().order_no, "99.00")
    with pytest.raises(Exception, match="never edited"), transaction.atomic():
        FundVoucher.objects.filter(pk=voucher.pk).update(amount=Decimal("1.00"))
    with pytest.raises(Exception, match="never deleted"), transaction.atomic(), connection.cursor() as c:
        c.execute("DELETE FROM reconciliation_fundvoucher WHERE id = %s", [voucher.pk])
    FundVoucher.objects.filter(pk=voucher.pk).update(status=VoucherStatus.REVERSED)  # status may move


def test_a_voucher_cannot_be_reversed_twice_even_past_the_service(finance):
    voucher = pay(unpaid().order_no, "99.00")
    reverse_voucher(voucher.transaction_no, "wrong", finance)
    with pytest.raises(IntegrityError), transaction.atomic():
        FundVoucher.objects.create(
            transaction_no="REV-2", provider="x", kind="reversal", amount=Decimal("-99.00"),
            occurred_at=voucher.occurred_at, business_date=voucher.business_date, reverses=voucher,
        )
