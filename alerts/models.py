"""Alert rules, alerts and their notifications.

A rule names a built-in condition (alerts/conditions.py) with a threshold; the minute scan
opens one alert per rule and subject, resolves it when the condition clears, escalates it when
nobody acknowledged it in time. Notifications are rows delivered by their own task, so a slow
or failing notifier never holds up the scan or the other notifiers.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Severity(models.TextChoices):
    INFO = "info", _("info")
    WARNING = "warning", _("warning")
    CRITICAL = "critical", _("critical")


class NotificationTarget(models.Model):
    class Kind(models.TextChoices):
        EMAIL = "email", _("email")
        WEBHOOK = "webhook", _("JSON webhook")
        WECOM = "wecom", _("WeCom group robot")
        DINGTALK = "dingtalk", _("DingTalk group robot")

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    target = models.TextField(_("address"), help_text=_("Email addresses (comma-separated) or the robot / webhook URL."))
    secret = models.CharField(_("signing secret"), max_length=200, blank=True)
    active = models.BooleanField(_("active"), default=True)
    max_per_hour = models.PositiveIntegerField(
        _("at most per hour"), default=30,
        help_text=_("Further notifications in the hour are suppressed (and counted) instead of flooding the group."),
    )

    class Meta:
        verbose_name = _("notification target")
        verbose_name_plural = _("notification targets")
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.kind})"


class AlertRule(models.Model):
    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    condition = models.CharField(_("condition"), max_length=64)
    threshold = models.DecimalField(
        _("threshold"), max_digits=14, decimal_places=2,
        help_text=_("Minutes for time conditions, yuan for money conditions, a count otherwise."),
    )
    severity = models.CharField(_("severity"), max_length=10, choices=Severity.choices, default=Severity.WARNING)
    active = models.BooleanField(_("active"), default=True)
    recipients = models.ManyToManyField(NotificationTarget, blank=True, related_name="rules",
                                        verbose_name=_("recipients"))
    escalate_after_minutes = models.PositiveIntegerField(
        _("escalate after (minutes)"), null=True, blank=True,
        help_text=_("If still unacknowledged this long after opening; empty: never."),
    )
    escalate_to = models.ManyToManyField(NotificationTarget, blank=True, related_name="escalations",
                                         verbose_name=_("escalate to"))

    class Meta:
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")
        ordering = ["code"]

    def __str__(self):
        return self.name


class AlertStatus(models.TextChoices):
    OPEN = "open", _("open")
    ACKNOWLEDGED = "acknowledged", _("acknowledged")
    RESOLVED = "resolved", _("resolved")


ACTIVE_STATUSES = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


class Alert(models.Model):
    rule = models.ForeignKey(AlertRule, on_delete=models.PROTECT, related_name="alerts", verbose_name=_("rule"))
    subject = models.CharField(_("subject"), max_length=120, help_text=_("What it is about, e.g. order:TB2026…"))
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, null=True, blank=True,
                              related_name="alerts", verbose_name=_("order"))
    severity = models.CharField(_("severity"), max_length=10, choices=Severity.choices)
    status = models.CharField(_("status"), max_length=12, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    title = models.CharField(_("title"), max_length=255)
    opened_at = models.DateTimeField(_("opened at"))
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True,
                                        blank=True, related_name="+")
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", verbose_name=_("assignee"))
    escalated_at = models.DateTimeField(_("escalated at"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True,
                                    blank=True, related_name="+")
    resolve_note = models.TextField(_("resolution"), blank=True)

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"], condition=Q(status__in=["open", "acknowledged"]),
                name="alert_one_active_per_rule_subject",
            ),
        ]
        indexes = [
            models.Index(fields=["rule", "status"], name="alert_rule_status_idx"),
            models.Index(fields=["status", "opened_at"], name="alert_status_opened_idx"),
        ]

    def __str__(self):
        return f"{self.rule.code} {self.subject} ({self.status})"


class Notification(models.Model):
    class Reason(models.TextChoices):
        OPENED = "opened", _("opened")
        ESCALATED = "escalated", _("escalated")

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        SENT = "sent", pgettext_lazy("notification", "sent")
        FAILED = "failed", _("failed")
        SUPPRESSED = "suppressed", _("suppressed (rate limit)")

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    target = models.ForeignKey(NotificationTarget, on_delete=models.CASCADE, related_name="notifications")
    reason = models.CharField(_("reason"), max_length=10, choices=Reason.choices)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"))
    last_error = models.TextField(_("last error"), blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="notification_due_idx"),
            models.Index(fields=["target", "sent_at"], name="notification_rate_idx"),
        ]

    def __str__(self):
        return f"{self.alert_id} → {self.target} ({self.state})"
