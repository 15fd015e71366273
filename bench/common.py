"""Shared plumbing for `make bench`: a PostgreSQL bench database, a gunicorn server, an HTTP
load generator and the table printer. Benchmarks are not tests and never run in CI."""

import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = os.environ.get("OMS_BENCH_DB", "oms_bench")
PG = os.environ.get("OMS_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
BENCH_DATABASE_URL = f"{PG}/{BENCH_DB}"
REDIS = os.environ.get("OMS_BENCH_REDIS", "redis://127.0.0.1:6379/14")


def server_env(**extra) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=BENCH_DATABASE_URL,
        REDIS_URL=REDIS,
        OMS_ENV="production",
        SECRET_KEY="bench-only-secret-key-" + "x" * 40,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="WARNING",
        OMS_VAR_DIR=str(ROOT / "var" / "bench"),
        DJANGO_SETTINGS_MODULE="oms.settings",
        OMS_ORDER_NUMBER_BLOCK="100",  # as docker-compose.yml runs production
    )
    env.update(extra)
    return env


def setup_django() -> None:
    """Point this process at the bench database, create it if needed, and migrate."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    os.environ.update(server_env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_tree(root: int) -> set[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += children.get(pid, [])
    return tree


def bench_backends() -> set[int]:
    """PostgreSQL backends connected to the bench database (not other users' on the machine)."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        return {pid for (pid,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [BENCH_DB])}


def cpu_seconds(pids) -> dict[int, float]:
    used = {}
    for pid in pids:
        try:
            used[pid] = process_cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return used


class CpuMeter:
    """CPU seconds over a block of the benchmark's own processes: the app server's process tree
    (and a worker's, when given), the PostgreSQL backends of the bench database, and this load
    generator. Other users' gunicorn or postgres processes on the machine are not counted."""

    def __init__(self, *roots: int):
        self.roots = {name: pid for name, pid in zip(("gunicorn", "worker"), roots, strict=False)}

    def __enter__(self):
        self.start = self._sample()
        return self

    def __exit__(self, *exc):
        end = self._sample()
        # Per process: one that exited within the block takes its CPU with it, and must not
        # take its earlier CPU off the total.
        self.used = {kind: sum(seconds - self.start[kind].get(pid, 0.0) for pid, seconds in end[kind].items())
                     for kind in end}

    def _sample(self) -> dict[str, dict[int, float]]:
        times = os.times()
        sample = {name: cpu_seconds(process_tree(pid)) for name, pid in self.roots.items()}
        sample["postgres"] = cpu_seconds(bench_backends())
        # Forked client processes count once joined (children_*).
        sample["client"] = {0: times.user + times.system + times.children_user + times.children_system}
        return sample

    def per_request_ms(self, requests: int) -> dict[str, str]:
        return {f"{k} cpu ms/req": f"{v * 1000 / max(requests, 1):.1f}" for k, v in self.used.items()}


class Server:
    """gunicorn serving the app on the bench database, as production would."""

    def __init__(self, port: int = 8765, workers: int | None = None, threads: int | None = None):
        workers = workers or int(os.environ.get("OMS_BENCH_WORKERS", "3"))  # as docker-compose.yml runs it
        threads = threads or int(os.environ.get("OMS_BENCH_THREADS", "1"))
        self.label = f"{workers} workers" + (f" x {threads} threads" if threads > 1 else "")
        self.port = port
        self.cmd = [
            str(ROOT / ".venv" / "bin" / "gunicorn"), "oms.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--log-level", "warning",
        ]
        if threads > 1:
            self.cmd += ["--worker-class", "gthread", "--threads", str(threads)]

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=server_env())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                status, _ = request("GET", "/healthz", port=self.port)
                if status in (200, 503):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=20)


_local = threading.local()


def request(method: str, path: str, body=None, token: str | None = None, port: int = 8765,
            raw: bytes | None = None, headers: dict | None = None):
    """One HTTP request on this thread's keep-alive connection (reconnecting when closed);
    `raw` sends those bytes as the body (a signed webhook) instead of `body` as JSON."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        headers["Authorization"] = f"Token {token}"
    payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
    for attempt in (1, 2):
        conn = getattr(_local, "conn", None)
        if conn is None:
            conn = _local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (http.client.HTTPException, ConnectionError):
            conn.close()
            _local.conn = None
            if attempt == 2:
                raise
            continue
        if response.will_close:
            conn.close()
            _local.conn = None
        return response.status, data


def run_clients(clients: int, work_for_client, processes: int | None = None
                ) -> tuple[list[float], dict, float]:
    """Run `work_for_client(i, record)` for `clients` clients started together; `record(seconds,
    status)` collects one request. Returns latencies, status counts and wall time."""
    samples, wall = run_clients_samples(clients, work_for_client, processes)
    statuses: dict = {}
    for _, status in samples:
        statuses[status] = statuses.get(status, 0) + 1
    return [seconds for seconds, _ in samples], statuses, wall


def run_clients_samples(clients: int, work_for_client, processes: int | None = None
                        ) -> tuple[list[tuple[float, object]], float]:
    """As run_clients, but every (seconds, status) pair as recorded, and the wall time.

    The clients are threads spread over `processes` forked processes (default: one per 8
    clients), so that the load generator's own GIL does not add to the latencies it measures."""
    processes = processes or max(1, min(clients // 8, os.cpu_count() * 2))
    if processes == 1:
        return _run_threads(range(clients), work_for_client, None)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    children = []
    for p in range(processes):
        child = context.Process(target=_child, args=(range(p, clients, processes), work_for_client, barrier, results))
        child.start()
        children.append(child)
    barrier.wait()
    started = time.monotonic()
    samples: list[tuple[float, object]] = []
    for _ in children:
        samples += results.get()
    wall = time.monotonic() - started
    for child in children:
        child.join()
    return samples, wall


def _child(indexes, work_for_client, barrier, results) -> None:
    try:
        samples, _ = _run_threads(indexes, work_for_client, barrier)
        results.put(samples)
        results.close()
        results.join_thread()  # the queue's feeder thread must deliver before _exit
    finally:
        os._exit(0)  # nothing inherited from the parent (its database connection) is closed here


def _run_threads(indexes, work_for_client, process_barrier) -> tuple[list[tuple[float, object]], float]:
    samples: list[tuple[float, object]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(indexes) + 1)

    def record(seconds: float, status) -> None:
        with lock:
            samples.append((seconds, status))

    def run(i: int) -> None:
        barrier.wait()
        work_for_client(i, record)

    threads = [threading.Thread(target=run, args=(i,)) for i in indexes]
    for thread in threads:
        thread.start()
    if process_barrier is not None:
        process_barrier.wait()
    barrier.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    return samples, time.monotonic() - started


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def print_table(title: str, rows: list[dict]) -> None:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print(f"\n{title}")
    print("| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |")
    print("|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[c]).ljust(widths[c]) for c in columns) + " |")


def summary(latencies: list[float]) -> dict:
    ms = [s * 1000 for s in latencies]
    return {
        "p50 ms": f"{percentile(ms, 50):.1f}",
        "p95 ms": f"{percentile(ms, 95):.1f}",
        "p99 ms": f"{percentile(ms, 99):.1f}",
        "mean ms": f"{statistics.fmean(ms):.1f}" if ms else "nan",
    }
