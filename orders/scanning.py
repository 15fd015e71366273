"""Warehouse scanner events: the only way the physical track moves (CONTRACTS.md).

Idempotent by the client's event_id: a repeat is answered with the original reply. Refusals
change nothing, except the pack check, whose mismatch is itself a fact worth keeping (the
wrong-item / empty-parcel check): it is recorded on the timeline and answered 409.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from inventory.models import SKU
from oms.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from oms.rowsql import Selection, fetch_instances, insert_instance, statement

from . import stock_flow
from .events import SYSTEM, Actor, EventKind, Track, record_event
from .models import Order, ScannerEvent, Shipment, Status, WarehouseDevice
from .services import transition

PICK_STARTED, PACK_VERIFIED, OUTBOUND = "pick_started", "pack_verified", "outbound"
EVENT_TYPES = (PICK_STARTED, PACK_VERIFIED, OUTBOUND)
ALLOWED_CLOCK_SKEW = timedelta(minutes=5)
# What a scan reads and writes on the order; the rest of the row is left unread.
SCAN_FIELDS = (
    "id", "order_no", "status", "fulfilment", "warehouse_id", "last_scan_at", "last_location",
    "ship_requested_at", "physical_outbound_at", "status_changed_at",
)
FSM_METHOD = {PICK_STARTED: "start_picking", PACK_VERIFIED: "verify_pack", OUTBOUND: "record_outbound"}


@dataclass(frozen=True)
class ScanReply:
    status_code: int
    body: dict


def apply_scanner_event(device: WarehouseDevice, event: dict) -> ScanReply:
    """`event` is validated by the API serializer (event_id is a UUID, scanned_at aware).

    Optimistic about repeats, which are rare: the event is applied without looking for its
    event_id first. A repeat cannot commit twice: either the order has moved on and the
    transition is refused, or the unique event_id refuses the second record. Only then is
    the original looked up and its reply returned."""
    try:
        return _apply(device, event)
    except (DomainError, IntegrityError):
        original = ScannerEvent.objects.filter(event_id=event["event_id"]).first()
        if original is not None:
            return _replay(original, device)
        raise


def _replay(original: ScannerEvent, device: WarehouseDevice) -> ScanReply:
    if original.device_id != device.pk:
        raise Conflict("this event_id was already used by another device", event_id=str(original.event_id))
    return ScanReply(200 if original.response_status < 300 else original.response_status, original.response)


@transaction.atomic
def _apply(device: WarehouseDevice, event: dict) -> ScanReply:
    order = lock_scan_order(event["order_no"])
    # The order's own warehouse drives the physical track; another warehouse holding part of
    # a split order scans its parcel too, recorded on the timeline without moving the track.
    primary = order.warehouse_id == device.warehouse_id
    if not primary and not (order.warehouse_id and stock_flow.holds_stock_in(order, device.warehouse_id)):
        where = order.warehouse.code if order.warehouse else "no warehouse"
        raise Forbidden(
            f"order {order.order_no} is routed to {where}, not to this device's warehouse "
            f"{device.warehouse.code}"
        )
    scanned_at = event["scanned_at"]
    if scanned_at > timezone.now() + ALLOWED_CLOCK_SKEW:
        raise Invalid({"scanned_at": [f"{scanned_at.isoformat()} is in the future"]})
    last_scan = order.last_scan_at
    if last_scan and scanned_at < last_scan:
        raise Conflict(
            f"out of order: scanned at {scanned_at.isoformat()}, before the last recorded scan "
            f"at {last_scan.isoformat()}",
            state={"status": order.status, "fulfilment": order.fulfilment},
        )
    if order.status not in (Status.APPROVED, Status.SHIP_REQUESTED):
        raise Conflict(
            f"order {order.order_no} is {order.status}: the warehouse must not work on it",
            state={"status": order.status, "fulfilment": order.fulfilment},
            allowed=[],
        )

    actor = Actor.for_device(device)
    station = event.get("station") or device.name
    context = {"station": station, "operator": event.get("operator", ""), "event_id": str(event["event_id"])}
    if event["type"] == PACK_VERIFIED:
        expected = stock_flow.expected_items(order, device.warehouse_id)
        difference = pack_difference(expected, event["items"])
        if difference:
            return _refuse_pack(order, device, event, actor, station, difference, context)

    order.last_location = station
    order.last_scan_at = scanned_at
    summary = f"{event['type'].replace('_', ' ')} at {station}"
    others_still_reserved = False
    if event["type"] == OUTBOUND:
        _create_shipment(order, event, scanned_at)
        _units, others_still_reserved = stock_flow.ship(order, device.warehouse_id)
    # Pick and pack move the track at the order's own warehouse; the outbound moves it when
    # the last parcel leaves, wherever that is.
    moves_track = not others_still_reserved if event["type"] == OUTBOUND else primary
    if moves_track:
        # The order row is written once, after the outbound's own transition and the shipped
        # one it may complete.
        transition(order, FSM_METHOD[event["type"]], actor, at=scanned_at, kind=EventKind.SCAN,
                   summary=summary, payload=context, save=False)
    else:
        _record_partial(order, device, event, actor, summary, context)
    if event["type"] == OUTBOUND and not others_still_reserved and order.has_physical_outbound() \
            and order.status == Status.SHIP_REQUESTED:
        transition(order, "mark_shipped", SYSTEM, at=scanned_at,
                   summary=f"shipped: outbound scan at {station}, {event['carrier']} {event['tracking_no']}")
    else:
        order.save_changes()
    body = {"order_no": order.order_no, "status": order.status, "fulfilment": order.fulfilment}
    _store(device, order, event, 201, body)
    return ScanReply(201, body)


def _record_partial(order, device, event, actor, summary, context) -> None:
    """A split order's parcel scan that does not move the order's physical track (yet)."""
    if event["type"] == OUTBOUND:
        summary += " (one parcel of a split order; the others are still in their warehouses)"
    if not _earlier_step_done(order, device, event["type"]):
        raise Conflict(f"out of order: {event['type']} before the previous step at this warehouse",
                       state={"status": order.status, "fulfilment": order.fulfilment})
    order.save_changes()
    record_event(order, track=Track.PHYSICAL, kind=EventKind.SCAN, actor=actor,
                 at=event["scanned_at"], summary=f"{summary} [{device.warehouse.code}]", payload=context)


def _earlier_step_done(order, device, kind: str) -> bool:
    previous = {PICK_STARTED: None, PACK_VERIFIED: PICK_STARTED, OUTBOUND: PACK_VERIFIED}[kind]
    return previous is None or ScannerEvent.objects.filter(
        order=order, device__warehouse_id=device.warehouse_id, type=previous, response_status=201
    ).exists()


def pack_difference(expected_items: list[tuple[str, int]], items: list[dict]) -> dict:
    """Scanned barcodes against what the package should hold; empty when they match exactly."""
    expected = Counter()
    for barcode, quantity in expected_items:
        expected[barcode] += quantity
    scanned = Counter()
    for item in items:
        scanned[item["barcode"]] += item["quantity"]
    missing = {b: q - scanned[b] for b, q in expected.items() if scanned[b] < q}
    extra = {b: q - expected[b] for b, q in scanned.items() if q > expected[b]}
    if not (missing or extra):
        return {}
    # Only a mismatch can hold a barcode we do not know: a misread, refused as bad input.
    known = set(SKU.objects.filter(barcode__in=list(extra)).values_list("barcode", flat=True))
    if set(extra) - known:
        raise Invalid({
            f"items[{i}].barcode": [f"unknown barcode {item['barcode']}"]
            for i, item in enumerate(items) if item["barcode"] in set(extra) - known
        })
    return {"missing": missing, "unexpected": extra}


def _refuse_pack(order, device, event, actor, station, difference, context) -> ScanReply:
    record_event(
        order, track=Track.SYSTEM, kind=EventKind.SCAN, actor=actor, at=event["scanned_at"],
        summary=f"pack check failed at {station}: scanned items differ from the order",
        payload={**context, "difference": difference, "scanned": event["items"]},
    )
    body = {
        "error": "conflict",
        "detail": "scanned items do not match the order lines",
        "difference": difference,
        "state": {"status": order.status, "fulfilment": order.fulfilment},
    }
    _store(device, order, event, 409, body)
    return ScanReply(409, body)


def _create_shipment(order, event, outbound_at) -> Shipment:
    # Its tracking number goes back to the channel from the push sweep (channels.tasks), not
    # from here: a broker round trip per scan would cost the scanner a third.
    shipment = Shipment(
        order=order, warehouse_id=order.warehouse_id, carrier=event["carrier"],
        tracking_no=event["tracking_no"], outbound_at=outbound_at,
    )
    # The unique key decides, no look-up first: a taken tracking number inserts nothing.
    if insert_instance(shipment, skip_on_conflict=True):
        return shipment
    taken = Shipment.objects.select_related("order").get(
        carrier=event["carrier"], tracking_no=event["tracking_no"]
    )
    raise Conflict(
        f"tracking number {event['carrier']} {event['tracking_no']} already belongs to "
        f"order {taken.order.order_no}",
    )


def _store(device, order, event, status_code: int, body: dict) -> None:
    request = {k: (v.isoformat() if isinstance(v, datetime) else str(v) if k == "event_id" else v)
               for k, v in event.items()}
    insert_instance(ScannerEvent(
        event_id=event["event_id"], device=device, order=order, type=event["type"],
        scanned_at=event["scanned_at"], request=request, response_status=status_code, response=body,
    ))


_SCAN_ORDER = Selection.of(Order, SCAN_FIELDS)


def _lock_statement(connection) -> str:
    quote = connection.ops.quote_name
    order_no = Order._meta.get_field("order_no").column
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return (
        f"SELECT {_SCAN_ORDER.columns(quote)} FROM {_SCAN_ORDER.source(quote)} "  # noqa: S608 - our names
        f"WHERE {quote(_SCAN_ORDER.alias)}.{quote(order_no)} = %s{lock}"
    )


def lock_scan_order(order_no: str) -> Order:
    """`services.lock_order` for a scan: the order row locked (SELECT ... FOR UPDATE) with the
    fields a scan reads and writes loaded, nothing joined."""
    found = fetch_instances(statement(("lock_scan_order",), _lock_statement), [order_no], (_SCAN_ORDER,))
    if found is None:
        raise NotFound(f"order {order_no} does not exist")
    return found[0]
