import socket

from celery import shared_task
from django.db.models import F
from django.utils import timezone

from .models import WorkerHeartbeat


@shared_task(name="oms.heartbeat")
def heartbeat(worker: str | None = None) -> str:
    """Record that a worker is alive; beat runs it every minute, /healthz reads it."""
    name = worker or socket.gethostname()
    now = timezone.now()
    updated = WorkerHeartbeat.objects.filter(worker=name).update(last_seen=now, beats=F("beats") + 1)
    if not updated:
        WorkerHeartbeat.objects.get_or_create(worker=name, defaults={"last_seen": now, "beats": 1})
    return name
