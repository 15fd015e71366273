"""The unified order and its dual-track state machine (ARCHITECTURE.md).

`status` is what the customer sees; `fulfilment` is what physically happened in the warehouse.
Both change only through the transitions below, and only `orders.services` calls them, so that
every change is saved together with its `OrderEvent` in one transaction.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import RETURN_VALUE, FSMField, FSMModelMixin, transition

from oms import rowsql


class Status(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", _("pending payment")
    PAID = "paid", _("paid")
    APPROVED = "approved", _("approved")
    SHIP_REQUESTED = "ship_requested", _("ship requested")
    SHIPPED = "shipped", _("shipped")
    DELIVERED = "delivered", _("delivered")
    COMPLETED = "completed", _("completed")
    CANCELLED = "cancelled", _("cancelled")
    ON_HOLD = "on_hold", _("on hold")
    REFUNDING = "refunding", _("refunding")
    REFUNDED = "refunded", _("refunded")


class Fulfilment(models.TextChoices):
    UNALLOCATED = "unallocated", _("unallocated")
    ALLOCATED = "allocated", _("allocated")
    PICKING = "picking", _("picking")
    PACKED = "packed", _("packed")
    OUTBOUND = "outbound", _("outbound")
    IN_TRANSIT = "in_transit", _("in transit")
    DELIVERED = "delivered", _("delivered")
    RETURNED = "returned", _("returned")


# Business states that claim the parcel has physically left: the CHECK constraint ties them to
# a recorded outbound scan.
SHIPPED_STATES = [Status.SHIPPED, Status.DELIVERED, Status.COMPLETED]
PHYSICALLY_OUT = [Fulfilment.OUTBOUND, Fulfilment.IN_TRANSIT, Fulfilment.DELIVERED]
# Fulfilment order states of a parcel that has left its warehouse (models_fulfilment.LEFT).
SHARES_LEFT = ["outbound", "in_transit", "delivered", "returned"]
# Business states in which the warehouse may work on the order.
WAREHOUSE_WORKABLE = [Status.APPROVED, Status.SHIP_REQUESTED]
CANCELLABLE = [
    Status.PENDING_PAYMENT, Status.PAID, Status.APPROVED, Status.ON_HOLD, Status.SHIP_REQUESTED
]


def money_field(verbose_name, help_text=""):
    return models.DecimalField(verbose_name, max_digits=14, decimal_places=2, default=Decimal("0"),
                               help_text=help_text)


class CustomerIdentity(models.Model):
    """A buyer known by a keyed hash of the phone; the phone itself is never stored."""

    class Strength(models.TextChoices):
        EXACT = "exact", _("full phone")
        MASKED = "masked", _("masked phone, matched with name and address")

    class Level(models.TextChoices):
        NORMAL = "normal", _("normal")
        VIP = "vip", _("VIP")
        WHOLESALE = "wholesale", _("wholesale")
        BLACKLIST = "blacklist", _("blacklist")

    key = models.CharField(_("identity key"), max_length=64, unique=True)
    strength = models.CharField(_("strength"), max_length=8, choices=Strength.choices)
    phone_hash = models.CharField(
        _("phone hash"), max_length=64, blank=True, db_index=True,
        help_text=_("HMAC of the full normalised phone; empty for masked phones."),
    )
    masked_hash = models.CharField(
        _("masked phone hash"), max_length=64, db_index=True,
        help_text=_("HMAC of prefix + suffix (138****1234): where full and masked phones meet."),
    )
    masked_phone = models.CharField(_("masked phone"), max_length=20)
    level = models.CharField(
        _("customer level"), max_length=12, choices=Level.choices, default=Level.NORMAL,
        help_text=_("Approval policies may apply to some levels only."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("customer identity")
        verbose_name_plural = _("customer identities")

    def __str__(self):
        return f"{self.masked_phone} ({self.get_strength_display()})"


class Order(rowsql.SavesChanges, FSMModelMixin, models.Model):
    always_written = ("updated_at",)

    order_no = models.CharField(_("order number"), max_length=32, unique=True)
    channel = models.ForeignKey(
        "channels.Channel", on_delete=models.PROTECT, related_name="orders", verbose_name=_("channel")
    )
    external_order_id = models.CharField(_("channel order id"), max_length=64)
    customer = models.ForeignKey(
        CustomerIdentity, on_delete=models.PROTECT, null=True, blank=True, related_name="orders",
        verbose_name=_("customer"),
    )
    buyer_name = models.CharField(_("buyer name"), max_length=255, blank=True)

    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    goods_amount = money_field(_("goods amount"))
    shipping_fee = money_field(_("shipping fee"))
    discount_amount = money_field(_("discount"))
    payable_amount = money_field(_("payable"))

    # Long enough for a platform's ciphertext, kept as sent for its decrypt call (orders.ciphertext).
    receiver_name = models.CharField(_("receiver name"), max_length=255)
    receiver_phone = models.CharField(
        _("receiver phone"), max_length=255, help_text=_("As the channel gave it, often masked.")
    )
    receiver_province = models.CharField(_("province"), max_length=32)
    receiver_city = models.CharField(_("city"), max_length=64, blank=True)
    receiver_district = models.CharField(_("district"), max_length=64, blank=True)
    receiver_address = models.CharField(_("address"), max_length=255)

    warehouse = models.ForeignKey(
        "inventory.Warehouse", on_delete=models.PROTECT, null=True, blank=True,
        related_name="orders", verbose_name=_("warehouse"),
    )
    status = FSMField(
        _("status"), max_length=20, choices=Status.choices, default=Status.PENDING_PAYMENT,
        protected=True,
    )
    fulfilment = FSMField(
        _("fulfilment"), max_length=20, choices=Fulfilment.choices,
        default=Fulfilment.UNALLOCATED, protected=True,
    )
    merged_into = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="merged_orders",
        verbose_name=_("merged into"),
        help_text=_("A duplicate unpaid order kept as a linked sub-order of the first one."),
    )
    refund_due = money_field(
        _("refund owed"), _("What the customer is owed back: a refund, or a cancel after a parcel left."))
    refunded_amount = money_field(_("refunded"), _("Refunds booked for the order so far (its fund vouchers)."))
    hold_reason = models.TextField(_("hold reason"), blank=True)
    cancel_reason = models.TextField(_("cancel reason"), blank=True)
    last_location = models.CharField(
        _("last seen at"), max_length=64, blank=True, help_text=_("Station of the latest scan.")
    )
    last_scan_at = models.DateTimeField(
        _("last scan at"), null=True, blank=True,
        help_text=_("Time of the latest applied scan; earlier scans arriving later are refused."),
    )
    source_hash = models.CharField(_("payload hash"), max_length=64, blank=True)
    source_raw_sha256 = models.CharField(
        _("raw payload sha256"), max_length=64, blank=True, default="",
        help_text=_("Of the raw channel payload last applied (channels.intake): the same raw again "
                    "is recognised as unchanged without being read again."),
    )

    placed_at = models.DateTimeField(_("placed at"), db_index=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    ship_requested_at = models.DateTimeField(_("ship requested at"), null=True, blank=True)
    picking_started_at = models.DateTimeField(_("picking started at"), null=True, blank=True)
    packed_at = models.DateTimeField(_("packed at"), null=True, blank=True)
    physical_outbound_at = models.DateTimeField(_("physical outbound at"), null=True, blank=True)
    shipped_at = models.DateTimeField(_("shipped at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    status_changed_at = models.DateTimeField(_("status changed at"), default=timezone.now)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-placed_at"]
        permissions = [
            ("approve_order", _("Can approve orders")),
            ("route_order", _("Can route orders to a warehouse")),
            ("request_shipment", _("Can request shipment of orders")),
            ("cancel_order", _("Can cancel orders")),
            ("hold_order", _("Can put orders on hold and release them")),
            ("add_order_note", _("Can add notes to orders")),
            ("post_scanner_event", _("Can post warehouse scanner events")),
            ("manage_devices", _("Can register warehouse scanner devices")),
            ("override_approval", _("Can override the approval of orders (emergency, audited)")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_order_id"], name="order_channel_external_id_unique"
            ),
            # "Shipped" is a physical fact: no shipped/delivered/completed without an outbound scan.
            models.CheckConstraint(
                condition=~Q(status__in=SHIPPED_STATES) | Q(physical_outbound_at__isnull=False),
                name="order_shipped_requires_physical_outbound",
            ),
            models.CheckConstraint(
                condition=~Q(fulfilment__in=PHYSICALLY_OUT) | Q(physical_outbound_at__isnull=False),
                name="order_outbound_requires_timestamp",
            ),
            models.CheckConstraint(
                condition=Q(goods_amount__gte=0) & Q(shipping_fee__gte=0)
                & Q(discount_amount__gte=0) & Q(payable_amount__gte=0),
                name="order_amounts_not_negative",
            ),
            models.CheckConstraint(condition=Q(refund_due__gte=0) & Q(refunded_amount__gte=0),
                                   name="order_refund_amounts_not_negative"),
        ]
        indexes = [
            models.Index(fields=["status", "status_changed_at"], name="order_status_since_idx"),
            models.Index(fields=["fulfilment", "status"], name="order_fulfilment_idx"),
            models.Index(fields=["external_order_id"], name="order_external_id_idx"),
        ]

    def __str__(self):
        return self.order_no

    @property
    def receiver_shown(self) -> dict:
        """The receiver as people may see it: a platform's ciphertext is never shown as if it
        were a name or an address (orders.ciphertext)."""
        from .ciphertext import platform_ciphertext

        fields = {"name": self.receiver_name, "province": self.receiver_province, "city": self.receiver_city,
                  "district": self.receiver_district, "address": self.receiver_address}
        return {k: (_("(encrypted by the platform)") if platform_ciphertext(v) else v) for k, v in fields.items()}

    # --- conditions -----------------------------------------------------------------------
    def has_warehouse(self) -> bool:
        return self.warehouse_id is not None

    def has_physical_outbound(self) -> bool:
        return self.physical_outbound_at is not None

    def not_physically_out(self) -> bool:
        return self.physical_outbound_at is None

    def warehouse_may_work(self) -> bool:
        return self.status in WAREHOUSE_WORKABLE

    def no_share_left(self) -> bool:
        """No parcel of the order has left a warehouse (a split order's first one included)."""
        if self.physical_outbound_at is not None:
            return False
        return self._state.adding or not self.fulfilment_orders.filter(status__in=SHARES_LEFT).exists()

    def refunds_cover_what_is_owed(self) -> bool:
        return self.refund_due > 0 and self.refunded_amount >= self.refund_due

    # --- business track -------------------------------------------------------------------
    @transition(field=status, source=Status.PENDING_PAYMENT, target=Status.PAID,
                custom={"admin": False})
    def mark_paid(self, at):
        self.paid_at = at

    @transition(field=status, source=Status.PAID, target=Status.APPROVED,
                permission="orders.approve_order", custom={"label": _("Approve")})
    def approve(self, at):
        self.approved_at = at

    @transition(field=status, source=Status.APPROVED, target=Status.SHIP_REQUESTED,
                conditions=[has_warehouse], permission="orders.request_shipment",
                custom={"label": _("Request shipment")})
    def request_shipment(self, at):
        self.ship_requested_at = at

    @transition(field=status, source=Status.SHIP_REQUESTED, target=Status.SHIPPED,
                conditions=[has_physical_outbound], custom={"admin": False})
    def mark_shipped(self, at):
        self.shipped_at = at

    @transition(field=status, source=Status.SHIPPED, target=Status.DELIVERED,
                conditions=[has_physical_outbound], custom={"admin": False})
    def mark_delivered(self, at):
        self.delivered_at = at

    @transition(field=status, source=Status.DELIVERED, target=Status.COMPLETED,
                custom={"admin": False})
    def complete(self, at):
        self.completed_at = at

    @transition(field=status, source=[Status.PAID, Status.APPROVED], target=Status.ON_HOLD,
                conditions=[not_physically_out], permission="orders.hold_order", custom={"label": _("Hold"), "form": "orders.forms.ReasonForm"})
    def hold(self, at, reason):
        self.hold_reason = reason

    @transition(field=status, source=Status.ON_HOLD, target=Status.PAID,
                permission="orders.hold_order", custom={"label": _("Release hold")})
    def release_hold(self, at):
        self.hold_reason = ""

    @transition(field=status, source=CANCELLABLE, target=Status.CANCELLED,
                conditions=[no_share_left], permission="orders.cancel_order",
                custom={"label": _("Cancel"), "form": "orders.forms.ReasonForm"})
    def cancel(self, at, reason):
        self.cancelled_at = at
        self.cancel_reason = reason

    @transition(field=status,
                source=[Status.PAID, Status.APPROVED, Status.ON_HOLD, Status.SHIP_REQUESTED,
                        Status.SHIPPED, Status.DELIVERED, Status.COMPLETED],
                target=Status.REFUNDING, custom={"admin": False})
    def start_refund(self, at, owed=None):
        self.refund_due = max(self.refund_due, self.payable_amount if owed is None else owed)

    @transition(field=status, source=Status.REFUNDING, target=Status.REFUNDED,
                conditions=[refunds_cover_what_is_owed], custom={"admin": False})
    def mark_refunded(self, at):
        pass

    # --- physical track: derived from the fulfilment orders (orders.fulfilment) -----------
    @transition(field=fulfilment, source="*", target=RETURN_VALUE(*Fulfilment.values),
                custom={"admin": False})
    def follow_shares(self, at, to, outbound_at=None):
        """The order's physical track follows its fulfilment orders (warehouse scans and
        carrier tracking move those); the first time a stage is reached it is stamped."""
        if to == Fulfilment.PICKING and self.picking_started_at is None:
            self.picking_started_at = at
        if to == Fulfilment.PACKED and self.packed_at is None:
            self.packed_at = at
        if to in PHYSICALLY_OUT + [Fulfilment.RETURNED] and self.physical_outbound_at is None:
            self.physical_outbound_at = outbound_at or at
        return to


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    line_no = models.PositiveSmallIntegerField(_("line"))
    sku = models.ForeignKey("inventory.SKU", on_delete=models.PROTECT, related_name="order_lines")
    external_line_id = models.CharField(_("channel line id"), max_length=64, blank=True)
    quantity = models.PositiveIntegerField(_("quantity"))
    unit_price = models.DecimalField(_("unit price"), max_digits=14, decimal_places=2)
    discount = money_field(_("discount"))

    class Meta:
        ordering = ["order", "line_no"]
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        constraints = [
            models.UniqueConstraint(fields=["order", "line_no"], name="orderline_order_line_no_unique"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="orderline_quantity_positive"),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0) & Q(discount__gte=0), name="orderline_money_not_negative"
            ),
        ]

    def __str__(self):
        return f"{self.order_id}/{self.line_no} {self.sku_id} × {self.quantity}"

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity - self.discount


class Track(models.TextChoices):
    BUSINESS = "business", _("business")
    PHYSICAL = "physical", _("physical")
    SYSTEM = "system", _("system")


class EventKind(models.TextChoices):
    TRANSITION = "transition", _("transition")
    SCAN = "scan", _("scan")
    API_CALL = "api_call", _("API call")
    PAYMENT = "payment", _("payment")
    NOTE = "note", _("note")
    ALERT = "alert", _("alert")
    SYNC = "sync", _("sync")


class AppendOnlyError(Exception):
    pass


class OrderEvent(models.Model):
    """One line of an order's history. Append-only: rows are never updated or deleted
    (the model refuses, and on PostgreSQL a trigger refuses raw SQL too)."""

    # The (order, at, id) index below serves every look-up by order: no second index to write.
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events", db_index=False)
    track = models.CharField(_("track"), max_length=10, choices=Track.choices)
    kind = models.CharField(_("kind"), max_length=12, choices=EventKind.choices)
    from_state = models.CharField(_("from"), max_length=20, blank=True)
    to_state = models.CharField(_("to"), max_length=20, blank=True)
    actor = models.CharField(_("actor"), max_length=100, help_text=_("user:…, device:…, channel:… or system"))
    # PROTECT: history keeps who acted; deactivate a user instead of deleting them.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(_("at"))
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)
    summary = models.CharField(_("summary"), max_length=255)
    payload = models.JSONField(_("data"), default=dict, blank=True)

    class Meta:
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["order", "at", "id"], name="orderevent_order_at_idx")]

    def __str__(self):
        return f"{self.order_id} {self.at:%Y-%m-%d %H:%M} {self.summary}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise AppendOnlyError("order events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("order events are append-only")


class Shipment(models.Model):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="shipments")
    fulfilment_order = models.ForeignKey(
        "orders.FulfilmentOrder", on_delete=models.PROTECT, null=True, blank=True,
        related_name="shipments", verbose_name=_("fulfilment order"),
    )
    warehouse = models.ForeignKey("inventory.Warehouse", on_delete=models.PROTECT, related_name="+")
    carrier = models.CharField(_("carrier"), max_length=32)
    tracking_no = models.CharField(_("tracking number"), max_length=64)
    outbound_at = models.DateTimeField(_("outbound at"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    push_status = models.CharField(
        _("sent to channel"), max_length=12, default="pending",
        choices=[("pending", _("pending")), ("queued", _("queued")), ("sent", _("sent")),
                 ("failed", _("failed")), ("not_needed", _("not needed"))],
    )
    push_queued_at = models.DateTimeField(_("queued at"), null=True, blank=True)
    push_attempts = models.PositiveSmallIntegerField(_("push attempts"), default=0)
    pushed_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    push_error = models.TextField(_("push error"), blank=True)

    class Meta:
        verbose_name = _("shipment")
        verbose_name_plural = _("shipments")
        ordering = ["outbound_at"]
        constraints = [
            models.UniqueConstraint(fields=["carrier", "tracking_no"], name="shipment_tracking_unique")
        ]

    def __str__(self):
        return f"{self.carrier} {self.tracking_no}"


class WarehouseDevice(models.Model):
    """A scanner: a service user in the warehouse_device role, bound to one warehouse."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="warehouse_device"
    )
    warehouse = models.ForeignKey("inventory.Warehouse", on_delete=models.PROTECT, related_name="devices")
    name = models.CharField(_("name"), max_length=64)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("warehouse device")
        verbose_name_plural = _("warehouse devices")
        constraints = [
            models.UniqueConstraint(fields=["warehouse", "name"], name="device_warehouse_name_unique")
        ]

    def __str__(self):
        return f"{self.warehouse.code}/{self.name}"


class ScannerEvent(models.Model):
    """Every scanner event received, keyed by the client's event_id, with the reply it got:
    a repeat is answered from here and changes nothing."""

    event_id = models.UUIDField(_("event id"), unique=True)
    device = models.ForeignKey(WarehouseDevice, on_delete=models.PROTECT, related_name="events")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="scanner_events")
    type = models.CharField(_("type"), max_length=20)
    scanned_at = models.DateTimeField(_("scanned at"))
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    request = models.JSONField(_("request"))
    response_status = models.PositiveSmallIntegerField(_("response status"))
    response = models.JSONField(_("response"))

    class Meta:
        verbose_name = _("scanner event")
        verbose_name_plural = _("scanner events")

    def __str__(self):
        return f"{self.event_id} {self.type} {self.order_id}"


class OrderNumberSequence(models.Model):
    """Daily counter per prefix for unified order numbers, bumped by one atomic upsert."""

    prefix = models.CharField(max_length=4)
    day = models.DateField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prefix", "day"], name="order_seq_unique")]

    def __str__(self):
        return f"{self.prefix}{self.day:%Y%m%d} #{self.last}"


# Approvals and exception cases live in their own module; importing it here registers them.
from .models_fulfilment import *  # noqa: E402, F403
from .models_workflow import *  # noqa: E402, F403
