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
from oms import rowsql
from oms.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from oms.rowsql import Selection, fetch_all_instances, insert_instance, statement

from . import fulfilment, stock_flow
from .events import SYSTEM, Actor, EventKind, Track, record_event
from .models import Order, ScannerEvent, Shipment, Status, WarehouseDevice
from .models_fulfilment import WAITING, FulfilmentOrder
from .services import transition

PICK_STARTED, PACK_VERIFIED, OUTBOUND = "pick_started", "pack_verified", "outbound"
EVENT_TYPES = (PICK_STARTED, PACK_VERIFIED, OUTBOUND)
ALLOWED_CLOCK_SKEW = timedelta(minutes=5)
# What a scan reads and writes on the order; the rest of the row is left unread.
SCAN_FIELDS = (
    "id", "order_no", "status", "fulfilment", "warehouse_id", "last_scan_at", "last_location",
    "ship_requested_at", "physical_outbound_at", "status_changed_at", "picking_started_at", "packed_at",
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
            return _replay(original, device, event)
        raise


def _replay(original: ScannerEvent, device: WarehouseDevice, event: dict) -> ScanReply:
    """The same event again gets its original reply; an event id names one event, so the id
    used by another device, for another order or another step is refused (CONTRACTS.md)."""
    if original.device_id != device.pk:
        raise Conflict("this event_id was already used by another device", event_id=str(original.event_id))
    if (original.request.get("order_no"), original.type) != (event["order_no"], event["type"]):
        raise Conflict(
            f"this event_id was already used for {original.type} of order {original.request.get('order_no')}",
            event_id=str(original.event_id),
        )
    return ScanReply(200 if original.response_status < 300 else original.response_status, original.response)


@transaction.atomic
def _apply(device: WarehouseDevice, event: dict) -> ScanReply:
    # Each warehouse scans its own share of the order (its fulfilment order), read with the
    # order's row lock. Every writer of a share locks the order row first: the shares need no
    # lock of their own.
    order, shares = lock_scan_order(event["order_no"])
    here = _shares_here(order, shares, device)
    scanned_at = event["scanned_at"]
    if scanned_at > timezone.now() + ALLOWED_CLOCK_SKEW:
        raise Invalid({"scanned_at": [f"{scanned_at.isoformat()} is in the future"]})
    if order.status not in (Status.APPROVED, Status.SHIP_REQUESTED):
        raise Conflict(
            f"order {order.order_no} is {order.status}: the warehouse must not work on it",
            state={"status": order.status, "fulfilment": order.fulfilment},
            allowed=[],
        )
    share = next((s for s in here if s.status in WAITING), None)
    if share is None:
        raise fulfilment.refusal(here[-1], f"{here[-1].code} has no more work in {device.warehouse.code}: "
                                           f"it is {here[-1].status}")
    last_scan = share.last_scan_at
    if last_scan and scanned_at < last_scan:
        raise Conflict(
            f"out of order: scanned at {scanned_at.isoformat()}, before the last recorded scan "
            f"of {share.code} at {last_scan.isoformat()}",
            state={"status": order.status, "fulfilment": order.fulfilment,
                   "fulfilment_order": share.code, "fulfilment_order_status": share.status},
        )

    actor = Actor.for_device(device)
    station = event.get("station") or device.name
    context = {"station": station, "operator": event.get("operator", ""), "event_id": str(event["event_id"]),
               "fulfilment_order": share.number, "warehouse": device.warehouse.code}
    if event["type"] == PACK_VERIFIED:
        difference = pack_difference(_share_items(share), event["items"])
        if difference:
            return _refuse_pack(order, device, event, actor, station, difference, context)

    share.last_location = station
    share.last_scan_at = scanned_at
    before, after = fulfilment.move_share(share, FSM_METHOD[event["type"]], scanned_at, save=False)
    order.last_location = station
    order.last_scan_at = max(scanned_at, order.last_scan_at or scanned_at)
    summary = f"{event['type'].replace('_', ' ')} at {station}"
    if event["type"] == OUTBOUND:
        _create_shipment(order, share, event, scanned_at)
        stock_flow.ship(order, share.warehouse_id)
    if len(shares) > 1:
        summary += f" [{share.code}]"
    # The share and order rows are written once, together, after the order's own move and the
    # shipped one it may complete.
    moved = fulfilment.follow(order, shares, actor, at=scanned_at, summary=summary, kind=EventKind.SCAN,
                              payload=context, save=False)
    if not moved:
        record_event(order, track=Track.PHYSICAL, kind=EventKind.SCAN, actor=actor, at=scanned_at,
                     from_state=before, to_state=after, summary=summary, payload=context)
    if order.has_physical_outbound() and order.status == Status.SHIP_REQUESTED:
        transition(order, "mark_shipped", SYSTEM, at=scanned_at, save=False,
                   summary=f"shipped: outbound scan at {station}, {event['carrier']} {event['tracking_no']}")
    rowsql.save_changes_together(share, order)
    body = {"order_no": order.order_no, "status": order.status, "fulfilment": order.fulfilment,
            "fulfilment_order": share.code, "fulfilment_order_status": share.status}
    _store(device, order, event, 201, body)
    return ScanReply(201, body)


def _shares_here(order: Order, shares: list, device: WarehouseDevice) -> list:
    """The order's shares in the device's warehouse (a warehouse holding none is refused: 403)."""
    here = [s for s in shares if s.warehouse_id == device.warehouse_id]
    if here:
        return here
    if not shares and order.warehouse_id == device.warehouse_id:
        # An order allocated before fulfilment orders existed: its whole share, made now.
        made = fulfilment.cover_lines(order, shares)
        if made:
            return made
    where = order.warehouse.code if order.warehouse_id else "no warehouse"
    raise Forbidden(
        f"order {order.order_no} has no share in this device's warehouse "
        f"{device.warehouse.code} (routed to {where})"
    )


def _share_items(share) -> list[tuple[str, int]]:
    """(barcode, quantity) the pack check expects: the share's lines."""
    return rowsql.fetch_rows(rowsql.statement(("barcodes_of_share",), _barcodes_of_share_sql), [share.pk])


def _barcodes_of_share_sql(connection) -> str:
    return ("SELECT s.barcode, f.quantity FROM orders_fulfilmentline f "
            "INNER JOIN orders_orderline l ON l.id = f.order_line_id "
            "INNER JOIN inventory_sku s ON s.id = l.sku_id WHERE f.fulfilment_order_id = %s ORDER BY l.line_no")


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


def _create_shipment(order, share, event, outbound_at) -> Shipment:
    # Its tracking number goes back to the channel from the push sweep (channels.tasks), not
    # from here: a broker round trip per scan would cost the scanner a third.
    shipment = Shipment(
        order=order, fulfilment_order=share, warehouse_id=share.warehouse_id, carrier=event["carrier"],
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
_SCAN_SHARES = Selection.of(FulfilmentOrder, alias="share")


def _lock_statement(connection) -> str:
    quote = connection.ops.quote_name
    order_no = Order._meta.get_field("order_no").column
    order, share = quote(_SCAN_ORDER.alias), quote(_SCAN_SHARES.alias)
    # Only the order row is locked (a nullable side of an outer join cannot be).
    lock = f" FOR UPDATE OF {order}" if connection.features.has_select_for_update else ""
    return (
        f"SELECT {_SCAN_ORDER.columns(quote)}, {_SCAN_SHARES.columns(quote)} "  # noqa: S608 - our names
        f"FROM {_SCAN_ORDER.source(quote)} LEFT OUTER JOIN {_SCAN_SHARES.source(quote)} "
        f"ON {share}.{quote('order_id')} = {order}.{quote('id')} "
        f"WHERE {order}.{quote(order_no)} = %s ORDER BY {share}.{quote('number')}{lock}"
    )


def lock_scan_order(order_no: str) -> tuple[Order, list[FulfilmentOrder]]:
    """`services.lock_order` for a scan, with the order's shares in the same statement: the
    order row locked (SELECT ... FOR UPDATE) with the fields a scan reads and writes loaded."""
    rows = fetch_all_instances(statement(("lock_scan_order",), _lock_statement), [order_no],
                               (_SCAN_ORDER, _SCAN_SHARES))
    if not rows:
        raise NotFound(f"order {order_no} does not exist")
    order = rows[0][0]
    shares = [share for _order, share in rows if share is not None]
    for share in shares:
        share.order = order
    return order, shares
