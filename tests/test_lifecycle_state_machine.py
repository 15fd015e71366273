"""The whole order lifecycle as a hypothesis state machine (issue 13), on PostgreSQL.

Channel payloads (new, paid, cancelled, refunded, stale re-sends), payments and refunds,
approvals under an approval policy, holds and releases, re-routes of split orders, scans from
each warehouse in any order, carrier updates, stock receipts, the sweeps — in any order
hypothesis finds, with the invariants checked after every step:

* every stock counter equals the sum of its ledger; 0 ≤ reserved ≤ on hand;
* no order line is held by more live shares than it has units, nor shipped twice;
* an order's physical track is out iff every live share of it has left; shipped implies out;
* no active reservation on a closed order or on a line whose share has left;
* refunds never exceed payments; the order's refunded amount is what its vouchers say;
* the order's status is the last business event on its timeline.

Each example runs inside a savepoint that is rolled back, so examples do not see each other.
OMS_LIFECYCLE_EXAMPLES sets how many examples run (the benchmark's soak flag raises it).
"""

import itertools
import os
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from inventory import services as inventory
from inventory.models import Reservation, StockLevel, StockMovement
from oms.errors import DomainError
from orders import fulfilment, services
from orders.events import SYSTEM, Actor
from orders.models import (
    SHIPPED_STATES,
    ApprovalLevel,
    ApprovalPolicy,
    Fulfilment,
    FulfilmentLine,
    FulfilmentOrder,
    Order,
    OrderLine,
    ScannerEvent,
    Status,
)
from orders.models_fulfilment import LEFT, WAITING
from orders.tests.factories import (
    ChannelFactory,
    SKUFactory,
    WarehouseFactory,
    make_device,
    matching_items,
    ops_actor,
    order_payload,
    scan,
)
from reconciliation.models import FundVoucher
from reconciliation.tests.factories import notice
from reconciliation.vouchers import record_notice

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

EXAMPLES = int(os.environ.get("OMS_LIFECYCLE_EXAMPLES", "40"))
CLOSED = (Status.CANCELLED, Status.REFUNDING, Status.REFUNDED)
OUT = (Fulfilment.OUTBOUND, Fulfilment.IN_TRANSIT, Fulfilment.DELIVERED, Fulfilment.RETURNED)
_serial = itertools.count(1)


class Lifecycle(RuleBasedStateMachine):
    @initialize(policy=st.booleans())
    def world(self, policy):
        self._savepoint = transaction.atomic()
        self._savepoint.__enter__()
        n = next(_serial)
        self.channel = ChannelFactory(allow_split=True)
        self.warehouses = [WarehouseFactory(code=f"SM{n}-SH", provinces=["上海"], priority=10),
                           WarehouseFactory(code=f"SM{n}-GZ", provinces=["广东"], priority=20)]
        self.devices = {w.pk: make_device(w)[0] for w in self.warehouses}
        self.skus = [SKUFactory(code=f"SM{n}-TEA", barcode=f"69{n:06d}001"),
                     SKUFactory(code=f"SM{n}-CUP", barcode=f"69{n:06d}002")]
        # Tea mostly in Shanghai, cups only in Guangzhou: split orders happen.
        inventory.receive_stock(self.warehouses[0].code, self.skus[0].code, 4)
        inventory.receive_stock(self.warehouses[1].code, self.skus[1].code, 3)
        self.ops = ops_actor()
        if policy:
            approver = ops_actor().user
            rule_ = ApprovalPolicy.objects.create(name=f"big {n}", min_amount=Decimal("50.00"))
            ApprovalLevel.objects.create(policy=rule_, position=1, approver_user=approver)
        self.orders: list[str] = []
        self.payloads: dict[str, dict] = {}
        # Two orders from the start, the first split between the warehouses.
        self.channel_sends_a_new_order("paid", 1, 1)
        self.channel_sends_a_new_order("pending_payment", 2, 0)

    def teardown(self):
        if hasattr(self, "_savepoint"):
            transaction.set_rollback(True)
            self._savepoint.__exit__(None, None, None)

    # --- helpers --------------------------------------------------------------------------

    def _try(self, action, *args, **kwargs):
        try:
            return action(*args, **kwargs)
        except DomainError:
            return None  # refused: the invariants check that nothing changed half-way

    def _order(self, data) -> Order:
        return Order.objects.get(order_no=self.orders[data.draw(st.integers(0, len(self.orders) - 1))])

    # --- channel --------------------------------------------------------------------------

    @rule(status=st.sampled_from(["pending_payment", "paid"]),
          tea=st.integers(0, 3), cup=st.integers(1, 2))
    def channel_sends_a_new_order(self, status, tea, cup):
        lines = [(sku, q, "30.00") for sku, q in zip(self.skus, (tea, cup), strict=True) if q]
        if not lines:
            return
        data = order_payload(lines, status=status, phone=f"139{next(_serial):08d}")
        order, _result = services.create_order(self.channel, data, Actor.for_channel(self.channel))
        self.orders.append(order.order_no)
        self.payloads[order.order_no] = data

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), status=st.sampled_from(["paid", "cancelled", "refunded", "stale"]))
    def channel_sends_an_update(self, data, status):
        order = self._order(data)
        payload = dict(self.payloads[order.order_no])
        if status != "stale":  # a stale re-send repeats the first payload
            payload["status"] = status
        self._try(services.create_order, self.channel, payload, Actor.for_channel(self.channel))

    # --- money ----------------------------------------------------------------------------

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def buyer_pays(self, data):
        order = self._order(data)
        record_notice(notice(order.order_no, order.payable_amount))

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), part=st.sampled_from([Decimal("0.5"), Decimal("1")]))
    def provider_refunds(self, data, part):
        order = self._order(data)
        paid = _payments(order)
        left = paid - order.refunded_amount
        if left <= 0:
            return
        record_notice(notice(order.order_no, (left * part).quantize(Decimal("0.01")), kind="refund"))

    # --- ops ------------------------------------------------------------------------------

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), action=st.sampled_from(["approve", "hold", "release", "ship", "cancel", "override"]))
    def ops_acts(self, data, action):
        order = self._order(data)
        no = order.order_no
        if action == "approve":
            self._try(services.approve_order, no, self.ops)
        elif action == "hold":
            self._try(services.hold_order, no, "check the address", self.ops)
        elif action == "release":
            self._try(services.release_hold, no, self.ops)
        elif action == "ship":
            self._try(services.request_shipment, no, self.ops)
        elif action == "cancel":
            self._try(services.cancel_order, no, "buyer asked", self.ops)
        else:
            from orders import approvals

            user = ops_actor().user
            user.user_permissions.add(*_perms("override_approval"))
            self._try(approvals.override, no, user, "urgent")

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), which=st.integers(0, 1))
    def ops_routes(self, data, which):
        order = self._order(data)
        self._try(services.route_order, order.order_no, self.warehouses[which].code, self.ops)

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), times=st.integers(1, 6))
    def order_moves_on(self, data, times):
        """The next step of the happy path, for an order or one of its shares: random walks
        alone rarely get a parcel out of a warehouse."""
        order = self._order(data)
        for _ in range(times):
            order.refresh_from_db()
            if order.status == Status.PENDING_PAYMENT:
                record_notice(notice(order.order_no, order.payable_amount))
            elif order.status == Status.PAID:
                self._try(services.approve_order, order.order_no, self.ops)
            elif order.status in (Status.APPROVED, Status.SHIP_REQUESTED):
                waiting = list(FulfilmentOrder.objects.filter(order=order, status__in=WAITING).order_by("number"))
                if not waiting or data.draw(st.booleans()):
                    self._try(services.request_shipment, order.order_no, self.ops)
                    continue
                share = data.draw(st.sampled_from(waiting))
                step = {"open": "pick_started", "picking": "pack_verified", "packed": "outbound"}[share.status]
                items = [{"barcode": barcode, "quantity": quantity} for barcode, quantity
                         in share.lines.values_list("order_line__sku__barcode", "quantity")]
                self._try(scan, self.devices[share.warehouse_id], order, step,
                          **({"items": items} if step == "pack_verified" else {}))
            elif order.status == Status.ON_HOLD:
                self._try(services.release_hold, order.order_no, self.ops)

    # --- warehouse and carrier ------------------------------------------------------------

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), which=st.integers(0, 1),
          step=st.sampled_from(["pick_started", "pack_verified", "outbound"]), wrong_items=st.booleans())
    def warehouse_scans(self, data, which, step, wrong_items):
        order = self._order(data)
        warehouse = self.warehouses[which]
        share = FulfilmentOrder.objects.filter(order=order, warehouse=warehouse, status__in=WAITING).first()
        kwargs = {}
        if step == "pack_verified":
            items = matching_items(order) if share is None else [
                {"barcode": barcode, "quantity": quantity}
                for barcode, quantity in share.lines.values_list("order_line__sku__barcode", "quantity")]
            if wrong_items:
                items = [{**item, "quantity": item["quantity"] + 1} for item in items]
            kwargs["items"] = items
        self._try(scan, self.devices[warehouse.pk], order, step, **kwargs)

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), name=st.sampled_from(["mark_in_transit", "mark_delivered", "mark_returned"]))
    def carrier_reports(self, data, name):
        order = self._order(data)
        with transaction.atomic():
            locked = services.lock_order(order.order_no)
            for share in fulfilment.live(fulfilment.shares_of(locked)):
                if share.has_left:
                    fulfilment.carrier_update(locked, share, name, SYSTEM, at=timezone.now(), summary=name,
                                              payload={})
            if locked.fulfilment == Fulfilment.DELIVERED and locked.status == Status.SHIPPED:
                services.transition(locked, "mark_delivered", SYSTEM)

    # --- stock and clocks -----------------------------------------------------------------

    @rule(which=st.integers(0, 1), sku=st.integers(0, 1), quantity=st.integers(1, 3))
    def stock_arrives(self, which, sku, quantity):
        inventory.receive_stock(self.warehouses[which].code, self.skus[sku].code, quantity)

    @rule()
    def sweeps_run(self):
        services.sweep_shipped()
        services.expire_unpaid_reservations()
        services.complete_delivered(now=timezone.now() + timezone.timedelta(days=30))

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def ledger_equals_counters(self):
        if not hasattr(self, "skus"):
            return
        sums = {(w, s): (h, r) for w, s, h, r in StockMovement.objects.filter(sku__in=self.skus)
                .values("warehouse_id", "sku_id").annotate(h=Sum("on_hand_delta"), r=Sum("reserved_delta"))
                .values_list("warehouse_id", "sku_id", "h", "r")}
        for level in StockLevel.objects.filter(sku__in=self.skus):
            assert sums.get((level.warehouse_id, level.sku_id), (0, 0)) == (level.on_hand, level.reserved)
            assert 0 <= level.reserved <= level.on_hand

    @invariant()
    def no_line_held_or_shipped_twice(self):
        if not getattr(self, "orders", None):
            return
        lines = dict(OrderLine.objects.filter(order__order_no__in=self.orders).values_list("pk", "quantity"))
        held, shipped = defaultdict(int), defaultdict(int)
        for line_id, quantity, status in FulfilmentLine.objects.filter(order_line__in=lines).exclude(
                fulfilment_order__status="cancelled").values_list("order_line_id", "quantity", "fulfilment_order__status"):
            held[line_id] += quantity
            if status in LEFT:
                shipped[line_id] += quantity
        consumed = defaultdict(int)
        for line_id, quantity in Reservation.objects.filter(order_line__in=lines, status="consumed").values_list(
                "order_line_id", "quantity"):
            consumed[line_id] += quantity
        for line_id, ordered in lines.items():
            assert held[line_id] <= ordered
            assert shipped[line_id] <= ordered
            assert consumed[line_id] <= ordered

    @invariant()
    def orders_agree_with_their_shares_stock_money_and_timeline(self):
        if not getattr(self, "orders", None):
            return
        for order in Order.objects.filter(order_no__in=self.orders):
            shares = list(order.fulfilment_orders.exclude(status="cancelled").values_list("status", flat=True))
            all_left = bool(shares) and all(s in LEFT for s in shares)
            assert (order.fulfilment in OUT) == all_left, (order.order_no, order.fulfilment, shares)
            if order.status in SHIPPED_STATES:
                assert all_left
            active = Reservation.objects.filter(order=order, status="active")
            if order.status in CLOSED:
                assert not active.exists(), (order.order_no, order.status)
            left_lines = FulfilmentLine.objects.filter(fulfilment_order__order=order,
                                                       fulfilment_order__status__in=LEFT).values("order_line_id")
            assert not active.filter(order_line__in=left_lines).exists()
            assert order.refunded_amount == _refunds(order) <= _payments(order)
            last = order.events.filter(track="business").exclude(to_state="").order_by("-id").first()
            assert last is not None and last.to_state == order.status, (order.order_no, order.status, last)
            for share in order.fulfilment_orders.filter(status__in=LEFT):
                assert ScannerEvent.objects.filter(order=order, type="outbound", response_status=201,
                                                   device__warehouse_id=share.warehouse_id).exists()


def _payments(order: Order) -> Decimal:
    total = FundVoucher.objects.filter(order=order, kind="payment", status="confirmed").aggregate(t=Sum("amount"))["t"]
    return total or Decimal("0")


def _refunds(order: Order) -> Decimal:
    total = FundVoucher.objects.filter(order=order, kind="refund").aggregate(t=Sum("amount"))["t"]
    return -(total or Decimal("0"))


def _perms(codename: str):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(codename=codename)


def test_order_lifecycle_keeps_its_invariants():
    Lifecycle.TestCase.settings = settings(
        max_examples=EXAMPLES, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    Lifecycle.TestCase().runTest()
