"""Ops admin for approvals and exception cases (imported by orders/admin.py).

Policies and SOP overrides are configuration and edited here; tasks and cases change only
through orders.approvals / orders.cases, which the actions below call (a reject or a close
asks for its reason on an intermediate page first)."""

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from oms.admin import ReadOnlyAdmin
from oms.errors import DomainError

from . import approvals, cases
from .models import (
    ApprovalLevel,
    ApprovalPolicy,
    ApprovalStatus,
    ApprovalTask,
    CaseStatus,
    CustomerIdentity,
    ExceptionCase,
    ExceptionSop,
)


class ReasonActionForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), max_length=4000)


def reason_action(modeladmin, request, queryset, *, title, label, apply):
    """An admin action that first asks for a text (reason, note, root cause), then calls
    `apply(obj, text)` per selected row; refusals are listed, the others done."""
    form = ReasonActionForm(request.POST if "apply" in request.POST else None)
    form.fields["text"].label = label
    if "apply" in request.POST and form.is_valid():
        done, refused = 0, []
        for obj in queryset:
            try:
                apply(obj, form.cleaned_data["text"])
                done += 1
            except DomainError as exc:
                refused.append(f"#{obj.pk}: {exc.detail}")
        modeladmin.message_user(request, _("%(n)d done.") % {"n": done}, messages.SUCCESS)
        for reason in refused[:20]:
            modeladmin.message_user(request, reason, messages.WARNING)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": modeladmin.model._meta,
        "queryset": queryset,
        "form": form,
        "action": request.POST.get("action"),
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/orders/reason_action.html", context)


def _report(modeladmin, request, results):
    done = sum(1 for ok in results if ok is True)
    modeladmin.message_user(request, _("%(n)d done.") % {"n": done}, messages.SUCCESS)
    for reason in [r for r in results if r is not True][:20]:
        modeladmin.message_user(request, reason, messages.WARNING)


# --- approvals ------------------------------------------------------------------------------


class ApprovalLevelInline(admin.TabularInline):
    model = ApprovalLevel
    extra = 0
    min_num = 1
    fields = ["position", "approver_group", "approver_user", "backup_user", "superior_user", "due_hours"]
    raw_id_fields = ["approver_user", "backup_user", "superior_user"]
    ordering = ["position"]


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "active", "priority", "min_amount", "currency", "customer_levels",
                    "sku_categories", "level_count"]
    list_filter = ["active"]
    list_editable = ["active", "priority"]
    search_fields = ["name"]
    inlines = [ApprovalLevelInline]

    @admin.display(description=_("levels"))
    def level_count(self, policy):
        return policy.levels.count()

    def has_delete_permission(self, request, obj=None):
        # Tasks keep their policy: deactivate a policy instead of deleting it.
        return super().has_delete_permission(request, obj) and (obj is None or not obj.tasks.exists())


@admin.register(ApprovalTask)
class ApprovalTaskAdmin(ReadOnlyAdmin):
    list_display = ["id", "order", "policy", "level", "status", "assignee_group", "assignee_user",
                    "backup_user", "due_at", "escalated_at", "decided_by", "decided_at"]
    list_filter = ["status", "policy", "assignee_group", "level"]
    search_fields = ["=order__order_no"]
    list_select_related = ["order", "policy", "assignee_user", "backup_user", "decided_by"]
    raw_id_fields = ["order"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["approve_selected", "reject_selected"]

    @admin.action(description=_("Approve selected pending tasks"))
    def approve_selected(self, request, queryset):
        results = []
        for task in queryset.filter(status=ApprovalStatus.PENDING):
            try:
                approvals.decide(task.pk, request.user, True, "")
                results.append(True)
            except DomainError as exc:
                results.append(f"#{task.pk}: {exc.detail}")
        _report(self, request, results)

    @admin.action(description=_("Reject selected pending tasks (puts the orders on hold)…"))
    def reject_selected(self, request, queryset):
        return reason_action(
            self, request, queryset.filter(status=ApprovalStatus.PENDING),
            title=_("Reject approval tasks"), label=_("Why are these orders rejected?"),
            apply=lambda task, text: approvals.decide(task.pk, request.user, False, text),
        )


# --- exception cases ------------------------------------------------------------------------


def _sop_html(sop: dict):
    rows = [
        (_("Stage"), sop["stage"]), (_("Severity"), sop["severity"]),
        (_("Responsibility"), sop["responsibility"]), (_("Owner role"), sop["owner_role"]),
        (_("Time limit (hours)"), sop["time_limit_hours"]),
        (_("Recommended action"), sop["recommended_action"]),
    ]
    return format_html("<table>{}</table>", format_html_join(
        "", "<tr><th>{}</th><td style='white-space: pre-wrap'>{}</td></tr>", rows))


@admin.register(ExceptionCase)
class ExceptionCaseAdmin(ReadOnlyAdmin):
    list_display = ["id", "order", "kind", "sub_reason", "stage", "severity", "responsibility",
                    "status", "owner_role", "opened_at", "due_at", "closed_at"]
    list_filter = ["status", "stage", "kind", "severity", "responsibility", "owner_role"]
    search_fields = ["=order__order_no"]
    list_select_related = ["order"]
    date_hierarchy = "opened_at"
    show_full_result_count = False
    actions = ["close_selected"]
    fieldsets = [
        (None, {"fields": ["order", "kind", "sub_reason", "status", "detail"]}),
        (_("Handling (SOP)"), {"fields": ["sop"]}),
        (_("Case"), {"fields": ["stage", "severity", "responsibility", "owner_role", "opened_at",
                                "due_at", "closed_at", "closed_by", "root_cause"]}),
    ]
    readonly_fields = ["sop"]

    @admin.display(description=_("standard procedure"))
    def sop(self, case):
        return _sop_html(cases.sop_for(case.kind, case.sub_reason))

    @admin.action(description=_("Close selected open cases (root cause required)…"), permissions=["close"])
    def close_selected(self, request, queryset):
        return reason_action(
            self, request, queryset.filter(status=CaseStatus.OPEN),
            title=_("Close exception cases"), label=_("Root cause"),
            apply=lambda case, text: cases.close_case(case.pk, request.user, text),
        )

    def has_close_permission(self, request):
        return request.user.has_perm(cases.CLOSE_PERMISSION)


class ExceptionSopForm(forms.ModelForm):
    class Meta:
        model = ExceptionSop
        fields = ["kind", "stage", "severity", "responsibility", "owner_role", "time_limit_hours",
                  "recommended_action"]


@admin.register(ExceptionSop)
class ExceptionSopAdmin(admin.ModelAdmin):
    """One row per kind that ops changed; an empty field keeps the built-in SOP shown below."""

    form = ExceptionSopForm
    list_display = ["kind", "stage", "severity", "responsibility", "owner_role", "time_limit_hours",
                    "updated_at"]
    readonly_fields = ["built_in"]

    @admin.display(description=_("built-in SOP (used where a field above is empty)"))
    def built_in(self, sop):
        if sop is None or not sop.kind:
            return "—"
        return _sop_html(cases.sop_for(sop.kind, overrides={}))


@admin.register(CustomerIdentity)
class CustomerIdentityAdmin(admin.ModelAdmin):
    """Only the customer level is ops' to set (approval policies use it); the rest is derived."""

    list_display = ["masked_phone", "strength", "level", "created_at"]
    list_filter = ["level", "strength"]
    search_fields = ["=masked_phone"]
    fields = ["masked_phone", "strength", "level", "created_at"]
    readonly_fields = ["masked_phone", "strength", "created_at"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
