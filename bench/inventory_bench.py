"""Issue 4 benchmark: reservations per second on PostgreSQL, 32 concurrent workers.

Django path: one transaction per reservation through inventory.stock.reserve — the conditional
UPDATE (`on_hand - reserved >= q`, RETURNING the new numbers) plus its StockMovement ledger row.
Raw ceiling: the same conditional UPDATE through psycopg alone, autocommit, on a copy table.
Workers are 8 processes × 4 threads by default (OMS_BENCH_PROCESSES); threads in one process
share a core, so a lock holder descheduled in a busy process stalls a hot row for everyone.
Targets: one hot SKU >= 500/s, spread over 10,000 SKUs >= 1,500/s.
"""

import multiprocessing
import os
import random
import threading
import time

from bench.common import BENCH_DATABASE_URL, percentile, print_table, setup_django

PROCESSES = int(os.environ.get("OMS_BENCH_PROCESSES", "8"))
THREADS = 32 // PROCESSES
SECONDS = 10
SKUS = 10_000


def prepare() -> tuple[int, list[int]]:
    setup_django()
    from django.db import connection

    from inventory.models import SKU, StockLevel, Warehouse

    warehouse, _ = Warehouse.objects.get_or_create(code="BENCH-RES", defaults={"name": "Reservations"})
    if SKU.objects.filter(code__startswith="BENCH-R-").count() < SKUS:
        SKU.objects.bulk_create(
            [SKU(code=f"BENCH-R-{i:05d}", barcode=f"698{i:010d}", name=f"R {i}") for i in range(SKUS)],
            ignore_conflicts=True, batch_size=2000,
        )
    sku_ids = list(SKU.objects.filter(code__startswith="BENCH-R-").order_by("pk").values_list("pk", flat=True))
    StockLevel.objects.bulk_create(
        [StockLevel(warehouse=warehouse, sku_id=sku_id, on_hand=10**9) for sku_id in sku_ids],
        ignore_conflicts=True, batch_size=2000,
    )
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw_stock")
        cursor.execute("CREATE TABLE bench_raw_stock (warehouse_id bigint, sku_id bigint, "
                       "on_hand integer, reserved integer, PRIMARY KEY (warehouse_id, sku_id))")
        cursor.execute("INSERT INTO bench_raw_stock SELECT warehouse_id, sku_id, 1000000000, 0 "
                       "FROM inventory_stocklevel WHERE warehouse_id = %s", [warehouse.pk])
        cursor.execute("ANALYZE bench_raw_stock; ANALYZE inventory_stocklevel")
    return warehouse.pk, sku_ids


def _django_worker(warehouse_id, sku_ids, hot, window, results):
    setup_django_child()
    from django.db import connections, transaction

    from inventory import stock

    def loop():
        done, latencies = 0, []
        rng = random.Random()
        opens, deadline = window
        while time.time() < deadline:
            sku_id = sku_ids[0] if hot else rng.choice(sku_ids)
            counted = time.time() >= opens  # before the window: warming up while others start
            started = time.perf_counter()
            with transaction.atomic():
                state = stock.reserve(warehouse_id, sku_id, 1, reference="bench", reason="bench")
            if counted and time.time() < deadline:
                latencies.append(time.perf_counter() - started)
                done += state is not None
        connections.close_all()
        results.put((done, latencies))

    run_threads(loop)


def _raw_worker(warehouse_id, sku_ids, hot, window, results):
    import psycopg

    def loop():
        done, latencies = 0, []
        rng = random.Random()
        opens, deadline = window
        with psycopg.connect(BENCH_DATABASE_URL, autocommit=True) as conn:
            while time.time() < deadline:
                sku_id = sku_ids[0] if hot else rng.choice(sku_ids)
                counted = time.time() >= opens
                started = time.perf_counter()
                cursor = conn.execute(
                    "UPDATE bench_raw_stock SET reserved = reserved + 1 WHERE warehouse_id = %s "
                    "AND sku_id = %s AND on_hand - reserved >= 1", [warehouse_id, sku_id])
                if counted and time.time() < deadline:
                    latencies.append(time.perf_counter() - started)
                    done += cursor.rowcount
        results.put((done, latencies))

    run_threads(loop)


def run_threads(loop):
    threads = [threading.Thread(target=loop) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def setup_django_child():
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms.settings")
    django.setup()


def measure(worker, warehouse_id, sku_ids, hot) -> dict:
    from django.db import connections

    connections.close_all()  # forked children must not share the parent's sockets
    results = multiprocessing.Queue()
    # Only reservations started and finished inside the window count: the processes have 2 s
    # to start (and warm up) before it opens.
    opens = time.time() + 2
    window = (opens, opens + SECONDS)
    processes = [multiprocessing.Process(target=worker, args=(warehouse_id, sku_ids, hot, window, results))
                 for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    collected = [results.get() for _ in range(PROCESSES * THREADS)]
    for process in processes:
        process.join()
    done = sum(count for count, _ in collected)
    latencies = [s * 1000 for _, lats in collected for s in lats]
    return {"reservations": done, "per_second": done / SECONDS,
            "p50 ms": f"{percentile(latencies, 50):.1f}", "p99 ms": f"{percentile(latencies, 99):.1f}"}


def main():
    warehouse_id, sku_ids = prepare()
    multiprocessing.set_start_method("fork")
    rows = []
    for label, hot, target in (("one hot SKU", True, 500), ("10,000 SKUs", False, 1500)):
        django_result = measure(_django_worker, warehouse_id, sku_ids, hot)
        raw_result = measure(_raw_worker, warehouse_id, sku_ids, hot)
        rows.append({
            "scenario": label,
            "django /s": f"{django_result['per_second']:.0f}",
            "django p50/p99 ms": f"{django_result['p50 ms']} / {django_result['p99 ms']}",
            "raw PG /s": f"{raw_result['per_second']:.0f}",
            "raw p50/p99 ms": f"{raw_result['p50 ms']} / {raw_result['p99 ms']}",
            "django / raw": f"{django_result['per_second'] / max(raw_result['per_second'], 1):.0%}",
            "target": f">= {target}/s",
        })
    print_table(f"Issue 4 — reservations, {PROCESSES * THREADS} workers ({PROCESSES} processes × "
                f"{THREADS} threads), {SECONDS} s each, PostgreSQL", rows)


if __name__ == "__main__":
    main()
