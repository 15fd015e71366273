"""Celery entry points of alerts: thin callers."""

from celery import shared_task

from .delivery import deliver_due
from .engine import check_alerts


@shared_task(name="alerts.check_alerts")
def scan_alerts() -> dict:
    result = check_alerts()
    return {code: vars(r) for code, r in result.rules.items()}


@shared_task(name="alerts.deliver_notifications")
def deliver_notifications() -> dict:
    return deliver_due()
