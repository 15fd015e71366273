"""Liveness of the three things the app stands on: database, broker and cache."""

import time
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from kombu import Connection


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def check_broker() -> dict:
    url = settings.CELERY_BROKER_URL
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    with Connection(url, transport_options=options, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        return {"transport": url.split("://")[0]}


def check_cache() -> dict:
    key = f"healthz:{uuid.uuid4().hex}"
    cache.set(key, "ok", timeout=10)
    if cache.get(key) != "ok":
        raise RuntimeError("value written was not read back")
    cache.delete(key)
    return {"backend": cache.__class__.__name__}


def worker_status() -> dict:
    """Informational: how long ago a worker last ran the heartbeat task (not a gate)."""
    from .models import WorkerHeartbeat

    latest = WorkerHeartbeat.objects.order_by("-last_seen").first()
    if latest is None:
        return {"status": "unknown", "detail": "no heartbeat yet"}
    age = (timezone.now() - latest.last_seen).total_seconds()
    return {"status": "ok" if age < 180 else "stale", "worker": latest.worker, "age_seconds": int(age)}


CHECKS = {"database": check_database, "broker": check_broker, "cache": check_cache}


def run_checks() -> tuple[bool, dict]:
    results = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            info = check()
            results[name] = {"status": "ok", **info}
        except Exception as exc:  # noqa: BLE001 - any failure means "down", named in the reply
            results[name] = {"status": "down", "error": f"{exc.__class__.__name__}: {exc}"[:300]}
        results[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    healthy = all(result["status"] == "ok" for result in results.values())
    if results["database"]["status"] == "ok":
        results["worker"] = worker_status()
    return healthy, results
