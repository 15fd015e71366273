from django.contrib import admin

from .models import Channel, ChannelSkuMapping, CleansingRule, RawPayload, SyncRun
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
class RawPayloadAdmin(admin.ModelAdmin):
    """The intake archive; filter `outcome = held` for what waits on ops."""

    list_display = ["received_at", "channel", "external_order_id", "source", "outcome", "order", "errors"]
    list_filter = ["outcome", "source", "channel"]
    search_fields = ["=external_order_id", "=sha256"]
    list_select_related = ["channel", "order"]
    date_hierarchy = "received_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "channel", "window_start", "window_end", "status", "fetched",
                    "created", "updated", "unchanged", "held", "failed", "error"]
    list_filter = ["status", "channel"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
