"""Issue 5 benchmark: end-to-end ingestion of sandbox payloads on PostgreSQL.

Taobao-format trades from the sandbox marketplace's generator (no HTTP), each through the whole
intake: archive, normalise, cleanse, validate, identity, upsert, events, routing, reservation.
First pass: new orders; second pass: the same payloads again (unchanged). Each worker process
hands its payloads to intake in pages of PAGE (OMS_BENCH_INGEST_PAGE, default 100), as a pull
does with each page it fetched. Besides the wall-clock rate, each pass reports the CPU spent per
order by the worker processes (Python) and by their own PostgreSQL backends, which is what
decides the rate on a 2-core machine (the machine's other load is not counted).
Targets: >= 1,000 orders/s new, >= 5,000/s unchanged (issue 5).
"""

import multiprocessing
import os
import time
import uuid

from bench.common import print_table, process_cpu_seconds, setup_django

ORDERS = int(os.environ.get("OMS_BENCH_INGEST_ORDERS", "20000"))  # a sustained rate, not a start-up
PROCESSES = int(os.environ.get("OMS_BENCH_PROCESSES", "4"))
PAGE = int(os.environ.get("OMS_BENCH_INGEST_PAGE", "100"))
# With an approval policy active (orders of 5,000 or more wait for ops), every paid order also
# goes through the approval workflow: most are approved and allocated on the spot.
APPROVALS = os.environ.get("OMS_BENCH_INGEST_APPROVALS", "") == "1"
# "final": each trade as it ends up (mostly paid, some closed); "first": as a one-minute pull
# first sees it, 30 s after it was placed (many still waiting for the buyer to pay).
AS_SEEN = os.environ.get("OMS_BENCH_INGEST_AS_SEEN", "final")
SKUS = ("SKU-TEA-001", "SKU-TEA-002", "SKU-CUP-001", "SKU-POT-001", "SKU-GIFT-01")


def payloads(count: int, seed: str) -> list[dict]:
    from channels.sandbox import stream
    from channels.sandbox.taobao import render_trade

    shop = stream.shop_for("taobao", "bench", seed, 60, SKUS)
    now = int(time.time())
    found = []
    i = 0
    while len(found) < count:
        view = shop.view(i, shop.plan(i).created + 30 if AS_SEEN == "first" else now + 10 * 24 * 3600)
        i += 1
        if view is not None:
            trade = render_trade(view)
            trade["tid"] = f"{seed}-{trade['tid']}"
            found.append(trade)
    return found


def prepare(channel_code: str):
    setup_django()
    from channels.models import Channel
    from inventory.models import SKU, Warehouse
    from inventory.services import receive_stock

    warehouse, _ = Warehouse.objects.get_or_create(code="BENCH-INGEST", defaults={"name": "Ingest"})
    for code in SKUS:
        SKU.objects.get_or_create(code=code, defaults={"barcode": f"bench-{code}", "name": code})
        receive_stock(warehouse.code, code, 10_000_000, reference="bench")
    channel, _ = Channel.objects.get_or_create(code=channel_code, defaults={"name": "Bench", "kind": "sandbox"})
    from orders.models import ApprovalLevel, ApprovalPolicy

    policy, _ = ApprovalPolicy.objects.get_or_create(name="bench: big orders", defaults={"min_amount": 5000})
    ApprovalLevel.objects.get_or_create(policy=policy, position=1, defaults={"approver_group": "ops"})
    ApprovalPolicy.objects.filter(pk=policy.pk).update(active=APPROVALS)
    return channel.pk


def _worker(channel_id, raws, results):
    try:
        _ingest(channel_id, raws, results)
    except BaseException as exc:  # the parent waits for one reply per worker: never leave it waiting
        results.put(exc)
        raise


def _ingest(channel_id, raws, results):
    import django

    django.setup()
    from django.db import connections

    from channels.intake import ingest_page
    from channels.models import Channel

    channel = Channel.objects.get(pk=channel_id)
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    python, postgres = time.process_time(), process_cpu_seconds(backend)
    counts = {}
    for start in range(0, len(raws), PAGE):
        for result in ingest_page(channel, raws[start:start + PAGE], "pull"):
            counts[str(result.result)] = counts.get(str(result.result), 0) + 1
    cpu = {"python": time.process_time() - python, "postgres": process_cpu_seconds(backend) - postgres}
    connections.close_all()
    results.put((counts, cpu))


def run(channel_id, raws) -> tuple[float, dict, dict]:
    # Forked children must not share the parent's database or Redis sockets.
    from django.db import connections

    from inventory import cache

    connections.close_all()
    cache._clients.clear()
    results = multiprocessing.Queue()
    chunks = [raws[i::PROCESSES] for i in range(PROCESSES)]
    started = time.perf_counter()
    workers = [multiprocessing.Process(target=_worker, args=(channel_id, chunk, results)) for chunk in chunks]
    for worker in workers:
        worker.start()
    counts, cpu = {}, {"python": 0.0, "postgres": 0.0}
    for _ in workers:
        reply = results.get()
        if isinstance(reply, BaseException):
            raise RuntimeError("an ingest worker failed") from reply
        worker_counts, worker_cpu = reply
        for key, value in worker_counts.items():
            counts[key] = counts.get(key, 0) + value
        for key, value in worker_cpu.items():
            cpu[key] += value
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, counts, cpu


def main():
    seed = uuid.uuid4().hex[:6]
    channel_id = prepare("BENCH-SANDBOX")
    raws = payloads(ORDERS, seed)
    multiprocessing.set_start_method("fork")
    new_seconds, new_counts, new_cpu = run(channel_id, raws)
    again_seconds, again_counts, again_cpu = run(channel_id, raws)

    def cpu_ms(cpu: dict, kind: str) -> str:
        return f"{cpu[kind] * 1000 / ORDERS:.2f}"

    print_table(f"Issue 5 — ingestion of {ORDERS:,} sandbox (Taobao-format) orders, {PROCESSES} processes, "
                f"pages of {PAGE}, trades as {'first seen' if AS_SEEN == 'first' else 'they end up'}"
                f"{', an approval policy active' if APPROVALS else ''}, PostgreSQL", [
        {"pass": "new orders", "seconds": f"{new_seconds:.1f}", "orders/s": f"{ORDERS / new_seconds:.0f}",
         "python cpu ms/order": cpu_ms(new_cpu, "python"), "postgres cpu ms/order": cpu_ms(new_cpu, "postgres"),
         "results": new_counts, "target": ">= 1,000/s"},
        {"pass": "same payloads again", "seconds": f"{again_seconds:.1f}",
         "orders/s": f"{ORDERS / again_seconds:.0f}", "python cpu ms/order": cpu_ms(again_cpu, "python"),
         "postgres cpu ms/order": cpu_ms(again_cpu, "postgres"), "results": again_counts, "target": ">= 5,000/s"},
    ])


if __name__ == "__main__":
    main()
