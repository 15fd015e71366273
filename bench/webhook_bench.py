"""Issue 16 benchmark: push intake through the signed channel webhook, answered at once and
processed by a Celery worker in pages.

Figures: webhooks accepted per second and their p99 at 32 clients (target >= 1,500/s, p99 <=
50 ms) beside the same-run ceiling (GET /livez: a request through gunicorn touching nothing);
end to end, accepted -> order stored and reserved (target >= 1,000 orders/s, lag p99 <= 2 s); and
a flash sale of one SKU with less stock than demand, checked by SQL: never oversold.
"""

import json
import os
import subprocess
import time
import uuid

from bench.common import (
    ROOT,
    CpuMeter,
    Server,
    print_table,
    request,
    run_clients,
    server_env,
    setup_django,
    summary,
)
from bench.orders_bench import master_data

CLIENTS = 32
SECONDS = float(os.environ.get("OMS_WEBHOOK_SECONDS", "20"))
FLASH_STOCK = 300
FLASH_ORDERS = 1_000


def order_body(external_id: str, sku_code: str) -> bytes:
    return json.dumps({
        "external_order_id": external_id, "status": "paid",
        "placed_at": "2026-01-09T10:00:00+08:00", "paid_at": "2026-01-09T10:00:05+08:00", "currency": "CNY",
        "buyer": {"name": "张三", "phone": "13800001234"},
        "receiver": {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
                     "district": "浦东新区", "address": "世纪大道100号"},
        "lines": [{"sku": sku_code, "quantity": 1, "unit_price": "99.00", "discount": "0.00"}],
        "shipping_fee": "0.00", "discount_total": "0.00", "payable": "99.00",
    }, ensure_ascii=False).encode()


def post_webhook(channel, external_id: str, sku_code: str):
    from oms import signing

    body = order_body(external_id, sku_code)
    return request("POST", f"/api/v1/channels/{channel.code}/webhook/", raw=body,
                   headers=signing.sign(channel.webhook_secret, body, version=2))


def push_channel(code: str):
    from channels.models import Channel

    channel, _ = Channel.objects.get_or_create(code=code, defaults={"name": code, "kind": "generic"})
    return channel


def ceiling():
    def work(i, record):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            status, _ = request("GET", "/livez")
            record(time.monotonic() - t0, status)

    return run_clients(CLIENTS, work)


def accepted_load(channel, sku_code: str, run: str, seconds: float | None = None, orders: int | None = None):
    """Clients post new orders until `seconds` pass or `orders` are posted in all."""
    def work(i, record):
        deadline = time.monotonic() + (seconds or 3600)
        n = 0
        while time.monotonic() < deadline and (orders is None or n * CLIENTS + i < orders):
            t0 = time.monotonic()
            status, _ = post_webhook(channel, f"{run}-{i}-{n}", sku_code)
            record(time.monotonic() - t0, status)
            n += 1

    return run_clients(CLIENTS, work)


def wait_processed(channel, timeout: float = 120) -> int:
    from channels.models import RawPayload

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = RawPayload.objects.filter(channel=channel, outcome="pending").count()
        if not left:
            return 0
        time.sleep(0.5)
    return left


def end_to_end(channel) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'created'), "
            "EXTRACT(EPOCH FROM max(processed_at) - min(received_at)), "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM processed_at - received_at)), "
            "percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM processed_at - received_at)) "
            "FROM channels_rawpayload WHERE channel_id = %s AND source = 'webhook'", [channel.pk])
        total, created, span, p50, p99 = cursor.fetchone()
        cursor.execute(
            "SELECT count(DISTINCT r.order_id) FROM inventory_reservation r JOIN orders_order o ON o.id = r.order_id "
            "WHERE o.channel_id = %s", [channel.pk])
        reserved_orders = cursor.fetchone()[0]
    return {"deliveries": total, "created": created, "reserved orders": reserved_orders,
            "orders/s": f"{created / max(float(span or 0), 1e-9):.0f}",
            "lag p50 s": f"{float(p50 or 0):.2f}", "lag p99 s": f"{float(p99 or 0):.2f}"}


def flash_sale_check(sku, warehouse) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT on_hand, reserved FROM inventory_stocklevel WHERE sku_id = %s AND warehouse_id = %s",
                       [sku.pk, warehouse.pk])
        on_hand, reserved = cursor.fetchone()
        cursor.execute("SELECT coalesce(sum(quantity), 0) FROM inventory_reservation WHERE sku_id = %s "
                       "AND status = 'active'", [sku.pk])
        active = cursor.fetchone()[0]
    oversold = max(0, reserved - on_hand, active - on_hand)
    return {"stock": on_hand, "reserved": reserved, "active reservations": active, "oversold": oversold,
            "ledger agrees": active == reserved}


def main():
    setup_django()
    from inventory.models import SKU
    from inventory.services import receive_stock

    warehouse, _channel, skus = master_data()
    run = uuid.uuid4().hex[:8]
    receive_stock(warehouse.code, skus[1].code, 10**8, reference="webhook bench")
    channel = push_channel(f"BP-{run}")
    flash_channel = push_channel(f"BF-{run}")
    flash_sku = SKU.objects.create(code=f"FLASH-{run}", barcode=f"FL{run}", name="Flash sale")
    receive_stock(warehouse.code, flash_sku.code, FLASH_STOCK, reference="flash sale")
    worker = subprocess.Popen([str(ROOT / ".venv" / "bin" / "celery"), "-A", "oms", "worker", "--pool=threads",
                               "--concurrency=2", "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
                              cwd=ROOT, env=server_env())
    try:
        with Server() as server:
            accepted_load(channel, skus[1].code, f"warm-{run}", orders=CLIENTS * 20)  # warm-up, not measured
            wait_processed(channel)
            live_latencies, live_statuses, live_wall = ceiling()
            with CpuMeter(server.proc.pid, worker.pid) as cpu:
                latencies, statuses, wall = accepted_load(channel, skus[1].code, run, seconds=SECONDS)
                left = wait_processed(channel)
            flash_latencies, flash_statuses, flash_wall = accepted_load(
                flash_channel, flash_sku.code, f"flash-{run}", orders=FLASH_ORDERS)
            flash_left = wait_processed(flash_channel)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    print_table(f"Issue 16 — channel webhook (gunicorn {server.label}, a Celery worker x 2 threads, PostgreSQL)", [
        {"load": "GET /livez (ceiling)", "requests": len(live_latencies),
         "per second": f"{len(live_latencies) / live_wall:.0f}", **summary(live_latencies),
         "target": "", "statuses": json.dumps(live_statuses)},
        {"load": f"webhook accepted, {CLIENTS} clients, {SECONDS:.0f} s", "requests": len(latencies),
         "per second": f"{len(latencies) / wall:.0f}", **summary(latencies),
         "target": ">= 1,500/s, p99 <= 50 ms", "statuses": json.dumps(statuses)},
        {"load": f"flash sale, {FLASH_ORDERS} orders for {FLASH_STOCK} units", "requests": len(flash_latencies),
         "per second": f"{len(flash_latencies) / flash_wall:.0f}", **summary(flash_latencies),
         "target": "never oversold", "statuses": json.dumps(flash_statuses)},
    ])
    print_table("End to end: accepted -> order stored and reserved (target >= 1,000 orders/s, lag p99 <= 2 s)",
                [{**end_to_end(channel), "left pending": left,
                  **cpu.per_request_ms(len(latencies))}])
    print_table("Flash sale, checked by SQL", [{**flash_sale_check(flash_sku, warehouse), "left pending": flash_left}])


if __name__ == "__main__":
    main()
