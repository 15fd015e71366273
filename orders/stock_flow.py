"""Where the order's life meets stock: reserve on payment (or creation, with an expiry),
allocate on approval (fulfilment orders), release on cancel/refund/expiry, consume on the
outbound scan.

Called by orders.services with the order row locked, inside its transaction.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from inventory import services as inventory
from inventory.models import Reservation, Warehouse

from . import fulfilment
from .events import SYSTEM, Actor, EventKind, Track, record_event
from .models import Fulfilment, Order, Status


@dataclass(frozen=True)
class KnownStock:
    """What a batch (orders.batch) knows of a new order's stock without asking the database:
    the reservations it just made, and the warehouses' codes."""

    reservations: list[Reservation]
    warehouse_codes: dict[int, str]


def reservation_summary(reservations: list[Reservation], codes: dict[int, str] | None = None) -> str:
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
                 summary=f"stock reserved until {expires_at:%Y-%m-%d %H:%M} UTC: {reservation_summary(reservations)}")


def reserve_or_hold(order: Order, actor: Actor) -> bool:
    """After payment: keep the creation-time reservation, or reserve now; out of stock puts
    the paid order on hold with the reason. Returns whether stock is reserved."""
    from .services import transition

    if has_reservations(order):
        inventory.confirm_reservations(order)
        return True
    # Shares exist only once an order is allocated: a new order's lines are all still to ship.
    lines = None if order.fulfilment == Fulfilment.UNALLOCATED else fulfilment.lines_left_to_ship(order)
    if lines == []:  # every parcel has left: nothing to hold stock for
        return True
    try:
        # An order routed by hand before payment reserves in its warehouse, where it will ship.
        reservations = inventory.reserve_for_order(order, only_warehouse=order.warehouse_id, lines=lines)
    except inventory.OutOfStock as exc:
        transition(order, "hold", SYSTEM, reason=exc.detail, summary=f"on hold: {exc.detail}",
                   payload={"shortages": exc.extra.get("shortages", [])})
        return False
    record_reserved(order, reservations)
    return True


def record_reserved(order: Order, reservations: list[Reservation], codes: dict[int, str] | None = None) -> None:
    """The timeline's note of a paid order's reservation (`codes`: warehouse codes by id)."""
    record_event(order, track=Track.SYSTEM, kind=EventKind.SYNC, actor=SYSTEM,
                 summary=f"stock reserved: {reservation_summary(reservations, codes)}")


def primary_warehouse(order: Order, known: KnownStock | None = None) -> int | None:
    """The warehouse holding most of the order's reserved units."""
    units = Counter()
    held = ((r.warehouse_id, r.quantity) for r in known.reservations) if known else \
        inventory.active_reservations(order).values_list("warehouse_id", "quantity")
    for warehouse_id, quantity in held:
        units[warehouse_id] += quantity
    return units.most_common(1)[0][0] if units else None


def allocate(order: Order, actor: Actor, at: datetime | None = None, known: KnownStock | None = None) -> None:
    """An approved order is allocated to the warehouse(s) its reservation is in: one
    fulfilment order per warehouse for the lines no share holds yet. A new order of a batch
    (orders.batch) gets its shares from the batch, which inserts them with the order."""
    from .services import transition

    if order._state.adding:
        warehouse_id = primary_warehouse(order, known)
        if warehouse_id is None or order.fulfilment != Fulfilment.UNALLOCATED:
            return
        order.warehouse_id = warehouse_id
        code = known.warehouse_codes[warehouse_id]
        transition(order, "follow_shares", actor, at=at, to=Fulfilment.ALLOCATED,
                   summary=f"allocated to {code} (automatic routing)",
                   payload={"warehouse": code, "automatic": True})
        return
    if order.warehouse_id is None:
        order.warehouse_id = primary_warehouse(order)
        if order.warehouse_id is None:
            return
    shares = fulfilment.shares_of(order)
    made = fulfilment.cover_lines(order, shares, at=at)
    if made and order.fulfilment == Fulfilment.UNALLOCATED:
        code = Warehouse.objects.get(pk=order.warehouse_id).code
        fulfilment.follow(order, shares, actor, at=at,
                          summary=f"allocated to {code} (automatic routing)"
                          + (f": {fulfilment.describe(made)}" if len(made) > 1 else ""),
                          payload={"warehouse": code, "automatic": True})
    elif made:
        order.save_changes()
        record_event(order, track=Track.PHYSICAL, kind=EventKind.TRANSITION, actor=actor, at=at,
                     summary=f"allocated: {fulfilment.describe(made)}",
                     payload={"fulfilment_orders": [s.number for s in made]})


def release(order: Order, reason: str) -> None:
    released = inventory.release_for_order(order, reason)
    if released:
        record_event(order, track=Track.SYSTEM, kind=EventKind.SYNC, actor=SYSTEM,
                     summary=f"{released} reserved units released ({reason})")


def ship(order: Order, warehouse_id: int) -> int:
    """The outbound scan of the order's share in that warehouse: its reservations leave."""
    return inventory.ship_for_order(order, warehouse_id)[0]
