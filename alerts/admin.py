from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from oms.admin import ReadOnlyAdmin
from oms.errors import DomainError

from . import services
from .conditions import CONDITIONS
from .models import Alert, AlertRule, Notification, NotificationTarget


@admin.register(NotificationTarget)
class NotificationTargetAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "active", "max_per_hour"]
    list_filter = ["kind", "active"]




@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "condition", "threshold", "severity", "escalate_after_minutes", "active"]
    list_filter = ["active", "severity", "condition"]
    filter_horizontal = ["recipients", "escalate_to"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "condition":
            from django import forms

            return forms.ChoiceField(
                choices=[(c.code, f"{c.label} ({c.unit})") for c in CONDITIONS.values()],
                label=db_field.verbose_name)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class NotificationInline(admin.TabularInline):
    model = Notification
    fields = ["target", "reason", "state", "attempts", "next_attempt_at", "sent_at", "last_error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["opened_at", "rule", "severity", "status", "subject", "title", "assignee", "escalated_at"]
    list_filter = ["status", "severity", "rule"]
    search_fields = ["subject", "title", "order__order_no"]
    list_select_related = ["rule", "assignee"]
    inlines = [NotificationInline]
    actions = ["acknowledge", "resolve"]

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("alerts.change_alert")

    @admin.action(description=_("Acknowledge"))
    def acknowledge(self, request, queryset):
        self._each(request, queryset, lambda a: services.acknowledge(a.pk, request.user))

    @admin.action(description=_("Resolve"))
    def resolve(self, request, queryset):
        self._each(request, queryset, lambda a: services.resolve(a.pk, request.user, "resolved in the admin"))

    def _each(self, request, queryset, call):
        for alert in queryset:
            try:
                call(alert)
            except DomainError as exc:
                self.message_user(request, f"{alert}: {exc.detail}", messages.WARNING)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "alert", "target", "reason", "state", "attempts", "sent_at", "last_error"]
    list_filter = ["state", "reason", "target"]
