"""New orders created a page at a time (channel intake, PostgreSQL).

`create_order` makes one order with some twenty statements; a pull brings a hundred new
orders a page. For new orders (unpaid, paid, or already cancelled or refunded), this makes the
page's orders the same way — the same rows, the same timeline events through the same
transitions, stock routed and reserved by the same rules — with a dozen statements for the
page: identities, order numbers and stock in one go each, every row inserted by COPY.
When approval policies are active, each paid order enters the approval workflow through the
same `approvals.start_approval`, told what the batch knows (policies, buyer level, SKU
categories, reservations): approved and allocated in memory, or given its task (one
statement). Orders that need more (a hold, an unpaid order of a buyer with another unpaid one
shortly before, which may be merged, a promotion cap to claim, a channel that reserves before
payment) go through `create_order`: the caller asks `can_batch` first.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone

from inventory.batch import Request, plan_together, reserve_planned
from inventory.models import ChannelListing, Warehouse
from oms import rowsql

from . import services, stock_flow
from .approvals import active_policies, new_order_facts
from .events import Actor, collected_events
from .fulfilment import new_shares
from .identity import identities_for, new_identity
from .models import Fulfilment, FulfilmentLine, FulfilmentOrder, Order, OrderLine, Status
from .numbers import next_order_nos


class StockMoved(Exception):
    """Another process reserved some of the stock the page's plan counted on. Nothing was
    written; the caller creates those orders one at a time."""


def can_batch(channel, sku_ids) -> bool:
    """Whether new orders of this channel with these SKUs may be made by `create_orders`."""
    return (
        connection.vendor == "postgresql"
        and channel.reserve_on != "creation"
        and not ChannelListing.objects.filter(channel=channel, sku_id__in=set(sku_ids),
                                              promo_cap__isnull=False).exists()
    )


BATCHABLE = (Status.PENDING_PAYMENT, Status.PAID, Status.CANCELLED, Status.REFUNDED)


@dataclass(frozen=True)
class Claim:
    """What an order made one at a time after the batch may reserve (a paid order on hold for
    its address, an existing order now paid): planned in its place in the page, so that the
    batch leaves it the units it would have had."""

    position: int
    units: list[tuple[int, int]]  # (SKU id, quantity)
    province: str


def create_orders(channel, entries: list[tuple[dict, str]], actor: Actor,
                  busy_buyers: frozenset[str] = frozenset(), positions: list[int] | None = None,
                  ahead: list[Claim] = ()) -> list[Order | None]:
    """Create these new orders as `create_order` would. An entry is (validated order input
    with a status in BATCHABLE, raw digest to remember), in the order received. Returns each
    entry's order, or None for one left to `create_order`: a paid one that cannot be reserved
    in full (held there with the reason), an unpaid one it may merge (see `_may_merge`;
    `busy_buyers`: identity keys of the page's other new unpaid orders, which create_order
    makes one at a time). `positions`: the entries' places in the page, among those of the
    claims `ahead`. Inside the caller's transaction; raises StockMoved."""
    now = timezone.now()
    order_pks = rowsql.draw_pks(Order, len(entries))
    line_pks = iter(rowsql.draw_pks(OrderLine, sum(len(data["lines"]) for data, _ in entries)))
    made, requests = [], []
    for (data, remember), pk in zip(entries, order_pks, strict=True):
        order = services.new_order(channel, data, "", None, placed_at=data.get("placed_at") or now,
                                   source_hash=services.payload_hash(data), source_raw_sha256=remember)
        order.pk = pk
        lines = services.new_lines(order, data)
        for line in lines:
            line.pk = next(line_pks)
        made.append((order, lines, data))
        requests.append(Request(order, sorted(((line.pk, line.sku_id, line.quantity) for line in lines),
                                              key=lambda line: (line[1], line[0]))))
    paid = [i for i, (_, _, data) in enumerate(made) if data["status"] == Status.PAID]
    plans = _plans(channel, requests, paid, positions or list(range(len(made))), ahead)
    candidates = [i for i in range(len(made)) if i not in plans or not plans[i].shortages]
    unpaid = [Unpaid(i, made[i][0].placed_at, key, _signature(made[i][2])) for i in candidates
              if made[i][2]["status"] == Status.PENDING_PAYMENT for key in [buyer_key(made[i][2])] if key]
    merging = _may_merge(unpaid, busy_buyers)
    chosen = [i for i in candidates if i not in merging]
    reserving = [i for i in chosen if i in plans]
    # Numbers, then identities: the order create_order takes them in (no waiting in a circle).
    numbers = next_order_nos(channel.order_prefix, [made[i][0].placed_at for i in chosen])
    customers = identities_for([services.buyer_of(made[i][2]) for i in chosen])
    for i, order_no, customer in zip(chosen, numbers, customers, strict=True):
        made[i][0].order_no, made[i][0].customer = order_no, customer
    reservations = reserve_planned([requests[i] for i in reserving], [plans[i] for i in reserving]) if reserving else []
    if reservations is None:
        raise StockMoved
    reserved = dict(zip(reserving, reservations, strict=True))
    codes = dict(Warehouse.objects.values_list("pk", "code")) if reserving else {}
    policies = active_policies() if reserving else []
    with collected_events() as events:
        for i in chosen:
            order, lines, data = made[i]
            services.record_created(order, data, actor)
            services.follow_channel_status(order, data, actor, batch=True)
            if i in reserved:
                stock_flow.record_reserved(order, reserved[i], codes)
                if policies:
                    services.start_approval(order, actor, policies=policies, facts=new_order_facts(order, lines),
                                            known=stock_flow.KnownStock(reserved[i], codes))
    # In channel order id order: two pages sharing an order wait for each other, never in a circle.
    orders = sorted((made[i][0] for i in chosen), key=lambda order: order.external_order_id)
    rowsql.copy_instances(orders)
    rowsql.copy_instances([line for i in chosen for line in made[i][1]])
    _copy_shares([(made[i][0], reserved[i]) for i in chosen if i in reserved])
    rowsql.copy_instances(events)
    for order in orders:
        order.remember_saved_values()
    found: list[Order | None] = [None] * len(entries)  # None: for create_order
    for i in chosen:
        found[i] = made[i][0]
    return found


def _copy_shares(reserved: list[tuple[Order, list]]) -> None:
    """The fulfilment orders of the orders the batch approved and allocated: one per
    warehouse their reservations are in, as stock_flow.allocate makes them one at a time."""
    shares = [share for order, reservations in reserved if order.fulfilment == Fulfilment.ALLOCATED
              for share in new_shares(order, [(r.order_line_id, r.warehouse_id, r.quantity) for r in reservations],
                                      at=order.approved_at)]
    if not shares:
        return
    for (share, lines), pk in zip(shares, rowsql.draw_pks(FulfilmentOrder, len(shares)), strict=True):
        share.pk = pk
        for line in lines:
            line.fulfilment_order_id = pk
    lines = [line for _share, share_lines in shares for line in share_lines]
    for line, pk in zip(lines, rowsql.draw_pks(FulfilmentLine, len(lines)), strict=True):
        line.pk = pk
    rowsql.copy_instances([share for share, _lines in shares])
    rowsql.copy_instances(lines)


def _plans(channel, requests: list[Request], paid: list[int], positions: list[int], ahead) -> dict:
    """The paid entries' plans, each made in its place in the page: after the claims before it."""
    if not paid:
        return {}
    queue = [(positions[i], i, requests[i]) for i in paid]
    for claim in ahead:
        if claim.units:
            phantom = Order(channel=channel, receiver_province=claim.province)
            queue.append((claim.position, None, Request(phantom, [(-n, sku_id, quantity) for n, (sku_id, quantity)
                                                                   in enumerate(sorted(claim.units), start=1)])))
    queue.sort(key=lambda entry: entry[0])
    planned = plan_together([request for *_, request in queue])
    return {i: plan for (_, i, _), plan in zip(queue, planned, strict=True) if i is not None}


@dataclass(frozen=True)
class Unpaid:
    index: int
    placed_at: datetime
    buyer: str  # identity key
    signature: list[tuple[int, int]]  # as services._lines_signature


def buyer_key(data: dict) -> str | None:
    """The identity key of an order input's buyer (None: no usable phone, or no receiver)."""
    try:
        identity = new_identity(*services.buyer_of(data))
    except (KeyError, TypeError, AttributeError):
        return None
    return identity.key if identity else None


def _signature(data: dict) -> list[tuple[int, int]]:
    return sorted((line["sku"].pk, line["quantity"]) for line in data["lines"])


def _may_merge(unpaid: list[Unpaid], busy_buyers: frozenset[str]) -> set[int]:
    """Indexes of the new unpaid orders `create_order` must make one at a time because
    `services.duplicate_of` may find them an original: an unpaid, unmerged order of the same
    buyer with the same lines placed within the window before — already stored, or earlier in
    the page (taken in the order received, as one at a time would) — or any order of a buyer
    in `busy_buyers`. A superset of what duplicate_of finds: the others cannot merge."""
    if not unpaid:
        return set()
    window = services.duplicate_window()
    stored = Order.objects.filter(
        customer__key__in={order.buyer for order in unpaid}, status=Status.PENDING_PAYMENT,
        merged_into__isnull=True, placed_at__gte=min(order.placed_at for order in unpaid) - window,
        placed_at__lte=max(order.placed_at for order in unpaid),
    ).values_list("pk", "customer__key", "placed_at")
    lines: dict[int, list] = defaultdict(list)
    found = list(stored)
    for order_id, sku_id, quantity in OrderLine.objects.filter(order_id__in=[pk for pk, *_ in found]).values_list(
            "order_id", "sku_id", "quantity"):
        lines[order_id].append((sku_id, quantity))
    originals = [(buyer, placed_at, sorted(lines[pk])) for pk, buyer, placed_at in found]
    merging = set()
    for order in unpaid:
        if order.buyer in busy_buyers or any(
                buyer == order.buyer and order.placed_at - window <= placed_at <= order.placed_at
                and signature == order.signature for buyer, placed_at, signature in originals):
            merging.add(order.index)
        else:  # made here, it is an original for the page's later orders
            originals.append((order.buyer, order.placed_at, order.signature))
    return merging
