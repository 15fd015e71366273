"""Order reads and actions, the timeline, device registration and master data over the API."""

import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from inventory.models import SKU, Reservation, StockLevel, Warehouse
from orders import services
from orders.models import Order, OrderEvent, WarehouseDevice
from orders.scanning import OUTBOUND, PICK_STARTED
from orders.tests.factories import (
    DEFAULT_STOCK_WAREHOUSE,
    ChannelFactory,
    SKUFactory,
    WarehouseFactory,
    advance,
    make_order,
    scan_body,
    stock_order,
    stock_up,
)

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"
MONEY = re.compile(r"^\d+\.\d{2}$")


@pytest.fixture
def ops_client(client_for):
    return client_for("ops")


@pytest.fixture
def cs_client(client_for):
    return client_for("customer_service")


def manual_body(**overrides):
    body = {
        "external_order_id": "PHONE-0001",
        "status": "paid",
        "placed_at": "2026-01-09T10:00:00+08:00",
        "paid_at": "2026-01-09T10:00:05+08:00",
        "currency": "CNY",
        "buyer": {"name": "张三", "phone": "13800001234"},
        "receiver": {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
                     "district": "浦东新区", "address": "世纪大道100号"},
        "lines": [{"sku": "SKU-001", "quantity": 2, "unit_price": "99.00", "discount": "0.00"}],
        "shipping_fee": "0.00",
        "discount_total": "0.00",
        "payable": "198.00",
    }
    body.update(overrides)
    return body


def stocked_sku(code: str = "SKU-001", **fields) -> SKU:
    """A SKU with units on hand in WH-DEFAULT, so a paid manual order reserves instead of
    going on hold as out of stock."""
    sku = SKUFactory(code=code, **fields)
    stock_up(WarehouseFactory(code=DEFAULT_STOCK_WAREHOUSE, priority=1000), [(sku, 10)])
    return sku


def reservations(order_no: str) -> list[tuple[str, int, str]]:
    return list(Reservation.objects.filter(order__order_no=order_no).order_by("id")
                .values_list("warehouse__code", "quantity", "status"))


def levels(sku_code: str) -> dict[str, tuple[int, int]]:
    return {code: (on_hand, reserved) for code, on_hand, reserved in StockLevel.objects.filter(
        sku__code=sku_code).values_list("warehouse__code", "on_hand", "reserved")}


def order_nos(response) -> set[str]:
    assert response.status_code == 200, response.json()
    return {row["order_no"] for row in response.json()["results"]}


# --- manual order creation ------------------------------------------------------------------


def test_manual_order_is_created_on_the_manual_channel(ops_client, manual_channel):
    stocked_sku("SKU-001", barcode="6901234567890")

    response = ops_client.post(ORDERS, manual_body(), format="json")

    assert response.status_code == 201, response.json()
    data = response.json()
    assert re.fullmatch(r"MN2026010\d{6}", data["order_no"])
    assert data["order_no"].startswith("MN20260109")
    assert data["channel"] == "MANUAL"
    assert data["external_order_id"] == "PHONE-0001"
    assert (data["status"], data["fulfilment"], data["warehouse"]) == ("paid", "unallocated", None)
    assert data["payable_amount"] == "198.00"
    for field in ("goods_amount", "shipping_fee", "discount_amount", "payable_amount"):
        assert isinstance(data[field], str) and MONEY.match(data[field]), field
    assert data["lines"] == [{
        "line_no": 1, "sku": "SKU-001", "barcode": "6901234567890", "name": data["lines"][0]["name"],
        "quantity": 2, "unit_price": "99.00", "discount": "0.00",
    }]
    assert parse_datetime(data["placed_at"]) == parse_datetime("2026-01-09T10:00:00+08:00")
    assert parse_datetime(data["paid_at"]) == parse_datetime("2026-01-09T10:00:05+08:00")
    assert data["receiver"]["phone"] == "138****1234"  # the API never shows the full phone
    assert data["shipments"] == []
    assert Order.objects.get(order_no=data["order_no"]).customer.phone_hash
    # Paid on entry: the stock is reserved, the order is allocated only when approved.
    assert reservations(data["order_no"]) == [(DEFAULT_STOCK_WAREHOUSE, 2, "active")]


def test_manual_paid_order_without_stock_is_created_on_hold_saying_why(ops_client, manual_channel):
    SKUFactory(code="SKU-001")

    response = ops_client.post(ORDERS, manual_body(), format="json")

    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["status"], data["fulfilment"], data["warehouse"]) == ("on_hold", "unallocated", None)
    order = Order.objects.get(order_no=data["order_no"])
    assert order.hold_reason == "out of stock: SKU-001 needs 2, 0 available"
    assert reservations(data["order_no"]) == []


def test_manual_order_without_external_id_or_placed_at_gets_them(ops_client, manual_channel):
    stocked_sku()
    body = manual_body()
    del body["external_order_id"], body["placed_at"], body["paid_at"]

    response = ops_client.post(ORDERS, body, format="json")

    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["order_no"].startswith(f"MN{timezone.localdate():%Y%m%d}")
    assert re.fullmatch(r"MN\d{8}\d{5}", data["order_no"])
    assert data["external_order_id"].startswith("M-")


def test_manual_order_on_a_named_channel_and_resubmission(ops_client):
    stocked_sku()
    ChannelFactory(code="TB-FLAGSHIP", kind="taobao")
    body = manual_body(channel="TB-FLAGSHIP")

    first = ops_client.post(ORDERS, body, format="json")
    again = ops_client.post(ORDERS, body, format="json")

    assert first.status_code == 201
    assert first.json()["order_no"].startswith("TB20260109")
    assert again.status_code == 200  # same channel order: not created twice
    assert again.json()["order_no"] == first.json()["order_no"]
    assert Order.objects.count() == 1
    assert reservations(first.json()["order_no"]) == [(DEFAULT_STOCK_WAREHOUSE, 2, "active")]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"payable": "197.00"}, "payable"),
        ({"lines": [{"sku": "NOPE", "quantity": 1, "unit_price": "1.00"}], "payable": "1.00"}, "lines"),
        ({"lines": []}, "lines"),
        ({"lines": [{"sku": "SKU-001", "quantity": 0, "unit_price": "1.00"}]}, "lines"),
        ({"receiver": {"name": "x"}}, "receiver"),
        ({"channel": "NO-SUCH-CHANNEL"}, "channel"),
        ({"status": "shipped"}, "status"),
        ({"paid_at": "2026-01-09T09:00:00+08:00"}, "paid_at"),
        ({"shipping_fee": "-1.00"}, "shipping_fee"),
    ],
)
def test_bad_manual_order_is_400_naming_the_field(ops_client, manual_channel, change, field):
    stocked_sku()

    response = ops_client.post(ORDERS, manual_body(**change), format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "validation"
    assert field in response.json()["fields"], response.json()
    assert not Order.objects.exists()
    assert not Reservation.objects.exists()


def test_payable_must_equal_lines_minus_discounts_plus_shipping(ops_client, manual_channel):
    stocked_sku()
    body = manual_body(
        lines=[{"sku": "SKU-001", "quantity": 2, "unit_price": "99.00", "discount": "10.00"}],
        shipping_fee="12.00", discount_total="5.00", payable="195.00",
    )
    response = ops_client.post(ORDERS, body, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["goods_amount"], data["discount_amount"], data["shipping_fee"],
            data["payable_amount"]) == ("198.00", "15.00", "12.00", "195.00")


# --- list and retrieve ----------------------------------------------------------------------


def test_list_filters(ops_client, ops, warehouse):
    shop_a, shop_b = ChannelFactory(code="SHOP-A"), ChannelFactory(code="SHOP-B", kind="jd")
    shanghai = timezone.get_fixed_timezone(8 * 60)
    first = make_order(shop_a, placed_at=datetime(2026, 1, 5, 10, tzinfo=shanghai))
    second = make_order(shop_a, status="pending_payment",
                        placed_at=datetime(2026, 1, 7, 10, tzinfo=shanghai))
    third = make_order(shop_b, placed_at=datetime(2026, 1, 9, 10, tzinfo=shanghai))
    advance(third, "routed", warehouse=warehouse, actor=ops)
    a, b, c = first.order_no, second.order_no, third.order_no

    assert order_nos(ops_client.get(ORDERS)) == {a, b, c}
    assert order_nos(ops_client.get(ORDERS, {"status": "paid"})) == {a}
    assert order_nos(ops_client.get(ORDERS, {"status": ["paid", "pending_payment"]})) == {a, b}
    assert order_nos(ops_client.get(ORDERS, {"fulfilment": "allocated"})) == {c}
    assert order_nos(ops_client.get(ORDERS, {"channel": "SHOP-A"})) == {a, b}
    assert order_nos(ops_client.get(ORDERS, {"warehouse": "WH-SH"})) == {c}
    assert order_nos(ops_client.get(ORDERS, {"placed_after": "2026-01-06T00:00:00+08:00"})) == {b, c}
    assert order_nos(ops_client.get(ORDERS, {"placed_before": "2026-01-07T10:00:00+08:00"})) == {a}
    assert order_nos(ops_client.get(ORDERS, {
        "placed_after": "2026-01-06T00:00:00+08:00", "placed_before": "2026-01-08T00:00:00+08:00",
        "channel": "SHOP-A",
    })) == {b}
    assert order_nos(ops_client.get(ORDERS, {"channel": "SHOP-A", "status": "approved"})) == set()

    listing = ops_client.get(ORDERS).json()
    assert listing["count"] == 3
    assert [row["order_no"] for row in listing["results"]] == [c, b, a]  # newest first


def test_bad_filter_value_is_400_naming_the_filter(ops_client):
    response = ops_client.get(ORDERS, {"status": "teleported"})
    assert response.status_code == 400
    assert "status" in response.json()["fields"]
    assert ops_client.get(ORDERS, {"placed_after": "soon"}).status_code == 400


def test_retrieve_has_the_contract_fields(ops_client, ops, warehouse, device):
    sku = SKUFactory(code="SKU-009", barcode="6900000000093")
    order = make_order(lines=[(sku, 3, "10.50")])
    advance(order, "outbound", warehouse=warehouse, device=device, actor=ops)

    data = ops_client.get(f"{ORDERS}{order.order_no}/").json()

    for field in ("order_no", "channel", "external_order_id", "status", "fulfilment", "warehouse",
                  "goods_amount", "shipping_fee", "discount_amount", "payable_amount",
                  "placed_at", "paid_at", "approved_at", "ship_requested_at", "picking_started_at",
                  "packed_at", "physical_outbound_at", "shipped_at", "lines", "shipments"):
        assert field in data, field
    assert (data["status"], data["fulfilment"], data["warehouse"]) == ("shipped", "outbound", "WH-SH")
    assert data["payable_amount"] == "31.50"
    assert [(line["sku"], line["barcode"], line["quantity"], line["unit_price"])
            for line in data["lines"]] == [("SKU-009", "6900000000093", 3, "10.50")]
    (shipment,) = data["shipments"]
    assert set(shipment) == {"carrier", "tracking_no", "outbound_at", "warehouse", "fulfilment_order"}
    (share,) = [f for f in data["fulfilment_orders"] if f["status"] != "cancelled"]
    assert (share["warehouse"], share["status"], shipment["fulfilment_order"]) == ("WH-SH", "outbound", share["number"])
    assert shipment["carrier"] == "SF"
    assert parse_datetime(shipment["outbound_at"]) == parse_datetime(data["physical_outbound_at"])


def test_unknown_order_is_404_everywhere(ops_client):
    for response in (
        ops_client.get(f"{ORDERS}TB2026010900999/"),
        ops_client.get(f"{ORDERS}TB2026010900999/timeline/"),
        ops_client.post(f"{ORDERS}TB2026010900999/approve/"),
        ops_client.post(f"{ORDERS}TB2026010900999/route/", {"warehouse": "WH-SH"}, format="json"),
        ops_client.post(f"{ORDERS}TB2026010900999/ship-request/"),
        ops_client.post(f"{ORDERS}TB2026010900999/cancel/", {"reason": "x"}, format="json"),
        ops_client.post(f"{ORDERS}TB2026010900999/notes/", {"text": "x"}, format="json"),
    ):
        assert response.status_code == 404, response.request["PATH_INFO"]
        assert response.json()["error"] == "not_found"


# --- actions --------------------------------------------------------------------------------


def test_approve_then_approve_again_is_409_with_state_and_allowed(ops_client):
    order = make_order()

    approved = ops_client.post(f"{ORDERS}{order.order_no}/approve/")
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved"
    assert approved.json()["approved_at"]
    # Allocated at once to the warehouse holding its reservation.
    assert (approved.json()["fulfilment"], approved.json()["warehouse"]) == (
        "allocated", DEFAULT_STOCK_WAREHOUSE
    )
    events = order.events.count()

    again = ops_client.post(f"{ORDERS}{order.order_no}/approve/")
    assert again.status_code == 409
    body = again.json()
    assert body["error"] == "conflict"
    assert body["detail"]
    assert body["state"] == {"status": "approved", "fulfilment": "allocated"}
    assert body["allowed"] == ["cancel", "hold", "request_shipment", "start_refund"]
    assert order.events.count() == events


def test_route_assigns_and_reassigns_the_warehouse(ops_client, warehouse):
    sku = SKUFactory(code="SKU-R")
    order = make_order(lines=[(sku, 1, "9.90")])
    url = f"{ORDERS}{order.order_no}/route/"
    stock_order(warehouse, order)

    routed = ops_client.post(url, {"warehouse": "WH-SH"}, format="json")
    assert routed.status_code == 200
    assert (routed.json()["warehouse"], routed.json()["fulfilment"]) == ("WH-SH", "allocated")
    first = order.events.order_by("-id").first()
    assert first.summary == "routed to WH-SH; reservation moved: WH-SH × 1"
    assert first.payload == {"warehouse": "WH-SH", "previous": None}

    stock_order(WarehouseFactory(code="WH-BJ"), order)
    rerouted = ops_client.post(url, {"warehouse": "WH-BJ"}, format="json")
    assert rerouted.status_code == 200
    assert rerouted.json()["warehouse"] == "WH-BJ"
    last = order.events.order_by("-id").first()
    assert last.summary == "routed to WH-BJ (was WH-SH); reservation moved: WH-BJ × 1"
    assert last.payload == {"warehouse": "WH-BJ", "previous": "WH-SH"}
    # The reservation moved with the order each time: reserved only where it now ships from.
    assert [row for row in reservations(order.order_no) if row[2] == "active"] == [("WH-BJ", 1, "active")]
    assert levels("SKU-R") == {DEFAULT_STOCK_WAREHOUSE: (10, 0), "WH-SH": (10, 0), "WH-BJ": (10, 1)}


def test_route_to_a_warehouse_without_stock_is_409_and_changes_nothing(ops_client, ops):
    sku = SKUFactory(code="SKU-R")
    order = advance(make_order(lines=[(sku, 2, "9.90")]), "approved", actor=ops)
    assert order.warehouse.code == DEFAULT_STOCK_WAREHOUSE
    empty = WarehouseFactory(code="WH-BJ")
    stock_up(empty, [(sku, 1)], factor=1)  # one unit: not enough for the order's two
    before = (reservations(order.order_no), levels("SKU-R"), order.events.count())

    response = ops_client.post(f"{ORDERS}{order.order_no}/route/", {"warehouse": "WH-BJ"}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "detail": "out of stock: SKU-R needs 2, 1 available",
        "shortages": [{"sku": "SKU-R", "needed": 2, "available": 1}],
    }
    order.refresh_from_db()
    assert (order.warehouse.code, order.fulfilment) == (DEFAULT_STOCK_WAREHOUSE, "allocated")
    assert (reservations(order.order_no), levels("SKU-R"), order.events.count()) == before
    assert before[0] == [(DEFAULT_STOCK_WAREHOUSE, 2, "active")]


@pytest.mark.parametrize("body", [{"warehouse": "NOWHERE"}, {}, {"warehouse": "WH-OFF"}])
def test_route_to_an_unknown_or_inactive_warehouse_is_400(ops_client, body):
    WarehouseFactory(code="WH-OFF", active=False)
    order = make_order()
    response = ops_client.post(f"{ORDERS}{order.order_no}/route/", body, format="json")
    assert response.status_code == 400
    assert "warehouse" in response.json()["fields"]
    order.refresh_from_db()
    assert (order.warehouse_id, order.fulfilment) == (None, "unallocated")


def test_route_after_picking_started_is_409(ops_client, ops, warehouse, device):
    order = advance(make_order(), "picking", warehouse=warehouse, device=device, actor=ops)
    WarehouseFactory(code="WH-BJ")
    response = ops_client.post(f"{ORDERS}{order.order_no}/route/", {"warehouse": "WH-BJ"},
                               format="json")
    assert response.status_code == 409
    assert response.json()["state"] == {"fulfilment_order": f"{order.order_no}-F2", "warehouse": "WH-SH",
                                        "status": "picking"}
    assert response.json()["allowed"] == ["cancel", "verify_pack"]
    order.refresh_from_db()
    assert order.warehouse.code == "WH-SH"
    assert [row for row in reservations(order.order_no) if row[2] == "active"] == [("WH-SH", 1, "active")]


def test_ship_request_reaches_ship_requested_never_shipped(ops_client, ops, warehouse, device):
    order = advance(make_order(), "packed", warehouse=warehouse, device=device, actor=ops, ship=False)

    response = ops_client.post(f"{ORDERS}{order.order_no}/ship-request/")

    assert response.status_code == 200
    data = response.json()
    assert (data["status"], data["fulfilment"]) == ("ship_requested", "packed")
    assert data["ship_requested_at"] and data["shipped_at"] is None


def test_ship_request_right_after_approval_needs_no_routing(ops_client, ops):
    order = advance(make_order(), "approved", actor=ops)

    response = ops_client.post(f"{ORDERS}{order.order_no}/ship-request/")

    assert response.status_code == 200
    data = response.json()
    assert (data["status"], data["fulfilment"], data["warehouse"]) == (
        "ship_requested", "allocated", DEFAULT_STOCK_WAREHOUSE
    )


def test_ship_request_before_approval_is_409_with_state_and_allowed(ops_client):
    order = make_order()
    response = ops_client.post(f"{ORDERS}{order.order_no}/ship-request/")
    assert response.status_code == 409
    assert response.json()["state"] == {"status": "paid", "fulfilment": "unallocated"}
    assert response.json()["allowed"] == ["approve", "cancel", "hold", "start_refund"]


def test_ship_request_without_a_warehouse_is_409_saying_route_first(ops_client, ops):
    # Approval allocates, so only an order approved before stock was wired in (or whose
    # allocation was undone by hand) lacks a warehouse: written here as a raw row.
    order = advance(make_order(), "approved", actor=ops)
    Order.objects.filter(pk=order.pk).update(warehouse=None, fulfilment="unallocated")
    events = order.events.count()
    response = ops_client.post(f"{ORDERS}{order.order_no}/ship-request/")
    assert response.status_code == 409
    assert "route" in response.json()["detail"]
    assert response.json()["state"] == {"status": "approved", "fulfilment": "unallocated"}
    assert order.events.count() == events


def test_cancel_needs_a_reason(ops_client):
    order = make_order()
    url = f"{ORDERS}{order.order_no}/cancel/"

    for body in ({}, {"reason": ""}, {"reason": "   "}):
        response = ops_client.post(url, body, format="json")
        assert response.status_code == 400
        assert "reason" in response.json()["fields"]

    cancelled = ops_client.post(url, {"reason": "customer called"}, format="json")
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == (
        "cancelled", "customer called"
    )
    again = ops_client.post(url, {"reason": "again"}, format="json")
    assert again.status_code == 409
    assert again.json()["allowed"] == []
    # The reserved units went back on sale, once.
    assert reservations(order.order_no) == [(DEFAULT_STOCK_WAREHOUSE, 1, "released")]
    assert set(levels(order.lines.get().sku.code).values()) == {(10, 0)}


def test_notes_are_added_to_the_timeline(cs_client):
    order = make_order()
    url = f"{ORDERS}{order.order_no}/notes/"

    response = cs_client.post(url, {"text": "客户来电询问发货时间"}, format="json")

    assert response.status_code == 201
    data = response.json()
    assert data["order_no"] == order.order_no
    assert data["text"] == "客户来电询问发货时间"
    assert data["actor"] == f"user:{cs_client.user.username}"
    note = OrderEvent.objects.get(order=order, kind="note")
    assert (note.track, note.user_id, note.payload["text"]) == ("system", cs_client.user.pk, data["text"])
    order.refresh_from_db()
    assert order.status == "paid"  # a note changes no state

    for body in ({}, {"text": ""}, {"text": "x" * 2001}):
        assert cs_client.post(url, body, format="json").status_code == 400


# --- timeline -------------------------------------------------------------------------------


def test_timeline_of_a_fresh_order(ops_client, manual_channel):
    stocked_sku()
    body = manual_body()
    del body["placed_at"], body["paid_at"]
    order_no = ops_client.post(ORDERS, body, format="json").json()["order_no"]

    response = ops_client.get(f"{ORDERS}{order_no}/timeline/")

    assert response.status_code == 200
    data = response.json()
    assert (data["order_no"], data["status"], data["fulfilment"]) == (order_no, "paid", "unallocated")
    assert [stage["stage"] for stage in data["customer_track"]] == ["pending_payment", "paid"]
    for stage in data["customer_track"]:
        assert parse_datetime(stage["entered_at"])
        assert isinstance(stage["duration_seconds"], int) and stage["duration_seconds"] >= 0
    assert data["customer_track"][-1]["current"] is True
    assert len(data["system_log"]) == 3  # created, paid, stock reserved
    for entry in data["system_log"]:
        assert {"at", "track", "kind", "actor", "summary", "data"} <= set(entry)
        assert entry["track"] in ("business", "physical", "system")
    assert data["system_log"][0]["actor"] == f"user:{ops_client.user.username}"
    reserved = data["system_log"][-1]
    assert (reserved["track"], reserved["actor"], reserved["summary"]) == (
        "system", "system", f"stock reserved: {DEFAULT_STOCK_WAREHOUSE} × 2"
    )
    assert data["blocking"] is None


def test_timeline_shows_durations_and_where_a_late_order_is_blocked(
    ops_client, cs_client, ops, warehouse, device_client
):
    now = timezone.now()
    placed = now - timedelta(hours=20)
    order = make_order(placed_at=placed, paid_at=placed + timedelta(minutes=2))
    stock_order(warehouse, order)
    services.approve_order(order.order_no, ops, at=placed + timedelta(minutes=30))
    services.route_order(order.order_no, warehouse.code, ops, at=placed + timedelta(minutes=31))
    requested_at = now - timedelta(hours=18)
    services.request_shipment(order.order_no, ops, at=requested_at)
    picked = device_client.post("/api/v1/warehouse/events/", scan_body(
        order, PICK_STARTED, at=requested_at + timedelta(minutes=10), station="pack-B",
    ), format="json")
    assert picked.status_code == 201

    data = cs_client.get(f"{ORDERS}{order.order_no}/timeline/").json()

    track = data["customer_track"]
    assert [stage["stage"] for stage in track] == [
        "pending_payment", "paid", "approved", "ship_requested"
    ]
    assert [stage["duration_seconds"] for stage in track[:3]] == [120, 28 * 60, 2 * 3600 - 30 * 60]
    assert track[-1]["duration_seconds"] == pytest.approx(18 * 3600, abs=120)

    scan_entry = next(e for e in data["system_log"] if e["kind"] == "scan")
    assert (scan_entry["track"], scan_entry["actor"]) == ("physical", "device:pack-B")
    assert scan_entry["data"]["station"] == "pack-B"
    assert [e["at"] for e in data["system_log"]] == sorted(
        (e["at"] for e in data["system_log"]), key=parse_datetime
    )

    blocking = data["blocking"]
    assert blocking is not None
    assert blocking["stage"] == "ship_requested"
    assert parse_datetime(blocking["since"]) == requested_at
    assert blocking["duration_seconds"] == pytest.approx(18 * 3600, abs=120)
    assert blocking["last_location"] == "pack-B"
    assert blocking["fulfilment"] == "picking"

    # Once it ships, the order no longer waits on the warehouse.
    for kind, offset in (("pack_verified", 11), (OUTBOUND, 12)):
        reply = device_client.post("/api/v1/warehouse/events/", scan_body(
            order, kind, at=requested_at + timedelta(minutes=offset)), format="json")
        assert reply.status_code == 201
    after = ops_client.get(f"{ORDERS}{order.order_no}/timeline/").json()
    assert after["customer_track"][-1]["stage"] == "shipped"
    assert after["blocking"] is None


# --- warehouse devices ------------------------------------------------------------------------


def test_device_registration_returns_a_token_that_posts_scanner_events(ops_client, ops, warehouse):
    response = ops_client.post("/api/v1/warehouse/devices/", {"warehouse": "WH-SH", "name": "dock-3"},
                               format="json")

    assert response.status_code == 201
    data = response.json()
    assert {"id", "token"} <= set(data)
    device = WarehouseDevice.objects.get(pk=data["id"])
    assert (device.warehouse.code, device.name) == ("WH-SH", "dock-3")

    order = advance(make_order(), "ship_requested", warehouse=warehouse, actor=ops)
    scanner = APIClient()
    scanner.credentials(HTTP_AUTHORIZATION=f"Token {data['token']}")
    reply = scanner.post("/api/v1/warehouse/events/", scan_body(order, PICK_STARTED), format="json")
    assert reply.status_code == 201
    # ...and nothing else.
    assert scanner.get(ORDERS).status_code == 403


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"warehouse": "NOWHERE", "name": "x"}, 400, "warehouse"),
        ({"warehouse": "WH-SH"}, 400, "name"),
        ({"warehouse": "WH-SH", "name": "   "}, 400, "name"),
        ({"warehouse": "WH-SH", "name": "pack-B"}, 409, None),
        ({"warehouse": "WH-SH", "name": "PACK-b"}, 409, None),  # same service user name
    ],
)
def test_bad_device_registration(ops_client, device, body, status, field):
    devices = WarehouseDevice.objects.count()
    response = ops_client.post("/api/v1/warehouse/devices/", body, format="json")
    assert response.status_code == status, response.json()
    if field:
        assert field in response.json()["fields"]
    assert WarehouseDevice.objects.count() == devices


# --- master data ----------------------------------------------------------------------------


def test_warehouses_by_code(ops_client, cs_client):
    body = {"code": "WH-GZ", "name": "Guangzhou", "provinces": ["广东", "广西"], "priority": 10,
            "active": True}
    created = ops_client.post("/api/v1/inventory/warehouses/", body, format="json")
    assert created.status_code == 201
    assert created.json() == body

    assert cs_client.get("/api/v1/inventory/warehouses/WH-GZ/").json() == body
    listing = cs_client.get("/api/v1/inventory/warehouses/").json()
    assert [row["code"] for row in listing["results"]] == ["WH-GZ"]

    patched = ops_client.patch("/api/v1/inventory/warehouses/WH-GZ/", {"active": False}, format="json")
    assert patched.status_code == 200
    assert Warehouse.objects.get(code="WH-GZ").active is False
    assert cs_client.get("/api/v1/inventory/warehouses/NOPE/").status_code == 404


def test_skus_by_code(ops_client, cs_client):
    body = {"code": "SKU-100", "barcode": "6901000000001", "name": "保温杯", "category": "home"}
    created = ops_client.post("/api/v1/inventory/skus/", body, format="json")
    assert created.status_code == 201
    assert created.json() == body
    assert cs_client.get("/api/v1/inventory/skus/SKU-100/").json() == body
    assert [row["code"] for row in cs_client.get("/api/v1/inventory/skus/", {"barcode": "6901000000001"})
            .json()["results"]] == ["SKU-100"]


def test_customer_service_cannot_change_master_data(cs_client):
    assert cs_client.post("/api/v1/inventory/warehouses/", {"code": "X", "name": "X"},
                          format="json").status_code == 403
    assert cs_client.post("/api/v1/inventory/skus/", {"code": "X", "barcode": "1", "name": "X"},
                          format="json").status_code == 403
    assert not Warehouse.objects.exists() and not SKU.objects.exists()


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/inventory/warehouses/", {"code": "WH-SH", "name": "Again"}, "code"),
        ("/api/v1/inventory/warehouses/", {"code": "WH-NEW"}, "name"),
        ("/api/v1/inventory/warehouses/", {"code": "WH-NEW", "name": "N", "provinces": "上海"},
         "provinces"),
        ("/api/v1/inventory/warehouses/", {"code": "WH-NEW", "name": "N", "priority": -1}, "priority"),
        ("/api/v1/inventory/skus/", {"code": "SKU-A", "barcode": "6900000000000", "name": "dup"},
         "barcode"),
        ("/api/v1/inventory/skus/", {"code": "SKU-A", "name": "no barcode"}, "barcode"),
    ],
)
def test_bad_master_data_is_400_naming_the_field(ops_client, warehouse, url, body, field):
    SKUFactory(code="SKU-0", barcode="6900000000000")
    response = ops_client.post(url, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_money_stays_decimal_end_to_end(ops_client, manual_channel):
    stocked_sku()
    body = manual_body(lines=[{"sku": "SKU-001", "quantity": 3, "unit_price": "0.10"}],
                       payable="0.30")
    data = ops_client.post(ORDERS, body, format="json").json()
    assert data["payable_amount"] == "0.30"
    assert Order.objects.get(order_no=data["order_no"]).payable_amount == Decimal("0.30")


def test_options_and_unsupported_methods_are_answered_not_crashed(ops_client, client_for):
    order = make_order()
    assert ops_client.options(ORDERS).status_code == 200
    assert ops_client.options(f"{ORDERS}{order.order_no}/").status_code == 200
    assert ops_client.put(ORDERS, {}, format="json").status_code == 405
    assert ops_client.delete(f"{ORDERS}{order.order_no}/").status_code == 405
    assert client_for("warehouse_device").options(ORDERS).status_code == 403
    assert APIClient().options(ORDERS).status_code == 401
