"""POST /api/v1/warehouse/events/ with a device token (CONTRACTS.md: warehouse scanner events)."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from orders import services
from orders.models import Order, OrderEvent, ScannerEvent, Shipment
from orders.scanning import OUTBOUND, PACK_VERIFIED, PICK_STARTED
from orders.tests.factories import (
    SKUFactory,
    WarehouseFactory,
    advance,
    make_device,
    make_order,
    scan_body,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/warehouse/events/"


def post(client, body):
    return client.post(URL, body, format="json")


def counts(order) -> dict:
    return {
        "events": OrderEvent.objects.filter(order=order).count(),
        "scanner_events": ScannerEvent.objects.filter(order=order).count(),
        "shipments": Shipment.objects.filter(order=order).count(),
    }


def state(order) -> tuple:
    return Order.objects.filter(pk=order.pk).values_list("status", "fulfilment").get()


@pytest.fixture
def two_lines():
    return [(SKUFactory(barcode="6901234567890"), 2, "99.00"), (SKUFactory(barcode="6900000000017"), 1, "5.00")]


@pytest.fixture
def requested(warehouse, ops, two_lines):
    """Approved, routed to the device's warehouse, shipment requested."""
    return advance(make_order(lines=two_lines), "ship_requested", warehouse=warehouse, actor=ops)


def test_pick_pack_outbound_ships_the_order(device_client, requested):
    start = timezone.now() - timedelta(minutes=30)

    picked = post(device_client, scan_body(requested, PICK_STARTED, at=start))
    assert picked.status_code == 201, picked.json()
    assert picked.json() == {
        "order_no": requested.order_no, "status": "ship_requested", "fulfilment": "picking",
        "fulfilment_order": f"{requested.order_no}-F2", "fulfilment_order_status": "picking",
    }

    packed = post(device_client, scan_body(requested, PACK_VERIFIED, at=start + timedelta(minutes=5),
                                           items=[{"barcode": "6900000000017", "quantity": 1},
                                                  {"barcode": "6901234567890", "quantity": 1},
                                                  {"barcode": "6901234567890", "quantity": 1}]))
    assert packed.status_code == 201, packed.json()
    assert packed.json()["fulfilment"] == "packed"

    out_at = start + timedelta(minutes=10)
    out = post(device_client, scan_body(requested, OUTBOUND, at=out_at, carrier="SF",
                                        tracking_no="SF1234567890", station="dock-1"))
    assert out.status_code == 201, out.json()
    assert out.json() == {"order_no": requested.order_no, "status": "shipped", "fulfilment": "outbound",
                          "fulfilment_order": f"{requested.order_no}-F2", "fulfilment_order_status": "outbound"}

    order = Order.objects.get(pk=requested.pk)
    assert order.physical_outbound_at == out_at
    assert order.shipped_at == out_at
    assert order.last_location == "dock-1"
    shipment = Shipment.objects.get(order=order)
    assert (shipment.carrier, shipment.tracking_no, shipment.warehouse_id, shipment.outbound_at) == (
        "SF", "SF1234567890", order.warehouse_id, out_at
    )
    scans = OrderEvent.objects.filter(order=order, kind="scan").order_by("id")
    assert [(e.from_state, e.to_state) for e in scans] == [
        ("allocated", "picking"), ("picking", "packed"), ("packed", "outbound")
    ]
    assert all(e.actor == "device:pack-B" for e in scans)


def test_outbound_of_an_order_not_yet_requested_leaves_status_approved(device_client, warehouse, ops):
    order = advance(make_order(), "packed", warehouse=warehouse, actor=ops, ship=False)

    reply = post(device_client, scan_body(order, OUTBOUND))

    assert reply.status_code == 201
    assert reply.json() == {"order_no": order.order_no, "status": "approved", "fulfilment": "outbound",
                            "fulfilment_order": f"{order.order_no}-F2", "fulfilment_order_status": "outbound"}
    assert Shipment.objects.filter(order=order).count() == 1


def test_same_event_id_again_is_answered_with_the_original_and_writes_nothing(device_client, requested):
    body = scan_body(requested, PICK_STARTED)
    first = post(device_client, body)
    assert first.status_code == 201
    before = counts(requested)

    again = post(device_client, body)
    changed = post(device_client, {**body, "station": "elsewhere"})  # the key decides, not the body

    assert (again.status_code, again.json()) == (200, first.json())
    assert (changed.status_code, changed.json()) == (200, first.json())
    assert counts(requested) == before


def test_repeated_outbound_creates_one_shipment(device_client, warehouse, ops):
    order = advance(make_order(), "packed", warehouse=warehouse, actor=ops)
    body = scan_body(order, OUTBOUND)
    assert post(device_client, body).status_code == 201
    assert post(device_client, body).status_code == 200
    assert Shipment.objects.filter(order=order).count() == 1
    assert OrderEvent.objects.filter(order=order, to_state="outbound").count() == 1


def test_pack_mismatch_is_409_with_the_difference_and_recorded(device_client, requested):
    assert post(device_client, scan_body(requested, PICK_STARTED)).status_code == 201
    stranger = SKUFactory(barcode="6909999999990")
    before = counts(requested)
    body = scan_body(requested, PACK_VERIFIED, items=[
        {"barcode": "6901234567890", "quantity": 1},
        {"barcode": stranger.barcode, "quantity": 1},
    ])

    reply = post(device_client, body)

    assert reply.status_code == 409
    data = reply.json()
    assert data["error"] == "conflict"
    assert data["difference"] == {
        "missing": {"6901234567890": 1, "6900000000017": 1},
        "unexpected": {"6909999999990": 1},
    }
    assert state(requested) == ("ship_requested", "picking")
    recorded = OrderEvent.objects.filter(order=requested).order_by("-id").first()
    assert (recorded.track, recorded.kind, recorded.to_state) == ("system", "scan", "")
    assert recorded.payload["difference"] == data["difference"]
    assert counts(requested) == {**before, "events": before["events"] + 1,
                                 "scanner_events": before["scanner_events"] + 1}

    # The refusal is the stored reply to that event_id; a corrected scan is a new event.
    replay = post(device_client, body)
    assert (replay.status_code, replay.json()) == (409, data)
    assert post(device_client, scan_body(requested, PACK_VERIFIED)).status_code == 201


def test_empty_parcel_is_a_mismatch_too(device_client, requested):
    post(device_client, scan_body(requested, PICK_STARTED))
    reply = post(device_client, scan_body(requested, PACK_VERIFIED,
                                          items=[{"barcode": "6900000000017", "quantity": 1}]))
    assert reply.status_code == 409
    assert reply.json()["difference"] == {"missing": {"6901234567890": 2}, "unexpected": {}}


def test_unknown_barcode_is_400_naming_the_item(device_client, requested):
    post(device_client, scan_body(requested, PICK_STARTED))
    before = counts(requested)

    reply = post(device_client, scan_body(requested, PACK_VERIFIED,
                                          items=[{"barcode": "0000000000000", "quantity": 1}]))

    assert reply.status_code == 400
    assert reply.json()["error"] == "validation"
    assert "items[0].barcode" in reply.json()["fields"]
    assert counts(requested) == before
    assert state(requested) == ("ship_requested", "picking")


def test_outbound_before_pack_is_409(device_client, requested):
    post(device_client, scan_body(requested, PICK_STARTED))
    before = counts(requested)

    reply = post(device_client, scan_body(requested, OUTBOUND))

    assert reply.status_code == 409
    assert reply.json()["state"] == {"fulfilment_order": f"{requested.order_no}-F2", "warehouse": "WH-SH",
                                     "status": "picking"}
    assert reply.json()["allowed"] == ["cancel", "verify_pack"]
    assert counts(requested) == before
    assert state(requested) == ("ship_requested", "picking")


def test_scan_earlier_than_the_last_scan_is_409(device_client, requested):
    now = timezone.now()
    assert post(device_client, scan_body(requested, PICK_STARTED, at=now)).status_code == 201
    before = counts(requested)

    reply = post(device_client, scan_body(requested, PACK_VERIFIED, at=now - timedelta(minutes=1)))

    assert reply.status_code == 409
    assert "out of order" in reply.json()["detail"]
    assert counts(requested) == before


def test_scan_in_the_future_is_400_naming_scanned_at(device_client, requested):
    reply = post(device_client, scan_body(requested, PICK_STARTED,
                                          at=timezone.now() + timedelta(hours=1)))
    assert reply.status_code == 400
    assert "scanned_at" in reply.json()["fields"]
    assert state(requested) == ("ship_requested", "allocated")


def test_small_clock_skew_is_tolerated(device_client, requested):
    reply = post(device_client, scan_body(requested, PICK_STARTED,
                                          at=timezone.now() + timedelta(minutes=1)))
    assert reply.status_code == 201


def test_order_of_another_warehouse_is_403(device_client, ops):
    elsewhere = advance(make_order(), "ship_requested", warehouse=WarehouseFactory(code="WH-BJ"),
                        actor=ops)
    before = counts(elsewhere)

    reply = post(device_client, scan_body(elsewhere, PICK_STARTED))

    assert reply.status_code == 403
    assert counts(elsewhere) == before


def test_unrouted_order_is_403(device_client, ops):
    order = advance(make_order(), "approved", actor=ops)
    assert post(device_client, scan_body(order, PICK_STARTED)).status_code == 403


def test_unknown_order_is_404(device_client):
    reply = post(device_client, scan_body("TB2026010999999", PICK_STARTED))
    assert reply.status_code == 404
    assert reply.json()["error"] == "not_found"


def test_outbound_without_carrier_and_tracking_is_400_naming_both(device_client, requested):
    body = scan_body(requested, OUTBOUND)
    del body["carrier"], body["tracking_no"]
    reply = post(device_client, body)
    assert reply.status_code == 400
    assert {"carrier", "tracking_no"} <= set(reply.json()["fields"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"type": "teleported"}, "type"),
        ({"scanned_at": "yesterday"}, "scanned_at"),
        ({"items": []}, "items"),
    ],
)
def test_malformed_events_are_400_naming_the_field(device_client, requested, change, field):
    body = {**scan_body(requested, PACK_VERIFIED), **change}
    reply = post(device_client, body)
    assert reply.status_code == 400
    assert field in reply.json()["fields"]


def test_tracking_number_of_another_order_is_409_and_changes_nothing(device_client, warehouse, ops):
    first = advance(make_order(), "packed", warehouse=warehouse, actor=ops)
    second = advance(make_order(), "packed", warehouse=warehouse, actor=ops)
    assert post(device_client, scan_body(first, OUTBOUND, tracking_no="SF000111")).status_code == 201
    before = counts(second)

    reply = post(device_client, scan_body(second, OUTBOUND, tracking_no="SF000111"))

    assert reply.status_code == 409
    assert counts(second) == before
    assert state(second) == ("ship_requested", "packed")


def test_event_id_of_another_device_is_409(device_client, requested, warehouse):
    body = scan_body(requested, PICK_STARTED)
    assert post(device_client, body).status_code == 201
    _other, token = make_device(warehouse, "pack-C")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert post(other, body).status_code == 409


def test_missing_or_bad_token_is_401(requested):
    anonymous = APIClient()
    assert post(anonymous, scan_body(requested, PICK_STARTED)).status_code == 401
    anonymous.credentials(HTTP_AUTHORIZATION="Token nope")
    assert post(anonymous, scan_body(requested, PICK_STARTED)).status_code == 401
    assert state(requested) == ("ship_requested", "allocated")


def test_staff_token_is_403_not_a_device(client_for, requested):
    for role in ("ops", "customer_service", "warehouse_device"):  # role without a device binding
        reply = post(client_for(role), scan_body(requested, PICK_STARTED))
        assert reply.status_code == 403, role
    assert state(requested) == ("ship_requested", "allocated")


def test_cancelled_order_is_409(device_client, requested, ops):
    services.cancel_order(requested.order_no, "customer asked", ops)
    before = counts(requested)

    reply = post(device_client, scan_body(requested, PICK_STARTED))

    assert reply.status_code == 409
    assert reply.json()["state"]["status"] == "cancelled"
    assert counts(requested) == before


def test_order_on_hold_is_409(device_client, warehouse, ops):
    order = advance(make_order(), "routed", warehouse=warehouse, actor=ops)
    services.hold_order(order.order_no, "address check", ops)
    assert post(device_client, scan_body(order, PICK_STARTED)).status_code == 409


def test_scanned_at_keeps_the_instant_sent_with_its_offset(device_client, requested):
    shanghai = timezone.get_fixed_timezone(8 * 60)
    at = (timezone.now() - timedelta(hours=1)).astimezone(shanghai).replace(microsecond=0)
    body = {**scan_body(requested, PICK_STARTED), "scanned_at": at.isoformat()}
    assert body["scanned_at"].endswith("+08:00")

    assert post(device_client, body).status_code == 201

    stored = ScannerEvent.objects.get(event_id=uuid.UUID(body["event_id"]))
    assert stored.scanned_at == at
    assert OrderEvent.objects.filter(order=requested, kind="scan").get().at == at
    assert Order.objects.get(pk=requested.pk).picking_started_at == at
