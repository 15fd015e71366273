"""Issue 3 benchmark: scanner events and timeline reads through gunicorn on PostgreSQL,
with 100,000 orders and 1,000,000 order events loaded.

Targets: scanner events >= 300/s at 32 concurrent clients with p99 <= 100 ms;
timeline of an order with 200 events p99 <= 30 ms.
"""

import json
import random
import time
import uuid
from datetime import timedelta

from bench.common import CpuMeter, Server, print_table, request, run_clients, setup_django, summary

BASE_ORDERS = 100_000
BASE_EVENTS = 1_000_000
TIMELINE_EVENTS = 200
SCAN_ORDERS = 5_000  # 15,000 measured events
PACED_ORDERS = 3_000  # 9,000 events offered at the target rate
TARGET_RATE = 300  # scanner events per second, the figure
WARMUP_ORDERS = 500  # scanned before measuring: fresh workers import lazily and prepare statements
CLIENTS = 32
TIMELINE_READS = 1_000

ORDER_COLUMNS = (
    "order_no, channel_id, external_order_id, buyer_name, currency, goods_amount, shipping_fee, "
    "discount_amount, payable_amount, receiver_name, receiver_phone, receiver_province, "
    "receiver_city, receiver_district, receiver_address, warehouse_id, status, fulfilment, "
    "hold_reason, cancel_reason, last_location, source_hash, placed_at, paid_at, approved_at, "
    "ship_requested_at, physical_outbound_at, shipped_at, status_changed_at, created_at, updated_at"
)
EVENT_COLUMNS = "order_id, track, kind, from_state, to_state, actor, at, recorded_at, summary, payload"


def master_data():
    from channels.models import Channel
    from inventory.models import SKU, Warehouse

    warehouse, _ = Warehouse.objects.get_or_create(
        code="BENCH-WH", defaults={"name": "Bench warehouse", "provinces": ["上海"]}
    )
    channel, _ = Channel.objects.get_or_create(code="BENCH-TB", defaults={"name": "Bench", "kind": "taobao"})
    skus = [
        SKU.objects.get_or_create(
            code=f"BENCH-SKU-{i:03d}", defaults={"barcode": f"699000000{i:04d}", "name": f"Bench {i}"}
        )[0]
        for i in range(50)
    ]
    return warehouse, channel, skus


def copy_orders(channel, warehouse, rows):
    from django.db import connection

    from orders.models import Order

    # Columns added to the model since this list was written get their model default (the
    # database column is NOT NULL without a default of its own).
    listed = {name.strip() for name in ORDER_COLUMNS.split(",")}
    added = [f for f in Order._meta.concrete_fields
             if f.column not in listed and not f.primary_key and f.has_default()]
    defaults = tuple(json.dumps(d) if isinstance(d := f.get_default(), dict | list) else d for f in added)
    columns = ", ".join([ORDER_COLUMNS, *(f.column for f in added)])
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY orders_order ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row + defaults)


def order_row(order_no, external_id, channel, warehouse, status, fulfilment, placed):
    shipped = status in ("completed", "shipped")
    out = placed + timedelta(hours=5) if shipped or fulfilment == "outbound" else None
    return (
        order_no, channel.pk, external_id, "买家", "CNY", "200.00", "0.00", "0.00", "200.00",
        "张三", "138****1234", "上海", "上海市", "浦东新区", "世纪大道100号", warehouse.pk,
        status, fulfilment, "", "", "", "", placed, placed, placed, placed + timedelta(hours=1),
        out, out, placed, placed, placed,
    )


def load_base(channel, warehouse, skus):
    from django.db import connection

    from orders.models import Order

    have = Order.objects.filter(channel=channel, external_order_id__startswith="BASE-").count()
    if have >= BASE_ORDERS:
        return "kept"
    start = time.monotonic()
    now = time.time()
    from django.utils import timezone

    base = timezone.now() - timedelta(days=30)
    states = [("completed", "delivered")] * 7 + [("shipped", "in_transit"), ("paid", "unallocated"),
                                                 ("cancelled", "unallocated")]
    rows = (
        order_row(f"BT{i:013d}", f"BASE-{i}", channel, warehouse, *states[i % 10],
                  base + timedelta(seconds=i * 20))
        for i in range(have, BASE_ORDERS)
    )
    copy_orders(channel, warehouse, rows)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, placed_at FROM orders_order WHERE channel_id = %s "
            "AND external_order_id LIKE 'BASE-%%' ORDER BY id", [channel.pk]
        )
        orders = cursor.fetchall()
        with cursor.cursor.copy("COPY orders_orderline (order_id, line_no, external_line_id, quantity, "
                                "unit_price, discount, sku_id) FROM STDIN") as copy:
            for order_id, _ in orders:
                copy.write_row((order_id, 1, "", 1, "200.00", "0.00", skus[order_id % 50].pk))
        per_order, extra = divmod(BASE_EVENTS - TIMELINE_EVENTS, len(orders) - 1)
        with cursor.cursor.copy(f"COPY orders_orderevent ({EVENT_COLUMNS}) FROM STDIN") as copy:
            for index, (order_id, placed) in enumerate(orders):
                count = TIMELINE_EVENTS if index == 0 else per_order + (index <= extra)
                for n in range(count):
                    at = placed + timedelta(minutes=n)
                    copy.write_row((order_id, "system" if n % 3 else "physical", "scan" if n % 3 == 0 else "note",
                                    "", "", "device:bench", at, at, f"bench event {n}", "{}"))
        cursor.execute("ANALYZE orders_order; ANALYZE orders_orderevent; ANALYZE orders_orderline")
    return f"loaded in {time.monotonic() - start:.0f} s ({time.time() - now:.0f} s)"


def scan_ready_orders(channel, warehouse, sku, count=SCAN_ORDERS):
    """Fresh orders in ship_requested / allocated for this run's scanner load."""
    from django.db import connection
    from django.utils import timezone

    run = uuid.uuid4().hex[:8]
    placed = timezone.now() - timedelta(hours=2)
    rows = (
        order_row(f"BS{run}{i:05d}", f"SCAN-{run}-{i}", channel, warehouse, "ship_requested",
                  "allocated", placed)
        for i in range(count)
    )
    copy_orders(channel, warehouse, rows)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, order_no FROM orders_order WHERE order_no LIKE %s ORDER BY id", [f"BS{run}%"])
        orders = cursor.fetchall()
        with cursor.cursor.copy("COPY orders_orderline (order_id, line_no, external_line_id, quantity, "
                                "unit_price, discount, sku_id) FROM STDIN") as copy:
            for order_id, _ in orders:
                copy.write_row((order_id, 1, "", 1, "200.00", "0.00", sku.pk))
        # Allocated orders have their warehouse's share (a fulfilment order), as approval makes it.
        cursor.execute(
            "INSERT INTO orders_fulfilmentorder (order_id, number, warehouse_id, status, created_at, "
            "cancel_reason, last_location) SELECT id, 1, warehouse_id, 'open', now(), '', '' "
            "FROM orders_order WHERE order_no LIKE %s", [f"BS{run}%"])
        cursor.execute(
            "INSERT INTO orders_fulfilmentline (fulfilment_order_id, order_line_id, quantity) "
            "SELECT f.id, l.id, l.quantity FROM orders_fulfilmentorder f "
            "JOIN orders_order o ON o.id = f.order_id JOIN orders_orderline l ON l.order_id = o.id "
            "WHERE o.order_no LIKE %s", [f"BS{run}%"])
    return [order_no for _, order_no in orders]


def quiet_database():
    """As pgbench does before a run: vacuum and fresh statistics for the rows just loaded (so
    that autovacuum does not wake up inside the measured window), and a checkpoint now, so that
    its writes do not land there either."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) orders_order, orders_orderline, orders_orderevent, orders_scannerevent, "
                       "orders_shipment, inventory_reservation, orders_fulfilmentorder, orders_fulfilmentline")
        cursor.execute("CHECKPOINT")


def tokens(warehouse):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from orders.devices import create_device
    from orders.models import WarehouseDevice

    device = WarehouseDevice.objects.filter(warehouse=warehouse, name="bench-scanner").first()
    if device is None:
        create_device(warehouse.code, "bench-scanner")
        device = WarehouseDevice.objects.get(warehouse=warehouse, name="bench-scanner")
    ops, _ = get_user_model().objects.get_or_create(username="bench-ops")
    ops.groups.add(Group.objects.get(name="ops"))
    return Token.objects.get(user=device.user).key, Token.objects.get_or_create(user=ops)[0].key


def scanner_load(order_nos, device_token, sku, rate: float | None = None):
    """32 clients posting pick, pack and outbound events for their share of `order_nos`.

    Without `rate` each client posts its next event as soon as the last one is answered (the
    saturation throughput). With `rate` the clients together offer that many events per second,
    each on a fixed schedule, as scanners at work do; a request's latency is measured from the
    moment it was due, not from when it was sent, so a server that falls behind the schedule is
    charged for the wait (no coordinated omission)."""
    from django.utils import timezone

    per_client = [order_nos[i::CLIENTS] for i in range(CLIENTS)]
    unexpected = []
    start_at = timezone.now() - timedelta(minutes=30)
    interval = CLIENTS / rate if rate else 0.0

    def work(i, record):
        due = time.monotonic() + interval * i / CLIENTS
        for _n, order_no in enumerate(per_client[i]):
            for step, kind in enumerate(("pick_started", "pack_verified", "outbound")):
                body = {
                    "event_id": str(uuid.uuid4()), "order_no": order_no, "type": kind,
                    "scanned_at": (start_at + timedelta(seconds=step)).isoformat(),
                    "station": f"pack-{i % 4}", "operator": f"w{i:03d}",
                }
                if kind == "pack_verified":
                    body["items"] = [{"barcode": sku.barcode, "quantity": 1}]
                if kind == "outbound":
                    body.update(carrier="SF", tracking_no=f"SF{order_no}")
                if rate:
                    time.sleep(max(0.0, due - time.monotonic()))
                    t0, due = due, due + interval
                else:
                    t0 = time.monotonic()
                status, data = request("POST", "/api/v1/warehouse/events/", body, device_token)
                record(time.monotonic() - t0, status)
                if status != 201 and unexpected.append(status) is None and len(unexpected) < 5:
                    print("unexpected reply", status, data[:300])

    return run_clients(CLIENTS, work)


def timeline_load(order_no, ops_token):
    def work(i, record):
        for _ in range(TIMELINE_READS):
            t0 = time.monotonic()
            status, data = request("GET", f"/api/v1/orders/{order_no}/timeline/", token=ops_token)
            record(time.monotonic() - t0, status)

    return run_clients(1, work)


def main():
    setup_django()
    from orders.models import Order, OrderEvent

    warehouse, channel, skus = master_data()
    loaded = load_base(channel, warehouse, skus)
    order_nos = scan_ready_orders(channel, warehouse, skus[0])
    warmup_order_nos = scan_ready_orders(channel, warehouse, skus[0], WARMUP_ORDERS)
    paced_order_nos = scan_ready_orders(channel, warehouse, skus[0], PACED_ORDERS)
    quiet_database()
    device_token, ops_token = tokens(warehouse)
    timeline_order = Order.objects.filter(channel=channel, external_order_id="BASE-0").get().order_no
    counts = (Order.objects.count(), OrderEvent.objects.count(),
              OrderEvent.objects.filter(order__order_no=timeline_order).count())
    random.seed(1)
    with Server() as server:
        scanner_load(warmup_order_nos, device_token, skus[0])  # not measured
        with CpuMeter(server.proc.pid) as scan_cpu:
            latencies, statuses, wall = scanner_load(order_nos, device_token, skus[0])
        with CpuMeter(server.proc.pid) as paced_cpu:
            paced_latencies, paced_statuses, paced_wall = scanner_load(
                paced_order_nos, device_token, skus[0], rate=TARGET_RATE)
        with CpuMeter(server.proc.pid) as timeline_cpu:
            timeline_latencies, timeline_statuses, timeline_wall = timeline_load(timeline_order, ops_token)
    print(f"data: {counts[0]:,} orders, {counts[1]:,} events (base {loaded}); "
          f"timeline order {timeline_order} has {counts[2]} events")
    print_table(f"Issue 3 — scanner events and timeline (gunicorn {server.label}, PostgreSQL)", [
        {"benchmark": "scanner events, 32 clients, no pause", "requests": len(latencies),
         "per second": f"{len(latencies) / wall:.0f}", **summary(latencies),
         "target": ">= 300/s, p99 <= 100 ms", "statuses": json.dumps(statuses),
         **scan_cpu.per_request_ms(len(latencies))},
        {"benchmark": f"scanner events, 32 clients offering {TARGET_RATE}/s", "requests": len(paced_latencies),
         "per second": f"{len(paced_latencies) / paced_wall:.0f}", **summary(paced_latencies),
         "target": ">= 300/s, p99 <= 100 ms", "statuses": json.dumps(paced_statuses),
         **paced_cpu.per_request_ms(len(paced_latencies))},
        {"benchmark": f"timeline, {counts[2]} events", "requests": len(timeline_latencies),
         "per second": f"{len(timeline_latencies) / timeline_wall:.0f}", **summary(timeline_latencies),
         "target": "p99 <= 30 ms", "statuses": json.dumps(timeline_statuses),
         **timeline_cpu.per_request_ms(len(timeline_latencies))},
    ])


if __name__ == "__main__":
    main()
