"""Finance admin: ledgers are read-only; decisions go through the same services as the API."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from oms.admin import ReadOnlyAdmin
from oms.errors import DomainError

from . import paid_check
from .models import (
    Discrepancy,
    DiscrepancyEvent,
    FundVoucher,
    PaymentCallback,
    PaymentMatch,
    ReconciliationRun,
    Statement,
    StatementLine,
)


@admin.register(FundVoucher)
class FundVoucherAdmin(ReadOnlyAdmin):
    list_display = ["transaction_no", "provider", "kind", "amount", "currency", "order",
                    "occurred_at", "status"]
    list_filter = ["provider", "kind", "status", "business_date"]
    search_fields = ["transaction_no", "order_no", "order__order_no"]
    date_hierarchy = "business_date"
    list_select_related = ["order"]
    raw_id_fields = ["order", "reverses"]


@admin.register(PaymentCallback)
class PaymentCallbackAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "provider", "transaction_no", "outcome", "detail"]
    list_filter = ["provider", "outcome"]
    search_fields = ["transaction_no"]


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdmin):
    list_display = ["imported_at", "account", "profile", "provider", "filename", "lines",
                    "period_start", "period_end", "total_in", "total_out"]
    list_filter = ["profile", "provider"]
    search_fields = ["account", "filename", "checksum"]


@admin.register(StatementLine)
class StatementLineAdmin(ReadOnlyAdmin):
    list_display = ["statement", "row", "transaction_no", "order_ref", "occurred_at", "amount", "fee", "kind"]
    list_filter = ["kind", "business_date"]
    search_fields = ["transaction_no", "match_key", "order_ref"]
    show_full_result_count = False  # counting millions of lines on every page is wasted work


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "period_start", "period_end", "trigger", "state", "vouchers",
                    "statement_lines", "matched", "counts", "finished_at"]
    list_filter = ["state", "trigger"]


class DiscrepancyEventInline(admin.TabularInline):
    model = DiscrepancyEvent
    fields = ["at", "user", "from_status", "to_status", "assignee", "note"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Discrepancy)
class DiscrepancyAdmin(ReadOnlyAdmin):
    """Read here; worked on the finance page (/finance/discrepancies/), which keeps the history."""

    list_display = ["business_date", "kind", "status", "transaction_no", "order_no",
                    "channel_code", "expected", "actual", "difference", "assignee"]
    list_filter = ["status", "kind", "channel_code", "business_date"]
    search_fields = ["transaction_no", "order_no"]
    inlines = [DiscrepancyEventInline]


@admin.register(PaymentMatch)
class PaymentMatchAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "voucher", "order", "state", "reason", "decided_by"]
    list_filter = ["state"]
    actions = ["confirm", "reject"]

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("reconciliation.change_paymentmatch")

    @admin.action(description=_("Confirm: link the payment to the order"))
    def confirm(self, request, queryset):
        self._decide(request, queryset, True)

    @admin.action(description=_("Reject the suggested match"))
    def reject(self, request, queryset):
        self._decide(request, queryset, False)

    def _decide(self, request, queryset, confirm: bool):
        for match in queryset:
            try:
                paid_check.decide_match(match.pk, confirm, request.user)
            except DomainError as exc:
                self.message_user(request, f"{match}: {exc.detail}", messages.ERROR)
