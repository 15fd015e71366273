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

from collections import Counter

from django.db import connection
from django.utils import timezone

from inventory.batch import Request, plan_together, reserve_planned
from inventory.models import ChannelListing, Warehouse
from oms import rowsql

from . import services, stock_flow
from .approvals import active_policies, new_order_facts
from .events import Actor, collected_events
from .identity import identities_for, new_identity
from .models import Order, OrderLine, Status
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


def create_orders(channel, entries: list[tuple[dict, str]], actor: Actor) -> list[Order | None]:
    """Create these new orders as `create_order` would. An entry is (validated order input
    with a status in BATCHABLE, raw digest to remember). Returns each entry's order, or None
    for a paid one that cannot be reserved in full (left to `create_order`, which holds it
    with the reason). Inside the caller's transaction; raises StockMoved."""
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
    plans = dict(zip(paid, plan_together([requests[i] for i in paid]) if paid else [], strict=True))
    candidates = [i for i in range(len(made)) if i not in plans or not plans[i].shortages]
    unpaid = {i: new_identity(*services.buyer_of(made[i][2])) for i in candidates
              if made[i][2]["status"] == Status.PENDING_PAYMENT}
    busy = _maybe_duplicates([(made[i][0].placed_at, identity.key) for i, identity in unpaid.items() if identity])
    chosen = [i for i in candidates if i not in unpaid or not unpaid[i] or unpaid[i].key not in busy]
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
    rowsql.copy_instances(events)
    for order in orders:
        order.remember_saved_values()
    found: list[Order | None] = [None] * len(entries)  # None: for create_order
    for i in chosen:
        found[i] = made[i][0]
    return found


def _maybe_duplicates(unpaid: list[tuple]) -> set[str]:
    """Buyers (identity keys) whose new unpaid orders (placed at, key) `create_order` must take
    one at a time, to merge the duplicates among them: those with another unpaid order shortly
    before, already here or in the page (a superset of what `services.duplicate_of` finds)."""
    if not unpaid:
        return set()
    buyers = Counter(key for _, key in unpaid)
    earlier = Order.objects.filter(
        customer__key__in=list(buyers), status=Status.PENDING_PAYMENT, merged_into__isnull=True,
        placed_at__gte=min(placed for placed, _ in unpaid) - services.duplicate_window(),
        placed_at__lte=max(placed for placed, _ in unpaid),
    ).values_list("customer__key", flat=True)
    return set(earlier) | {key for key, count in buyers.items() if count > 1}
