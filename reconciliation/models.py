"""Money in the system: fund vouchers, imported statements, reconciliation runs, discrepancies.

Vouchers and statement lines are append-only: an amount is never edited, a correction is a new
reversing voucher. On PostgreSQL a trigger enforces it for every client, not just this code.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


def money(verbose_name, **kwargs):
    return models.DecimalField(verbose_name, max_digits=14, decimal_places=2, **kwargs)


class VoucherKind(models.TextChoices):
    PAYMENT = "payment", _("payment")
    REFUND = "refund", _("refund")
    REVERSAL = "reversal", _("reversal")
    ADJUSTMENT = "adjustment", _("adjustment")


class VoucherStatus(models.TextChoices):
    PENDING_CHECK = "pending_check", _("pending check")
    CONFIRMED = "confirmed", _("confirmed")
    REVERSED = "reversed", _("reversed")


# Vouchers that count towards an order's received amount. A reversed payment still counts:
# its reversal (the negative twin) is confirmed, so the two net to zero and the history stays.
COUNTED_STATUSES = (VoucherStatus.CONFIRMED, VoucherStatus.REVERSED)


class FundVoucher(models.Model):
    """One money movement, keyed by the provider's transaction number."""

    transaction_no = models.CharField(_("transaction no"), max_length=64, unique=True)
    provider = models.CharField(_("provider"), max_length=32)
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, null=True, blank=True,
        related_name="vouchers", verbose_name=_("order"),
        help_text=_("Empty while the money has no order yet; linked when it appears."),
    )
    order_no = models.CharField(
        _("order no (as sent)"), max_length=64, blank=True, db_index=True,
        help_text=_("The merchant order number the provider sent."),
    )
    kind = models.CharField(_("kind"), max_length=12, choices=VoucherKind.choices)
    amount = money(_("amount"), help_text=_("Signed: money in is positive, refunds and reversals negative."))
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    occurred_at = models.DateTimeField(_("occurred at"))
    business_date = models.DateField(
        _("business day"), help_text=_("Local (Asia/Shanghai) day of the payment.")
    )
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    callback_delay_seconds = models.IntegerField(
        _("callback delay (s)"), default=0,
        help_text=_("How long after the payment its notification reached us."),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=VoucherStatus.choices, default=VoucherStatus.CONFIRMED
    )
    check_reason = models.CharField(_("why it needs a check"), max_length=255, blank=True)
    reverses = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by",
        verbose_name=_("reverses"),
    )
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    raw = models.JSONField(_("raw notification"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("fund voucher")
        verbose_name_plural = _("fund vouchers")
        ordering = ["-occurred_at", "-id"]
        permissions = [("reverse_fundvoucher", _("Can reverse fund vouchers"))]
        indexes = [
            models.Index(fields=["business_date"], name="voucher_business_date_idx"),
            models.Index(
                fields=["status", "occurred_at"], name="voucher_unlinked_idx",
                condition=Q(order__isnull=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="reversal") | Q(reverses__isnull=False),
                name="voucher_reversal_links_original",
            ),
            models.CheckConstraint(
                condition=~Q(kind="payment") | Q(amount__gt=0), name="voucher_payment_positive"
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.transaction_no} {self.amount}"

    def delete(self, *args, **kwargs):
        raise ValueError("fund vouchers are never deleted; reverse them")


class PaymentCallback(models.Model):
    """Every callback that reached us, authentic or not: nothing arrives unrecorded."""

    class Outcome(models.TextChoices):
        CREATED = "created", _("voucher created")
        DUPLICATE = "duplicate", _("repeat of a known transaction")
        IGNORED = "ignored", _("authentic, but no money moved")
        REJECTED = "rejected", _("rejected")

    provider = models.CharField(_("provider"), max_length=32)
    transaction_no = models.CharField(_("transaction no"), max_length=64, blank=True, db_index=True)
    outcome = models.CharField(_("outcome"), max_length=12, choices=Outcome.choices)
    detail = models.CharField(_("detail"), max_length=255, blank=True)
    body_sha256 = models.CharField(_("body hash"), max_length=64)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("payment callback")
        verbose_name_plural = _("payment callbacks")
        ordering = ["-id"]

    def __str__(self):
        return f"{self.provider} {self.transaction_no} {self.outcome}"


class Statement(models.Model):
    """One imported statement file: bank export, provider bill or channel settlement."""

    account = models.CharField(
        _("account"), max_length=64,
        help_text=_("Bank account, merchant id or channel code the file belongs to."),
    )
    channel = models.ForeignKey(
        "channels.Channel", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("channel"), help_text=_("Set for channel settlement files."),
    )
    profile = models.CharField(_("profile"), max_length=32)
    provider = models.CharField(
        _("provider"), max_length=40, db_index=True,
        help_text=_("Whose transactions the lines are: wechatpay, alipay, channel:<code>, or "
                    "the account for bank and generic files; vouchers of this provider are "
                    "matched against them."),
    )
    filename = models.CharField(_("file name"), max_length=255, blank=True)
    encoding = models.CharField(_("encoding"), max_length=16, blank=True)
    checksum = models.CharField(_("SHA-256"), max_length=64)
    size = models.PositiveBigIntegerField(_("size (bytes)"), default=0)
    lines = models.PositiveIntegerField(_("lines"), default=0)
    period_start = models.DateField(_("from"), null=True)
    period_end = models.DateField(_("to"), null=True)
    total_in = money(_("money in"), default=Decimal("0"))
    total_out = money(_("money out"), default=Decimal("0"))
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    imported_at = models.DateTimeField(_("imported at"), auto_now_add=True)

    class Meta:
        verbose_name = _("statement")
        verbose_name_plural = _("statements")
        ordering = ["-imported_at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "checksum"], name="statement_file_once"),
        ]

    def __str__(self):
        return f"{self.account} {self.filename} ({self.lines})"


class StatementLine(models.Model):
    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="statement_lines")
    row = models.PositiveIntegerField(_("row"))
    transaction_no = models.CharField(_("transaction no"), max_length=64)
    match_key = models.CharField(
        _("match key"), max_length=64,
        help_text=_("The refund number for refund rows, else the transaction number."),
    )
    order_ref = models.CharField(_("order reference"), max_length=64, blank=True)
    occurred_at = models.DateTimeField(_("occurred at"))
    business_date = models.DateField(_("business day"))
    amount = money(_("amount"))
    fee = money(_("fee"), default=Decimal("0"))
    kind = models.CharField(_("kind"), max_length=12)
    counterparty = models.CharField(_("counterparty"), max_length=128, blank=True)
    memo = models.CharField(_("memo"), max_length=255, blank=True)
    currency = models.CharField(_("currency"), max_length=3, default="CNY")

    class Meta:
        verbose_name = _("statement line")
        verbose_name_plural = _("statement lines")
        ordering = ["statement", "row"]
        indexes = [
            models.Index(fields=["business_date", "match_key"], name="line_day_key_idx"),
            models.Index(fields=["match_key"], name="line_match_key_idx"),
        ]

    def __str__(self):
        return f"{self.transaction_no} {self.amount}"


class ReconciliationRun(models.Model):
    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", _("nightly schedule")
        MANUAL = "manual", _("on demand")
        IMPORT = "import", _("statement imported")

    class State(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    period_start = models.DateField(_("from"))
    period_end = models.DateField(_("to"))
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger.choices)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.RUNNING)
    vouchers = models.PositiveIntegerField(_("vouchers"), default=0)
    statement_lines = models.PositiveIntegerField(_("statement lines"), default=0)
    matched = models.PositiveIntegerField(_("matched"), default=0)
    counts = models.JSONField(_("discrepancies by kind"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)
    attempt = models.PositiveSmallIntegerField(
        _("attempt"), default=1, help_text=_("A run interrupted by a stopped worker is retried as the next attempt."),
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Queued runs: when queued; from the claim on: when a worker started it.
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("reconciliation run")
        verbose_name_plural = _("reconciliation runs")
        ordering = ["-id"]

    def __str__(self):
        return f"{self.period_start}–{self.period_end} ({self.state})"


class StatementImport(models.Model):
    """A statement file handed to a worker: accepted at once, imported in the background, its
    outcome (the statement, or every bad row) kept for the page and the API to read.

    The file's bytes live in the row until the import ends, so any worker can take it and a
    worker killed halfway leaves it to be taken again (the import itself is all or nothing).
    """

    class State(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("importing")
        IMPORTED = "imported", _("imported")
        REFUSED = "refused", _("refused, nothing imported")
        FAILED = "failed", _("failed")

    account = models.CharField(_("account"), max_length=64)
    profile = models.CharField(_("profile"), max_length=32, blank=True)
    provider = models.CharField(_("provider"), max_length=40, blank=True)
    filename = models.CharField(_("file name"), max_length=255, blank=True)
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    checksum = models.CharField(_("SHA-256"), max_length=64)
    data = models.BinaryField(_("file"), editable=False)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    statement = models.OneToOneField(
        Statement, on_delete=models.PROTECT, null=True, blank=True, related_name="import_job",
        verbose_name=_("statement"),
    )
    detail = models.TextField(_("outcome"), blank=True)
    rows = models.JSONField(_("bad rows (first 500)"), default=list, blank=True)
    bad_rows = models.PositiveIntegerField(_("bad rows"), default=0)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    submitted_at = models.DateTimeField(_("submitted at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("statement import")
        verbose_name_plural = _("statement imports")
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(state="imported") | Q(statement__isnull=False), name="statementimport_imported_has_statement",
            ),
            models.CheckConstraint(
                condition=Q(state__in=["queued", "running"]) | Q(finished_at__isnull=False),
                name="statementimport_finished_has_time",
            ),
        ]
        indexes = [models.Index(fields=["state", "started_at"], name="statementimport_state_idx")]

    def __str__(self):
        return f"{self.filename or self.account} ({self.state})"


class DiscrepancyKind(models.TextChoices):
    MISSING_IN_STATEMENT = "missing_in_statement", _("missing in statement")
    MISSING_IN_SYSTEM = "missing_in_system", _("missing in system")
    AMOUNT_MISMATCH = "amount_mismatch", _("amount mismatch")
    DUPLICATE_NOTIFICATION = "duplicate_notification", _("duplicate notification")
    DELAYED_CALLBACK = "delayed_callback", _("delayed callback")
    FEE_DEDUCTION = "fee_deduction", _("fee deduction")
    UNMATCHED_REFUND = "unmatched_refund", _("unmatched refund")
    REFUND_EXCEEDS_PAYMENT = "refund_exceeds_payment", _("refunds exceed payments")
    REFUND_OWED = "refund_owed", _("refund owed (paid, order cancelled)")


class DiscrepancyStatus(models.TextChoices):
    OPEN = "open", _("open")
    PENDING_CONFIRMATION = "pending_confirmation", _("pending confirmation")
    RESOLVED = "resolved", _("resolved")
    APPEALING = "appealing", _("appealing")
    CLOSED = "closed", _("closed")


UNSETTLED_STATUSES = (
    DiscrepancyStatus.OPEN, DiscrepancyStatus.PENDING_CONFIRMATION, DiscrepancyStatus.APPEALING
)


class Discrepancy(models.Model):
    """One difference between the system and a statement. A re-run finds the same fingerprint
    and updates it, so a period reconciled twice never lists a difference twice."""

    fingerprint = models.CharField(_("fingerprint"), max_length=160, unique=True)
    kind = models.CharField(_("kind"), max_length=24, choices=DiscrepancyKind.choices)
    status = models.CharField(
        _("status"), max_length=24, choices=DiscrepancyStatus.choices, default=DiscrepancyStatus.OPEN
    )
    business_date = models.DateField(_("business day"))
    transaction_no = models.CharField(_("transaction no"), max_length=64, blank=True)
    order_no = models.CharField(_("order no"), max_length=64, blank=True)
    channel_code = models.CharField(_("channel"), max_length=32, blank=True)
    expected = money(_("expected (system)"), null=True, blank=True)
    actual = money(_("actual (statement)"), null=True, blank=True)
    difference = money(_("difference"), default=Decimal("0"))
    voucher = models.ForeignKey(
        FundVoucher, on_delete=models.PROTECT, null=True, blank=True, related_name="discrepancies"
    )
    statement_line = models.ForeignKey(
        StatementLine, on_delete=models.PROTECT, null=True, blank=True, related_name="discrepancies"
    )
    suggested_voucher = models.ForeignKey(
        FundVoucher, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("suggested match"),
        help_text=_("Same amount, close in time, order number fragment: confirm or reject."),
    )
    first_run = models.ForeignKey(
        ReconciliationRun, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    last_run = models.ForeignKey(
        ReconciliationRun, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", verbose_name=_("assignee"),
    )
    detail = models.CharField(_("detail"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("found at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("discrepancy")
        verbose_name_plural = _("discrepancies")
        ordering = ["-business_date", "-id"]
        indexes = [
            models.Index(fields=["status", "kind"], name="discrepancy_status_kind_idx"),
            models.Index(fields=["business_date", "channel_code"], name="discrepancy_day_idx"),
        ]

    def __str__(self):
        return f"{self.kind} {self.transaction_no or self.order_no} {self.difference}"


class DiscrepancyEvent(models.Model):
    """The history of a discrepancy: status changes, assignments, notes. Append-only."""

    discrepancy = models.ForeignKey(Discrepancy, on_delete=models.PROTECT, related_name="history")
    at = models.DateTimeField(_("at"), auto_now_add=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    from_status = models.CharField(_("from"), max_length=24, blank=True)
    to_status = models.CharField(_("to"), max_length=24, blank=True)
    assignee = models.CharField(_("assigned to"), max_length=150, blank=True)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        verbose_name = _("discrepancy history entry")
        verbose_name_plural = _("discrepancy history")
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.from_status} → {self.to_status}"


class PaymentMatch(models.Model):
    """A voucher that may belong to an unpaid order (fuzzy match), waiting for finance."""

    class State(models.TextChoices):
        PENDING = "pending", _("pending confirmation")
        CONFIRMED = "confirmed", _("confirmed")
        REJECTED = "rejected", _("rejected")

    voucher = models.ForeignKey(FundVoucher, on_delete=models.PROTECT, related_name="matches")
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="+")
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    reason = models.CharField(_("why suggested"), max_length=255)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    created_at = models.DateTimeField(_("suggested at"), auto_now_add=True)

    class Meta:
        verbose_name = _("payment match")
        verbose_name_plural = _("payment matches (pending confirmation)")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["voucher", "order"], name="payment_match_once"),
        ]

    def __str__(self):
        return f"{self.voucher} → {self.order}"
