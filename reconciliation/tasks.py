"""Celery entry points of reconciliation: thin callers of the services."""

from datetime import date, timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import jobs
from .matching import run_queued, run_reconciliation
from .models import ReconciliationRun
from .paid_check import check_paid_without_record


@shared_task(name="reconciliation.reconcile_period")
def reconcile_period(start: str, end: str, trigger: str = ReconciliationRun.Trigger.MANUAL) -> int:
    """Kept for the messages the previous release queued after imports (now queued runs)."""
    return run_reconciliation(date.fromisoformat(start), date.fromisoformat(end), trigger).pk


@shared_task(name="reconciliation.run_queued")
def run_queued_reconciliation(run_id: int) -> int | None:
    run = run_queued(run_id)
    return run and run.pk


@shared_task(name="reconciliation.import_statement_file",
             soft_time_limit=getattr(settings, "OMS_IMPORT_TIME_LIMIT", 1800) - 60,
             time_limit=getattr(settings, "OMS_IMPORT_TIME_LIMIT", 1800))
def import_statement_file(import_id: int) -> str | None:
    job = jobs.run_import(import_id)
    return job and job.state


@shared_task(name="reconciliation.sweep")
def sweep() -> dict:
    """Every minute: interrupted runs and imports retried, lost messages sent again, a missed
    nightly run queued."""
    return jobs.sweep()


@shared_task(name="reconciliation.nightly_reconciliation")
def nightly_reconciliation() -> int:
    """The previous business day (beat runs it at 09:00 Asia/Shanghai by default)."""
    yesterday = timezone.localdate() - timedelta(days=1)
    return run_reconciliation(yesterday, yesterday, ReconciliationRun.Trigger.SCHEDULE).pk


@shared_task(name="reconciliation.paid_without_record")
def paid_without_record() -> dict:
    return check_paid_without_record()
