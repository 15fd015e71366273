from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from oms.admin import ReadOnlyAdmin

from . import admin_counts  # noqa: F401 - registers the stock count admin
from .models import (
    SKU,
    CacheCheck,
    ChannelListing,
    ListingChange,
    Reservation,
    StockLevel,
    StockMovement,
    Warehouse,
)


@admin.register(Warehouse)
class WarehouseAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "priority", "active", "provinces"]
    list_filter = ["active"]
    search_fields = ["code", "name"]


@admin.register(SKU)
class SKUAdmin(admin.ModelAdmin):
    list_display = ["code", "barcode", "name", "category"]
    list_filter = ["category"]
    search_fields = ["code", "=barcode", "name"]


@admin.register(StockLevel)
class StockLevelAdmin(ReadOnlyAdmin):
    list_display = ["sku", "warehouse", "on_hand", "reserved", "available", "safety_stock", "updated_at"]
    list_filter = ["warehouse", "sku__category"]
    search_fields = ["sku__code", "=sku__barcode"]
    list_select_related = ["sku", "warehouse"]

    @admin.display(description=_("available"))
    def available(self, obj):
        return obj.available


@admin.register(StockMovement)
class StockMovementAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "sku", "warehouse", "on_hand_delta", "reserved_delta", "reference", "reason"]
    list_filter = ["kind", "warehouse"]
    search_fields = ["sku__code", "=reference"]
    list_select_related = ["sku", "warehouse"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ["order", "sku", "warehouse", "quantity", "status", "expires_at", "created_at", "close_reason"]
    list_filter = ["status", "warehouse"]
    search_fields = ["=order__order_no", "sku__code"]
    list_select_related = ["order", "sku", "warehouse"]


class ListingChangeInline(admin.TabularInline):
    model = ListingChange
    extra = 0
    can_delete = False
    readonly_fields = ["at", "is_open", "reason"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ChannelListing)
class ChannelListingAdmin(admin.ModelAdmin):
    list_display = ["channel", "sku", "is_open", "closed_reason", "promo_cap", "promo_reserved", "changed_at"]
    list_filter = ["is_open", "channel"]
    search_fields = ["sku__code"]
    readonly_fields = ["is_open", "closed_reason", "promo_reserved", "changed_at"]
    inlines = [ListingChangeInline]


@admin.register(CacheCheck)
class CacheCheckAdmin(ReadOnlyAdmin):
    list_display = ["at", "sampled", "holes", "wrong", "repaired", "hit_rate_percent", "alerting", "cache_up"]
    list_filter = ["alerting", "cache_up"]

    @admin.display(description=_("hit rate"))
    def hit_rate_percent(self, obj):
        return "—" if obj.hit_rate is None else f"{obj.hit_rate:.1%}"
