from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from oms.admin import ReadOnlyAdmin

from . import drift, tracking
from .models import (
    Channel,
    ChannelSkuMapping,
    CleansingRule,
    RawPayload,
    SchemaDrift,
    SchemaField,
    ShipmentTracking,
    SyncRun,
)
from .schedules import ensure_pull_schedule


class CleansingRuleInline(admin.TabularInline):
    model = CleansingRule
    extra = 0


class SkuMappingInline(admin.TabularInline):
    model = ChannelSkuMapping
    extra = 0
    autocomplete_fields = ["sku"]


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "order_prefix", "active", "reserve_on", "sync_cursor"]
    list_filter = ["kind", "active"]
    search_fields = ["code", "name"]
    exclude = ["webhook_secret"]
    readonly_fields = ["sync_cursor"]
    inlines = [CleansingRuleInline, SkuMappingInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        ensure_pull_schedule(obj)


@admin.register(RawPayload)
class RawPayloadAdmin(ReadOnlyAdmin):
    """The intake archive; filter `outcome = held` for what waits on ops."""

    list_display = ["received_at", "channel", "external_order_id", "source", "outcome", "order", "errors"]
    list_filter = ["outcome", "source", "channel"]
    search_fields = ["=external_order_id", "=sha256"]
    list_select_related = ["channel", "order"]
    date_hierarchy = "received_at"
    show_full_result_count = False


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "channel", "window_start", "window_end", "status", "fetched",
                    "created", "updated", "unchanged", "held", "failed", "error"]
    list_filter = ["status", "channel"]


class AcknowledgedFilter(admin.SimpleListFilter):
    title = _("acknowledged")
    parameter_name = "acknowledged"

    def lookups(self, request, model_admin):
        return [("no", _("No (open)")), ("yes", _("Yes"))]

    def queryset(self, request, queryset):
        if self.value() in ("no", "yes"):
            return queryset.filter(acknowledged_at__isnull=self.value() == "no")
        return queryset


@admin.register(SchemaDrift)
class SchemaDriftAdmin(admin.ModelAdmin):
    """What changed in what a channel sends ("channel API changed"); acknowledge once handled."""

    list_display = ["detected_at", "channel", "kind", "path", "old_type", "new_type", "change_set",
                    "payload", "acknowledged_at", "acknowledged_by"]
    list_filter = ["channel", "kind", AcknowledgedFilter]
    search_fields = ["path", "=change_set"]
    list_select_related = ["channel", "acknowledged_by"]
    date_hierarchy = "detected_at"
    actions = ["acknowledge"]
    raw_id_fields = ["payload"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Acknowledge (the new or retyped field becomes known)"),
                  permissions=["acknowledge"])
    def acknowledge(self, request, queryset):
        count = drift.acknowledge(queryset, request.user)
        self.message_user(request, ngettext("%(count)d drift acknowledged.", "%(count)d drifts acknowledged.",
                                            count) % {"count": count}, messages.SUCCESS)

    def has_acknowledge_permission(self, request):
        return request.user.has_perm("channels.change_schemadrift")


@admin.register(SchemaField)
class SchemaFieldAdmin(admin.ModelAdmin):
    """The keys and value types seen per channel (read-only: learned from the payloads)."""

    list_display = ["channel", "path", "value_type", "accepted", "first_seen", "last_seen", "seen_count"]
    list_filter = ["channel", "value_type", "accepted"]
    search_fields = ["path"]
    list_select_related = ["channel"]


@admin.register(ShipmentTracking)
class ShipmentTrackingAdmin(ReadOnlyAdmin):
    """What each parcel's carrier said last; changed only by pushes, polls and the sweeps."""

    list_display = ["shipment", "order_no", "adapter", "state", "last_event_at", "last_push_at",
                    "last_polled_at", "anomalies", "returns_count", "subscribed_at"]
    list_filter = ["state", "adapter"]
    search_fields = ["=shipment__tracking_no", "=shipment__order__order_no"]
    list_select_related = ["shipment__order"]
    date_hierarchy = "outbound_at"
    show_full_result_count = False
    actions = ["poll_now"]
    fields = ["shipment", "order_no", "adapter", "state", "outbound_at", "last_event_at",
              "last_push_at", "last_polled_at", "poll_error", "subscribed_at", "subscribe_error",
              "anomalies", "returns_count", "created_at", "route"]
    readonly_fields = fields

    @admin.display(description=_("order"), ordering="shipment__order__order_no")
    def order_no(self, obj):
        return obj.shipment.order.order_no

    @admin.display(description=_("checkpoints (newest first)"))
    def route(self, obj):
        if not obj.checkpoints:
            return "-"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((item.get("at", "")[:19].replace("T", " "), item.get("state", ""),
              item.get("location", ""), item.get("description", "")) for item in obj.checkpoints),
        )
        head = format_html("<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
                           _("time"), _("state"), _("location"), _("description"))
        return format_html("<table>{}{}</table>", head, rows)

    @admin.action(description=_("Poll the carrier now"), permissions=["poll"])
    def poll_now(self, request, queryset):
        result = tracking.poll_rows(list(queryset.values_list("pk", flat=True)[:200]))
        self.message_user(request, _("%(polled)d polled, %(failed)d failed.")
                          % {"polled": result.polled, "failed": result.failed},
                          messages.WARNING if result.failed else messages.SUCCESS)
        for parcel, error in list(result.errors.items())[:5]:
            self.message_user(request, f"{parcel}: {error}", messages.WARNING)

    def has_poll_permission(self, request):
        return request.user.has_perm("channels.change_shipmenttracking")
