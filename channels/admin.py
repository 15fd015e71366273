from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from oms.admin import ReadOnlyAdmin

from . import drift
from .models import (
    Channel,
    ChannelSkuMapping,
    CleansingRule,
    RawPayload,
    SchemaDrift,
    SchemaField,
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
