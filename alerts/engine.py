"""The alert scan: open, auto-resolve and escalate, one rule at a time.

Each rule runs in its own transaction with its row locked, so two scans never open the same
alert twice (the partial unique index would refuse it anyway) and one failing rule neither
blocks nor rolls back the others.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from oms.queueing import enqueue_on_commit
from orders.models import EventKind, OrderEvent, Track

from .conditions import BUILTIN_RULES, CONDITIONS, BuiltinRule, Match
from .models import ACTIVE_STATUSES, Alert, AlertRule, AlertStatus, Notification, Severity

logger = logging.getLogger(__name__)
SYSTEM_ACTOR = "system:alerts"


@dataclass
class RuleResult:
    opened: int = 0
    resolved: int = 0
    escalated: int = 0
    error: str = ""


@dataclass
class ScanResult:
    rules: dict[str, RuleResult] = field(default_factory=dict)

    def total(self, what: str) -> int:
        return sum(getattr(r, what) for r in self.rules.values())


def check_alerts(now: datetime | None = None) -> ScanResult:
    now = now or timezone.now()
    result = ScanResult()
    for rule_id, code in AlertRule.objects.filter(active=True).values_list("id", "code"):
        try:
            result.rules[code] = _check_rule(rule_id, now)
        except Exception as exc:  # noqa: BLE001 - one broken rule must not silence the others
            logger.exception("alert rule %s failed", code)
            result.rules[code] = RuleResult(error=f"{exc.__class__.__name__}: {exc}")
    if result.total("opened") or result.total("escalated"):
        # Delivered now rather than at the next 30 s beat; a broker outage leaves them to it.
        enqueue_on_commit("alerts.deliver_notifications")
    return result


@transaction.atomic
def _check_rule(rule_id: int, now: datetime) -> RuleResult:
    rule = AlertRule.objects.select_for_update().get(pk=rule_id)
    condition = CONDITIONS.get(rule.condition)
    if condition is None:
        return RuleResult(error=f"unknown condition {rule.condition}")
    matches = {m.subject: m for m in condition.find(rule.threshold, now)}
    active = dict(Alert.objects.filter(rule=rule, status__in=ACTIVE_STATUSES).values_list("subject", "id"))
    opened = _open(rule, [m for s, m in matches.items() if s not in active], now)
    resolved = _resolve_cleared(rule, [pk for s, pk in active.items() if s not in matches], now)
    escalated = _escalate(rule, now)
    return RuleResult(opened=opened, resolved=resolved, escalated=escalated)


def _open(rule: AlertRule, new: list[Match], now: datetime) -> int:
    if not new:
        return 0
    alerts = Alert.objects.bulk_create(
        Alert(rule=rule, subject=m.subject[:120], order_id=m.order_id, severity=rule.severity,
              title=m.title[:255], opened_at=now)
        for m in new
    )
    OrderEvent.objects.bulk_create(
        OrderEvent(order_id=a.order_id, track=Track.SYSTEM, kind=EventKind.ALERT, actor=SYSTEM_ACTOR, at=now,
                   summary=f"alert opened: {rule.name}"[:255], payload={"alert": a.pk, "rule": rule.code})
        for a in alerts if a.order_id
    )
    _notify(alerts, list(rule.recipients.filter(active=True)), Notification.Reason.OPENED)
    return len(alerts)


def _resolve_cleared(rule: AlertRule, alert_ids: list[int], now: datetime) -> int:
    if not alert_ids:
        return 0
    cleared = Alert.objects.filter(pk__in=alert_ids, status__in=ACTIVE_STATUSES)
    orders = list(cleared.exclude(order=None).values_list("pk", "order_id"))
    count = cleared.update(status=AlertStatus.RESOLVED, resolved_at=now,
                           resolve_note="resolved by itself: the condition cleared")
    OrderEvent.objects.bulk_create(
        OrderEvent(order_id=order_id, track=Track.SYSTEM, kind=EventKind.ALERT, actor=SYSTEM_ACTOR, at=now,
                   summary=f"alert resolved (condition cleared): {rule.name}"[:255],
                   payload={"alert": pk, "rule": rule.code})
        for pk, order_id in orders
    )
    return count


def _escalate(rule: AlertRule, now: datetime) -> int:
    if rule.escalate_after_minutes is None:
        return 0
    due = list(Alert.objects.filter(rule=rule, status=AlertStatus.OPEN, escalated_at__isnull=True,
                                    opened_at__lte=now - timedelta(minutes=rule.escalate_after_minutes)))
    if not due:
        return 0
    Alert.objects.filter(pk__in=[a.pk for a in due]).update(escalated_at=now, severity=Severity.CRITICAL)
    OrderEvent.objects.bulk_create(
        OrderEvent(order_id=a.order_id, track=Track.SYSTEM, kind=EventKind.ALERT, actor=SYSTEM_ACTOR, at=now,
                   summary=f"alert escalated after {rule.escalate_after_minutes} min unacknowledged: "
                           f"{rule.name}"[:255], payload={"alert": a.pk, "rule": rule.code})
        for a in due if a.order_id
    )
    _notify(due, list(rule.escalate_to.filter(active=True)), Notification.Reason.ESCALATED)
    return len(due)


def _notify(alerts: list[Alert], targets: list, reason: str) -> None:
    Notification.objects.bulk_create(
        Notification(alert=a, target=t, reason=reason, next_attempt_at=timezone.now())
        for a in alerts for t in targets
    )


def ensure_builtin_rules(**kwargs) -> int:
    """Create the built-in rules that are missing; never touch one ops edited."""
    existing = set(AlertRule.objects.values_list("code", flat=True))
    missing: list[BuiltinRule] = [r for r in BUILTIN_RULES if r.code not in existing]
    AlertRule.objects.bulk_create(
        AlertRule(code=r.code, name=r.name, condition=r.condition, threshold=r.threshold,
                  severity=r.severity, escalate_after_minutes=r.escalate_after_minutes)
        for r in missing
    )
    return len(missing)
