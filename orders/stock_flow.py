"""Where the order's life meets stock: reserve on payment (or creation, with an expiry),
allocate on approval, release on cancel/refund/expiry, consume on the outbound scan.

Called by orders.services with the order row locked, inside its transaction.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from inventory import services as inventory
from inventory.models import Reservation, Warehouse
from oms import rowsql

from .events import SYSTEM, Actor, EventKind, Track, record_event
from .models import Order, Status


@dataclass(frozen=True)
class KnownStock:
    """What a batch (orders.batch) knows of a new order's stock without asking the database:
    the reservations it just made, and the warehouses' codes."""

    reservations: list[Reservation]
    warehouse_codes: dict[int, str]


def _summary(reservations: list[Reservation], codes: dict[int, str] | None = None) -> str:
    per_warehouse = Counter()
    for reservation in reservations:
        per_warehouse[reservation.warehouse_id] += reservation.quantity
    if codes is None:
        codes = dict(Warehouse.objects.filter(pk__in=per_warehouse).values_list("pk", "code"))
    return ", ".join(f"{codes[w]} × {q}" for w, q in sorted(per_warehouse.items()))


def has_reservations(order: Order) -> bool:
    return inventory.active_reservations(order).exists()


def reserve_at_creation(order: Order, actor: Actor) -> None:
    """Channels that reserve on creation hold stock for unpaid orders until they expire."""
    expires_at = inventory.pending_expiry(order.channel)
    if expires_at is None or order.status != Status.PENDING_PAYMENT:
        return
    try:
        reservations = inventory.reserve_for_order(order, expires_at=expires_at)
    except inventory.OutOfStock as exc:
        record_event(order, track=Track.SYSTEM, kind=EventKind.SYNC, actor=SYSTEM,
                     summary=f"no stock reserved for the unpaid order: {exc.detail}",
                     payload={"shortages": exc.extra.get("shortages", [])})
        return
    record_event(order, track=Track.SYSTEM, kind=EventKind.SYNC, actor=SYSTEM,
                 summary=f"stock reserved until {expires_at:%Y-%m-%d %H:%M} UTC: {_summary(reservations)}")


def reserve_or_hold(order: Order, actor: Actor) -> bool:
    """After payment: keep the creation-time reservation, or reserve now; out of stock puts
    the paid order on hold with the reason. Returns whether stock is reserved."""
    from .services import transition

    if has_reservations(order):
        inventory.confirm_reservations(order)
        return True
    try:
        # An order routed by hand before payment reserves in its warehouse, where it will ship.
        reservations = inventory.reserve_for_order(order, only_warehouse=order.warehouse_id)
    except inventory.OutOfStock as exc:
        transition(order, "hold", SYSTEM, reason=exc.detail, summary=f"on hold: {exc.detail}",
                   payload={"shortages": exc.extra.get("shortages", [])})
        return False
    record_reserved(order, reservations)
    return True


def record_reserved(order: Order, reservations: list[Reservation], codes: dict[int, str] | None = None) -> None:
    """The timeline's note of a paid order's reservation (`codes`: warehouse codes by id)."""
    record_event(order, track=Track.SYSTEM, kind=EventKind.SYNC, actor=SYSTEM,
                 summary=f"stock reserved: {_summary(reservations, codes)}")


def primary_warehouse(order: Order, known: KnownStock | None = None) -> int | None:
    """The warehouse holding most of the order's reserved units."""
    units = Counter()
    held = ((r.warehouse_id, r.quantity) for r in known.reservations) if known else \
        inventory.active_reservations(order).values_list("warehouse_id", "quantity")
    for warehouse_id, quantity in held:
        units[warehouse_id] += quantity
    return units.most_common(1)[0][0] if units else None


def allocate(order: Order, actor: Actor, at: datetime | None = None, known: KnownStock | None = None) -> None:
    """An approved order is allocated to the warehouse its reservation is in."""
    from .services import transition

    warehouse_id = primary_warehouse(order, known)
    if warehouse_id is None or order.fulfilment != "unallocated":
        return
    order.warehouse_id = warehouse_id
    code = known.warehouse_codes[warehouse_id] if known else Warehouse.objects.get(pk=warehouse_id).code
    transition(order, "allocate", actor, at=at, summary=f"allocated to {code} (automatic routing)",
               payload={"warehouse": code, "automatic": True})


def move_to(order: Order, warehouse: Warehouse) -> str:
    """Manual re-route: the reservation moves with the order, atomically, or nothing changes."""
    if order.status in (Status.PENDING_PAYMENT,) and not has_reservations(order):
        return ""
    reservations = inventory.move_reservations(order, warehouse.pk)
    return f"reservation moved: {_summary(reservations)}"


def release(order: Order, reason: str) -> None:
    released = inventory.release_for_order(order, reason)
    if released:
        record_event(order, track=Track.SYSTEM, kind=EventKind.SYNC, actor=SYSTEM,
                     summary=f"{released} reserved units released ({reason})")


def ship(order: Order, warehouse_id: int) -> tuple[int, bool]:
    return inventory.ship_for_order(order, warehouse_id)


def holds_stock_in(order: Order, warehouse_id: int) -> bool:
    return inventory.active_reservations(order).filter(warehouse_id=warehouse_id).exists()


def expected_items(order: Order, warehouse_id: int) -> list[tuple[str, int]]:
    """What the pack check expects from this warehouse: its share of a split order, or every
    line when the order holds no reservation at all."""
    reserved = inventory.reserved_in(order, warehouse_id)
    if reserved is None:
        return rowsql.fetch_rows(rowsql.statement(("barcodes_of_lines",), _barcodes_of_lines_sql), [order.pk])
    return reserved


def _barcodes_of_lines_sql(connection) -> str:
    return ("SELECT s.barcode, l.quantity FROM orders_orderline l INNER JOIN inventory_sku s ON s.id = l.sku_id "
            "WHERE l.order_id = %s ORDER BY l.line_no")
