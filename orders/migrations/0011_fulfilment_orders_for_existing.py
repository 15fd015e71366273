"""One fulfilment order per warehouse share of every order allocated before they existed.

A line belongs to the warehouse of its latest reservation (active or consumed), else to the
order's warehouse. A share with a shipment from its warehouse has left (outbound, or where the
order's physical track is past that); the others take the order's physical track as it was
(allocated → open), or are cancelled with a cancelled order. Shipments are linked to their
share. Nothing is deleted; reversing drops the shares and unlinks the shipments.
"""

from collections import defaultdict

from django.db import migrations
from django.db.models import Q
from django.utils import timezone

BATCH = 1000
LEFT = {"outbound", "in_transit", "delivered", "returned"}
WAITING_FROM_ORDER = {"picking": "picking", "packed": "packed"}


def share_state(order, shipped_here):
    if shipped_here:
        return order.fulfilment if order.fulfilment in ("in_transit", "delivered", "returned") else "outbound"
    if order.status == "cancelled":
        return "cancelled"
    if order.fulfilment in LEFT:
        return order.fulfilment
    return WAITING_FROM_ORDER.get(order.fulfilment, "open")


def forwards(apps, schema_editor):
    Order = apps.get_model("orders", "Order")
    OrderLine = apps.get_model("orders", "OrderLine")
    Shipment = apps.get_model("orders", "Shipment")
    FulfilmentOrder = apps.get_model("orders", "FulfilmentOrder")
    FulfilmentLine = apps.get_model("orders", "FulfilmentLine")
    Reservation = apps.get_model("inventory", "Reservation")

    ids = list(Order.objects.filter(Q(warehouse__isnull=False) | Q(reservations__isnull=False))
               .exclude(fulfilment_orders__isnull=False).values_list("pk", flat=True).distinct().order_by("pk"))
    now = timezone.now()
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        orders = {o.pk: o for o in Order.objects.filter(pk__in=chunk)}
        lines = defaultdict(list)
        for line_id, order_id, quantity in OrderLine.objects.filter(order_id__in=chunk).values_list(
                "pk", "order_id", "quantity"):
            lines[order_id].append((line_id, quantity))
        where = {}
        for line_id, warehouse_id in (Reservation.objects.filter(order_id__in=chunk, status__in=["active", "consumed"])
                                      .order_by("pk").values_list("order_line_id", "warehouse_id")):
            where[line_id] = warehouse_id  # the latest wins
        shipped = defaultdict(list)
        for order_id, warehouse_id, outbound_at in Shipment.objects.filter(order_id__in=chunk).values_list(
                "order_id", "warehouse_id", "outbound_at"):
            shipped[(order_id, warehouse_id)].append(outbound_at)
        shares, share_lines = [], []
        for order_id in chunk:
            order = orders[order_id]
            by_warehouse = defaultdict(list)
            for line_id, quantity in lines[order_id]:
                warehouse_id = where.get(line_id, order.warehouse_id)
                if warehouse_id is not None:
                    by_warehouse[warehouse_id].append((line_id, quantity))
            for number, warehouse_id in enumerate(sorted(by_warehouse), start=1):
                out = shipped.get((order_id, warehouse_id), [])
                state = share_state(order, bool(out))
                left = state in LEFT
                share = FulfilmentOrder(
                    order_id=order_id, number=number, warehouse_id=warehouse_id, status=state,
                    created_at=order.approved_at or order.created_at or now,
                    picking_started_at=order.picking_started_at, packed_at=order.packed_at,
                    outbound_at=(min(out) if out else order.physical_outbound_at or now) if left else None,
                    delivered_at=order.delivered_at if state == "delivered" else None,
                    cancelled_at=(order.cancelled_at or now) if state == "cancelled" else None,
                    last_scan_at=order.last_scan_at, last_location=order.last_location,
                )
                shares.append(share)
                share_lines.append([(line_id, quantity) for line_id, quantity in by_warehouse[warehouse_id]])
        FulfilmentOrder.objects.bulk_create(shares)
        FulfilmentLine.objects.bulk_create(
            FulfilmentLine(fulfilment_order=share, order_line_id=line_id, quantity=quantity)
            for share, items in zip(shares, share_lines, strict=True) for line_id, quantity in items
        )
        for share in shares:
            Shipment.objects.filter(order_id=share.order_id, warehouse_id=share.warehouse_id).update(
                fulfilment_order=share)


def backwards(apps, schema_editor):
    apps.get_model("orders", "Shipment").objects.update(fulfilment_order=None)
    apps.get_model("orders", "FulfilmentLine").objects.all().delete()
    apps.get_model("orders", "FulfilmentOrder").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0010_fulfilment_orders"),
        ("inventory", "0005_reservation_order_status_index"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
