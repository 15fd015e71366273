"""The dual-track state machine (ARCHITECTURE.md): every transition, allowed and refused.

Each row builds an order in the source state through the services and scanner events, then
asks for the transition the way production does (the service where one exists, otherwise
`services.transition` on a locked order). Allowed: the field moves to the target and the
transition's OrderEvent is written, plus exactly the events its stock side effects write
(approval allocates to the reserved warehouse, cancel releases the reservation). Refused:
Conflict with `state` and `allowed`, and nothing changed, stock included.
"""

from datetime import timedelta

import pytest
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from django_fsm import can_proceed

from inventory.models import Reservation, StockLevel
from oms.errors import Conflict, Forbidden
from oms.tests.factories import UserFactory
from orders import fulfilment, services
from orders.events import SYSTEM, Actor
from orders.models import (
    AppendOnlyError,
    Fulfilment,
    FulfilmentOrder,
    Order,
    OrderEvent,
    ScannerEvent,
    ShareState,
    Shipment,
    Status,
)
from orders.scanning import OUTBOUND, PACK_VERIFIED, PICK_STARTED
from orders.tests.factories import (
    DEFAULT_STOCK_WAREHOUSE,
    SKUFactory,
    WarehouseFactory,
    advance,
    make_device,
    make_order,
    scan,
    stock_order,
    stock_up,
)

pytestmark = pytest.mark.django_db

S, F = Status, Fulfilment

# transition → (source states, target). Written out from ARCHITECTURE.md, not read from the model.
STATUS_TABLE = {
    "mark_paid": ({S.PENDING_PAYMENT}, S.PAID),
    "approve": ({S.PAID}, S.APPROVED),
    "request_shipment": ({S.APPROVED}, S.SHIP_REQUESTED),
    # From ship_requested only once the parcel is physically out: never in this table's
    # ship_requested order (see the outbound-scan and sweep tests below).
    "mark_shipped": (set(), S.SHIPPED),
    "mark_delivered": ({S.SHIPPED}, S.DELIVERED),
    "complete": ({S.DELIVERED}, S.COMPLETED),
    "hold": ({S.PAID, S.APPROVED}, S.ON_HOLD),
    "release_hold": ({S.ON_HOLD}, S.PAID),
    "cancel": ({S.PENDING_PAYMENT, S.PAID, S.APPROVED, S.ON_HOLD, S.SHIP_REQUESTED}, S.CANCELLED),
    "start_refund": (
        {S.PAID, S.APPROVED, S.ON_HOLD, S.SHIP_REQUESTED, S.SHIPPED, S.DELIVERED, S.COMPLETED}, S.REFUNDING
    ),
    "mark_refunded": ({S.REFUNDING}, S.REFUNDED),
}

# What a refusal names as possible from each state (conditions included: the table's
# approved order has a warehouse; its ship_requested order has no outbound scan).
STATUS_ALLOWED = {
    S.PENDING_PAYMENT: ["cancel", "mark_paid"],
    S.PAID: ["approve", "cancel", "hold", "start_refund"],
    S.APPROVED: ["cancel", "hold", "request_shipment", "start_refund"],
    S.SHIP_REQUESTED: ["cancel", "start_refund"],
    S.SHIPPED: ["mark_delivered", "start_refund"],
    S.DELIVERED: ["complete", "start_refund"],
    S.COMPLETED: ["start_refund"],
    S.CANCELLED: [],
    S.ON_HOLD: ["cancel", "release_hold", "start_refund"],
    S.REFUNDING: [],  # refunded only once refunds cover what is owed (see settle_refund)
    S.REFUNDED: [],
}

# A share's (fulfilment order's) transitions; the order's physical track follows its shares.
SH = ShareState
SHARE_TABLE = {
    "start_picking": ({SH.OPEN}, SH.PICKING),
    "verify_pack": ({SH.PICKING}, SH.PACKED),
    "record_outbound": ({SH.PACKED}, SH.OUTBOUND),
    "mark_in_transit": ({SH.OUTBOUND}, SH.IN_TRANSIT),
    "mark_delivered": ({SH.OUTBOUND, SH.IN_TRANSIT}, SH.DELIVERED),
    "mark_returned": ({SH.OUTBOUND, SH.IN_TRANSIT}, SH.RETURNED),
    "cancel": ({SH.OPEN, SH.PICKING, SH.PACKED}, SH.CANCELLED),
}

SHARE_ALLOWED = {
    SH.OPEN: ["cancel", "start_picking"],
    SH.PICKING: ["cancel", "verify_pack"],
    SH.PACKED: ["cancel", "record_outbound"],
    SH.OUTBOUND: ["mark_delivered", "mark_in_transit", "mark_returned"],
    SH.IN_TRANSIT: ["mark_delivered", "mark_returned"],
    SH.DELIVERED: [],
    SH.RETURNED: [],
    SH.CANCELLED: [],
}

# The order's physical track for a single share in each state (a cancelled share leaves the
# order where it was).
ORDER_FOR_SHARE = {
    SH.OPEN: F.ALLOCATED, SH.PICKING: F.PICKING, SH.PACKED: F.PACKED, SH.OUTBOUND: F.OUTBOUND,
    SH.IN_TRANSIT: F.IN_TRANSIT, SH.DELIVERED: F.DELIVERED, SH.RETURNED: F.RETURNED,
}

SCAN_TYPES = {"start_picking": PICK_STARTED, "verify_pack": PACK_VERIFIED, "record_outbound": OUTBOUND}


def test_the_tables_cover_every_transition_of_the_model():
    order = Order()
    status_names = {t.name for t in order.get_all_status_transitions()}
    fulfilment_names = {t.name for t in order.get_all_fulfilment_transitions()}
    share_names = {t.name for t in FulfilmentOrder().get_all_status_transitions()}
    assert status_names == set(STATUS_TABLE)
    assert fulfilment_names == {"follow_shares"}  # derived from the shares, never set by hand
    assert share_names == set(SHARE_TABLE)
    assert set(STATUS_ALLOWED) == set(Status.values)
    assert set(SHARE_ALLOWED) == set(ShareState.values)


def _system_transition(order_no: str, name: str, **kwargs) -> None:
    with transaction.atomic():
        services.transition(services.lock_order(order_no), name, SYSTEM, **kwargs)


def order_in_status(state: str, actor: Actor) -> Order:
    if state == S.PENDING_PAYMENT:
        return make_order(status="pending_payment")
    order = make_order(status="paid")
    no = order.order_no
    if state == S.PAID:
        pass
    elif state == S.ON_HOLD:
        services.hold_order(no, "address needs checking", actor)
    elif state == S.CANCELLED:
        services.cancel_order(no, "customer changed their mind", actor)
    elif state in (S.REFUNDING, S.REFUNDED):
        _system_transition(no, "start_refund", owed=order.payable_amount)
        if state == S.REFUNDED:
            _settle_refund(no)
    elif state == S.APPROVED:
        advance(order, "approved", actor=actor)  # approval allocates: it has a warehouse
    elif state == S.SHIP_REQUESTED:
        advance(order, "ship_requested", actor=actor)
    else:  # shipped, delivered, completed: the parcel really left
        advance(order, "outbound", actor=actor)
        if state in (S.DELIVERED, S.COMPLETED):
            _carrier(no, "mark_delivered")
            _system_transition(no, "mark_delivered")
        if state == S.COMPLETED:
            _system_transition(no, "complete")
    order.refresh_from_db()
    assert order.status == state
    return order


def _settle_refund(order_no: str) -> None:
    """Refund vouchers covering the payable were booked (reconciliation.vouchers does this)."""
    with transaction.atomic():
        order = services.lock_order(order_no)
        services.settle_refund(order, order.payable_amount, SYSTEM)


def _carrier(order_no: str, name: str, at=None) -> None:
    """A carrier checkpoint moves each share of the order (channels.tracking does this)."""
    with transaction.atomic():
        order = services.lock_order(order_no)
        for share in fulfilment.live(fulfilment.shares_of(order)):
            assert fulfilment.carrier_update(order, share, name, SYSTEM, at=at or timezone.now(),
                                             summary=name, payload={})


def order_with_share(state: str, actor: Actor):
    """An approved order (no ship request, so the status stays approved) with one share in
    that state, and the share's scanner."""
    order = advance(make_order(), "routed", actor=actor)
    device, _token = make_device(order.warehouse)
    stage = {SH.PICKING: "picking", SH.PACKED: "packed"}.get(state)
    if state in (SH.OUTBOUND, SH.IN_TRANSIT, SH.DELIVERED, SH.RETURNED):
        stage = "outbound"
    if stage:
        order = advance(order, stage, device=device, ship=False, actor=actor,
                        at=timezone.now() - timedelta(minutes=10))
    follow_up = {SH.IN_TRANSIT: "mark_in_transit", SH.DELIVERED: "mark_delivered",
                 SH.RETURNED: "mark_returned"}.get(state)
    if follow_up:
        _carrier(order.order_no, follow_up, at=timezone.now() - timedelta(minutes=5))
    if state == SH.CANCELLED:
        with transaction.atomic():
            locked = services.lock_order(order.order_no)
            fulfilment.cancel_waiting(locked, fulfilment.shares_of(locked)[-1:], "test", timezone.now())
    order.refresh_from_db()
    share = order.fulfilment_orders.latest("number")  # routing cancelled the first one
    assert (order.status, share.status) == (S.APPROVED, state)
    return order, device


def reserved_in(order: Order) -> list[str]:
    """Warehouse codes of the order's active reservations."""
    return list(Reservation.objects.filter(order=order, status=Reservation.State.ACTIVE)
                .values_list("warehouse__code", flat=True))


def run_status_transition(order: Order, name: str, actor: Actor) -> None:
    no = order.order_no
    if name == "approve":
        services.approve_order(no, actor)
    elif name == "request_shipment":
        services.request_shipment(no, actor)
    elif name == "hold":
        services.hold_order(no, "suspicious address", actor)
    elif name == "release_hold":
        services.release_hold(no, actor)
    elif name == "cancel":
        services.cancel_order(no, "customer asked", actor)
    elif name == "mark_refunded" and order.status == S.REFUNDING:
        _settle_refund(no)
    else:
        _system_transition(no, name)


def run_share_transition(order: Order, device, name: str) -> None:
    if name in SCAN_TYPES:
        reply = scan(device, order, SCAN_TYPES[name])
        assert reply.status_code == 201, reply.body
        return
    with transaction.atomic():
        locked = services.lock_order(order.order_no)
        share = fulfilment.shares_of(locked)[-1]
        if not can_proceed(getattr(share, name)):
            fulfilment.move_share(share, name, timezone.now())  # refused: 409
        elif name == "cancel":
            fulfilment.cancel_waiting(locked, [share], "test", timezone.now())
        else:
            assert fulfilment.carrier_update(locked, share, name, SYSTEM, at=timezone.now(), summary=name,
                                             payload={})


def snapshot(order: Order) -> dict:
    return {
        "order": Order.objects.filter(pk=order.pk).values().get(),
        "events": list(OrderEvent.objects.filter(order=order).values_list("pk", flat=True)),
        "shipments": Shipment.objects.filter(order=order).count(),
        "scanner_events": ScannerEvent.objects.filter(order=order).count(),
        "shares": list(FulfilmentOrder.objects.filter(order=order).exclude(status=SH.CANCELLED)
                       .order_by("number").values_list("status", flat=True)),
        "reservations": sorted(Reservation.objects.filter(order=order)
                               .values_list("pk", "warehouse_id", "quantity", "status")),
        "stock": sorted(StockLevel.objects.filter(sku__in=order.lines.values("sku"))
                        .values_list("warehouse_id", "sku_id", "on_hand", "reserved")),
    }


def active_reservations(snap: dict) -> list[tuple]:
    return [row for row in snap["reservations"] if row[3] == Reservation.State.ACTIVE]


STATUS_CASES = [
    pytest.param(name, state, state in sources, target, id=f"{name}-from-{state}")
    for name, (sources, target) in STATUS_TABLE.items()
    for state in Status.values
]
SHARE_CASES = [
    pytest.param(name, state, state in sources, target, id=f"{name}-from-{state}")
    for name, (sources, target) in SHARE_TABLE.items()
    for state in ShareState.values
]


@pytest.mark.parametrize(("name", "state", "allowed", "target"), STATUS_CASES)
def test_status_transition(name, state, allowed, target, ops):
    order = order_in_status(state, ops)
    before = snapshot(order)

    if allowed:
        run_status_transition(order, name, ops)
        order.refresh_from_db()
        after = snapshot(order)
        assert order.status == target
        expected = [("business", state, target)]
        if name == "approve":  # approval allocates to the warehouse holding the reservation
            expected.append(("physical", F.UNALLOCATED, F.ALLOCATED))
        elif name == "cancel":  # shares still in a warehouse are cancelled, reserved stock goes back
            expected += [("physical", share, SH.CANCELLED) for share in before["shares"]]
            if active_reservations(before):
                expected.append(("system", "", ""))
        new = OrderEvent.objects.filter(order=order).exclude(pk__in=before["events"]).order_by("id")
        assert [(e.track, e.from_state, e.to_state) for e in new] == expected
        business = new.get(track="business")
        assert order.status_changed_at == business.at
        if name == "approve":
            (reserved,) = active_reservations(before)
            assert (order.fulfilment, order.warehouse_id) == (F.ALLOCATED, reserved[1])
            assert new.get(track="physical").at >= business.at
            assert after["reservations"] == before["reservations"]
        elif name == "cancel":  # released (an unpaid order reserved nothing), none shipped
            assert order.fulfilment == before["order"]["fulfilment"]
            assert active_reservations(after) == []
            assert [row[:3] for row in after["stock"]] == [row[:3] for row in before["stock"]]
            assert all(reserved == 0 for *_, reserved in after["stock"])
        else:
            assert order.fulfilment == before["order"]["fulfilment"]
            assert (after["reservations"], after["stock"]) == (before["reservations"], before["stock"])
    else:
        with pytest.raises(Conflict) as refused:
            run_status_transition(order, name, ops)
        assert refused.value.extra["state"] == {
            "status": state, "fulfilment": before["order"]["fulfilment"]
        }
        assert refused.value.extra["allowed"] == STATUS_ALLOWED[state]
        assert name not in refused.value.extra["allowed"]
        assert snapshot(order) == before


@pytest.mark.parametrize(("name", "state", "allowed", "target"), SHARE_CASES)
def test_share_transition(name, state, allowed, target, ops):
    order, device = order_with_share(state, ops)
    before = snapshot(order)
    share = order.fulfilment_orders.latest("number")

    if allowed:
        run_share_transition(order, device, name)
        order.refresh_from_db()
        share.refresh_from_db()
        assert share.status == target
        assert order.status == S.APPROVED  # the physical track never moves the business one here
        assert order.fulfilment == ORDER_FOR_SHARE.get(target, before["order"]["fulfilment"])
        new = OrderEvent.objects.filter(order=order).exclude(pk__in=before["events"])
        (event,) = new
        assert event.track == "physical"
        assert event.payload["fulfilment_order"] == share.number
    else:
        with pytest.raises(Conflict) as refused:
            run_share_transition(order, device, name)
        assert refused.value.extra["state"] == {
            "fulfilment_order": share.code, "warehouse": share.warehouse.code, "status": state,
        }
        assert refused.value.extra["allowed"] == SHARE_ALLOWED[state]
        assert snapshot(order) == before


# --- stock along the way (issue 4) ----------------------------------------------------------


def test_payment_reserves_stock_and_the_timeline_says_where():
    sku = SKUFactory(code="SKU-TEA")
    order = make_order(lines=[(sku, 2, "10.00")])

    assert (order.status, order.fulfilment, order.warehouse_id) == (S.PAID, F.UNALLOCATED, None)
    assert reserved_in(order) == [DEFAULT_STOCK_WAREHOUSE]
    assert StockLevel.objects.get(sku=sku).reserved == 2
    events = list(order.events.order_by("id"))
    assert [(e.track, e.from_state, e.to_state, e.actor) for e in events[1:]] == [
        ("business", S.PENDING_PAYMENT, S.PAID, f"channel:{order.channel.code}"),
        ("system", "", "", "system"),
    ]
    assert events[-1].summary == f"stock reserved: {DEFAULT_STOCK_WAREHOUSE} × 2"


def test_a_paid_order_without_stock_goes_on_hold_with_the_reason(ops):
    sku = SKUFactory(code="SKU-GONE")
    order = make_order(lines=[(sku, 3, "10.00")], stock=False)

    assert order.status == S.ON_HOLD
    assert order.hold_reason == "out of stock: SKU-GONE needs 3, 0 available"
    assert not Reservation.objects.filter(order=order).exists()
    hold = order.events.order_by("id").last()
    assert (hold.track, hold.from_state, hold.to_state, hold.actor) == (
        "business", S.PAID, S.ON_HOLD, "system"
    )
    assert hold.summary == "on hold: out of stock: SKU-GONE needs 3, 0 available"
    assert hold.payload == {"shortages": [{"sku": "SKU-GONE", "needed": 3, "available": 0}]}
    # Held, it cannot be approved.
    with pytest.raises(Conflict) as refused:
        services.approve_order(order.order_no, ops)
    assert refused.value.extra["state"] == {"status": S.ON_HOLD, "fulfilment": F.UNALLOCATED}


def test_approval_allocates_to_the_reserved_warehouse_at_the_same_moment(ops):
    order = make_order()
    approved_at = timezone.now() - timedelta(hours=1)
    before = snapshot(order)

    services.approve_order(order.order_no, ops, at=approved_at)

    order.refresh_from_db()
    assert (order.status, order.fulfilment) == (S.APPROVED, F.ALLOCATED)
    assert order.warehouse.code == DEFAULT_STOCK_WAREHOUSE == reserved_in(order)[0]
    approve, allocate = OrderEvent.objects.filter(order=order).exclude(pk__in=before["events"]).order_by("id")
    assert (approve.track, approve.to_state, approve.actor, approve.at) == (
        "business", S.APPROVED, ops.label, approved_at
    )
    assert (allocate.track, allocate.from_state, allocate.to_state, allocate.actor, allocate.at) == (
        "physical", F.UNALLOCATED, F.ALLOCATED, "system", approved_at
    )
    assert allocate.summary == f"allocated to {DEFAULT_STOCK_WAREHOUSE} (automatic routing)"
    assert allocate.payload == {"warehouse": DEFAULT_STOCK_WAREHOUSE, "automatic": True}
    assert snapshot(order)["reservations"] == before["reservations"]  # nothing moved
    # No manual routing needed before the ship request.
    services.request_shipment(order.order_no, ops)
    order.refresh_from_db()
    assert order.status == S.SHIP_REQUESTED


def test_release_hold_without_stock_is_refused_and_changes_nothing_until_stock_arrives(ops):
    sku = SKUFactory(code="SKU-LATE")
    order = make_order(lines=[(sku, 2, "10.00")], stock=False)
    before = snapshot(order)

    with pytest.raises(Conflict) as refused:
        services.release_hold(order.order_no, ops)
    assert refused.value.detail == "still cannot reserve stock: out of stock: SKU-LATE needs 2, 0 available"
    assert refused.value.extra["shortages"] == [{"sku": "SKU-LATE", "needed": 2, "available": 0}]
    assert snapshot(order) == before

    stock_up(WarehouseFactory(code="WH-LATE"), [(sku, 2)], factor=1)
    services.release_hold(order.order_no, ops)

    order.refresh_from_db()
    assert (order.status, order.hold_reason) == (S.PAID, "")
    new = OrderEvent.objects.filter(order=order).exclude(pk__in=before["events"])
    assert [(e.track, e.from_state, e.to_state) for e in new] == [("business", S.ON_HOLD, S.PAID)]
    assert reserved_in(order) == ["WH-LATE"]
    assert StockLevel.objects.values_list("on_hand", "reserved").get(sku=sku) == (2, 2)


def test_an_order_routed_before_payment_reserves_and_ships_from_its_warehouse(ops):
    # WH-DEFAULT has the stock too and routing would pick it; the manual route must win.
    far = WarehouseFactory(code="WH-FAR", provinces=[], priority=5000)
    payload_order = make_order(status="pending_payment", external_order_id="EXT-ROUTED-EARLY")
    stock_order(far, payload_order)
    services.route_order(payload_order.order_no, far.code, ops)
    assert reserved_in(payload_order) == []  # this channel reserves on payment

    line = payload_order.lines.get()
    make_order(channel=payload_order.channel, lines=[(line.sku, line.quantity, line.unit_price)],
               status="paid", external_order_id="EXT-ROUTED-EARLY", stock=False)

    order = advance(payload_order, "outbound", actor=ops)
    assert (order.status, order.warehouse) == (S.SHIPPED, far)
    assert list(Reservation.objects.filter(order=order).values_list("warehouse__code", "status")) == [
        ("WH-FAR", "consumed")
    ]
    assert StockLevel.objects.get(warehouse__code=DEFAULT_STOCK_WAREHOUSE, sku=line.sku).reserved == 0


# --- "shipped" is a physical fact, not a button ---------------------------------------------


def test_ship_request_never_reaches_shipped_even_when_packed(ops):
    order = advance(make_order(), "packed", actor=ops, ship=False)
    services.request_shipment(order.order_no, ops)
    order.refresh_from_db()
    assert (order.status, order.fulfilment) == (S.SHIP_REQUESTED, F.PACKED)
    assert order.shipped_at is None


def test_mark_shipped_without_outbound_scan_is_refused_and_says_why(ops):
    order = advance(make_order(), "ship_requested", actor=ops)
    before = snapshot(order)
    with pytest.raises(Conflict) as refused:
        _system_transition(order.order_no, "mark_shipped")
    assert "outbound" in refused.value.detail
    assert snapshot(order) == before


def test_outbound_scan_of_a_ship_requested_order_ships_it(ops):
    order = advance(make_order(), "packed", actor=ops)
    level = StockLevel.objects.get(warehouse=order.warehouse, sku=order.lines.get().sku)
    order = advance(order, "outbound", actor=ops)
    assert (order.status, order.fulfilment) == (S.SHIPPED, F.OUTBOUND)
    # The parcel took its reserved units with it: on hand and reserved both fall.
    shipped = StockLevel.objects.get(pk=level.pk)
    assert (shipped.on_hand, shipped.reserved) == (level.on_hand - 1, level.reserved - 1)
    assert list(Reservation.objects.filter(order=order).exclude(status=Reservation.State.RELEASED)
                .values_list("warehouse", "status")) == [(order.warehouse_id, Reservation.State.CONSUMED)]
    assert order.shipped_at == order.physical_outbound_at
    last_two = list(OrderEvent.objects.filter(order=order).order_by("-id")[:2])[::-1]
    assert [(e.track, e.to_state, e.actor) for e in last_two] == [
        ("physical", F.OUTBOUND, f"device:{order.scanner_events.get(type=OUTBOUND).device.name}"),
        ("business", S.SHIPPED, "system"),
    ]


def test_outbound_before_ship_request_ships_when_the_request_comes(ops):
    order = advance(make_order(), "outbound", actor=ops, ship=False)
    assert (order.status, order.fulfilment) == (S.APPROVED, F.OUTBOUND)
    events_before = order.events.count()

    services.request_shipment(order.order_no, ops)

    order.refresh_from_db()
    assert order.status == S.SHIPPED
    new = list(order.events.order_by("id")[events_before:])
    assert [(e.from_state, e.to_state) for e in new] == [
        (S.APPROVED, S.SHIP_REQUESTED), (S.SHIP_REQUESTED, S.SHIPPED)
    ]


def test_sweep_ships_orders_where_both_facts_hold_and_nothing_else(ops):
    # The outbound scan happened while approved, then the ship request was stored but the
    # shipped transition did not fire (e.g. a crash between the two): simulated by a raw write.
    stuck = advance(make_order(), "outbound", actor=ops, ship=False)
    requested_at = timezone.now() - timedelta(minutes=1)
    Order.objects.filter(pk=stuck.pk).update(status=S.SHIP_REQUESTED, ship_requested_at=requested_at)
    waiting = advance(make_order(), "packed", actor=ops)  # requested, not out yet
    events_before = stuck.events.count()

    assert services.sweep_shipped() == 1

    stuck.refresh_from_db()
    waiting.refresh_from_db()
    assert stuck.status == S.SHIPPED
    assert stuck.shipped_at == max(requested_at, stuck.physical_outbound_at)
    (event,) = stuck.events.order_by("id")[events_before:]
    assert (event.from_state, event.to_state, event.actor) == (S.SHIP_REQUESTED, S.SHIPPED, "system")
    assert waiting.status == S.SHIP_REQUESTED
    assert services.sweep_shipped() == 0  # idempotent


def test_sweep_task_runs_the_sweep(ops):
    from orders.tasks import sweep_shipped

    stuck = advance(make_order(), "outbound", actor=ops, ship=False)
    Order.objects.filter(pk=stuck.pk).update(status=S.SHIP_REQUESTED, ship_requested_at=timezone.now())

    assert sweep_shipped.apply().get() == 1
    stuck.refresh_from_db()
    assert stuck.status == S.SHIPPED


def test_cancel_after_the_parcel_left_owes_the_money_back_and_opens_an_intercept_case(ops):
    order = advance(make_order(), "outbound", actor=ops, ship=False)
    services.cancel_order(order.order_no, "too late", ops)
    order.refresh_from_db()
    assert (order.status, order.fulfilment) == (S.REFUNDING, F.OUTBOUND)
    assert order.refund_due == order.payable_amount
    assert order.exception_cases.get().kind == "intercept_return"


def test_status_field_cannot_be_assigned_directly():
    order = make_order()
    with pytest.raises(AttributeError):
        order.status = S.SHIPPED


def test_a_role_without_the_permission_may_not_run_the_transition():
    order = make_order()
    cs = Actor.for_user(UserFactory(role="customer_service"))
    with pytest.raises(Forbidden):
        services.approve_order(order.order_no, cs)
    order.refresh_from_db()
    assert order.status == S.PAID


# --- database-level guarantees --------------------------------------------------------------


def test_check_constraint_refuses_shipped_without_physical_outbound():
    order = make_order()
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(status=S.SHIPPED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(status=S.COMPLETED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(fulfilment=F.OUTBOUND)
    order.refresh_from_db()
    assert (order.status, order.fulfilment) == (S.PAID, F.UNALLOCATED)


def test_order_events_are_append_only_in_the_model():
    event = make_order().events.first()
    event.summary = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert OrderEvent.objects.get(pk=event.pk).summary != "rewritten"


@pytest.mark.postgres
def test_order_events_are_append_only_in_the_database():
    event = make_order().events.first()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        OrderEvent.objects.filter(pk=event.pk).update(summary="x")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        OrderEvent.objects.filter(pk=event.pk).delete()
    assert OrderEvent.objects.get(pk=event.pk).summary == event.summary
