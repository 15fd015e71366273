from django.contrib import admin

from .models import Channel


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "order_prefix", "active"]
    list_filter = ["kind", "active"]
    search_fields = ["code", "name"]
    exclude = ["webhook_secret"]
