"""The classification table: each kind of difference, found once, re-runs change nothing."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.tests.factories import ChannelFactory, make_order
from reconciliation.matching import run_reconciliation
from reconciliation.models import Discrepancy, DiscrepancyStatus
from reconciliation.tests.factories import pay, statement

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 11, 20, 14, 0, tzinfo=timezone.get_current_timezone())
D = DAY.date()


def unpaid(payable):
    return make_order(status="pending_payment", payable=Decimal(payable), placed_at=DAY - timedelta(minutes=5))


def found():
    return {(d.kind, d.transaction_no): (d.expected, d.actual, d.difference)
            for d in Discrepancy.objects.all()}


@pytest.fixture
def day_with_every_difference():
    ok = pay(unpaid("10.00").order_no, "10.00", transaction_no="TX-OK", at=DAY)
    pay(unpaid("20.00").order_no, "20.00", transaction_no="TX-NOT-ON-BILL", at=DAY)
    pay(unpaid("30.00").order_no, "30.00", transaction_no="TX-AMOUNT", at=DAY)
    pay(unpaid("40.00").order_no, "40.00", transaction_no="TX-FEE", at=DAY)
    refund_of = unpaid("50.00")
    pay(refund_of.order_no, "50.00", transaction_no="TX-REFUNDED", at=DAY)
    pay(unpaid("60.00").order_no, "60.00", transaction_no="TX-LATE", at=DAY, delay_seconds=3 * 3600)
    double = unpaid("70.00")
    pay(double.order_no, "70.00", transaction_no="TX-DOUBLE-1", at=DAY)
    pay(double.order_no, "70.00", transaction_no="TX-DOUBLE-2", at=DAY)
    statement([
        ("TX-OK", "10.00", "0.06", DAY, "payment", ok.order_no),
        ("TX-AMOUNT", "29.70", "0", DAY, "payment", ""),
        ("TX-FEE", "39.76", "0.24", DAY, "payment", ""),
        ("TX-REFUNDED", "50.00", "0", DAY, "payment", ""),
        ("RF-UNKNOWN", "-50.00", "0", DAY, "refund", refund_of.order_no),
        ("TX-LATE", "60.00", "0", DAY, "payment", ""),
        ("TX-NO-RECORD", "80.00", "0", DAY, "payment", "MP999"),
        ("TX-DOUBLE-1", "70.00", "0", DAY, "payment", ""),
        ("TX-DOUBLE-2", "70.00", "0", DAY, "payment", ""),
    ])


def test_every_kind_of_difference_is_classified(day_with_every_difference):
    run = run_reconciliation(D, D)
    assert found() == {
        ("missing_in_statement", "TX-NOT-ON-BILL"): (Decimal("20.00"), None, Decimal("-20.00")),
        ("amount_mismatch", "TX-AMOUNT"): (Decimal("30.00"), Decimal("29.70"), Decimal("-0.30")),
        ("fee_deduction", "TX-FEE"): (Decimal("40.00"), Decimal("39.76"), Decimal("-0.24")),
        ("unmatched_refund", "RF-UNKNOWN"): (None, Decimal("-50.00"), Decimal("-50.00")),
        ("delayed_callback", "TX-LATE"): (Decimal("60.00"), Decimal("60.00"), Decimal("0.00")),
        ("missing_in_system", "TX-NO-RECORD"): (None, Decimal("80.00"), Decimal("80.00")),
        ("duplicate_notification", "TX-DOUBLE-2"): (Decimal("70.00"), Decimal("140.00"), Decimal("70.00")),
    }
    assert run.state == "done" and run.counts["fee_deduction"] == 1
    assert run.statement_lines == 9 and run.matched == 6
    assert all(d.history.count() == 1 for d in Discrepancy.objects.all())


def test_a_rerun_gives_the_same_result_and_no_duplicates(day_with_every_difference):
    first = run_reconciliation(D, D)
    Discrepancy.objects.filter(kind="amount_mismatch").update(status=DiscrepancyStatus.APPEALING)
    second = run_reconciliation(D, D)
    assert second.counts == first.counts
    assert Discrepancy.objects.count() == 7
    assert Discrepancy.objects.get(kind="amount_mismatch").status == DiscrepancyStatus.APPEALING


def test_a_difference_that_clears_is_resolved_with_its_reason():
    pay(unpaid("20.00").order_no, "20.00", transaction_no="TX-A", at=DAY)
    statement([("TX-B", "5.00", "0", DAY, "payment", "")])
    run_reconciliation(D, D)
    assert Discrepancy.objects.get(transaction_no="TX-A").status == "open"
    statement([("TX-A", "20.00", "0", DAY, "payment", "")], account="wx-mch-1-corrected")
    later = run_reconciliation(D, D)
    cleared = Discrepancy.objects.get(transaction_no="TX-A")
    assert cleared.status == DiscrepancyStatus.RESOLVED
    assert f"no longer found by reconciliation run {later.pk}" in cleared.history.last().note


def test_vouchers_of_a_provider_without_a_statement_are_not_reported():
    pay(unpaid("20.00").order_no, "20.00", transaction_no="ALI-1", provider="alipay", at=DAY)
    statement([("TX-B", "5.00", "0", DAY, "payment", "")])
    run_reconciliation(D, D)
    assert not Discrepancy.objects.filter(transaction_no="ALI-1").exists()


def test_channel_settlement_is_matched_to_orders_by_the_channel_order_id():
    douyin = ChannelFactory(code="DY-SHOP", settlement_lag_days=1)
    exact = make_order(douyin, payable=Decimal("100.00"), paid_at=DAY, external_order_id="DY-1")
    fee = make_order(douyin, payable=Decimal("200.00"), paid_at=DAY, external_order_id="DY-2")
    short = make_order(douyin, payable=Decimal("300.00"), paid_at=DAY, external_order_id="DY-3")
    unsettled = make_order(douyin, payable=Decimal("50.00"), paid_at=DAY, external_order_id="DY-4")
    settled_at = DAY + timedelta(days=1)
    statement([
        ("S1", "100.00", "0", settled_at, "payment", "DY-1"),
        ("S2", "190.00", "10.00", settled_at, "payment", "DY-2"),
        ("S3", "280.00", "0", settled_at, "payment", "DY-3"),
        ("S5", "70.00", "0", settled_at, "payment", "DY-UNKNOWN"),
    ], account="DY-SHOP", profile="channel_settlement", provider="channel:DY-SHOP", channel=douyin)
    run_reconciliation(D, D)
    got = {(d.kind, d.order_no): d.difference for d in Discrepancy.objects.all()}
    assert got == {
        ("fee_deduction", fee.order_no): Decimal("-10.00"),
        ("amount_mismatch", short.order_no): Decimal("-20.00"),
        ("missing_in_statement", unsettled.order_no): Decimal("-50.00"),
        ("missing_in_system", "DY-UNKNOWN"): Decimal("70.00"),
    }
    assert exact.order_no not in {d.order_no for d in Discrepancy.objects.all()}
    assert {d.channel_code for d in Discrepancy.objects.all()} == {"DY-SHOP"}


def test_a_line_and_a_voucher_under_two_numbers_are_suggested_as_one_payment():
    order = unpaid("45.50")
    pay(order.order_no, "45.50", transaction_no="TX-SYSTEM", at=DAY)
    statement([("TX-BANK-SIDE", "45.50", "0", DAY + timedelta(minutes=4), "payment", f"X{order.order_no[-4:]}"),
               ("TX-OTHER", "45.50", "0", DAY + timedelta(hours=2), "payment", f"X{order.order_no[-4:]}")])
    run_reconciliation(D, D)
    line = Discrepancy.objects.get(transaction_no="TX-BANK-SIDE")
    assert line.status == DiscrepancyStatus.PENDING_CONFIRMATION
    assert line.suggested_voucher.transaction_no == "TX-SYSTEM"
    assert "suggested match" in line.history.last().note
    assert Discrepancy.objects.get(transaction_no="TX-OTHER").suggested_voucher is None  # 2 h apart
