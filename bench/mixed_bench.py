"""Issues 15/16 benchmark: a bounded mixed load through gunicorn, with a Celery worker taking the
webhook deliveries: 16 clients for 2 minutes (OMS_MIXED_SECONDS), each in turn posting scanner
events (pick, pack check, outbound) for its own orders, reading an order, reading a timeline and
posting a signed channel webhook. Reported per kind and in all: throughput, error rate (target
0: any status but the expected one) and p50/p99, with the CPU of each process tree.
"""

import json
import os
import subprocess
import time
import uuid
from datetime import timedelta

from bench.common import (
    ROOT,
    CpuMeter,
    Server,
    print_table,
    request,
    run_clients_samples,
    server_env,
    setup_django,
    summary,
)
from bench.orders_bench import master_data, quiet_database, scan_ready_orders, tokens

CLIENTS = 16
SECONDS = float(os.environ.get("OMS_MIXED_SECONDS", "120"))
ORDERS_PER_CLIENT = 2_000  # more than a client scans in the window
CPU_COLUMNS = ("gunicorn cpu ms/req", "worker cpu ms/req", "postgres cpu ms/req", "client cpu ms/req")
EXPECTED = {"scan": 201, "order": 200, "timeline": 200, "webhook": 202}


def webhook_channel(sku):
    from channels.models import Channel
    from inventory.services import receive_stock

    channel, _ = Channel.objects.get_or_create(code="BENCH-MINI", defaults={"name": "Bench mini", "kind": "generic"})
    receive_stock("BENCH-WH", sku.code, 1_000_000, reference="mixed bench")
    return channel


def webhook_body(sku, n: str) -> bytes:
    return json.dumps({
        "external_order_id": f"MIX-{n}", "status": "paid",
        "placed_at": "2026-01-09T10:00:00+08:00", "paid_at": "2026-01-09T10:00:05+08:00", "currency": "CNY",
        "buyer": {"name": "张三", "phone": "13800001234"},
        "receiver": {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
                     "district": "浦东新区", "address": "世纪大道100号"},
        "lines": [{"sku": sku.code, "quantity": 1, "unit_price": "99.00", "discount": "0.00"}],
        "shipping_fee": "0.00", "discount_total": "0.00", "payable": "99.00",
    }, ensure_ascii=False).encode()


def post_signed(path: str, body: bytes, secret: str):
    import http.client

    from oms import signing

    headers = {"Content-Type": "application/json", **signing.sign(secret, body, version=2)}
    conn = http.client.HTTPConnection("127.0.0.1", 8765, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def mixed_load(order_nos, device_token, ops_token, sku, channel, read_order):
    """Every request as (seconds, (kind, status))."""
    from django.utils import timezone

    per_client = [order_nos[i::CLIENTS] for i in range(CLIENTS)]
    scanned_at = (timezone.now() - timedelta(minutes=30)).isoformat()

    def work(i, record):
        def timed(kind, call):
            t0 = time.monotonic()
            status, _ = call()
            record(time.monotonic() - t0, (kind, status))

        deadline = time.monotonic() + SECONDS
        for order_no in per_client[i]:
            if time.monotonic() >= deadline:
                break
            for step in ("pick_started", "pack_verified", "outbound"):
                body = {"event_id": str(uuid.uuid4()), "order_no": order_no, "type": step, "scanned_at": scanned_at,
                        "station": f"pack-{i % 4}", "operator": f"w{i:03d}"}
                if step == "pack_verified":
                    body["items"] = [{"barcode": sku.barcode, "quantity": 1}]
                if step == "outbound":
                    body.update(carrier="SF", tracking_no=f"SF{order_no}")
                timed("scan", lambda b=body: request("POST", "/api/v1/warehouse/events/", b, device_token))
            timed("order", lambda: request("GET", f"/api/v1/orders/{read_order}/", token=ops_token))
            timed("timeline", lambda o=order_no: request("GET", f"/api/v1/orders/{o}/timeline/", token=ops_token))
            timed("webhook", lambda: post_signed(f"/api/v1/channels/{channel.code}/webhook/",
                                                 webhook_body(sku, uuid.uuid4().hex), channel.webhook_secret))

    return run_clients_samples(CLIENTS, work)


def row(label: str, samples, wall: float, cpu=None) -> dict:
    errors = sum(1 for _, (kind, status) in samples if status != EXPECTED[kind])
    statuses: dict[str, int] = {}
    for _, (kind, status) in samples:
        statuses[f"{kind} {status}"] = statuses.get(f"{kind} {status}", 0) + 1
    found = {"load": label, "requests": len(samples), "per second": f"{len(samples) / wall:.0f}",
             **summary([seconds for seconds, _ in samples]),
             "error rate": f"{errors / max(len(samples), 1):.2%}", "statuses": json.dumps(statuses, sort_keys=True)}
    shares = cpu.per_request_ms(len(samples)) if cpu else {}
    return {**found, **{name: shares.get(name, "") for name in CPU_COLUMNS}}


def main():
    setup_django()
    from channels.models import RawPayload

    warehouse, scan_channel, skus = master_data()
    sku = skus[0]
    channel = webhook_channel(sku)
    order_nos = scan_ready_orders(scan_channel, warehouse, sku, CLIENTS * ORDERS_PER_CLIENT)
    quiet_database()
    device_token, ops_token = tokens(warehouse)
    worker = subprocess.Popen([str(ROOT / ".venv" / "bin" / "celery"), "-A", "oms", "worker", "--pool=threads",
                               "--concurrency=2", "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
                              cwd=ROOT, env=server_env())
    try:
        with Server() as server, CpuMeter(server.proc.pid, worker.pid) as cpu:
            samples, wall = mixed_load(order_nos, device_token, ops_token, sku, channel, order_nos[0])
        deadline = time.monotonic() + 30  # the worker finishes the deliveries still pending
        while time.monotonic() < deadline and RawPayload.objects.filter(channel=channel, outcome="pending").exists():
            time.sleep(0.5)
        left = RawPayload.objects.filter(channel=channel, outcome="pending").count()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    rows = [row(f"all, {CLIENTS} clients, {SECONDS:.0f} s", samples, wall, cpu)]
    for kind in EXPECTED:
        rows.append(row(kind, [s for s in samples if s[1][0] == kind], wall))
    print_table(f"Mixed load (gunicorn {server.label}, a Celery worker, PostgreSQL, Redis); "
                f"target: error rate 0", rows)
    print(f"webhook deliveries still pending 30 s after the load: {left}")


if __name__ == "__main__":
    main()
