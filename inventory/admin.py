from django.contrib import admin

from .models import SKU, Warehouse


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
