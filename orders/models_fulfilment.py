"""Fulfilment orders: one warehouse's share of an order (ARCHITECTURE.md).

A split order has one fulfilment order per warehouse, each with its lines, its parcels and its
own physical track; the order's `fulfilment` field is derived from them (orders.fulfilment).
A share that has left the warehouse is never re-reserved, re-routed or silently cancelled: the
transitions below only leave the waiting states (open, picking, packed) forwards or to
cancelled, and the database refuses two waiting shares of one order in one warehouse.

Imported at the end of orders/models.py, so these are models of the `orders` app. They change
only through orders.fulfilment and orders.scanning, with the order row locked first.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import FSMField, FSMModelMixin, transition

from oms import rowsql

from .models import Order, OrderLine

__all__ = ["FulfilmentLine", "FulfilmentOrder", "ShareState"]


class ShareState(models.TextChoices):
    OPEN = "open", _("waiting for the warehouse")
    PICKING = "picking", _("picking")
    PACKED = "packed", _("packed")
    OUTBOUND = "outbound", _("outbound")
    IN_TRANSIT = "in_transit", _("in transit")
    DELIVERED = "delivered", _("delivered")
    RETURNED = "returned", _("returned")
    CANCELLED = "cancelled", _("cancelled")


# Still in the warehouse: these may be re-routed, held or cancelled.
WAITING = [ShareState.OPEN, ShareState.PICKING, ShareState.PACKED]
# Physically left the warehouse: never re-reserved, re-routed or cancelled.
LEFT = [ShareState.OUTBOUND, ShareState.IN_TRANSIT, ShareState.DELIVERED, ShareState.RETURNED]


class FulfilmentOrder(rowsql.SavesChanges, FSMModelMixin, models.Model):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fulfilment_orders",
                              verbose_name=_("order"))
    number = models.PositiveSmallIntegerField(_("number"), help_text=_("1, 2, … within the order."))
    warehouse = models.ForeignKey("inventory.Warehouse", on_delete=models.PROTECT,
                                  related_name="fulfilment_orders", verbose_name=_("warehouse"))
    status = FSMField(_("status"), max_length=12, choices=ShareState.choices, default=ShareState.OPEN,
                      protected=True)
    replaces = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("replaces"), help_text=_("The cancelled share this one took over (re-route)."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    picking_started_at = models.DateTimeField(_("picking started at"), null=True, blank=True)
    packed_at = models.DateTimeField(_("packed at"), null=True, blank=True)
    outbound_at = models.DateTimeField(_("outbound at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    returned_at = models.DateTimeField(_("returned at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    cancel_reason = models.CharField(_("cancel reason"), max_length=255, blank=True)
    last_scan_at = models.DateTimeField(
        _("last scan at"), null=True, blank=True,
        help_text=_("Time of this share's latest applied scan; earlier scans arriving later are refused."),
    )
    last_location = models.CharField(_("last seen at"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("fulfilment order")
        verbose_name_plural = _("fulfilment orders")
        ordering = ["order", "number"]
        constraints = [
            models.UniqueConstraint(fields=["order", "number"], name="fulfilment_order_number_unique"),
            # One share per warehouse still waiting there: a re-route or a release never adds a
            # second one beside it (reservations of an order in a warehouse belong to this one).
            models.UniqueConstraint(fields=["order", "warehouse"], condition=Q(status__in=WAITING),
                                    name="fulfilment_one_waiting_per_warehouse"),
            models.CheckConstraint(condition=~Q(status__in=LEFT) | Q(outbound_at__isnull=False),
                                   name="fulfilment_left_requires_outbound"),
            models.CheckConstraint(condition=~Q(status=ShareState.CANCELLED) | Q(cancelled_at__isnull=False),
                                   name="fulfilment_cancelled_requires_time"),
        ]

    def __str__(self):
        return self.code

    @property
    def code(self) -> str:
        return f"{self.order.order_no}-F{self.number}"

    @property
    def has_left(self) -> bool:
        return self.status in LEFT

    @property
    def is_waiting(self) -> bool:
        return self.status in WAITING

    @transition(field=status, source=ShareState.OPEN, target=ShareState.PICKING)
    def start_picking(self, at):
        self.picking_started_at = at

    @transition(field=status, source=ShareState.PICKING, target=ShareState.PACKED)
    def verify_pack(self, at):
        self.packed_at = at

    @transition(field=status, source=ShareState.PACKED, target=ShareState.OUTBOUND)
    def record_outbound(self, at):
        self.outbound_at = at

    @transition(field=status, source=ShareState.OUTBOUND, target=ShareState.IN_TRANSIT)
    def mark_in_transit(self, at):
        pass

    @transition(field=status, source=[ShareState.OUTBOUND, ShareState.IN_TRANSIT],
                target=ShareState.DELIVERED)
    def mark_delivered(self, at):
        self.delivered_at = at

    # A parcel signed for comes back only as an after-sales return, never by its tracking.
    @transition(field=status, source=[ShareState.OUTBOUND, ShareState.IN_TRANSIT], target=ShareState.RETURNED)
    def mark_returned(self, at):
        self.returned_at = at

    @transition(field=status, source=WAITING, target=ShareState.CANCELLED)
    def cancel(self, at, reason=""):
        self.cancelled_at = at
        self.cancel_reason = reason[:255]


class FulfilmentLine(models.Model):
    fulfilment_order = models.ForeignKey(FulfilmentOrder, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(OrderLine, on_delete=models.PROTECT, related_name="fulfilment_lines")
    quantity = models.PositiveIntegerField(_("quantity"))

    class Meta:
        verbose_name = _("fulfilment line")
        verbose_name_plural = _("fulfilment lines")
        constraints = [
            models.UniqueConstraint(fields=["fulfilment_order", "order_line"], name="fulfilment_line_unique"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="fulfilment_line_quantity_positive"),
        ]

    def __str__(self):
        return f"{self.fulfilment_order_id}/{self.order_line_id} × {self.quantity}"
