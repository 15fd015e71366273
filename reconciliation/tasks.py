"""Celery entry points of reconciliation: thin callers of the services."""

from datetime import date, timedelta

from celery import shared_task
from django.utils import timezone

from .matching import run_reconciliation
from .models import ReconciliationRun
from .paid_check import check_paid_without_record


@shared_task(name="reconciliation.reconcile_period")
def reconcile_period(start: str, end: str, trigger: str = ReconciliationRun.Trigger.MANUAL) -> int:
    return run_reconciliation(date.fromisoformat(start), date.fromisoformat(end), trigger).pk


@shared_task(name="reconciliation.nightly_reconciliation")
def nightly_reconciliation() -> int:
    """The previous business day (beat runs it at 09:00 Asia/Shanghai by default)."""
    yesterday = timezone.localdate() - timedelta(days=1)
    return run_reconciliation(yesterday, yesterday, ReconciliationRun.Trigger.SCHEDULE).pk


@shared_task(name="reconciliation.paid_without_record")
def paid_without_record() -> dict:
    return check_paid_without_record()
