"""Approval workflow and exception cases of an order (issue 7).

Imported at the end of orders/models.py, so these are models of the `orders` app. They change
only through orders.approvals and orders.cases, which lock the order row first and write the
order's timeline (OrderEvent) in the same transaction.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from .models import CustomerIdentity, Order, money_field

__all__ = [
    "ApprovalLevel", "ApprovalPolicy", "ApprovalStatus", "ApprovalTask", "CaseKind",
    "CaseSeverity", "CaseStage", "CaseStatus", "ExceptionCase", "ExceptionSop", "Responsibility",
]

# --- approvals ------------------------------------------------------------------------------


class ApprovalPolicy(models.Model):
    """Which paid orders need a person's approval, and who approves them, level by level.

    A policy matches an order when every criterion it sets holds: payable ≥ `min_amount`,
    the buyer's level in `customer_levels` (if any), some line's SKU category in
    `sku_categories` (if any). Among matching active policies the lowest `priority` wins.
    """

    name = models.CharField(_("name"), max_length=100, unique=True)
    active = models.BooleanField(_("active"), default=True)
    priority = models.PositiveIntegerField(
        _("priority"), default=100, help_text=_("Lower is checked first when several match.")
    )
    min_amount = money_field(_("minimum payable"))
    currency = models.CharField(
        _("currency"), max_length=3, default="CNY",
        help_text=_("Orders in another currency cannot be compared and always match the amount."),
    )
    customer_levels = models.JSONField(
        _("customer levels"), default=list, blank=True,
        help_text=_('Only buyers of these levels, e.g. ["vip", "wholesale"]; empty: any buyer.'),
    )
    sku_categories = models.JSONField(
        _("SKU categories"), default=list, blank=True,
        help_text=_('Only orders with a line in one of these categories; empty: any order.'),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("approval policy")
        verbose_name_plural = _("approval policies")
        ordering = ["priority", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(min_amount__gte=0), name="approvalpolicy_amount_not_negative"),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        levels = self.customer_levels or []
        if not isinstance(levels, list) or any(v not in CustomerIdentity.Level.values for v in levels):
            errors["customer_levels"] = _("A list of customer levels: %(levels)s.") % {
                "levels": ", ".join(CustomerIdentity.Level.values)}
        categories = self.sku_categories or []
        if not isinstance(categories, list) or not all(isinstance(v, str) and v for v in categories):
            errors["sku_categories"] = _("A list of SKU category names.")
        if errors:
            raise ValidationError(errors)


class ApprovalLevel(models.Model):
    """One step of a policy: a role (Django group) or one person approves within `due_hours`,
    else the task passes to the backup and the superior is told."""

    policy = models.ForeignKey(ApprovalPolicy, on_delete=models.CASCADE, related_name="levels")
    position = models.PositiveSmallIntegerField(_("position"), default=1)
    approver_group = models.CharField(
        _("approver role"), max_length=150, blank=True,
        help_text=_("Name of a group (role), e.g. ops: any of its members may decide."),
    )
    approver_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("approver"),
    )
    backup_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("backup approver"), help_text=_("Takes over a task that is not decided in time."),
    )
    superior_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("superior"), help_text=_("Is told when a task is not decided in time."),
    )
    due_hours = models.PositiveIntegerField(_("hours to decide"), default=8)

    class Meta:
        verbose_name = _("approval level")
        verbose_name_plural = _("approval levels")
        ordering = ["policy", "position"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "position"], name="approvallevel_position_unique"),
            models.CheckConstraint(
                condition=~Q(approver_group="") | Q(approver_user__isnull=False),
                name="approvallevel_has_approver",
            ),
            models.CheckConstraint(condition=Q(due_hours__gt=0), name="approvallevel_due_positive"),
        ]

    def __str__(self):
        return f"{self.policy_id}#{self.position}"

    def clean(self):
        from django.contrib.auth.models import Group

        if not self.approver_group and self.approver_user_id is None:
            raise ValidationError(_("Name an approver role or an approver."))
        if self.approver_group and not Group.objects.filter(name=self.approver_group).exists():
            raise ValidationError({"approver_group": _("No role (group) has this name.")})


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    APPROVED = "approved", _("approved")
    REJECTED = "rejected", pgettext_lazy("approval", "rejected")
    TRANSFERRED = "transferred", _("transferred to the backup")
    OVERRIDDEN = "overridden", _("overridden")
    WITHDRAWN = "withdrawn", _("withdrawn (order cancelled or refunded)")


class ApprovalTask(models.Model):
    """One person's (or role's) decision on one order at one level of a policy.

    The approver, backup and superior are copied from the level when the task is created, so a
    later edit of the policy does not change who may decide a task already waiting."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="approval_tasks")
    policy = models.ForeignKey(ApprovalPolicy, on_delete=models.PROTECT, related_name="tasks")
    level = models.PositiveSmallIntegerField(_("level"))
    assignee_group = models.CharField(_("approver role"), max_length=150, blank=True)
    assignee_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("approver"),
    )
    backup_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("backup approver"),
    )
    superior_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("superior"),
    )
    status = models.CharField(
        _("status"), max_length=12, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    due_at = models.DateTimeField(_("due at"))
    escalated_at = models.DateTimeField(
        _("superior told at"), null=True, blank=True,
        help_text=_("When the overdue task was passed on (or the superior told); once per task."),
    )
    transferred_from = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("transferred from"),
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("approval task")
        verbose_name_plural = _("approval tasks")
        ordering = ["-created_at", "-id"]
        constraints = [
            # One decision waits per order at any time: the chain moves one level at a time.
            models.UniqueConstraint(
                fields=["order"], condition=Q(status="pending"), name="approvaltask_one_pending_per_order"
            ),
            models.CheckConstraint(
                condition=Q(status="pending") | Q(decided_at__isnull=False),
                name="approvaltask_decided_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "due_at"], name="approvaltask_status_due_idx"),
            models.Index(fields=["status", "created_at"], name="approvaltask_status_since_idx"),
        ]

    def __str__(self):
        return f"{self.order_id} L{self.level} {self.status}"

    @property
    def is_pending(self) -> bool:
        return self.status == ApprovalStatus.PENDING


# --- exception cases ------------------------------------------------------------------------


class CaseKind(models.TextChoices):
    PLACEHOLDER_ADDRESS = "placeholder_address", _("placeholder address")
    PAYMENT_TIMEOUT = "payment_timeout", _("payment timeout")
    STOCK_SHORTAGE = "stock_shortage", _("stock shortage")
    CARRIER_ANOMALY = "carrier_anomaly", _("carrier anomaly")
    INTAKE_HELD = "intake_held", _("held by channel intake")
    AMOUNT_MISMATCH = "amount_mismatch", _("amount mismatch")
    INTERCEPT_RETURN = "intercept_return", _("parcel out on a cancelled or refunded order")
    REFUND_OWED = "refund_owed", _("money received for a cancelled order")


class CaseStage(models.TextChoices):
    PRE_SALE = "pre_sale", _("pre-sale")
    IN_SALE = "in_sale", _("in-sale")
    AFTER_SALE = "after_sale", _("after-sale")


class CaseSeverity(models.TextChoices):
    LOW = "low", _("low")
    MEDIUM = "medium", _("medium")
    HIGH = "high", _("high")
    CRITICAL = "critical", _("critical")


class Responsibility(models.TextChoices):
    CUSTOMER = "customer", _("customer")
    PLATFORM = "platform", _("platform / partner")
    INTERNAL = "internal", _("internal")


class CaseStatus(models.TextChoices):
    OPEN = "open", _("open")
    CLOSED = "closed", _("closed")


class ExceptionCase(models.Model):
    """An order problem a person must resolve, handled by its kind's SOP (orders.cases.SOPS).

    Stage, severity, responsibility, owner and due time are taken from the SOP when the case is
    opened; it closes only with a root cause."""

    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, null=True, blank=True, related_name="exception_cases"
    )
    kind = models.CharField(_("kind"), max_length=32, choices=CaseKind.choices)
    sub_reason = models.CharField(
        _("sub-reason"), max_length=32, blank=True,
        help_text=_("e.g. no_update, off_route or repeated_returns for a carrier anomaly."),
    )
    stage = models.CharField(_("stage"), max_length=12, choices=CaseStage.choices)
    severity = models.CharField(_("severity"), max_length=10, choices=CaseSeverity.choices)
    responsibility = models.CharField(_("responsibility"), max_length=10, choices=Responsibility.choices)
    status = models.CharField(_("status"), max_length=8, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    owner_role = models.CharField(_("owner role"), max_length=150)
    detail = models.TextField(_("detail"), blank=True)
    opened_at = models.DateTimeField(_("opened at"), default=timezone.now)
    due_at = models.DateTimeField(_("due at"))
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("closed by"),
    )
    root_cause = models.TextField(_("root cause"), blank=True)

    class Meta:
        verbose_name = _("exception case")
        verbose_name_plural = _("exception cases")
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "kind"], condition=Q(status="open"), name="exceptioncase_one_open_per_kind"
            ),
            models.CheckConstraint(
                condition=Q(status="open") | (Q(closed_at__isnull=False) & ~Q(root_cause="")),
                name="exceptioncase_closed_has_root_cause",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "opened_at"], name="exceptioncase_status_open_idx"),
            models.Index(fields=["status", "due_at"], name="exceptioncase_status_due_idx"),
            models.Index(fields=["order", "kind", "opened_at"], name="exceptioncase_order_kind_idx"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.kind} {self.order_id or '-'} ({self.status})"


class ExceptionSop(models.Model):
    """Ops' override of one kind's SOP; an empty field keeps the built-in value
    (orders.cases.SOPS), whose texts follow the user's language."""

    kind = models.CharField(_("kind"), max_length=32, choices=CaseKind.choices, unique=True)
    stage = models.CharField(_("stage"), max_length=12, choices=CaseStage.choices, blank=True)
    severity = models.CharField(_("severity"), max_length=10, choices=CaseSeverity.choices, blank=True)
    responsibility = models.CharField(
        _("responsibility"), max_length=10, choices=Responsibility.choices, blank=True
    )
    recommended_action = models.TextField(_("recommended action"), blank=True)
    owner_role = models.CharField(_("owner role"), max_length=150, blank=True)
    time_limit_hours = models.PositiveIntegerField(_("time limit (hours)"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("exception SOP")
        verbose_name_plural = _("exception SOPs")
        ordering = ["kind"]

    def __str__(self):
        return self.get_kind_display()
