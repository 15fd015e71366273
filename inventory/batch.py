"""Stock for many new orders at once: a page of channel intake.

Each order is planned as `reserve_for_order` plans it (routing.plan_from), one after the other
against the stock loaded once, so an order planned earlier in the page has taken its units;
then every planned line is reserved in one go (stock.reserve_many). The caller's transaction
holds the orders' rows, not yet visible to anyone else.
"""

from dataclasses import dataclass

from django.utils import timezone

from oms import rowsql

from . import stock
from .models import MovementKind, Reservation, StockMovement
from .routing import Plan, load_stock, plan_from
from .services import review_listings_at_safety


@dataclass
class Request:
    order: object  # a new Order with its pk and channel
    lines: list[tuple[int, int, int]]  # (line id, SKU id, quantity), as services._order_lines


def plan_together(requests: list[Request]) -> list[Plan]:
    """Each order's plan, or its shortages (nothing taken for it)."""
    warehouses, availability = load_stock({sku_id for request in requests for _, sku_id, _ in request.lines})
    plans = []
    for request in requests:
        plan = plan_from(request.lines, request.order.receiver_province, request.order.channel.allow_split,
                         warehouses, availability)
        for line_id, sku_id, quantity in request.lines:
            if line_id in plan.assignments:
                availability[plan.assignments[line_id]][sku_id] -= quantity
        plans.append(plan)
    return plans


def reserve_planned(requests: list[Request], plans: list[Plan]) -> list[list[Reservation]] | None:
    """Reserve every line of the orders as planned (none with shortages): their reservations,
    order by order, or None when the stock moved since it was loaded (nothing changed: the
    caller reserves those orders one at a time)."""
    reservations, movements = [], []
    now = timezone.now()
    by_order = []
    for request, plan in zip(requests, plans, strict=True):
        order = request.order
        mine = []
        # As _reserve_plan: SKU, then warehouse.
        for line_id, sku_id, quantity in sorted(request.lines, key=lambda line: (line[1], plan.assignments[line[0]])):
            reservation = Reservation(order=order, order_line_id=line_id, warehouse_id=plan.assignments[line_id],
                                      sku_id=sku_id, quantity=quantity, created_at=now)
            mine.append(reservation)
        by_order.append(mine)
        reservations += mine
    for reservation, pk in zip(reservations, rowsql.draw_pks(Reservation, len(reservations)), strict=True):
        reservation.pk = pk
        order = reservation.order
        movements.append(StockMovement(
            warehouse_id=reservation.warehouse_id, sku_id=reservation.sku_id, kind=MovementKind.RESERVE,
            reserved_delta=reservation.quantity, reason=f"reserve for {order.order_no}"[:255],
            reference=order.order_no[:100], order=order, reservation=reservation,
        ))
    states = stock.reserve_many(movements)  # foreign keys are checked at commit
    if states is None:
        return None
    rowsql.copy_instances(reservations)
    review_listings_at_safety({state.sku_id for state in states})
    return by_order
