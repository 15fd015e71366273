"""Fulfilment orders: each warehouse's share of an order, and the order's physical track
derived from them (ARCHITECTURE.md, "Fulfilment orders").

Every call expects the order row locked by the caller, inside its transaction (orders.services,
orders.scanning and channels.tracking lock it first). A share is made when the order is
allocated (approval, a manual route), one per warehouse its reservations are in; scans and
carrier tracking move the share; the order's `fulfilment` then follows the shares:
  * some live share still in a warehouse → the least advanced of those (allocated, picking,
    packed): where the order waits;
  * every live share has left → returned if one came back, else the least advanced of
    outbound / in transit / delivered.
"""

from collections import defaultdict
from datetime import datetime

from django.utils import timezone
from django_fsm import can_proceed

from inventory.models import Reservation
from oms import rowsql
from oms.errors import Conflict

from .events import SYSTEM, Actor, EventKind, Track, record_event
from .models import Fulfilment, Order, OrderLine
from .models_fulfilment import LEFT, WAITING, FulfilmentLine, FulfilmentOrder, ShareState

_RANK = {
    ShareState.OPEN: 1, ShareState.PICKING: 2, ShareState.PACKED: 3,
    ShareState.OUTBOUND: 4, ShareState.IN_TRANSIT: 5, ShareState.DELIVERED: 6,
}
_ORDER_STATE = {
    ShareState.OPEN: Fulfilment.ALLOCATED, ShareState.PICKING: Fulfilment.PICKING,
    ShareState.PACKED: Fulfilment.PACKED, ShareState.OUTBOUND: Fulfilment.OUTBOUND,
    ShareState.IN_TRANSIT: Fulfilment.IN_TRANSIT, ShareState.DELIVERED: Fulfilment.DELIVERED,
}


def derived_state(states: list[str]) -> str | None:
    """The order's physical track for its shares' states (None: no live share)."""
    live = [s for s in states if s != ShareState.CANCELLED]
    if not live:
        return None
    waiting = [s for s in live if s in WAITING]
    if waiting:
        return _ORDER_STATE[min(waiting, key=_RANK.__getitem__)]
    if ShareState.RETURNED in live:
        return Fulfilment.RETURNED
    return _ORDER_STATE[min(live, key=_RANK.__getitem__)]


_SHARES = rowsql.Selection.of(FulfilmentOrder)


def _shares_sql(lock: bool):
    def build(connection) -> str:
        quote = connection.ops.quote_name
        locking = " FOR UPDATE" if lock and connection.features.has_select_for_update else ""
        return (f"SELECT {_SHARES.columns(quote)} FROM {_SHARES.source(quote)} "  # noqa: S608 - our names
                f"WHERE {quote('order_id')} = %s ORDER BY {quote('number')}{locking}")
    return build


def shares_of(order: Order, *, lock: bool = True) -> list[FulfilmentOrder]:
    """The order's shares by number, locked (after the order row) unless `lock` is False.
    A compiled statement: every scan reads them."""
    sql = rowsql.statement(("shares_of_order", lock), _shares_sql(lock))
    shares = [share for (share,) in rowsql.fetch_all_instances(sql, [order.pk], (_SHARES,))]
    for share in shares:
        share.order = order
    return shares


def live(shares: list[FulfilmentOrder]) -> list[FulfilmentOrder]:
    return [s for s in shares if s.status != ShareState.CANCELLED]


def any_left(shares: list[FulfilmentOrder]) -> bool:
    return any(s.status in LEFT for s in shares)


def refusal(share: FulfilmentOrder, detail: str) -> Conflict:
    """409 naming the share, its state and what it may still do (CONTRACTS.md)."""
    return Conflict(
        detail,
        state={"fulfilment_order": share.code, "warehouse": share.warehouse.code if share.warehouse_id else None,
               "status": share.status},
        allowed=sorted(t.name for t in share.get_available_status_transitions()),
    )


def move_share(share: FulfilmentOrder, name: str, at: datetime, *, save: bool = True,
               **kwargs) -> tuple[str, str]:
    """One FSM transition of a share, saved (unless `save` is False: the caller saves it with
    the order); refused with the share's state. Returns (from, to)."""
    method = getattr(share, name)
    before = share.status
    if not can_proceed(method):
        raise refusal(share, f"cannot {name.replace('_', ' ')} {share.code}: it is {before}")
    method(at=at, **kwargs)
    if save:
        share.save_changes()
    return before, share.status


# --- making shares --------------------------------------------------------------------------


def lines_left_to_ship(order: Order) -> list[tuple[int, int, int]]:
    """(line id, SKU id, quantity) of the lines no share has taken out of a warehouse yet,
    in the SKU order reservations are taken in: what stock may still be reserved for."""
    shipped = FulfilmentLine.objects.filter(fulfilment_order__order=order,
                                            fulfilment_order__status__in=LEFT).values("order_line_id")
    return list(OrderLine.objects.filter(order=order).exclude(pk__in=shipped)
                .order_by("sku_id", "pk").values_list("pk", "sku_id", "quantity"))


def new_shares(order: Order, items: list[tuple[int, int, int]], *, first_number: int = 1,
               at: datetime | None = None, replaces: dict[int, FulfilmentOrder] | None = None
               ) -> list[tuple[FulfilmentOrder, list[FulfilmentLine]]]:
    """Unsaved shares for (order line id, warehouse id, quantity) items, one per warehouse,
    numbered from `first_number` (orders.batch saves them itself)."""
    by_warehouse: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for line_id, warehouse_id, quantity in items:
        by_warehouse[warehouse_id].append((line_id, quantity))
    made = []
    for number, warehouse_id in enumerate(sorted(by_warehouse), start=first_number):
        share = FulfilmentOrder(order=order, number=number, warehouse_id=warehouse_id,
                                created_at=at or timezone.now(),
                                replaces=(replaces or {}).get(warehouse_id))
        lines = [FulfilmentLine(fulfilment_order=share, order_line_id=line_id, quantity=quantity)
                 for line_id, quantity in sorted(by_warehouse[warehouse_id])]
        made.append((share, lines))
    return made


def cover_lines(order: Order, shares: list[FulfilmentOrder], *, at: datetime | None = None,
                replaces: dict[int, FulfilmentOrder] | None = None, only_lines: set[int] | None = None,
                to_warehouse: int | None = None) -> list[FulfilmentOrder]:
    """Give every line no live share holds (of `only_lines`, if given) to the warehouse its
    active reservation is in (else `to_warehouse`, else the order's warehouse): to the share
    waiting there, or to a new one. Returns the shares made or extended; `shares` is extended
    in place."""
    covered = set(FulfilmentLine.objects.filter(fulfilment_order__in=[s.pk for s in live(shares)])
                  .values_list("order_line_id", flat=True))
    reserved = dict(Reservation.objects.filter(order=order, status=Reservation.State.ACTIVE)
                    .values_list("order_line_id", "warehouse_id"))
    items = []
    for line_id, quantity in order.lines.values_list("pk", "quantity"):
        warehouse_id = reserved.get(line_id, to_warehouse or order.warehouse_id)
        if only_lines is not None and line_id not in only_lines:
            continue
        if line_id not in covered and warehouse_id is not None:
            items.append((line_id, warehouse_id, quantity))
    if not items:
        return []
    waiting_at = {s.warehouse_id: s for s in shares if s.status in WAITING}
    changed, fresh = [], []
    for line_id, warehouse_id, quantity in items:
        share = waiting_at.get(warehouse_id)
        if share is not None and share.status != ShareState.OPEN:
            raise refusal(share, f"cannot add lines to {share.code}: it is {share.status}")
        if share is not None:
            FulfilmentLine.objects.create(fulfilment_order=share, order_line_id=line_id, quantity=quantity)
            if share not in changed:
                changed.append(share)
        else:
            fresh.append((line_id, warehouse_id, quantity))
    first = max((s.number for s in shares), default=0) + 1
    for share, lines in new_shares(order, fresh, first_number=first, at=at, replaces=replaces):
        share.save()
        FulfilmentLine.objects.bulk_create(lines)
        shares.append(share)
        changed.append(share)
    return changed


def describe(shares: list[FulfilmentOrder]) -> str:
    from inventory.models import Warehouse

    codes = dict(Warehouse.objects.filter(pk__in={s.warehouse_id for s in shares}).values_list("pk", "code"))
    return ", ".join(f"F{s.number} {codes[s.warehouse_id]}" for s in shares)


# --- the order follows its shares -----------------------------------------------------------


def follow(order: Order, shares: list[FulfilmentOrder], actor: Actor, *, at: datetime | None = None,
           summary: str = "", kind: str = EventKind.TRANSITION, payload: dict | None = None,
           always: bool = False, save: bool = True) -> bool:
    """Move the order's physical track to what its shares say. Returns whether it moved
    (with `always`, the transition is recorded even when the state stays)."""
    from .services import transition

    target = derived_state([s.status for s in shares])
    if target is None or (target == order.fulfilment and not always):
        return False
    left = [s.outbound_at for s in live(shares) if s.status in LEFT]
    transition(order, "follow_shares", actor, at=at, summary=summary, kind=kind, payload=payload,
               to=target, outbound_at=max(left) if left else None, save=save)
    return True


def cancel_waiting(order: Order, shares: list[FulfilmentOrder], reason: str, at: datetime,
                   actor: Actor = SYSTEM) -> list[FulfilmentOrder]:
    """Cancel the shares still in a warehouse (their reservations are the caller's to release)."""
    cancelled = []
    for share in shares:
        if share.status in WAITING:
            before, _after = move_share(share, "cancel", at, reason=reason)
            record_event(order, track=Track.PHYSICAL, kind=EventKind.TRANSITION, actor=actor, at=at,
                         from_state=before, to_state=ShareState.CANCELLED,
                         summary=f"{share.code} cancelled: {reason}"[:255],
                         payload={"fulfilment_order": share.number, "reason": reason})
            cancelled.append(share)
    return cancelled


def carrier_update(order: Order, share: FulfilmentOrder, name: str, actor: Actor, *, at: datetime,
                   summary: str, payload: dict) -> bool:
    """A carrier checkpoint moves its parcel's share (in transit, delivered, returned); the
    order follows. Returns whether the share moved."""
    if not can_proceed(getattr(share, name)):
        return False
    before, after = move_share(share, name, at)
    payload = {**payload, "fulfilment_order": share.number}
    if not follow(order, shares_of(order, lock=False), actor, at=at, summary=summary,
                  kind=EventKind.SCAN, payload=payload):
        record_event(order, track=Track.PHYSICAL, kind=EventKind.SCAN, actor=actor, at=at,
                     from_state=before, to_state=after, summary=f"{summary} [{share.code}]"[:255],
                     payload=payload)
    return True
