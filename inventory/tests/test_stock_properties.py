"""Random receipts, reservations, releases, shipments and counts keep every invariant:
0 <= reserved <= on_hand, nothing oversold, and counters equal to the ledger."""

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

from inventory import stock
from inventory.models import MovementKind, StockLevel, StockMovement
from orders.tests.factories import SKUFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


class StockLedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.warehouse = WarehouseFactory()
        self.sku = SKUFactory()
        stock.ensure_level(self.warehouse.pk, self.sku.pk)
        self.on_hand = 0
        self.reserved = 0
        self.open_reservations: list[int] = []

    @property
    def key(self):
        return self.warehouse.pk, self.sku.pk

    @rule(quantity=st.integers(1, 30))
    def receive(self, quantity):
        stock.add_on_hand(*self.key, quantity, MovementKind.RECEIPT, reason="receipt")
        self.on_hand += quantity

    @rule(quantity=st.integers(1, 30))
    def reserve(self, quantity):
        state = stock.reserve(*self.key, quantity, reason="order")
        if self.on_hand - self.reserved >= quantity:
            assert state is not None and state.reserved == self.reserved + quantity
            self.reserved += quantity
            self.open_reservations.append(quantity)
        else:
            assert state is None  # refused: never oversold

    @precondition(lambda self: self.open_reservations)
    @rule(index=st.integers(0, 100))
    def release(self, index):
        quantity = self.open_reservations.pop(index % len(self.open_reservations))
        stock.release(*self.key, quantity, reason="cancel")
        self.reserved -= quantity

    @precondition(lambda self: self.open_reservations)
    @rule(index=st.integers(0, 100))
    def ship(self, index):
        quantity = self.open_reservations.pop(index % len(self.open_reservations))
        stock.ship(*self.key, quantity, reason="outbound scan")
        self.on_hand -= quantity
        self.reserved -= quantity

    @rule(delta=st.integers(-30, 30).filter(bool))
    def count_adjustment(self, delta):
        if self.on_hand + delta >= self.reserved:
            stock.add_on_hand(*self.key, delta, MovementKind.ADJUSTMENT, reason="count")
            self.on_hand += delta
        else:
            with pytest.raises(stock.LedgerError):
                stock.add_on_hand(*self.key, delta, MovementKind.ADJUSTMENT, reason="count")

    @invariant()
    def counters_match_the_model_and_the_ledger(self):
        level = StockLevel.objects.get(warehouse_id=self.key[0], sku_id=self.key[1])
        assert (level.on_hand, level.reserved) == (self.on_hand, self.reserved)
        assert 0 <= level.reserved <= level.on_hand
        ledger = StockMovement.objects.filter(warehouse_id=self.key[0], sku_id=self.key[1]).aggregate(
            on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta"))
        assert (ledger["on_hand"] or 0, ledger["reserved"] or 0) == (level.on_hand, level.reserved)


def test_random_stock_operations_keep_every_invariant():
    run_state_machine_as_test(
        StockLedgerMachine,
        settings=settings(max_examples=25, stateful_step_count=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )
