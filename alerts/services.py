"""What people do with alerts: acknowledge, assign, resolve. Each change is on the order's
timeline when the alert is about an order."""

from django.db import transaction
from django.utils import timezone

from oms.errors import Conflict, NotFound
from orders.events import Actor, EventKind, Track, record_event

from .models import Alert, AlertStatus


def _lock(alert_id: int) -> Alert:
    try:
        return Alert.objects.select_for_update(of=("self",)).select_related("rule", "order").get(pk=alert_id)
    except Alert.DoesNotExist:
        raise NotFound(f"alert {alert_id} does not exist") from None


@transaction.atomic
def acknowledge(alert_id: int, user) -> Alert:
    alert = _lock(alert_id)
    if alert.status != AlertStatus.OPEN:
        raise Conflict(f"alert {alert_id} is {alert.status}", state={"status": alert.status},
                       allowed=["resolve"] if alert.status == AlertStatus.ACKNOWLEDGED else [])
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = timezone.now()
    alert.acknowledged_by = user
    alert.assignee = alert.assignee or user
    alert.save(update_fields=["status", "acknowledged_at", "acknowledged_by", "assignee"])
    _on_timeline(alert, user, f"alert acknowledged: {alert.rule.name}")
    return alert


@transaction.atomic
def resolve(alert_id: int, user, note: str = "") -> Alert:
    alert = _lock(alert_id)
    if alert.status == AlertStatus.RESOLVED:
        raise Conflict(f"alert {alert_id} is already resolved", state={"status": alert.status}, allowed=[])
    alert.status = AlertStatus.RESOLVED
    alert.resolved_at = timezone.now()
    alert.resolved_by = user
    alert.resolve_note = note.strip()
    alert.save(update_fields=["status", "resolved_at", "resolved_by", "resolve_note"])
    _on_timeline(alert, user, f"alert resolved: {alert.rule.name}" + (f" — {note.strip()}" if note.strip() else ""))
    return alert


def _on_timeline(alert: Alert, user, summary: str) -> None:
    if alert.order_id:
        record_event(alert.order, track=Track.SYSTEM, kind=EventKind.ALERT, actor=Actor.for_user(user),
                     summary=summary, payload={"alert": alert.pk, "rule": alert.rule.code})
