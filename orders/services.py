"""Every write to an order. One transaction per call; the order row is locked first so
concurrent calls on one order are serialized and none is lost."""

import hashlib
import json
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import can_proceed, has_transition_perm

from inventory import services as inventory_services
from inventory.models import Warehouse
from oms import rowsql
from oms.errors import Conflict, Forbidden, Invalid, NotFound

from . import fulfilment, stock_flow
from .events import SYSTEM, Actor, EventKind, Track, record_event
from .identity import identity_for
from .models import CANCELLABLE, CaseKind, Order, OrderLine, Status
from .models_fulfilment import WAITING, FulfilmentLine, ShareState
from .numbers import next_order_no

# Why a transition's condition failed, in words for the person who asked.
CONDITION_REASONS = {
    "has_warehouse": "the order has no warehouse yet: route it first",
    "has_physical_outbound": "the warehouse has not scanned the parcel outbound",
    "not_physically_out": "the parcel has already left the warehouse",
    "warehouse_may_work": "the order is not approved for the warehouse to work on",
    "no_share_left": "a parcel of the order has already left a warehouse",
    "refunds_cover_what_is_owed": "the refunds booked do not cover what is owed yet",
}

# An order leaving for these states no longer waits for anyone's approval.
APPROVAL_ENDS = (Status.CANCELLED, Status.REFUNDING, Status.REFUNDED)


def lock_order(order_no: str, related=("warehouse", "channel"), only=None) -> Order:
    queryset = Order.objects.select_for_update(of=("self",)).select_related(*related)
    if only:
        queryset = queryset.only(*only)
    try:
        return queryset.get(order_no=order_no)
    except Order.DoesNotExist:
        raise NotFound(f"order {order_no} does not exist") from None


def _allowed(order: Order, field: str) -> list[str]:
    return sorted(t.name for t in getattr(order, f"get_available_{field}_transitions")())


def transition(
    order: Order,
    name: str,
    actor: Actor,
    *,
    at: datetime | None = None,
    summary: str = "",
    kind: str = EventKind.TRANSITION,
    payload: dict | None = None,
    check_permission: bool = True,
    save: bool = True,
    **kwargs,
) -> None:
    """Run one FSM transition on a locked order, save it and write its OrderEvent.

    `check_permission=False` is for a caller that authorised the actor itself: an approver
    decides an approval task by being its assignee, not by holding `orders.approve_order`.
    `save=False` leaves the UPDATE to the caller, in the same transaction: two transitions in a
    row are written by one statement. An order not inserted yet (orders.batch builds new
    orders in memory) is not saved either: the batch inserts it as its transitions leave it."""
    method = getattr(order, name)
    fsm_transition = next(iter(method._django_fsm.transitions.values()))
    field = method._django_fsm.field.name
    before = getattr(order, field)
    if not can_proceed(method, check_conditions=False):
        raise Conflict(
            f"cannot {name.replace('_', ' ')} an order whose {field} is {before}",
            state={"status": order.status, "fulfilment": order.fulfilment},
            allowed=_allowed(order, field),
        )
    unmet = [c.__name__ for c in fsm_transition.conditions if not c(order)]
    if unmet:
        raise Conflict(
            f"cannot {name.replace('_', ' ')}: "
            + "; ".join(CONDITION_REASONS.get(c, c) for c in unmet),
            state={"status": order.status, "fulfilment": order.fulfilment},
            allowed=_allowed(order, field),
        )
    if check_permission and actor.user is not None and not has_transition_perm(method, actor.user):
        raise Forbidden(f"{actor.label} may not {name.replace('_', ' ')} orders")
    at = at or timezone.now()
    method(at=at, **kwargs)
    if field == "status":
        order.status_changed_at = at
    if save and not order._state.adding:
        order.save_changes()
    record_event(
        order,
        track=Track.BUSINESS if field == "status" else Track.PHYSICAL,
        kind=kind,
        actor=actor,
        at=at,
        from_state=before,
        to_state=getattr(order, field),
        summary=summary or f"{before} → {getattr(order, field)}",
        payload=payload,
    )
    if field == "status" and order.status in APPROVAL_ENDS and not order._state.adding:  # a new order waits for nobody
        from . import approvals

        approvals.withdraw_pending(order, at)


# --- creation -------------------------------------------------------------------------------


def payload_hash(data: dict) -> str:
    canonical = json.dumps(data, sort_keys=True, default=lambda o: getattr(o, "code", str(o)))
    return hashlib.sha256(canonical.encode()).hexdigest()


def order_amounts(data: dict) -> dict[str, Decimal]:
    goods = sum((line["unit_price"] * line["quantity"] for line in data["lines"]), Decimal("0"))
    line_discounts = sum((line.get("discount", Decimal("0")) for line in data["lines"]), Decimal("0"))
    discount = line_discounts + data.get("discount_total", Decimal("0"))
    shipping = data.get("shipping_fee", Decimal("0"))
    return {
        "goods_amount": goods,
        "discount_amount": discount,
        "shipping_fee": shipping,
        "expected_payable": goods - discount + shipping,
    }


@transaction.atomic
def create_order(channel, data: dict, actor: Actor, *, source_raw_sha256: str | None = None) -> tuple[Order, str]:
    """Create the order, or update it when the channel sends it again.

    `data` is the order input of CONTRACTS.md, validated (line `sku` is an SKU instance).
    Idempotent on (channel, external_order_id): the same payload again is "unchanged", also
    when two deliveries of one channel order arrive at the same time. `source_raw_sha256`
    (channel intake) is the digest of the raw payload `data` was read from, kept on the order
    in this transaction so the same raw is later recognised without being read again ("" when
    it must be read again each time); None leaves it as it is.
    """
    try:
        with transaction.atomic():  # a savepoint: losing the race below rolls back to here
            return _create_or_update(channel, data, actor, source_raw_sha256)
    except IntegrityError:
        # Another delivery of the same channel order committed between our lookup and our
        # insert; the unique (channel, external_order_id) decided. Ours is now an update.
        if not Order.objects.filter(
            channel=channel, external_order_id=data["external_order_id"]
        ).exists():
            raise
        return _create_or_update(channel, data, actor, source_raw_sha256)


def _create_or_update(channel, data: dict, actor: Actor, source_raw_sha256: str | None = None) -> tuple[Order, str]:
    digest = payload_hash(data)
    existing = (
        Order.objects.select_for_update()
        .filter(channel=channel, external_order_id=data["external_order_id"])
        .first()
    )
    if existing is not None:
        return existing, _apply_channel_update(existing, data, digest, actor, source_raw_sha256)

    placed_at = data.get("placed_at") or timezone.now()
    order = new_order(channel, data, next_order_no(channel.order_prefix, placed_at),
                      identity_for(*buyer_of(data)), placed_at=placed_at, source_hash=digest,
                      source_raw_sha256=source_raw_sha256)
    rowsql.insert_instance(order)
    order.remember_saved_values()
    OrderLine.objects.bulk_create(new_lines(order, data))
    record_created(order, data, actor)
    if data.get("status", Status.PENDING_PAYMENT) == Status.PENDING_PAYMENT:
        original = duplicate_of(order)
        if original is not None:
            _merge_under(order, original, actor)
            return order, "merged"
    stock_flow.reserve_at_creation(order, actor)
    follow_channel_status(order, data, actor)
    return order, "created"


def buyer_of(data: dict) -> tuple[str, str, str]:
    """(phone, name, address) that identify the buyer of an order input."""
    buyer = data.get("buyer") or {}
    receiver = data["receiver"]
    return buyer.get("phone") or receiver["phone"], buyer.get("name") or receiver["name"], receiver["address"]


def new_order(channel, data: dict, order_no: str, customer, *, placed_at: datetime, source_hash: str,
              source_raw_sha256: str | None) -> Order:
    """The unsaved order of a validated order input, pending payment."""
    amounts = order_amounts(data)
    receiver = data["receiver"]
    return Order(
        order_no=order_no,
        channel=channel,
        external_order_id=data["external_order_id"],
        customer=customer,
        buyer_name=(data.get("buyer") or {}).get("name", ""),
        currency=data.get("currency", "CNY"),
        goods_amount=amounts["goods_amount"],
        shipping_fee=amounts["shipping_fee"],
        discount_amount=amounts["discount_amount"],
        payable_amount=data["payable"],
        receiver_name=receiver["name"],
        receiver_phone=receiver["phone"],
        receiver_province=receiver["province"],
        receiver_city=receiver.get("city", ""),
        receiver_district=receiver.get("district", ""),
        receiver_address=receiver["address"],
        placed_at=placed_at,
        status_changed_at=placed_at,
        source_hash=source_hash,
        source_raw_sha256=source_raw_sha256 or "",
    )


def new_lines(order: Order, data: dict) -> list[OrderLine]:
    return [
        OrderLine(
            order=order,
            line_no=number,
            sku=line["sku"],
            external_line_id=line.get("external_line_id", ""),
            quantity=line["quantity"],
            unit_price=line["unit_price"],
            discount=line.get("discount", Decimal("0")),
        )
        for number, line in enumerate(data["lines"], start=1)
    ]


def record_created(order: Order, data: dict, actor: Actor) -> None:
    record_event(
        order, track=Track.BUSINESS, kind=EventKind.TRANSITION, actor=actor, at=order.placed_at,
        to_state=Status.PENDING_PAYMENT,
        summary=f"order {order.order_no} created from {order.channel.code} {order.external_order_id}",
        payload={"lines": len(data["lines"]), "payable": str(order.payable_amount)},
    )


def duplicate_of(order: Order) -> Order | None:
    """An unpaid order of the same buyer with the same lines placed shortly before (any
    channel): the buyer clicked twice, or two channels sent one purchase."""
    if order.customer_id is None:
        return None
    window = duplicate_window()
    candidates = Order.objects.filter(
        customer_id=order.customer_id, status=Status.PENDING_PAYMENT, merged_into__isnull=True,
        placed_at__gte=order.placed_at - window, placed_at__lte=order.placed_at,
    ).exclude(pk=order.pk).order_by("placed_at", "pk")
    signature = _lines_signature(order)
    return next((c for c in candidates[:20] if _lines_signature(c) == signature), None)


def duplicate_window() -> timedelta:
    return timedelta(seconds=getattr(settings, "OMS_DUPLICATE_WINDOW_SECONDS", 300))


def _lines_signature(order: Order) -> list[tuple[int, int]]:
    return sorted(order.lines.values_list("sku_id", "quantity"))


def _merge_under(duplicate: Order, original: Order, actor: Actor) -> None:
    duplicate.merged_into = original
    duplicate.save(update_fields=["merged_into", "updated_at"])
    record_event(duplicate, track=Track.SYSTEM, kind=EventKind.SYNC, actor=actor,
                 summary=f"merged under {original.order_no}: same buyer and lines, unpaid, "
                         f"{int((duplicate.placed_at - original.placed_at).total_seconds())} s apart",
                 payload={"merged_into": original.order_no})
    record_event(original, track=Track.SYSTEM, kind=EventKind.SYNC, actor=actor,
                 summary=f"duplicate {duplicate.order_no} ({duplicate.channel.code} "
                         f"{duplicate.external_order_id}) merged under this order",
                 payload={"duplicate": duplicate.order_no})


def follow_channel_status(order: Order, data: dict, actor: Actor, *, batch: bool = False) -> None:
    """Move the order where the channel says it is. With `batch` the order is new and made
    with others (orders.batch): the transitions are not saved (the batch inserts the order as
    they leave it) and its stock is the batch's business."""
    wanted = data.get("status") or Status.PENDING_PAYMENT  # None: the channel has no news
    was_paid = wanted in (Status.PAID, Status.REFUNDED) or (
        wanted == Status.CANCELLED and data.get("paid_at")
    )
    if was_paid and order.status == Status.PENDING_PAYMENT:
        transition(order, "mark_paid", actor, at=data.get("paid_at") or timezone.now(), save=not batch)
        if wanted == Status.PAID and not batch:
            stock_flow.reserve_or_hold(order, actor)
            start_approval(order, actor)
    if wanted in (Status.CANCELLED, Status.REFUNDED) and not batch:
        shares = fulfilment.shares_of(order)
        if fulfilment.any_left(shares) and order.status not in (Status.REFUNDING, Status.REFUNDED):
            # Cancelled or refunded on the channel after a parcel left: stop the rest, intercept
            # what left, owe the money back.
            after_parcel_left(order, shares, actor, at=timezone.now(), reason=f"{wanted} on the channel")
            return
    if wanted == Status.CANCELLED and can_proceed(order.cancel):
        transition(order, "cancel", actor, reason="cancelled on the channel", save=not batch)
        if not batch:
            fulfilment.cancel_waiting(order, shares, "cancelled on the channel", order.cancelled_at, actor)
            stock_flow.release(order, "cancelled on the channel")
    if wanted == Status.REFUNDED and can_proceed(order.start_refund):
        transition(order, "start_refund", actor, summary="refunded on the channel", save=not batch,
                   owed=order.payable_amount)
        if not batch:
            fulfilment.cancel_waiting(order, shares, "refunded on the channel", timezone.now(), actor)
            stock_flow.release(order, "refunded on the channel")
            settle_refund(order, order.refunded_amount, actor)


def _apply_channel_update(order: Order, data: dict, digest: str, actor: Actor,
                          source_raw_sha256: str | None = None) -> str:
    if order.source_hash == digest:
        if source_raw_sha256 is not None and order.source_raw_sha256 != source_raw_sha256:
            # Another raw saying the same: the one to recognise next time (not an update).
            Order.objects.filter(pk=order.pk).update(source_raw_sha256=source_raw_sha256)
            order.source_raw_sha256 = source_raw_sha256
        return "unchanged"
    before = order.status
    follow_channel_status(order, data, actor)
    order.source_hash = digest
    update_fields = ["source_hash", "updated_at"]
    if source_raw_sha256 is not None:
        order.source_raw_sha256 = source_raw_sha256
        update_fields.append("source_raw_sha256")
    order.save(update_fields=update_fields)
    record_event(
        order, track=Track.SYSTEM, kind=EventKind.SYNC, actor=actor,
        summary=f"channel sent an update (status {data.get('status')})",
        payload={"status_before": before, "status_after": order.status},
    )
    return "updated"


# --- actions --------------------------------------------------------------------------------


def mark_paid(order: Order, actor: Actor, *, at: datetime, summary: str, payload: dict) -> None:
    """On a locked order: pending payment → paid on a confirmed payment, then reserve its
    stock (or hold it when stock is short), as a channel's own "paid" does."""
    transition(order, "mark_paid", actor, at=at, kind=EventKind.PAYMENT, summary=summary,
               payload=payload)
    stock_flow.reserve_or_hold(order, actor)
    start_approval(order, actor)


def start_approval(order: Order, actor: Actor, **known) -> None:
    """A paid order (or one the stock check just put on hold) enters the approval workflow
    (`known`: what orders.batch knows of a new order, see approvals.start_approval)."""
    from . import approvals

    approvals.start_approval(order, actor, **known)


@transaction.atomic
def approve_order(order_no: str, actor: Actor, at: datetime | None = None) -> Order:
    """Ops' approve action. Refused while an approval task waits: that decision belongs to
    the task's approvers (or to an audited override)."""
    from . import approvals

    order = lock_order(order_no)
    approvals.refuse_if_pending(order)
    return approve_locked(order, actor, at=at)


def approve_locked(order: Order, actor: Actor, *, at: datetime | None = None, summary: str = "",
                   payload: dict | None = None, check_permission: bool = True,
                   known: stock_flow.KnownStock | None = None) -> Order:
    """On a locked order: paid → approved, then allocate it to the warehouse of its
    reservation (reserving first if it holds none; out of stock puts it on hold). `known`: the
    reservations orders.batch just made for a new order."""
    transition(order, "approve", actor, at=at, summary=summary, payload=payload,
               check_permission=check_permission)
    reserved = bool(known.reservations) if known else stock_flow.has_reservations(order)
    if not reserved and not stock_flow.reserve_or_hold(order, SYSTEM):
        return order
    stock_flow.allocate(order, SYSTEM, at=at, known=known)
    return order


@transaction.atomic
def route_order(order_no: str, warehouse_code: str, actor: Actor, at: datetime | None = None,
                share_number: int | None = None, line_nos: list[int] | None = None) -> Order:
    """Assign or re-assign the shipping warehouse of the order's shares still waiting for a
    warehouse, or of one of them (`share_number`), or of some of its lines (`line_nos`: a split
    by hand); a share whose picking started, or that has left, is not moved (409)."""
    order = lock_order(order_no)
    try:
        warehouse = Warehouse.objects.get(code=warehouse_code, active=True)
    except Warehouse.DoesNotExist:
        raise Invalid({"warehouse": [f"no active warehouse with code {warehouse_code!r}"]}) from None
    if actor.user is not None and not actor.user.has_perm("orders.route_order"):
        raise Forbidden(f"{actor.label} may not route orders")
    if order.status in (Status.CANCELLED, Status.REFUNDED, Status.REFUNDING):
        raise Conflict(
            f"cannot route an order that is {order.status}",
            state={"status": order.status, "fulfilment": order.fulfilment}, allowed=[],
        )
    at = at or timezone.now()
    shares = fulfilment.shares_of(order)
    chosen = shares
    if share_number is not None:
        chosen = [s for s in shares if s.number == share_number]
        if not chosen:
            raise Invalid({"fulfilment_order": [f"order {order_no} has no fulfilment order {share_number}"]})
        if chosen[0].status not in WAITING:
            raise fulfilment.refusal(chosen[0], f"cannot re-route {chosen[0].code}: it is {chosen[0].status}")
    moving = [s for s in chosen if s.status in WAITING and s.warehouse_id != warehouse.pk]
    started = next((s for s in moving if s.status != ShareState.OPEN), None)
    if started is not None:
        raise fulfilment.refusal(started, f"cannot re-route {started.code}: picking has started at "
                                          f"{started.warehouse.code} ({started.status})")
    lines = fulfilment.lines_left_to_ship(order)
    if not lines:
        raise Conflict("every parcel of the order has left its warehouse: nothing to route",
                       state={"status": order.status, "fulfilment": order.fulfilment}, allowed=[])
    if share_number is not None:
        in_share = dict(FulfilmentLine.objects.filter(fulfilment_order__in=moving)
                        .values_list("order_line__line_no", "order_line_id"))
        unknown = sorted(set(line_nos or ()) - set(in_share))
        if unknown:
            raise Invalid({"lines": [f"line {n} is not in {order_no}-F{share_number}" for n in unknown]})
        moving_lines = {in_share[n] for n in line_nos} if line_nos else set(in_share.values())
        to_move = [line for line in lines if line[0] in moving_lines]
        if line_nos and moving and len(moving_lines) < len(in_share):
            # A split: the share keeps its other lines and only these leave it.
            FulfilmentLine.objects.filter(fulfilment_order=moving[0], order_line_id__in=moving_lines).delete()
            moving = []
    else:
        held_there = {line for s in shares if s.status in WAITING and s.warehouse_id == warehouse.pk
                      for line in s.lines.values_list("order_line_id", flat=True)}
        to_move = [line for line in lines if line[0] not in held_there]
    moved = ""
    if to_move and not (order.status == Status.PENDING_PAYMENT and not stock_flow.has_reservations(order)):
        moved = stock_flow.reservation_summary(inventory_services.move_reservations(order, warehouse.pk, to_move))
    previous = order.warehouse
    replaced = {}
    for share in fulfilment.cancel_waiting(order, moving, f"re-routed to {warehouse.code}", at, actor):
        replaced.setdefault(warehouse.pk, share)
    if share_number is None or order.warehouse_id is None:
        order.warehouse = warehouse
    fulfilment.cover_lines(order, shares, at=at, replaces=replaced,
                           only_lines={line[0] for line in to_move} if share_number is not None else None,
                           to_warehouse=warehouse.pk if share_number is not None else None)
    what = f"{order.order_no}-F{share_number} " if share_number is not None else ""
    fulfilment.follow(
        order, shares, actor, at=at, always=True,
        summary=f"{what}routed to {warehouse.code}" + (f" (was {previous.code})" if previous and not what else "")
        + (f"; reservation moved: {moved}" if moved else ""),
        payload={"warehouse": warehouse.code, "previous": previous.code if previous else None,
                 **({"fulfilment_order": share_number} if share_number is not None else {})},
    )
    return order


@transaction.atomic
def request_shipment(order_no: str, actor: Actor, at: datetime | None = None) -> Order:
    """Ops' "ship" button: reaches ship_requested, never shipped (that is the outbound scan's)."""
    order = lock_order(order_no)
    transition(order, "request_shipment", actor, at=at)
    if order.has_physical_outbound():
        # The parcel already left (scanned before the request): both facts hold now.
        transition(order, "mark_shipped", SYSTEM, at=order.ship_requested_at,
                   summary="shipped: outbound scan and ship request both recorded")
    return order


@transaction.atomic
def cancel_order(order_no: str, reason: str, actor: Actor, at: datetime | None = None) -> Order:
    """Cancel the order. When a parcel has already left, the shares still in a warehouse are
    cancelled, an intercept case is opened on what left and the payment is owed back: the
    order goes to refunding, never to a quiet "cancelled" with a parcel on the road."""
    if not reason.strip():
        raise Invalid({"reason": [_("A reason is required.")]})
    order = lock_order(order_no)
    at = at or timezone.now()
    shares = fulfilment.shares_of(order)
    if order.status in CANCELLABLE and fulfilment.any_left(shares):
        if actor.user is not None and not actor.user.has_perm("orders.cancel_order"):
            raise Forbidden(f"{actor.label} may not cancel orders")
        after_parcel_left(order, shares, actor, at=at, reason=reason.strip())
        return order
    transition(order, "cancel", actor, at=at, reason=reason.strip(),
               summary=f"cancelled: {reason.strip()}")
    fulfilment.cancel_waiting(order, shares, "order cancelled", at, actor)
    stock_flow.release(order, "cancelled")
    return order


def after_parcel_left(order: Order, shares: list, actor: Actor, *, at: datetime, reason: str,
                      owed: Decimal | None = None) -> None:
    """A cancel or refund of an order some of whose parcels have left: cancel the shares still
    in a warehouse (their stock goes back), open an intercept / return case on the parcels out,
    and owe the customer `owed` (the payable by default): the order goes to refunding."""
    from . import cases

    owed = order.payable_amount if owed is None else owed
    cancelled = fulfilment.cancel_waiting(order, shares, reason, at, actor)
    stock_flow.release(order, reason)
    out = [s for s in shares if s.has_left]
    parcels = ", ".join(f"{s.code} ({s.status})" for s in out)
    if can_proceed(order.start_refund):
        transition(order, "start_refund", actor, at=at, owed=owed,
                   summary=f"{reason} after parcels left ({parcels}): refund of {owed} {order.currency} owed",
                   payload={"reason": reason, "left": [s.number for s in out],
                            "cancelled": [s.number for s in cancelled], "owed": str(owed)})
    elif order.status == Status.REFUNDING and owed > order.refund_due:
        order.refund_due = owed
        order.save_changes()
    fulfilment.follow(order, shares, SYSTEM, at=at, summary=f"physical track follows what left: {parcels}")
    cases.open_case(order, CaseKind.INTERCEPT_RETURN, f"{reason}; parcels out: {parcels}", actor=actor, at=at)
    settle_refund(order, order.refunded_amount, actor)


@transaction.atomic
def hold_order(order_no: str, reason: str, actor: Actor, at: datetime | None = None) -> Order:
    """Stop the warehouse: shares not yet out wait until the hold is released."""
    if not reason.strip():
        raise Invalid({"reason": [_("A reason is required.")]})
    order = lock_order(order_no)
    transition(order, "hold", actor, at=at, reason=reason.strip(), summary=f"on hold: {reason.strip()}")
    return order


@transaction.atomic
def release_hold(order_no: str, actor: Actor, at: datetime | None = None) -> Order:
    """Back to paid; stock is reserved again only for lines that hold none and have not left."""
    from . import approvals

    order = lock_order(order_no)
    transition(order, "release_hold", actor, at=at)
    lines = fulfilment.lines_left_to_ship(order)
    if lines and not stock_flow.has_reservations(order):
        try:
            inventory_services.reserve_for_order(order, only_warehouse=order.warehouse_id, lines=lines)
        except inventory_services.OutOfStock as exc:
            raise Conflict(f"still cannot reserve stock: {exc.detail}", **exc.extra) from None
    approvals.resume_after_release(order, actor, at=at)
    return order


def settle_refund(order: Order, refunded: Decimal, actor: Actor, at: datetime | None = None) -> None:
    """On a locked order: `refunded` is the refund total its vouchers now book
    (reconciliation.vouchers). A refunding order whose refunds cover what is owed is refunded."""
    if refunded != order.refunded_amount:
        order.refunded_amount = refunded
        order.save_changes()
    if order.status == Status.REFUNDING and order.refunds_cover_what_is_owed():
        transition(order, "mark_refunded", actor, at=at,
                   summary=f"refunded: {order.refunded_amount} of {order.refund_due} {order.currency} owed",
                   payload={"refunded": str(order.refunded_amount), "owed": str(order.refund_due)})


def complete_delivered(now: datetime | None = None, limit: int = 1000) -> int:
    """Delivered orders past their channel's confirmation period are completed, as the
    channel's automatic receipt confirmation does. Each order in its own transaction."""
    from channels.models import Channel

    now = now or timezone.now()
    completed = 0
    for channel_id, days in Channel.objects.values_list("pk", "completion_days"):
        due = list(Order.objects.filter(channel_id=channel_id, status=Status.DELIVERED,
                                        delivered_at__lte=now - timedelta(days=days))
                   .values_list("order_no", flat=True)[:limit])
        for order_no in due:
            with transaction.atomic():
                order = lock_order(order_no)
                if order.status != Status.DELIVERED:
                    continue
                transition(order, "complete", SYSTEM, at=now,
                           summary=f"completed: delivered {days} days ago, the channel's confirmation period")
                completed += 1
    return completed


def expire_unpaid_reservations(limit: int = 500) -> int:
    """Release stock held for unpaid orders past their expiry; each order on its own."""
    expired = 0
    for order_no in inventory_services.expired_order_numbers(limit=limit):
        with transaction.atomic():
            order = lock_order(order_no)
            if order.status == Status.PENDING_PAYMENT:
                stock_flow.release(order, "unpaid reservation expired")
                expired += 1
            else:
                inventory_services.confirm_reservations(order)
    return expired


@transaction.atomic
def add_note(order_no: str, text: str, actor: Actor, at: datetime | None = None):
    text = (text or "").strip()
    if not text:
        raise Invalid({"text": [_("A note cannot be empty.")]})
    if len(text) > 2000:
        raise Invalid({"text": [_("At most 2000 characters.")]})
    if actor.user is not None and not actor.user.has_perm("orders.add_order_note"):
        raise Forbidden(f"{actor.label} may not add notes")
    order = lock_order(order_no)
    return record_event(
        order, track=Track.SYSTEM, kind=EventKind.NOTE, actor=actor, at=at,
        summary=text[:255], payload={"text": text},
    )


def sweep_shipped(limit: int = 1000) -> int:
    """Close orders where shipment was requested and the outbound scan recorded but the
    shipped transition did not fire. Each order in its own transaction."""
    candidates = list(
        Order.objects.filter(status=Status.SHIP_REQUESTED, physical_outbound_at__isnull=False)
        .values_list("order_no", flat=True)[:limit]
    )
    closed = 0
    for order_no in candidates:
        with transaction.atomic():
            order = lock_order(order_no)
            if order.status != Status.SHIP_REQUESTED or not order.has_physical_outbound():
                continue
            transition(
                order, "mark_shipped", SYSTEM,
                at=max(order.ship_requested_at, order.physical_outbound_at),
                summary="shipped (sweep): outbound scan and ship request both recorded",
            )
            closed += 1
    return closed
