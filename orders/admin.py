"""Ops admin for orders: filter, search, read everything, act only through allowed transitions.

Fields are read-only: an order changes through its state machine, and each button runs the
same service the API calls (so it is locked, permission-checked and written to the timeline).
"""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django_fsm.admin import FSMAdminMixin

from inventory.models import Warehouse
from oms.admin import ReadOnlyAdmin
from oms.errors import DomainError

from . import services
from .events import Actor
from .models import (
    FulfilmentLine,
    FulfilmentOrder,
    Order,
    OrderEvent,
    OrderLine,
    ScannerEvent,
    Shipment,
    WarehouseDevice,
)

# The admin buttons and the service each one calls.
TRANSITION_SERVICES = {
    "approve": lambda order_no, actor, **kw: services.approve_order(order_no, actor),
    "request_shipment": lambda order_no, actor, **kw: services.request_shipment(order_no, actor),
    "hold": lambda order_no, actor, reason="", **kw: services.hold_order(order_no, reason, actor),
    "release_hold": lambda order_no, actor, **kw: services.release_hold(order_no, actor),
    "cancel": lambda order_no, actor, reason="", **kw: services.cancel_order(order_no, reason, actor),
}


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ["line_no", "sku", "quantity", "unit_price", "discount"]
    readonly_fields = fields


class ShipmentInline(ReadOnlyInline):
    model = Shipment
    fields = ["carrier", "tracking_no", "warehouse", "outbound_at"]
    readonly_fields = fields


class FulfilmentOrderInline(ReadOnlyInline):
    model = FulfilmentOrder
    fields = ["number", "warehouse", "status", "picking_started_at", "packed_at", "outbound_at",
              "delivered_at", "cancelled_at", "cancel_reason", "last_location"]
    readonly_fields = fields
    ordering = ["number"]


class FulfilmentLineInline(ReadOnlyInline):
    model = FulfilmentLine
    fields = ["order_line", "quantity"]
    readonly_fields = fields


@admin.register(FulfilmentOrder)
class FulfilmentOrderAdmin(admin.ModelAdmin):
    """Read only: shares move by scans, carrier tracking and the order's services."""

    list_display = ["__str__", "warehouse", "status", "created_at", "outbound_at", "last_location"]
    list_filter = ["status", "warehouse"]
    search_fields = ["=order__order_no"]
    list_select_related = ["order", "warehouse"]
    inlines = [FulfilmentLineInline]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in FulfilmentOrder._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = ["at", "track", "kind", "actor", "from_state", "to_state", "summary"]
    readonly_fields = fields
    ordering = ["at", "id"]


class RouteForm(forms.Form):
    warehouse = forms.ModelChoiceField(
        label=_("Warehouse"), queryset=Warehouse.objects.filter(active=True), to_field_name="code"
    )


@admin.register(Order)
class OrderAdmin(FSMAdminMixin, admin.ModelAdmin):
    fsm_fields = ["status"]
    change_form_template = "admin/orders/order/change_form.html"
    list_display = [
        "order_no", "channel", "external_order_id", "status", "fulfilment", "warehouse",
        "payable_amount", "placed_at", "status_changed_at",
    ]
    list_filter = ["status", "fulfilment", "channel", "warehouse", "placed_at"]
    search_fields = ["=order_no", "=external_order_id"]
    date_hierarchy = "placed_at"
    list_select_related = ["channel", "warehouse"]
    inlines = [OrderLineInline, FulfilmentOrderInline, ShipmentInline, OrderEventInline]
    actions = ["approve_selected"]
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["order_no", "channel", "external_order_id", "status", "fulfilment",
                           "warehouse", "hold_reason", "cancel_reason", "last_location"]}),
        (_("Amounts"), {"fields": ["currency", "goods_amount", "shipping_fee", "discount_amount",
                                   "payable_amount", "refund_due", "refunded_amount"]}),
        (_("Receiver"), {"fields": ["buyer_name", "receiver_name", "receiver_phone",
                                    "receiver_province", "receiver_city", "receiver_district",
                                    "receiver_address", "customer"]}),
        (_("Stages"), {"fields": ["placed_at", "paid_at", "approved_at", "ship_requested_at",
                                  "picking_started_at", "packed_at", "physical_outbound_at",
                                  "shipped_at", "delivered_at", "completed_at", "cancelled_at",
                                  "status_changed_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Order._meta.fields]

    def has_add_permission(self, request):
        return False  # manual orders go through POST /api/v1/orders/ (validated, numbered)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # Every field is read-only; saving the stale instance could overwrite a concurrent scan.
        return None

    def save_related(self, request, form, formsets, change):
        return None

    def construct_change_message(self, request, form, formsets, add=False):
        return []  # nothing is edited here; the transition writes its own OrderEvent

    def _apply_fsm_transition(self, *, obj, transition_name, request, kwargs=None):
        handler = TRANSITION_SERVICES.get(transition_name)
        if handler is None:
            self.message_user(request, _("This transition is not available here."), messages.ERROR)
            return False
        try:
            handler(obj.order_no, Actor.for_user(request.user), **(kwargs or {}))
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return False
        self.message_user(request, _("%(order)s: %(action)s done.") % {
            "order": obj.order_no, "action": transition_name.replace("_", " ")}, messages.SUCCESS)
        return True

    @admin.action(description=_("Approve selected paid orders"), permissions=["approve"])
    def approve_selected(self, request, queryset):
        done, refused = 0, []
        for order_no in queryset.values_list("order_no", flat=True):
            try:
                services.approve_order(order_no, Actor.for_user(request.user))
                done += 1
            except DomainError as exc:
                refused.append(f"{order_no}: {exc.detail}")
        self.message_user(request, _("%(n)d approved.") % {"n": done}, messages.SUCCESS)
        for reason in refused[:20]:
            self.message_user(request, reason, messages.WARNING)

    def has_approve_permission(self, request):
        return request.user.has_perm("orders.approve_order")

    # Route to a warehouse: a small form page, linked from the change view.
    def get_urls(self):
        return [
            path("<path:object_id>/route/", self.admin_site.admin_view(self.route_view),
                 name="orders_order_route"),
            *super().get_urls(),
        ]

    def route_view(self, request, object_id):
        order = self.get_object(request, object_id)
        if order is None or not request.user.has_perm("orders.route_order"):
            messages.error(request, _("You may not route this order."))
            return redirect("admin:orders_order_changelist")
        form = RouteForm(request.POST or None, initial={"warehouse": order.warehouse})
        if request.method == "POST" and form.is_valid():
            try:
                services.route_order(order.order_no, form.cleaned_data["warehouse"].code,
                                     Actor.for_user(request.user))
            except DomainError as exc:
                messages.error(request, exc.detail)
            else:
                messages.success(request, _("Routed to %(code)s.") % {"code": form.cleaned_data["warehouse"].code})
                return redirect(reverse("admin:orders_order_change", args=[order.pk]))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "original": order,
                   "form": form, "title": _("Route %(order)s") % {"order": order.order_no}}
        return render(request, "admin/orders/order/route.html", context)


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "order", "track", "kind", "actor", "from_state", "to_state", "summary"]
    list_filter = ["track", "kind"]
    search_fields = ["=order__order_no"]
    list_select_related = ["order"]
    show_full_result_count = False


@admin.register(WarehouseDevice)
class WarehouseDeviceAdmin(admin.ModelAdmin):
    list_display = ["name", "warehouse", "user", "created_at"]
    list_filter = ["warehouse"]
    readonly_fields = ["user", "created_at"]

    def has_add_permission(self, request):
        return False  # a device needs its token: POST /api/v1/warehouse/devices/ or create_device_token


@admin.register(ScannerEvent)
class ScannerEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "event_id", "order", "type", "device", "response_status"]
    list_filter = ["type", "response_status", "device__warehouse"]
    search_fields = ["=event_id", "=order__order_no"]
    list_select_related = ["order", "device"]


# Approvals, exception cases, SOPs and customer levels.
from . import admin_workflow  # noqa: E402, F401
