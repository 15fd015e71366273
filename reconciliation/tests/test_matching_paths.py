"""The PostgreSQL path of a run (reconciliation.matching_pg) finds what the portable passes find:
the same findings, statuses, suggestions, history and run counts, on a day with every kind of
difference and the cases that path treats apart (a key with two lines that each look matched,
a line whose voucher is out of scope, settlement lines, lines of other kinds), over a first run
and a re-run after the day changed."""

import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from orders.tests.factories import ChannelFactory, make_order
from reconciliation import matching, matching_pg
from reconciliation.models import Discrepancy, DiscrepancyStatus, ReconciliationRun
from reconciliation.tests.factories import pay, statement

pytestmark = pytest.mark.postgres

DAY = datetime(2026, 11, 20, 14, 0, tzinfo=timezone.get_current_timezone())
D = DAY.date()


def unpaid(payable, **kwargs):
    return make_order(status="pending_payment", payable=Decimal(payable),
                      placed_at=DAY - timedelta(minutes=5), **kwargs)


def tricky_day() -> dict:
    """The day; returns the order numbers vouchers arrive for later (the_day_changes)."""
    ok = pay(unpaid("10.00").order_no, "10.00", transaction_no="TX-OK", at=DAY)
    pay(unpaid("20.00").order_no, "20.00", transaction_no="TX-NOT-ON-BILL", at=DAY)
    pay(unpaid("30.00").order_no, "30.00", transaction_no="TX-AMOUNT", at=DAY)
    pay(unpaid("40.00").order_no, "40.00", transaction_no="TX-FEE", at=DAY)
    pay(unpaid("60.00").order_no, "60.00", transaction_no="TX-LATE", at=DAY, delay_seconds=3 * 3600)
    double = unpaid("70.00")
    pay(double.order_no, "70.00", transaction_no="TX-DOUBLE-1", at=DAY)
    pay(double.order_no, "70.00", transaction_no="TX-DOUBLE-2", at=DAY)
    pay(unpaid("15.00").order_no, "15.00", transaction_no="TX-TWICE", at=DAY)
    pay(unpaid("16.00").order_no, "16.00", transaction_no="TX-TWICE-DIFF", at=DAY)
    system_side = unpaid("45.50")
    pay(system_side.order_no, "45.50", transaction_no="TX-SYSTEM", at=DAY)
    pay(unpaid("12.00").order_no, "12.00", transaction_no="TX-YESTERDAY", at=DAY - timedelta(days=1))
    pay(unpaid("99.00").order_no, "99.00", transaction_no="ALI-1", provider="alipay", at=DAY)
    refund_of = unpaid("50.00")
    statement([
        ("TX-OK", "10.00", "0.06", DAY, "payment", ok.order_no),
        ("TX-AMOUNT", "29.70", "0", DAY, "payment", ""),
        ("TX-FEE", "39.76", "0.24", DAY, "payment", ""),
        ("TX-LATE", "60.00", "0", DAY, "payment", ""),
        ("TX-DOUBLE-1", "70.00", "0", DAY, "payment", ""),
        ("TX-DOUBLE-2", "70.00", "0", DAY, "payment", ""),
        ("TX-TWICE", "15.00", "0", DAY, "payment", ""),
        ("TX-TWICE-DIFF", "16.00", "0", DAY, "payment", ""),
        ("TX-TWICE-DIFF", "1.00", "0", DAY, "payment", ""),
        ("RF-UNKNOWN", "-50.00", "0", DAY, "refund", refund_of.order_no),
        ("TX-NO-RECORD", "80.00", "0", DAY, "payment", "MP999"),
        ("TX-YESTERDAY", "12.00", "0", DAY, "payment", ""),  # its voucher is of another day
        ("TX-BANK-SIDE", "45.50", "0", DAY + timedelta(minutes=4), "payment", f"X{system_side.order_no[-4:]}"),
        ("TX-OTHER", "45.50", "0", DAY + timedelta(hours=2), "payment", f"X{system_side.order_no[-4:]}"),
        ("FEE-ROW", "-1.00", "0", DAY, "fee", ""),  # counted, never matched
    ])
    # The same transaction on a second statement of the day: two lines, each like the voucher.
    statement([("TX-TWICE", "15.00", "0", DAY, "payment", "")], account="wx-mch-1-copy")
    douyin = ChannelFactory(code="DY-SHOP", settlement_lag_days=1)
    make_order(douyin, payable=Decimal("100.00"), paid_at=DAY, external_order_id="DY-1")
    make_order(douyin, payable=Decimal("200.00"), paid_at=DAY, external_order_id="DY-2")
    make_order(douyin, payable=Decimal("50.00"), paid_at=DAY, external_order_id="DY-4")
    settled_at = DAY + timedelta(days=1)
    statement([
        ("TX-OK", "100.00", "0", settled_at, "payment", "DY-1"),  # a settlement line: not a second TX-OK
        ("S2", "190.00", "10.00", settled_at, "payment", "DY-2"),
        ("S5", "70.00", "0", settled_at, "payment", "DY-UNKNOWN"),
    ], account="DY-SHOP", profile="channel_settlement", provider="channel:DY-SHOP", channel=douyin)
    return {"new": unpaid("25.00").order_no, "system_side": system_side.order_no}


def the_day_changes(paid_later: dict):
    statement([("TX-NOT-ON-BILL", "20.00", "0", DAY, "payment", "")], account="wx-mch-1-late")
    Discrepancy.objects.filter(kind="amount_mismatch").update(status=DiscrepancyStatus.APPEALING)
    pay(paid_later["new"], "25.00", transaction_no="TX-NEW", at=DAY)
    # A voucher for the line the first run could not match (TX-OTHER): suggested on the re-run.
    pay(paid_later["system_side"], "45.50", transaction_no="TX-SYSTEM-AGAIN", at=DAY + timedelta(hours=2, minutes=5))


def outcome(runs: list[ReconciliationRun]) -> dict:
    """Everything a run leaves behind, with run ids replaced by their place in `runs`."""
    place = {run.pk: i for i, run in enumerate(runs, 1)}

    def note(text):
        return re.sub(r"run (\d+)", lambda m: f"run #{place.get(int(m.group(1)), '?')}", text)

    def voucher(v):  # rows written by the_day_changes get other ids in each transaction
        return v and v.transaction_no

    def line(sl):
        return sl and (sl.statement.account, sl.row)

    found = {
        d.fingerprint: (
            d.kind, d.status, d.business_date, d.transaction_no, d.order_no, d.channel_code,
            d.expected, d.actual, d.difference, voucher(d.voucher), line(d.statement_line),
            voucher(d.suggested_voucher), place.get(d.first_run_id), place.get(d.last_run_id),
            [(e.from_status, e.to_status, note(e.note)) for e in d.history.all()],
        )
        for d in Discrepancy.objects.select_related(
            "voucher", "suggested_voucher", "statement_line__statement").prefetch_related("history")
    }
    counts = []
    for run in runs:
        run.refresh_from_db()
        counts.append((run.state, run.counts, run.vouchers, run.statement_lines, run.matched))
    return {"found": found, "runs": counts}


def run_twice(fast: bool, paid_later: dict) -> dict:
    runs = []
    for second in (False, True):
        if second:
            the_day_changes(paid_later)
        run = ReconciliationRun.objects.create(period_start=D, period_end=D, trigger="manual")
        matching._reconcile(run, fast=fast)
        runs.append(run)
    return outcome(runs)


def in_rolled_back_transaction(work):
    with transaction.atomic():
        result = work()
        transaction.set_rollback(True)
    return result


@pytest.mark.django_db
def test_the_postgresql_path_finds_what_the_portable_passes_find():
    paid_later = tricky_day()
    reference = in_rolled_back_transaction(lambda: run_twice(False, paid_later))
    fast = in_rolled_back_transaction(lambda: run_twice(True, paid_later))
    assert fast["runs"] == reference["runs"]
    assert fast["found"] == reference["found"]
    # The day is as tricky as meant: every kind, the doubled key, a suggestion, a resolution.
    kinds = {row[0] for row in fast["found"].values()}
    assert {"missing_in_statement", "missing_in_system", "amount_mismatch", "fee_deduction",
            "delayed_callback", "duplicate_notification", "unmatched_refund"} <= kinds
    assert fast["found"]["duplicate_notification:TX-TWICE"][6:8] == (Decimal("15.00"), Decimal("30.00"))
    assert "delayed_callback:TX-YESTERDAY" in fast["found"]
    assert "missing_in_system:TX-OK" not in fast["found"] and "duplicate_notification:TX-OK" not in fast["found"]
    assert fast["found"]["missing_in_statement:TX-NOT-ON-BILL"][1] == DiscrepancyStatus.RESOLVED
    assert fast["found"]["missing_in_system:TX-BANK-SIDE"][1] == DiscrepancyStatus.PENDING_CONFIRMATION
    assert fast["found"]["missing_in_system:TX-OTHER"][11] == "TX-SYSTEM-AGAIN"  # found by run 1, suggested by run 2
    assert not any(fp.endswith("ALI-1") for fp in fast["found"])
    assert fast["runs"][0][3] == 19  # every line of the day, settlement and fee rows included


@pytest.mark.django_db(transaction=True)
def test_a_run_in_its_own_transaction_reads_the_orders_on_a_second_connection(monkeypatch):
    paid_later = tricky_day()
    reference = in_rolled_back_transaction(lambda: run_twice(False, paid_later))
    helpers = []
    real_run = matching_pg.VoucherTotals.run
    monkeypatch.setattr(matching_pg.VoucherTotals, "run", lambda self: (helpers.append(self), real_run(self)))
    runs = [matching.run_reconciliation(D, D)]
    the_day_changes(paid_later)
    runs.append(matching.run_reconciliation(D, D))
    assert len(helpers) == 2 and all(helper.error is None for helper in helpers)
    assert outcome(runs) == reference
