"""Inventory writes: receipts, reservations (all lines or none), release, shipment, re-route,
expiry, and the listings that close at safety stock. Counters change only in inventory.stock.

Order-facing calls (reserve_for_order, release_for_order, ship_for_order, move_reservations)
expect the caller to hold the order's row lock inside its transaction (orders.services does).
"""

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from oms import rowsql
from oms.errors import Conflict, Invalid

from . import stock
from .models import (
    SKU,
    CacheGeneration,
    ChannelListing,
    ListingChange,
    MovementKind,
    Reservation,
    StockLevel,
    Warehouse,
)
from .routing import Plan, plan_for

SAFETY_REASON = "safety stock"


class OutOfStock(Conflict):
    """Nothing was reserved; `shortages` says which SKUs lacked what."""


# --- receipts -------------------------------------------------------------------------------


def _resolve(warehouse_code: str, sku_code: str) -> tuple[Warehouse, SKU]:
    errors = {}
    warehouse = Warehouse.objects.filter(code=warehouse_code).first()
    if warehouse is None:
        errors["warehouse"] = [f"no warehouse with code {warehouse_code!r}"]
    sku = SKU.objects.filter(code=sku_code).first()
    if sku is None:
        errors["sku"] = [f"no SKU with code {sku_code!r}"]
    if errors:
        raise Invalid(errors)
    return warehouse, sku


@transaction.atomic
def receive_stock(warehouse_code: str, sku_code: str, quantity: int, reference: str = "",
                  user=None, kind: str = MovementKind.RECEIPT) -> StockLevel:
    if not isinstance(quantity, int) or quantity <= 0:
        raise Invalid({"quantity": ["must be a whole number above zero"]})
    warehouse, sku = _resolve(warehouse_code, sku_code)
    stock.add_on_hand(warehouse.pk, sku.pk, quantity, kind, reference=reference[:100],
                      reason=f"{kind} {reference}".strip()[:255], user=user)
    review_listings(sku.pk)
    return StockLevel.objects.get(warehouse=warehouse, sku=sku)


@transaction.atomic
def set_safety_stock(warehouse_code: str, sku_code: str, safety_stock: int) -> StockLevel:
    if not isinstance(safety_stock, int) or safety_stock < 0:
        raise Invalid({"safety_stock": ["must be a whole number, zero or more"]})
    warehouse, sku = _resolve(warehouse_code, sku_code)
    level, _ = StockLevel.objects.get_or_create(warehouse=warehouse, sku=sku)
    StockLevel.objects.filter(pk=level.pk).update(
        safety_stock=safety_stock, version=F("version") + 1, updated_at=timezone.now())
    level = StockLevel.objects.get(pk=level.pk)
    stock.publish_after_commit(stock.LevelState(
        level.warehouse_id, level.sku_id, level.on_hand, level.reserved, level.safety_stock, level.version,
        CacheGeneration.current()))
    review_listings(sku.pk)
    return level


# --- reservations ---------------------------------------------------------------------------


def _order_lines(order) -> list[tuple[int, int, int]]:
    return list(order.lines.order_by("sku_id", "pk").values_list("pk", "sku_id", "quantity"))


def _shortage_message(plan: Plan) -> str:
    codes = dict(SKU.objects.filter(pk__in=[s["sku_id"] for s in plan.shortages]).values_list("pk", "code"))
    if all(s["best_available"] >= s["needed"] for s in plan.shortages):
        return "no single warehouse can ship every line and split shipments are off for this channel"
    return "out of stock: " + ", ".join(
        f"{codes.get(s['sku_id'], s['sku_id'])} needs {s['needed']}, {s['best_available']} available"
        for s in plan.shortages if s["best_available"] < s["needed"]
    )


def reserve_for_order(order, *, expires_at: datetime | None = None, only_warehouse: int | None = None,
                      attempts: int = 3, lines: list[tuple[int, int, int]] | None = None) -> list[Reservation]:
    """Reserve every line of the order or none, in the warehouse(s) routing picks; `lines`
    ((line id, SKU id, quantity), in SKU order) narrows it to some lines: those that have not
    left a warehouse yet (orders.fulfilment.lines_left_to_ship).

    Raises OutOfStock (nothing reserved) with the reason. A plan that loses a race for the
    last units is re-planned without that warehouse, up to `attempts` times."""
    lines = _order_lines(order) if lines is None else lines
    if not lines:
        raise Invalid({"lines": ["the order has no lines"]})
    excluded: set[int] = set()
    for _ in range(attempts):
        plan = plan_for(lines, order.receiver_province, order.channel.allow_split,
                        exclude=excluded, only=only_warehouse)
        if plan.shortages:
            raise OutOfStock(_shortage_message(plan), shortages=_coded(plan.shortages))
        try:
            with transaction.atomic():  # a savepoint: a lost race undoes this attempt only
                return _reserve_plan(order, lines, plan, expires_at)
        except _LostRace as race:
            excluded.add(race.warehouse_id)
    raise OutOfStock("stock ran out while reserving; try again", shortages=[])


class _LostRace(Exception):
    def __init__(self, warehouse_id: int):
        self.warehouse_id = warehouse_id


def _coded(shortages: list[dict]) -> list[dict]:
    codes = dict(SKU.objects.filter(pk__in=[s["sku_id"] for s in shortages]).values_list("pk", "code"))
    return [{"sku": codes.get(s["sku_id"]), "needed": s["needed"], "available": s["best_available"]}
            for s in shortages]


def _reserve_plan(order, lines, plan: Plan, expires_at) -> list[Reservation]:
    _claim_promo_caps(order, lines)
    reservations = []
    # Fixed order (SKU, then warehouse): two orders never wait on each other's rows.
    for line_id, sku_id, quantity in sorted(lines, key=lambda line: (line[1], plan.assignments[line[0]])):
        warehouse_id = plan.assignments[line_id]
        reservation = Reservation.objects.create(
            order=order, order_line_id=line_id, warehouse_id=warehouse_id, sku_id=sku_id,
            quantity=quantity, expires_at=expires_at,
        )
        state = stock.reserve(warehouse_id, sku_id, quantity, order=order, reservation=reservation,
                              reference=order.order_no, reason=f"reserve for {order.order_no}")
        if state is None:
            raise _LostRace(warehouse_id)
        reservations.append(reservation)
    review_listings_at_safety({sku_id for _line, sku_id, _q in lines})
    return reservations


def _claim_promo_caps(order, lines) -> None:
    wanted: dict[int, int] = {}
    for _, sku_id, quantity in lines:
        wanted[sku_id] = wanted.get(sku_id, 0) + quantity
    capped = ChannelListing.objects.filter(channel_id=order.channel_id, sku_id__in=wanted,
                                           promo_cap__isnull=False)
    for listing_id, sku_id in capped.order_by("sku_id").values_list("pk", "sku_id"):
        claimed = ChannelListing.objects.filter(
            pk=listing_id, promo_reserved__lte=F("promo_cap") - wanted[sku_id]
        ).update(promo_reserved=F("promo_reserved") + wanted[sku_id])
        if not claimed:
            sku_code = SKU.objects.get(pk=sku_id).code
            raise OutOfStock(f"promo cap reached for {sku_code} on this channel",
                             shortages=[{"sku": sku_code, "needed": wanted[sku_id], "available": 0,
                                         "promo_cap": True}])


def _give_back_promo(reservation: Reservation, channel_id: int) -> None:
    ChannelListing.objects.filter(
        channel_id=channel_id, sku_id=reservation.sku_id, promo_cap__isnull=False,
        promo_reserved__gte=reservation.quantity,
    ).update(promo_reserved=F("promo_reserved") - reservation.quantity)


def active_reservations(order):
    return order.reservations.filter(status=Reservation.State.ACTIVE).order_by("sku_id", "warehouse_id")


def release_for_order(order, reason: str, line_ids: list[int] | None = None) -> int:
    """Give back every active reservation of the order (cancel, refund, expiry), or those of
    `line_ids` (a re-route of some of its lines)."""
    released = 0
    now = timezone.now()
    reservations = active_reservations(order)
    if line_ids is not None:
        reservations = reservations.filter(order_line_id__in=line_ids)
    for reservation in reservations:
        stock.release(reservation.warehouse_id, reservation.sku_id, reservation.quantity,
                      order=order, reservation=reservation, reference=order.order_no,
                      reason=f"release ({reason}) for {order.order_no}"[:255])
        _give_back_promo(reservation, order.channel_id)
        Reservation.objects.filter(pk=reservation.pk).update(
            status=Reservation.State.RELEASED, closed_at=now, close_reason=reason[:100])
        review_listings(reservation.sku_id)
        released += reservation.quantity
    return released


def _active_of_order_sql(connection) -> str:
    return (
        "SELECT r.id, r.warehouse_id, r.sku_id, r.quantity, s.barcode FROM inventory_reservation r "
        "INNER JOIN inventory_sku s ON s.id = r.sku_id WHERE r.order_id = %s AND r.status = %s "
        "ORDER BY r.sku_id, r.warehouse_id"
    )


def _active_of_order(order) -> list[tuple]:
    """(id, warehouse_id, sku_id, quantity, barcode) of the order's active reservations, in the
    order of `active_reservations`: the scanner's statement, compiled once."""
    sql = rowsql.statement(("active_reservations_of_order",), _active_of_order_sql)
    return rowsql.fetch_rows(sql, [order.pk, Reservation.State.ACTIVE])


def _close_sql(connection) -> str:
    return "UPDATE inventory_reservation SET status = %s, closed_at = %s, close_reason = %s WHERE id = %s"


def ship_for_order(order, warehouse_id: int) -> tuple[int, bool]:
    """The outbound scan: the order's reservations in that warehouse leave (consumed).

    Returns the units shipped and whether other warehouses still hold some of the order
    (a split order whose other parcels have not left yet)."""
    shipped, elsewhere = 0, False
    closed_at = connection.ops.adapt_datetimefield_value(timezone.now())
    for reservation_id, held_in, sku_id, quantity, _barcode in _active_of_order(order):
        if held_in != warehouse_id:
            elsewhere = True
            continue
        stock.ship(warehouse_id, sku_id, quantity, order=order, reservation=reservation_id,
                   reference=order.order_no, reason=f"shipped {order.order_no}")
        with connection.cursor() as cursor:
            cursor.execute(rowsql.statement(("consume_reservation",), _close_sql),
                           [Reservation.State.CONSUMED, closed_at, "outbound scan", reservation_id])
        shipped += quantity
    return shipped, elsewhere


def move_reservations(order, warehouse_id: int, lines: list[tuple[int, int, int]]) -> list[Reservation]:
    """Re-route: release what `lines` ((line id, SKU id, quantity)) hold and reserve them in
    `warehouse_id`, or change nothing (OutOfStock) when that warehouse cannot ship them all."""
    with transaction.atomic():
        expires_at = active_reservations(order).values_list("expires_at", flat=True).first()
        release_for_order(order, "re-routed", line_ids=[line_id for line_id, _sku, _q in lines])
        return reserve_for_order(order, expires_at=expires_at, only_warehouse=warehouse_id, lines=lines)


def confirm_reservations(order) -> None:
    """Payment arrived: reservations made at creation no longer expire."""
    active_reservations(order).filter(expires_at__isnull=False).update(expires_at=None)


def expired_order_numbers(now: datetime | None = None, limit: int = 500) -> list[str]:
    now = now or timezone.now()
    return list(
        Reservation.objects.filter(status=Reservation.State.ACTIVE, expires_at__lte=now)
        .values_list("order__order_no", flat=True).distinct()[:limit]
    )


def pending_expiry(channel) -> datetime | None:
    if channel.reserve_on != "creation":
        return None
    return timezone.now() + timedelta(minutes=channel.pending_reservation_minutes)


# --- listings at safety stock ---------------------------------------------------------------


def review_listings_at_safety(sku_ids) -> None:
    """After reserving: close the listings of those SKUs whose stock summed over the active
    warehouses is now at or below their summed safety stock (the rule is over all warehouses,
    not the one that reserved: near 10 with safety 0 and far 2 with safety 5, an order of 7
    leaves 5 against 5). One aggregate query for them all."""
    if not sku_ids:
        return
    totals = (StockLevel.objects.filter(sku_id__in=sku_ids, warehouse__active=True).values("sku_id")
              .annotate(on_hand=Sum("on_hand"), reserved=Sum("reserved"), safety=Sum("safety_stock"))
              .values_list("sku_id", "on_hand", "reserved", "safety"))
    for sku_id, on_hand, reserved, safety in sorted(totals):
        if on_hand - reserved <= safety:
            review_listings(sku_id)


def review_listings(sku_id: int) -> None:
    """Close the SKU's open listings when available ≤ safety (summed over active warehouses),
    reopen those closed for that reason once it is above again."""
    totals = StockLevel.objects.filter(sku_id=sku_id, warehouse__active=True).aggregate(
        on_hand=Sum("on_hand"), reserved=Sum("reserved"), safety=Sum("safety_stock"))
    available = (totals["on_hand"] or 0) - (totals["reserved"] or 0)
    safety = totals["safety"] or 0
    at_or_below = available <= safety
    if at_or_below:
        to_change = ChannelListing.objects.filter(sku_id=sku_id, is_open=True)
        reason = f"{SAFETY_REASON}: {available} available ≤ {safety}"
    else:
        to_change = ChannelListing.objects.filter(sku_id=sku_id, is_open=False,
                                                  closed_reason__startswith=SAFETY_REASON)
        reason = f"replenished: {available} available > {safety}"
    listing_ids = list(to_change.values_list("pk", flat=True))
    if not listing_ids:
        return
    ChannelListing.objects.filter(pk__in=listing_ids).update(
        is_open=not at_or_below, closed_reason=reason if at_or_below else "", changed_at=timezone.now())
    ListingChange.objects.bulk_create(
        ListingChange(listing_id=pk, is_open=not at_or_below, reason=reason) for pk in listing_ids
    )


def sellable(channel_id: int, sku_id: int) -> bool:
    return not ChannelListing.objects.filter(channel_id=channel_id, sku_id=sku_id, is_open=False).exists()

