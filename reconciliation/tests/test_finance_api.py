"""The finance API of CONTRACTS.md: vouchers and reversal, runs, the difference list, matches."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import OrderEvent, Status
from orders.tests.factories import make_order
from reconciliation.models import DiscrepancyEvent, FundVoucher, PaymentMatch
from reconciliation.paid_check import check_paid_without_record
from reconciliation.tests.factories import pay, statement

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 11, 20, 14, 0, tzinfo=timezone.get_current_timezone())


@pytest.fixture
def finance(client_for):
    return client_for("finance")


def unpaid(payable="99.00", **kwargs):
    return make_order(status="pending_payment", payable=Decimal(payable), **kwargs)


def test_vouchers_are_listed_by_order_and_reversed_once(finance):
    order = unpaid()
    voucher = pay(order.order_no, "99.00")
    listed = finance.get(f"/api/v1/reconciliation/vouchers/?order_no={order.order_no}").json()
    assert [v["transaction_no"] for v in listed["results"]] == [voucher.transaction_no]
    url = f"/api/v1/reconciliation/vouchers/{voucher.transaction_no}/reverse/"
    assert finance.post(url, {}, format="json").status_code == 400
    reply = finance.post(url, {"reason": "paid twice"}, format="json")
    assert reply.status_code == 201
    assert reply.json()["amount"] == "-99.00" and reply.json()["reverses"] == voucher.transaction_no
    again = finance.post(url, {"reason": "paid twice"}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert finance.post("/api/v1/reconciliation/vouchers/NOPE/reverse/", {"reason": "x"},
                        format="json").status_code == 404


def test_only_finance_reverses(client_for):
    voucher = pay(unpaid().order_no, "99.00")
    url = f"/api/v1/reconciliation/vouchers/{voucher.transaction_no}/reverse/"
    assert client_for("ops").post(url, {"reason": "x"}, format="json").status_code == 403
    assert client_for("customer_service").get("/api/v1/reconciliation/vouchers/").status_code == 403
    assert client_for("ops").get("/api/v1/reconciliation/vouchers/").status_code == 200
    from rest_framework.test import APIClient
    assert APIClient().get("/api/v1/reconciliation/vouchers/").status_code == 401


def test_a_run_by_date_returns_counts_and_discrepancies_are_worked(finance):
    pay(unpaid("20.00").order_no, "20.00", transaction_no="TX-A", at=DAY)
    statement([("TX-B", "5.00", "0", DAY, "payment", "")])
    run = finance.post("/api/v1/reconciliation/runs/", {"date": "2026-11-20"}, format="json")
    assert run.status_code == 201
    assert run.json()["counts"]["missing_in_statement"] == 1
    assert run.json()["counts"]["missing_in_system"] == 1
    found = finance.get(f"/api/v1/reconciliation/discrepancies/?run={run.json()['id']}"
                        "&kind=missing_in_statement").json()["results"]
    assert [(d["transaction_no"], d["expected"], d["actual"], d["difference"], d["status"])
            for d in found] == [("TX-A", "20.00", None, "-20.00", "open")]
    url = f"/api/v1/reconciliation/discrepancies/{found[0]['id']}/"
    assert finance.patch(url, {"status": "closed"}, format="json").status_code == 400  # no note
    assert finance.patch(url, {"assignee": "nobody"}, format="json").status_code == 400
    reply = finance.patch(url, {"status": "appealing", "note": "asked WeChat Pay",
                                "assignee": finance.user.username}, format="json")
    assert reply.status_code == 200
    assert reply.json()["status"] == "appealing" and reply.json()["assignee"] == finance.user.username
    assert [h["to_status"] for h in reply.json()["history"]] == ["open", "appealing"]
    assert DiscrepancyEvent.objects.count() == 3  # two found + one change


def test_run_requests_are_validated(finance):
    bad = finance.post("/api/v1/reconciliation/runs/", {"period_start": "2026-11-20"}, format="json")
    assert bad.status_code == 400 and "period_end" in bad.json()["fields"]
    backwards = finance.post("/api/v1/reconciliation/runs/",
                             {"period_start": "2026-11-20", "period_end": "2026-11-01"}, format="json")
    assert backwards.status_code == 400


def test_paid_without_record_links_exact_and_suggests_fuzzy(finance):
    now = timezone.now()
    exact = unpaid("30.00")
    fuzzy = unpaid("45.50", placed_at=now - timedelta(minutes=3))
    early = pay(exact.order_no, "30.00")  # arrives before the order is linked (see below)
    FundVoucher.objects.filter(pk=early.pk).update(order=None)
    stray = pay(f"WRONG{fuzzy.order_no[-4:]}", "45.50", at=now)
    assert check_paid_without_record() == {"linked": 1, "suggested": 1}
    exact.refresh_from_db()
    assert exact.status == Status.PAID
    match = PaymentMatch.objects.get()
    assert (match.voucher, match.order) == (stray, fuzzy)
    assert check_paid_without_record() == {"linked": 0, "suggested": 0}  # idempotent
    reply = finance.post(f"/api/v1/reconciliation/payment-matches/{match.pk}/confirm/")
    assert reply.status_code == 200 and reply.json()["state"] == "confirmed"
    fuzzy.refresh_from_db()
    assert fuzzy.status == Status.PAID
    assert OrderEvent.objects.filter(order=fuzzy, kind="payment", actor__startswith="user:").exists()
    assert finance.post(f"/api/v1/reconciliation/payment-matches/{match.pk}/reject/").status_code == 409
