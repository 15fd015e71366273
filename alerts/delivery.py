"""Delivering notifications: each one claimed by a conditional UPDATE, sent outside any
transaction, retried with backoff. A failing notifier only ever delays its own rows."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import Notification
from .notifiers import Message, NotifyError, send

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 6
CLAIM_FOR = timedelta(minutes=2)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=30 * 2 ** (attempts - 1))  # 30 s, 1 min, 2 min, 4 min, 8 min


def deliver_due(limit: int = 200) -> dict[str, int]:
    now = timezone.now()
    due = list(Notification.objects.filter(state=Notification.State.PENDING, next_attempt_at__lte=now)
               .order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    outcome = {"sent": 0, "failed": 0, "retrying": 0, "suppressed": 0}
    for pk in due:
        # Claimed: another worker running the same sweep skips it.
        if not Notification.objects.filter(pk=pk, state=Notification.State.PENDING,
                                           next_attempt_at__lte=now).update(next_attempt_at=now + CLAIM_FOR):
            continue
        outcome[_deliver(Notification.objects.select_related("alert__rule", "target").get(pk=pk))] += 1
    return outcome


def _deliver(notification: Notification) -> str:
    target = notification.target
    now = timezone.now()
    sent_last_hour = Notification.objects.filter(
        target=target, state=Notification.State.SENT, sent_at__gte=now - timedelta(hours=1)).count()
    if sent_last_hour >= target.max_per_hour:
        _finish(notification, Notification.State.SUPPRESSED,
                error=f"rate limit: {sent_last_hour} sent to {target.name} in the last hour")
        return "suppressed"
    try:
        send(target.kind, target.target, _message(notification), secret=target.secret)
    except Exception as exc:  # noqa: BLE001 - any notifier failure is this row's, not the sweep's
        reason = str(exc) if isinstance(exc, NotifyError) else f"{exc.__class__.__name__}: {exc}"
        attempts = notification.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            _finish(notification, Notification.State.FAILED, attempts=attempts, error=reason)
            logger.warning("notification %s failed for good: %s", notification.pk, reason)
            return "failed"
        Notification.objects.filter(pk=notification.pk).update(
            attempts=attempts, last_error=reason[:2000], next_attempt_at=now + backoff(attempts))
        return "retrying"
    _finish(notification, Notification.State.SENT, attempts=notification.attempts + 1, sent_at=now)
    return "sent"


def _finish(notification, state, *, attempts=None, error="", sent_at=None) -> None:
    Notification.objects.filter(pk=notification.pk).update(
        state=state, attempts=attempts if attempts is not None else notification.attempts,
        last_error=error[:2000], sent_at=sent_at)


def _message(notification: Notification) -> Message:
    alert = notification.alert
    prefix = "[escalated] " if notification.reason == Notification.Reason.ESCALATED else ""
    base = getattr(settings, "OMS_PUBLIC_URL", "").rstrip("/")
    return Message(
        title=f"{prefix}{alert.rule.name}",
        text=alert.title,
        severity=alert.severity,
        url=f"{base}/ops/alerts/{alert.pk}/" if base else "",
        subject=alert.subject,
    )


def notify_people(user_ids, *, title: str, text: str, severity: str = "warning", subject: str = "") -> int:
    """Email the given users (those with an address) directly, e.g. the backup approver and the
    superior of an overdue approval. A failure is logged, never raised: the caller's work is done."""
    from django.contrib.auth import get_user_model

    addresses = list(get_user_model().objects.filter(pk__in=[u for u in user_ids if u], is_active=True)
                     .exclude(email="").values_list("email", flat=True))
    if not addresses:
        return 0
    try:
        send("email", ",".join(sorted(set(addresses))), Message(title=title, text=text, severity=severity,
                                                                subject=subject))
    except Exception:  # noqa: BLE001 - a notice that cannot be sent must not undo the transfer
        logger.warning("could not email %s about %s", addresses, subject, exc_info=True)
        return 0
    return len(set(addresses))
