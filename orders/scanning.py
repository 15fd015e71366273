"""Warehouse scanner events: the only way the physical track moves (CONTRACTS.md).

Idempotent by the client's event_id: a repeat is answered with the original reply. Refusals
change nothing, except the pack check, whose mismatch is itself a fact worth keeping (the
wrong-item / empty-parcel check): it is recorded on the timeline and answered 409.
"""

import weakref
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import Model, signals
from django.utils import timezone

from inventory.models import SKU
from oms.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

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
        transition(order, FSM_METHOD[event["type"]], actor, at=scanned_at, kind=EventKind.SCAN,
                   summary=summary, payload=context)
    else:
        _record_partial(order, device, event, actor, summary, context)
    if event["type"] == OUTBOUND and not others_still_reserved and order.has_physical_outbound() \
            and order.status == Status.SHIP_REQUESTED:
        transition(order, "mark_shipped", SYSTEM, at=scanned_at,
                   summary=f"shipped: outbound scan at {station}, {event['carrier']} {event['tracking_no']}")
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


# --- the hot path's statements, without the ORM's per-call compilation ----------------------
# A scan is a handful of one-row statements, and the ORM spends several times more CPU building
# each one than PostgreSQL spends running it. The statements this module sends are therefore
# written once from the models' metadata; rows are made into instances as the ORM makes them
# (`Model.from_db`, after the backend's converters: the same objects, unselected fields
# deferred) and new instances are inserted with the values `Model.save()` would write.
# psycopg prepares the repeated statements, so PostgreSQL does not re-plan them either.


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: each is made once
class Selection:
    """Some concrete fields of a model (all of them by default), in the model's order, as
    `from_db` expects them, selected from the table under `alias`."""

    model: type[Model]
    fields: tuple
    alias: str

    @cached_property
    def attnames(self) -> list[str]:
        return [f.attname for f in self.fields]

    @classmethod
    def of(cls, model: type[Model], names=None, alias: str = "") -> "Selection":
        wanted = None if names is None else {model._meta.get_field(name).attname for name in names}
        fields = tuple(f for f in model._meta.concrete_fields if wanted is None or f.attname in wanted)
        return cls(model, fields, alias or model._meta.db_table)

    def columns(self, quote) -> str:
        return ", ".join(f"{quote(self.alias)}.{quote(f.column)}" for f in self.fields)

    def source(self, quote) -> str:
        table = self.model._meta.db_table
        return quote(table) if self.alias == table else f"{quote(table)} {quote(self.alias)}"


# Converters are bound to a connection's backend: one cache per connection (thread and alias),
# holding for each selection the (position, column, converters) of the fields that need any.
# On PostgreSQL none of these fields does.
_conversions: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _conversions_for(connection, selection: "Selection") -> list:
    cache = _conversions.get(connection)
    if cache is None:
        cache = _conversions[connection] = {}
    found = cache.get(selection)
    if found is None:
        found = cache[selection] = []
        for i, field in enumerate(selection.fields):
            column = field.get_col(field.model._meta.db_table)
            converters = [*connection.ops.get_db_converters(column), *column.get_db_converters(connection)]
            if converters:
                found.append((i, column, converters))
    return found


def fetch_instances(sql: str, params: list, selections: tuple["Selection", ...]) -> list | None:
    """Run a one-row SELECT of `selections`' columns (in that order); their instances, or
    None when no row matched."""
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    instances, start = [], 0
    for selection in selections:
        end = start + len(selection.fields)
        values = row[start:end]
        conversions = _conversions_for(connection, selection)
        if conversions:
            values = list(values)
            for i, column, converters in conversions:
                for convert in converters:
                    values[i] = convert(values[i], column, connection)
        instances.append(selection.model.from_db(connection.alias, selection.attnames, values))
        start = end
    return instances


_SCAN_ORDER = Selection.of(Order, SCAN_FIELDS)
_statements: dict[tuple[str, str], str] = {}


def _lock_statement(connection) -> str:
    key = ("lock_scan_order", connection.vendor)
    if key not in _statements:
        quote = connection.ops.quote_name
        order_no = Order._meta.get_field("order_no").column
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        _statements[key] = (
            f"SELECT {_SCAN_ORDER.columns(quote)} FROM {_SCAN_ORDER.source(quote)} "  # noqa: S608 - our names
            f"WHERE {quote(_SCAN_ORDER.alias)}.{quote(order_no)} = %s{lock}"
        )
    return _statements[key]


def lock_scan_order(order_no: str) -> Order:
    """`services.lock_order` for a scan: the order row locked (SELECT ... FOR UPDATE) with the
    fields a scan reads and writes loaded, nothing joined."""
    found = fetch_instances(_lock_statement(connections[DEFAULT_DB_ALIAS]), [order_no], (_SCAN_ORDER,))
    if found is None:
        raise NotFound(f"order {order_no} does not exist")
    return found[0]


def _insert_statement(connection, model: type[Model], skip_on_conflict: bool) -> tuple[str, list]:
    key = (f"insert:{model._meta.label}:{skip_on_conflict}", connection.vendor)
    if key not in _statements:
        quote, meta = connection.ops.quote_name, model._meta
        fields = [f for f in meta.local_concrete_fields if not f.generated and f is not meta.auto_field]
        returning = ", ".join(quote(f.column) for f in meta.db_returning_fields)
        _statements[key] = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(fields))})"
            f"{' ON CONFLICT DO NOTHING' if skip_on_conflict else ''} RETURNING {returning}",
            fields,
        )
    return _statements[key]


def insert_instance(instance: Model, *, skip_on_conflict: bool = False) -> bool:
    """INSERT a new instance as `instance.save()` would. With `skip_on_conflict`, a row that
    would break a unique constraint is not inserted (no error, no savepoint) and the answer is
    False. Models this shortcut does not cover (save signals, inheritance, values computed by
    the database) are saved by the ORM."""
    model, meta = type(instance), instance._meta
    connection = connections[DEFAULT_DB_ALIAS]
    sql, fields = _insert_statement(connection, model, skip_on_conflict)
    values = [f.pre_save(instance, True) for f in fields]
    if (meta.parents or meta.order_with_respect_to or not meta.db_returning_fields
            or not connection.features.can_return_columns_from_insert
            or (skip_on_conflict and not connection.features.supports_ignore_conflicts)
            or signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model)
            or any(hasattr(value, "resolve_expression") for value in values)):
        return _orm_insert(instance, skip_on_conflict)
    instance._prepare_related_fields_for_save(operation_name="save")
    params = [f.get_db_prep_save(value, connection) for f, value in zip(fields, values, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    for field, value in zip(meta.db_returning_fields, row, strict=True):
        setattr(instance, field.attname, value)
    instance._state.adding = False
    instance._state.db = connection.alias
    return True


def _orm_insert(instance: Model, skip_on_conflict: bool) -> bool:
    if not skip_on_conflict:
        instance.save(force_insert=True)
        return True
    try:
        with transaction.atomic():
            instance.save(force_insert=True)
    except IntegrityError:
        return False
    return True
