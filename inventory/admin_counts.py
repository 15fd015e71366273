"""Ops admin for stock counts: enter lines by hand or import a CSV / XLSX file, preview the
variances, confirm, and read or download the variance report.

Every write goes through inventory.counts (the same service the API and the management
command call); a confirmed count is read-only. Imported by inventory/admin.py.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from oms.errors import DomainError

from . import counts
from .models import StockCount, StockCountLine, Warehouse

# Above this many lines the change page does not list them as a form (it would be slow and
# exceed Django's limit of posted fields); the variance report shows them instead.
INLINE_MAX_LINES = 300


class StockCountLineInline(admin.TabularInline):
    model = StockCountLine
    fields = ["sku", "counted", "reason", "system_on_hand"]
    readonly_fields = ["system_on_hand"]
    autocomplete_fields = ["sku"]
    extra = 0

    def _editable(self, obj) -> bool:
        return obj is None or obj.status == StockCount.State.DRAFT

    def get_extra(self, request, obj=None, **kwargs):
        return 3 if obj is None else 0

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


class NewCountImportForm(forms.Form):
    warehouse = forms.ModelChoiceField(label=_("Warehouse"), queryset=Warehouse.objects.all())
    reference = forms.CharField(label=_("Reference"), max_length=100, required=False)
    file = forms.FileField(
        label=_("File"),
        help_text=_("CSV or XLSX with the columns sku (code or barcode), counted and an "
                    "optional reason; the first row is the header."),
    )


class LinesImportForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_("CSV or XLSX with the columns sku (code or barcode), counted and an "
                    "optional reason. A SKU already on the count is updated."),
    )


@admin.register(StockCount)
class StockCountAdmin(admin.ModelAdmin):
    list_display = ["id", "reference", "warehouse", "status", "line_count", "created_at",
                    "created_by", "confirmed_at", "confirmed_by"]
    list_display_links = ["id", "reference"]
    list_filter = ["status", "warehouse"]
    search_fields = ["reference"]
    list_select_related = ["warehouse", "created_by", "confirmed_by"]
    date_hierarchy = "created_at"
    fields = ["warehouse", "reference", "status", "created_by", "created_at", "confirmed_by",
              "confirmed_at"]
    readonly_fields = ["status", "created_by", "created_at", "confirmed_by", "confirmed_at"]
    inlines = [StockCountLineInline]
    actions = ["confirm_selected"]

    @admin.display(description=_("lines"))
    def line_count(self, obj):
        return obj.lines.count()

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != StockCount.State.DRAFT:
            return self.fields
        return self.readonly_fields

    def get_inlines(self, request, obj):
        if obj is not None and obj.lines.count() > INLINE_MAX_LINES:
            return []
        return super().get_inlines(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status != StockCount.State.DRAFT:
            return False  # its movements are in the ledger; the count is their record
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "lines_not_listed": obj is not None and not self.get_inlines(request, obj),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- confirming ---------------------------------------------------------------------

    def _confirm(self, request, count) -> bool:
        try:
            rows = counts.confirm_count(count.pk, user=request.user)
        except DomainError as exc:
            self.message_user(request, _("%(count)s not confirmed: %(reason)s") % {
                "count": count.reference or count.pk, "reason": exc.detail}, messages.ERROR)
            return False
        summary = counts.variance_summary(rows)
        self.message_user(request, _(
            "%(count)s confirmed: %(variances)d of %(lines)d lines differed "
            "(+%(over)d / −%(short)d units)."
        ) % {"count": count.reference or count.pk, "variances": summary["lines_with_variance"],
             "lines": summary["lines"], "over": summary["units_over"],
             "short": summary["units_short"]}, messages.SUCCESS)
        return True

    @admin.action(description=_("Confirm count"), permissions=["change"])
    def confirm_selected(self, request, queryset):
        for count in queryset.order_by("pk"):
            self._confirm(request, count)

    # --- extra pages --------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("import/", view(self.import_new_view), name="inventory_stockcount_import_new"),
            path("<path:object_id>/import/", view(self.import_lines_view),
                 name="inventory_stockcount_import"),
            path("<path:object_id>/variance/", view(self.variance_view),
                 name="inventory_stockcount_variance"),
            path("<path:object_id>/confirm/", view(require_POST(self.confirm_view)),
                 name="inventory_stockcount_confirm"),
            *super().get_urls(),
        ]

    def _count_or_deny(self, request, object_id, permission) -> StockCount:
        count = self.get_object(request, object_id)
        if count is None:
            raise PermissionDenied
        if not permission(request, count):
            raise PermissionDenied
        return count

    def _context(self, request, **extra):
        return {**self.admin_site.each_context(request), "opts": self.opts, **extra}

    def import_new_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = NewCountImportForm(request.POST or None, request.FILES or None)
        bad_rows = []
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                with transaction.atomic():
                    count = counts.start_count(data["warehouse"].code, data["reference"], request.user)
                    imported = counts.import_count_lines(
                        count, data["file"], counts.format_for(data["file"].name))
            except counts.CountRejected as exc:
                bad_rows = exc.rows
                messages.error(request, _("Nothing was imported: fix the rows below and upload "
                                          "the file again."))
            except DomainError as exc:
                messages.error(request, exc.detail)
            else:
                messages.success(request, _("%(n)d lines imported.") % {"n": imported})
                return redirect(reverse("admin:inventory_stockcount_change", args=[count.pk]))
        return render(request, "admin/inventory/stockcount/import.html", self._context(
            request, form=form, bad_rows=bad_rows, title=_("Import a stock count")))

    def import_lines_view(self, request, object_id):
        count = self._count_or_deny(request, object_id, self.has_change_permission)
        if count.status != StockCount.State.DRAFT:
            messages.error(request, _("This count is confirmed; start a new count."))
            return redirect(reverse("admin:inventory_stockcount_change", args=[count.pk]))
        form = LinesImportForm(request.POST or None, request.FILES or None)
        bad_rows = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                imported = counts.import_count_lines(count, upload, counts.format_for(upload.name))
            except counts.CountRejected as exc:
                bad_rows = exc.rows
                messages.error(request, _("Nothing was imported: fix the rows below and upload "
                                          "the file again."))
            except DomainError as exc:
                messages.error(request, exc.detail)
            else:
                messages.success(request, _("%(n)d lines imported.") % {"n": imported})
                return redirect(reverse("admin:inventory_stockcount_change", args=[count.pk]))
        return render(request, "admin/inventory/stockcount/import.html", self._context(
            request, form=form, bad_rows=bad_rows, original=count,
            title=_("Import lines into %(count)s") % {"count": count.reference or count.pk}))

    def variance_view(self, request, object_id):
        count = self._count_or_deny(request, object_id, self.has_view_permission)
        rows = counts.variance_report(count)
        fmt = request.GET.get("format", "")
        if fmt in ("csv", "xlsx"):
            dataset = counts.variance_dataset(rows)
            if fmt == "csv":
                # With a BOM, so that Excel opens the Chinese names as UTF-8.
                body = "\ufeff" + dataset.export("csv")
                content_type = "text/csv; charset=utf-8"
            else:
                body = dataset.export("xlsx")
                content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            response = HttpResponse(body, content_type=content_type)
            name = counts.count_file_name(count, "variance", fmt)
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        only = request.GET.get("only") == "variances"
        shown = [row for row in rows if row.variance] if only else rows
        return render(request, "admin/inventory/stockcount/variance.html", self._context(
            request, original=count, rows=shown, only_variances=only,
            summary=counts.variance_summary(rows),
            final=count.status == StockCount.State.CONFIRMED,
            can_confirm=count.status == StockCount.State.DRAFT
            and self.has_change_permission(request, count),
            title=_("Variance report: %(count)s") % {"count": count.reference or count.pk}))

    def confirm_view(self, request, object_id):
        count = self._count_or_deny(request, object_id, self.has_change_permission)
        self._confirm(request, count)
        return redirect(reverse("admin:inventory_stockcount_variance", args=[count.pk]))
