"""Concurrency on PostgreSQL: real threads, each with its own connection, started together.

The order row lock (services.lock_order) serializes every write to one order, the scanner
event_id and the order-number upsert make retries and parallel ingestion safe. These tests
commit for real (transaction=True) so that the threads see each other's work.
"""

import uuid
from collections import Counter

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from inventory.models import Reservation, StockLevel
from oms.errors import Conflict
from oms.tests.threads import run_together
from orders import services
from orders.events import Actor
from orders.models import Order, OrderEvent, ScannerEvent, Shipment, Status
from orders.scanning import OUTBOUND
from orders.tests.factories import (
    ChannelFactory,
    SKUFactory,
    WarehouseFactory,
    advance,
    make_device,
    make_order,
    ops_actor,
    order_payload,
    scan,
    scan_body,
    stock_up,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def stock_of(order: Order) -> tuple[int, int]:
    """(on hand, reserved) of the order's one SKU, over every warehouse."""
    sku = order.lines.get().sku
    rows = StockLevel.objects.filter(sku=sku).values_list("on_hand", "reserved")
    return sum(r[0] for r in rows), sum(r[1] for r in rows)


def business_path_is_consistent(order: Order) -> bool:
    """The business events chain from creation to the order's current status."""
    events = OrderEvent.objects.filter(order=order, track="business").order_by("at", "id")
    current = ""
    for event in events:
        if event.from_state != current:
            return False
        current = event.to_state
    return current == order.status


def test_twenty_parallel_outbound_events_apply_exactly_once():
    warehouse = WarehouseFactory()
    ops = ops_actor()
    order = advance(make_order(), "packed", warehouse=warehouse, actor=ops)
    _device, token = make_device(warehouse, "dock-1")
    now = timezone.now()
    shared = scan_body(order, OUTBOUND, at=now, event_id=uuid.uuid4(), tracking_no="SF0000000001")
    bodies = [shared] * 10 + [
        scan_body(order, OUTBOUND, at=now, tracking_no=f"SF10000000{n:02d}") for n in range(10)
    ]

    def post(body):
        def call():
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
            response = client.post("/api/v1/warehouse/events/", body, format="json")
            return response.status_code, response.json()
        return call

    results = run_together([post(body) for body in bodies])

    assert [r for r in results if r[0] == "error"] == []
    codes = Counter(code for _ok, (code, _body) in results)
    assert codes[201] == 1, codes
    assert set(codes) <= {200, 201, 409}, codes
    winner = next(body for (_ok, (code, body)) in results if code == 201)
    assert winner == {"order_no": order.order_no, "status": "shipped", "fulfilment": "outbound",
                      "fulfilment_order": winner["fulfilment_order"], "fulfilment_order_status": "outbound"}
    for _ok, (code, body) in results:
        if code == 200:  # replays of the shared event_id answer what the winner got
            assert body == winner

    order.refresh_from_db()
    assert (order.status, order.fulfilment) == (Status.SHIPPED, "outbound")
    assert OrderEvent.objects.filter(order=order, to_state="outbound").count() == 1
    assert OrderEvent.objects.filter(order=order, to_state="shipped").count() == 1
    assert Shipment.objects.filter(order=order).count() == 1
    assert ScannerEvent.objects.filter(order=order, type=OUTBOUND, response_status=201).count() == 1
    assert business_path_is_consistent(order)


def test_parallel_approvals_of_one_order_apply_once():
    order = make_order()
    actors = [ops_actor() for _ in range(8)]

    results = run_together([lambda a=a: services.approve_order(order.order_no, a) for a in actors])

    outcomes = Counter(kind for kind, _value in results)
    assert outcomes == {"ok": 1, "error": 7}
    assert all(isinstance(value, Conflict) for kind, value in results if kind == "error")
    assert OrderEvent.objects.filter(order=order, to_state="approved").count() == 1
    # Allocated once, by the approval that won, to the warehouse holding the reservation.
    assert OrderEvent.objects.filter(order=order, track="physical", to_state="allocated").count() == 1
    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert order.fulfilment == "allocated"
    assert list(order.reservations.values_list("warehouse", "status")) == [(order.warehouse_id, "active")]
    assert business_path_is_consistent(order)


def test_cancel_racing_the_outbound_scan_one_wins_and_the_other_is_refused():
    warehouse = WarehouseFactory()
    ops = ops_actor()
    order = advance(make_order(), "packed", warehouse=warehouse, actor=ops)
    device, _token = make_device(warehouse, "dock-1")
    on_hand, reserved = stock_of(order)
    assert reserved == 1

    results = run_together([
        lambda: services.cancel_order(order.order_no, "customer called", ops),
        lambda: scan(device, order, OUTBOUND),
    ])

    (cancel_kind, cancel_value), (scan_kind, scan_value) = results
    order.refresh_from_db()
    if order.status == Status.CANCELLED:
        assert cancel_kind == "ok"
        assert scan_kind == "error" and isinstance(scan_value, Conflict)
        assert not Shipment.objects.filter(order=order).exists()
        assert order.physical_outbound_at is None
        assert not OrderEvent.objects.filter(order=order, to_state="outbound").exists()
        assert stock_of(order) == (on_hand, 0)  # released, nothing left the shelf
    else:
        assert order.status == Status.SHIPPED
        assert scan_kind == "ok" and scan_value.status_code == 201
        assert cancel_kind == "error" and isinstance(cancel_value, Conflict)
        assert Shipment.objects.filter(order=order).count() == 1
        assert not OrderEvent.objects.filter(order=order, track="business", to_state="cancelled").exists()
        assert stock_of(order) == (on_hand - 1, 0)  # consumed: the unit left with the parcel
    assert not order.reservations.filter(status="active").exists()
    assert business_path_is_consistent(order)


def test_approve_and_cancel_together_serialize():
    order = make_order()
    ops = ops_actor()

    results = run_together([
        lambda: services.approve_order(order.order_no, ops),
        lambda: services.cancel_order(order.order_no, "duplicate order", ops),
    ])

    (approve_kind, approve_value), (cancel_kind, _cancel_value) = results
    order.refresh_from_db()
    # Cancel always succeeds (from paid or from approved); approve only if it came first.
    assert cancel_kind == "ok"
    assert order.status == Status.CANCELLED
    approved = OrderEvent.objects.filter(order=order, to_state="approved").count()
    if approve_kind == "ok":
        assert approved == 1
    else:
        assert isinstance(approve_value, Conflict) and approved == 0
        assert approve_value.extra["state"]["status"] == Status.CANCELLED
    assert OrderEvent.objects.filter(order=order, track="business", to_state="cancelled").count() == 1
    # Whichever came first, the reservation is released exactly once.
    assert list(order.reservations.values_list("status", flat=True)) == ["released"]
    assert stock_of(order)[1] == 0
    assert business_path_is_consistent(order)


def test_twenty_parallel_orders_get_twenty_distinct_numbers():
    channel = ChannelFactory(kind="taobao")
    sku = SKUFactory()
    stock_up(WarehouseFactory(), [(sku, 20)], factor=1)  # exactly one unit per order
    placed_at = timezone.now()
    payloads = [order_payload([(sku, 1, "9.90")], placed_at=placed_at, phone="13800001234")
                for _ in range(20)]

    results = run_together([
        lambda p=p: services.create_order(channel, p, Actor.for_channel(channel)) for p in payloads
    ])

    assert [r for r in results if r[0] == "error"] == []
    numbers = {order.order_no for _ok, (order, _result) in results}
    day = timezone.localdate(placed_at)
    assert numbers == {f"TB{day:%Y%m%d}{n:05d}" for n in range(1, 21)}
    assert Order.objects.filter(channel=channel).count() == 20
    # The same buyer phone, concurrently: one identity.
    assert len(set(Order.objects.filter(channel=channel).values_list("customer_id", flat=True))) == 1
    # Every order reserved its unit: all paid, the stock exactly used up, never oversold.
    assert set(Order.objects.filter(channel=channel).values_list("status", flat=True)) == {Status.PAID}
    assert StockLevel.objects.values_list("on_hand", "reserved").get(sku=sku) == (20, 20)
    assert Reservation.objects.filter(sku=sku, status="active").count() == 20


def test_the_same_channel_order_delivered_in_parallel_is_created_once():
    channel = ChannelFactory()
    payload = order_payload(external_order_id="MP-RACE-1")
    stock_up(WarehouseFactory(), [(line["sku"], line["quantity"]) for line in payload["lines"]])

    results = run_together([
        lambda: services.create_order(channel, dict(payload), Actor.for_channel(channel))
        for _ in range(10)
    ])

    assert [r for r in results if r[0] == "error"] == []
    assert Counter(result for _ok, (_order, result) in results) == {"created": 1, "unchanged": 9}
    assert len({order.pk for _ok, (order, _result) in results}) == 1
    assert Order.objects.filter(channel=channel, external_order_id="MP-RACE-1").count() == 1
    (order,) = {order for _ok, (order, _result) in results}
    assert order.status == Status.PAID
    assert list(order.reservations.values_list("quantity", "status")) == [(1, "active")]  # reserved once
