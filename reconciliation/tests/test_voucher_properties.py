"""Random payments, refunds, repeats and reversals: an order's received amount is always the
sum of its counted vouchers, every reversal is the negative twin of exactly one voucher, and
nothing is ever booked twice."""

from decimal import Decimal

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from oms.errors import Conflict
from oms.tests.factories import UserFactory
from orders.tests.factories import make_order
from reconciliation.models import FundVoucher, VoucherKind, VoucherStatus
from reconciliation.tests.factories import notice
from reconciliation.vouchers import received_amount, record_notice, reverse_voucher

pytestmark = pytest.mark.django_db
cents = st.integers(1, 100_000).map(lambda c: Decimal(c) / 100)


class VoucherLedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.order = make_order(status="pending_payment", payable=Decimal("88.00"))
        self.finance = UserFactory(role="finance")
        self.expected = Decimal("0")
        self.sent = []  # notices delivered at least once
        self.reversible = []  # transaction numbers that may still be reversed

    @rule(amount=st.one_of(st.just(Decimal("88.00")), cents), kind=st.sampled_from(["payment", "refund"]))
    def money_arrives(self, amount, kind):
        arrived = notice(self.order.order_no, amount, kind=kind)
        voucher, outcome = record_notice(arrived)
        assert outcome == "created"
        self.sent.append(arrived)
        if voucher.status == VoucherStatus.CONFIRMED:
            self.expected += voucher.amount
        self.reversible.append(voucher.transaction_no)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def provider_repeats_itself(self, data):
        voucher, outcome = record_notice(data.draw(st.sampled_from(self.sent)))
        assert outcome == "duplicate"

    @precondition(lambda self: self.reversible)
    @rule(data=st.data())
    def finance_reverses(self, data):
        transaction_no = data.draw(st.sampled_from(self.reversible))
        original = FundVoucher.objects.get(transaction_no=transaction_no)
        counted_before = original.status == VoucherStatus.CONFIRMED
        reverse_voucher(transaction_no, "property test", self.finance)
        self.reversible.remove(transaction_no)
        if counted_before:
            self.expected -= original.amount
        with pytest.raises(Conflict):
            reverse_voucher(transaction_no, "again", self.finance)

    @invariant()
    def received_is_the_sum_of_counted_vouchers(self):
        counted = FundVoucher.objects.filter(order=self.order, status__in=["confirmed", "reversed"])
        total = (counted.aggregate(total=Sum("amount"))["total"] or Decimal("0")).quantize(Decimal("0.01"))
        # Money held for an amount check is not counted, and reversing it nets to zero.
        assert received_amount(self.order) == total == self.expected

    @invariant()
    def every_reversal_mirrors_one_voucher(self):
        for reversal in FundVoucher.objects.filter(kind=VoucherKind.REVERSAL).select_related("reverses"):
            assert reversal.amount == -reversal.reverses.amount
            assert reversal.reverses.status == VoucherStatus.REVERSED


def test_voucher_ledger_properties():
    run_state_machine_as_test(
        VoucherLedgerMachine,
        settings=settings(max_examples=25, stateful_step_count=12, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]),
    )
