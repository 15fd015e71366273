"""The scanner endpoint's fast path (issue 3): what it skips must not change what it answers.

- Authentication reads the token's row on every request (no cache): a revoked device is
  refused on its very next request.
- The plain well-formed event is validated without building the serializer; the result is
  exactly the serializer's, and anything else is left to the serializer and its errors.
- The order is locked and the rows written with statements built once from the models: the
  same rows, the same refusals, and no stray queries.
"""

import json
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from orders.models import Order, OrderEvent, ScannerEvent, Shipment
from orders.scanning import OUTBOUND, PACK_VERIFIED, PICK_STARTED, lock_scan_order
from orders.serializers import ScannerEventSerializer, _plain_scanner_event
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


@pytest.fixture
def requested(warehouse, ops):
    return advance(make_order(lines=[(SKUFactory(barcode="6901234567890"), 2, "9.90")]), "ship_requested",
                   warehouse=warehouse, actor=ops)


# --- revocation takes effect on the next request, in every worker ---------------------------


def test_deactivated_device_is_refused_on_its_next_request(device_client, device, requested):
    assert post(device_client, scan_body(requested, PICK_STARTED)).status_code == 201
    device.user.is_active = False
    device.user.save(update_fields=["is_active"])

    reply = post(device_client, scan_body(requested, PACK_VERIFIED))

    assert reply.status_code == 401
    assert reply.json()["error"] == "unauthenticated"
    assert Order.objects.get(pk=requested.pk).fulfilment == "picking"

    device.user.is_active = True
    device.user.save(update_fields=["is_active"])
    assert post(device_client, scan_body(requested, PACK_VERIFIED)).status_code == 201


def test_deleted_token_is_refused_on_its_next_request(device_client, device, requested):
    assert post(device_client, scan_body(requested, PICK_STARTED)).status_code == 201
    Token.objects.filter(user=device.user).delete()

    assert post(device_client, scan_body(requested, PACK_VERIFIED)).status_code == 401


def test_device_binding_removed_is_403_on_its_next_request(warehouse, requested):
    device, token = make_device(warehouse, "spare")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    device.delete()  # no scans yet, so the binding can go; the user and token stay

    reply = post(client, scan_body(requested, PICK_STARTED))

    assert reply.status_code == 403
    assert reply.json()["error"] == "forbidden"


def test_device_moved_to_another_warehouse_scans_for_that_one_from_its_next_request(
    device_client, device, requested, ops
):
    assert post(device_client, scan_body(requested, PICK_STARTED)).status_code == 201
    beijing = WarehouseFactory(code="WH-BJ")
    device.warehouse = beijing
    device.save(update_fields=["warehouse"])

    refused = post(device_client, scan_body(requested, PACK_VERIFIED))
    assert refused.status_code == 403
    assert "WH-BJ" in refused.json()["detail"]

    there = advance(make_order(), "ship_requested", warehouse=beijing, actor=ops)
    assert post(device_client, scan_body(there, PICK_STARTED)).status_code == 201


def test_the_scan_is_recorded_as_the_device_and_its_user(device_client, device, requested):
    assert post(device_client, scan_body(requested, PICK_STARTED)).status_code == 201

    event = OrderEvent.objects.filter(order=requested, kind="scan").get()
    assert (event.actor, event.user_id) == ("device:pack-B", device.user_id)
    assert ScannerEvent.objects.get(order=requested).device_id == device.pk


# --- validation: the plain path gives exactly what the serializer gives ----------------------

EVENT_ID = "3f1c2b7e-9a4d-4c1e-8f0a-2b6d9e1c7a55"
AT = "2026-01-09T15:04:05+08:00"


def body(kind=PICK_STARTED, **changes):
    data = {"event_id": EVENT_ID, "order_no": "TB2026010900123", "type": kind, "scanned_at": AT,
            "station": "pack-B", "operator": "w017"}
    if kind == PACK_VERIFIED:
        data["items"] = [{"barcode": "6901234567890", "quantity": 1}]
    if kind == OUTBOUND:
        data.update(carrier="SF", tracking_no="SF1234567890")
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


PLAIN = [
    body(),
    body(PACK_VERIFIED),
    body(OUTBOUND),
    body(station=...),  # default ""
    body(operator=..., station=...),
    body(order_no="  TB2026010900123 ", station=" pack-B\t"),  # trimmed as DRF trims
    body(station="打包台-3"),
    body(items=[]),  # allowed (and stored) on a pick
    body(PACK_VERIFIED, items=[{"barcode": "6901234567890", "quantity": 2, "name": "ignored"},
                               {"barcode": " 6900000000017 ", "quantity": 100000}]),
    body(scanned_at="2026-01-09T15:04:05"),  # naive: the current time zone
    body(scanned_at="2026-01-09T07:04:05Z"),
    body(scanned_at="2026-01-09T07:04:05.123456+00:00"),
    body(scanned_at="2026-01-09"),  # midnight, as DRF's DateTimeField reads it
    body(event_id=EVENT_ID.replace("-", "").upper()),
    body(event_id="{" + EVENT_ID + "}"),
    body(OUTBOUND, tracking_no="SF-0001"),
    body(OUTBOUND, tracking_no="SF1234567890\n"),  # trimmed first, then matched
    body(unknown_field="ignored"),
]

LEFT_TO_THE_SERIALIZER = [
    # valid for the serializer, which coerces
    body(PACK_VERIFIED, items=[{"barcode": "6901234567890", "quantity": "1"}]),
    body(PACK_VERIFIED, items=[{"barcode": 6901234567890, "quantity": 1}]),
    body(PACK_VERIFIED, items=[{"barcode": "6901234567890", "quantity": 1.0}]),
    body(order_no=20260109),
    body(event_id=int(uuid.UUID(EVENT_ID))),
    # invalid
    body(event_id="not-a-uuid"),
    body(event_id=None),
    body(type="teleported"),
    body(type=...),
    body(scanned_at="yesterday"),
    body(scanned_at="2026-13-09T15:04:05+08:00"),
    body(scanned_at=1767942245),
    body(order_no=...),
    body(order_no=""),
    body(order_no="T" * 33),
    body(station=""),
    body(station="   "),
    body(station=None),
    body(station="s" * 65),
    body(operator="w\x00017"),
    body(operator="w\ud800"),
    body(PACK_VERIFIED, items=[]),
    body(PACK_VERIFIED, items=...),
    body(PACK_VERIFIED, items="6901234567890"),
    body(PACK_VERIFIED, items=[["6901234567890", 1]]),
    body(PACK_VERIFIED, items=[{"barcode": "6901234567890", "quantity": 0}]),
    body(PACK_VERIFIED, items=[{"barcode": "6901234567890", "quantity": 100001}]),
    body(PACK_VERIFIED, items=[{"barcode": "6901234567890", "quantity": True}]),
    body(PACK_VERIFIED, items=[{"barcode": "", "quantity": 1}]),
    body(PACK_VERIFIED, items=[{"quantity": 1}]),
    body(OUTBOUND, carrier=...),
    body(OUTBOUND, carrier=""),
    body(OUTBOUND, carrier="C" * 33),
    body(OUTBOUND, tracking_no=...),
    body(OUTBOUND, tracking_no="SF1"),
    body(OUTBOUND, tracking_no="SF 1234"),
    body(OUTBOUND, tracking_no="S" * 65),
    [body()],
    "event",
]


@pytest.mark.parametrize("data", PLAIN)
def test_a_plain_event_is_validated_as_the_serializer_does(data):
    serializer = ScannerEventSerializer(data=data)
    assert serializer.is_valid(), serializer.errors

    plain = _plain_scanner_event(data)

    assert plain == serializer.validated_data
    assert list(plain) == list(serializer.validated_data)
    assert type(plain["scanned_at"]) is type(serializer.validated_data["scanned_at"])
    assert plain["scanned_at"].tzinfo == serializer.validated_data["scanned_at"].tzinfo


@pytest.mark.parametrize("data", LEFT_TO_THE_SERIALIZER)
def test_anything_else_is_left_to_the_serializer(data):
    assert _plain_scanner_event(data) is None


def test_a_malformed_event_gets_the_serializers_errors(device_client, requested):
    data = scan_body(requested, PACK_VERIFIED, items=[{"barcode": "6901234567890", "quantity": 0}])
    data["station"] = ""
    expected = ScannerEventSerializer(data=data)
    assert not expected.is_valid()

    reply = post(device_client, data)

    assert reply.status_code == 400
    assert reply.json() == {"error": "validation", "fields": json.loads(json.dumps(expected.errors))}


def test_a_coerced_value_is_still_accepted(device_client, requested):
    """The serializer's leniency stays: a quantity sent as a string is fine."""
    post(device_client, scan_body(requested, PICK_STARTED))
    reply = post(device_client, scan_body(requested, PACK_VERIFIED,
                                          items=[{"barcode": "6901234567890", "quantity": "2"}]))
    assert reply.status_code == 201, reply.json()


# --- the statements: the same rows, nothing more ---------------------------------------------


def test_a_scan_reads_the_order_once_and_nothing_else_of_it(device_client, requested):
    with CaptureQueriesContext(connection) as queries:
        assert post(device_client, scan_body(requested, PICK_STARTED)).status_code == 201

    sql = [q["sql"] for q in queries.captured_queries]
    order_reads = [s for s in sql if s.startswith("SELECT") and 'FROM "orders_order"' in s]
    assert len(order_reads) == 1
    assert order_reads[0].endswith('FOR UPDATE OF "orders_order"') or not connection.features.has_select_for_update
    assert '"orders_fulfilmentorder"' in order_reads[0]  # its shares in the same statement
    assert not [s for s in sql if s.startswith("SELECT") and 'FROM "orders_fulfilmentorder"' in s]
    assert not [s for s in sql if "channels_channel" in s or "auth_permission" in s]
    # The share and the order are written together, each with only what the scan changed.
    (update,) = [s for s in sql if 'UPDATE "orders_order"' in s]
    assert update.startswith('WITH u0 AS (UPDATE "orders_fulfilmentorder"') or connection.vendor != "postgresql"
    assert '"channel_id"' not in update


def test_lock_scan_order_loads_the_scan_fields_and_defers_the_rest(requested):
    order, shares = lock_scan_order(requested.order_no)

    assert (order.pk, order.status, order.fulfilment, order.warehouse_id) == (
        requested.pk, "ship_requested", "allocated", requested.warehouse_id)
    assert [(s.order is order, s.warehouse_id, s.status) for s in shares][-1] == (
        True, requested.warehouse_id, "open")
    assert "channel_id" in order.get_deferred_fields()
    assert order._loaded_values["fulfilment"] == "allocated"


def test_the_stored_event_keeps_the_request_as_before(device_client, device, requested):
    data = scan_body(requested, PICK_STARTED, at=timezone.now() - timedelta(minutes=1))
    data["order_no"] = f" {requested.order_no} "
    assert post(device_client, data).status_code == 201

    stored = ScannerEvent.objects.get(event_id=uuid.UUID(data["event_id"]))
    expected = ScannerEventSerializer(data=data)
    assert expected.is_valid()
    assert stored.request == {
        **expected.validated_data,
        "event_id": data["event_id"],
        "scanned_at": expected.validated_data["scanned_at"].isoformat(),
    }
    assert (stored.device_id, stored.order_id, stored.type, stored.response_status) == (
        device.pk, requested.pk, PICK_STARTED, 201)
    assert stored.response == {"order_no": requested.order_no, "status": "ship_requested",
                               "fulfilment": "picking", "fulfilment_order": f"{requested.order_no}-F2",
                               "fulfilment_order_status": "picking"}
    assert stored.received_at is not None


def test_a_taken_tracking_number_names_its_order_and_leaves_the_transaction_usable(
    device_client, warehouse, ops
):
    first = advance(make_order(), "packed", warehouse=warehouse, actor=ops)
    second = advance(make_order(), "packed", warehouse=warehouse, actor=ops)
    assert post(device_client, scan_body(first, OUTBOUND, tracking_no="SF000111")).status_code == 201

    reply = post(device_client, scan_body(second, OUTBOUND, tracking_no="SF000111"))

    assert reply.status_code == 409
    assert first.order_no in reply.json()["detail"]
    assert list(Shipment.objects.filter(tracking_no="SF000111").values_list("order_id", flat=True)) == [first.pk]
    # The refused scan changed nothing; a fresh number goes through.
    assert post(device_client, scan_body(second, OUTBOUND, tracking_no="SF000112")).status_code == 201
    shipment = Shipment.objects.get(order=second)
    assert (shipment.tracking_no, shipment.warehouse_id, shipment.push_status) == (
        "SF000112", warehouse.pk, "pending")
