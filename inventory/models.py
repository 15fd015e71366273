import uuid

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Warehouse(models.Model):
    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    provinces = models.JSONField(
        _("provinces served"), default=list, blank=True,
        help_text=_("Province names this warehouse ships to first, e.g. [\"上海\", \"江苏\"]."),
    )
    priority = models.PositiveIntegerField(
        _("priority"), default=100, help_text=_("Lower ships first when several can.")
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["priority", "code"]
        verbose_name = _("warehouse")
        verbose_name_plural = _("warehouses")

    def __str__(self):
        return f"{self.code} {self.name}"


class SKU(models.Model):
    code = models.CharField(_("code"), max_length=64, unique=True)
    barcode = models.CharField(_("barcode"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    category = models.CharField(_("category"), max_length=100, blank=True, db_index=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("SKU")
        verbose_name_plural = _("SKUs")

    def __str__(self):
        return f"{self.code} {self.name}"


class StockLevel(models.Model):
    """On hand and reserved of one SKU in one warehouse. Changed only by conditional UPDATEs
    in inventory.services, each paired with a StockMovement, so counters equal the ledger."""

    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="stock_levels")
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="stock_levels")
    on_hand = models.IntegerField(_("on hand"), default=0)
    reserved = models.IntegerField(_("reserved"), default=0)
    safety_stock = models.IntegerField(
        _("safety stock"), default=0,
        help_text=_("At or below this available quantity the SKU stops selling on channels."),
    )
    version = models.BigIntegerField(
        _("version"), default=0, help_text=_("Bumped by every change; the cache keeps the newest.")
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("stock level")
        verbose_name_plural = _("stock levels")
        constraints = [
            models.UniqueConstraint(fields=["warehouse", "sku"], name="stocklevel_warehouse_sku_unique"),
            models.CheckConstraint(
                condition=models.Q(reserved__gte=0) & models.Q(reserved__lte=models.F("on_hand")),
                name="stocklevel_reserved_within_on_hand",
            ),
            models.CheckConstraint(condition=models.Q(safety_stock__gte=0), name="stocklevel_safety_not_negative"),
        ]

    def __str__(self):
        return f"{self.warehouse_id}/{self.sku_id}: {self.on_hand} on hand, {self.reserved} reserved"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class MovementKind(models.TextChoices):
    RECEIPT = "receipt", _("receipt")
    RESERVE = "reserve", _("reserve")
    RELEASE = "release", _("release")
    SHIP = "ship", _("ship")
    ADJUSTMENT = "adjustment", _("count adjustment")
    RETURN = "return", _("return")


class StockMovement(models.Model):
    """The stock ledger. Append-only: a mistake is corrected by a new movement."""

    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="+")
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="movements")
    kind = models.CharField(_("kind"), max_length=12, choices=MovementKind.choices)
    on_hand_delta = models.IntegerField(_("on hand change"), default=0)
    reserved_delta = models.IntegerField(_("reserved change"), default=0)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    reference = models.CharField(_("reference"), max_length=100, blank=True, db_index=True)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    reservation = models.ForeignKey("Reservation", on_delete=models.PROTECT, null=True, blank=True, related_name="movements")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("stock movement")
        verbose_name_plural = _("stock movements")
        ordering = ["-id"]
        indexes = [models.Index(fields=["sku", "warehouse", "kind", "created_at"], name="movement_sku_kind_idx")]

    def __str__(self):
        return f"{self.kind} {self.sku_id}@{self.warehouse_id} {self.on_hand_delta:+}/{self.reserved_delta:+}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("stock movements are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("stock movements are append-only")


class Reservation(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active", _("active")
        CONSUMED = "consumed", _("consumed (shipped)")
        RELEASED = "released", _("released")

    # Indexed with status below: an order's active reservations are read on every scan.
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="reservations", db_index=False)
    order_line = models.ForeignKey("orders.OrderLine", on_delete=models.PROTECT, related_name="reservations")
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="reservations")
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="reservations")
    quantity = models.PositiveIntegerField(_("quantity"))
    status = models.CharField(_("status"), max_length=10, choices=State.choices, default=State.ACTIVE)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    close_reason = models.CharField(_("close reason"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("reservation")
        verbose_name_plural = _("reservations")
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="reservation_quantity_positive"),
            # One live reservation per order line: reserving twice is impossible, not just avoided.
            models.UniqueConstraint(
                fields=["order_line"], condition=models.Q(status="active"),
                name="reservation_one_active_per_line",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="reservation_expiry_idx",
                         condition=models.Q(status="active")),
            # Without it the planner, its statistics behind a burst of new reservations, ANDed
            # the order's rows with every active reservation of the expiry index.
            models.Index(fields=["order", "status"], name="reservation_order_status_idx"),
        ]

    def __str__(self):
        return f"{self.order_id}/{self.order_line_id} {self.sku_id}×{self.quantity} @{self.warehouse_id} {self.status}"


class ChannelListing(models.Model):
    """A SKU as sold on one channel: open or closed (stop selling), and an optional promo cap."""

    channel = models.ForeignKey("channels.Channel", on_delete=models.CASCADE, related_name="listings")
    sku = models.ForeignKey(SKU, on_delete=models.CASCADE, related_name="listings")
    is_open = models.BooleanField(_("selling"), default=True)
    closed_reason = models.CharField(_("closed because"), max_length=255, blank=True)
    promo_cap = models.PositiveIntegerField(
        _("promo cap"), null=True, blank=True,
        help_text=_("At most this many units may be reserved for this channel, whatever the stock."),
    )
    promo_reserved = models.PositiveIntegerField(_("reserved under the cap"), default=0)
    changed_at = models.DateTimeField(_("changed at"), auto_now=True)

    class Meta:
        verbose_name = _("channel listing")
        verbose_name_plural = _("channel listings")
        constraints = [
            models.UniqueConstraint(fields=["channel", "sku"], name="listing_channel_sku_unique"),
            models.CheckConstraint(
                condition=models.Q(promo_cap__isnull=True) | models.Q(promo_reserved__lte=models.F("promo_cap")),
                name="listing_promo_within_cap",
            ),
        ]

    def __str__(self):
        return f"{self.channel_id}/{self.sku_id} {'open' if self.is_open else 'closed'}"


class ListingChange(models.Model):
    """Each time a listing closed or reopened, and why: visible to ops, never edited."""

    listing = models.ForeignKey(ChannelListing, on_delete=models.CASCADE, related_name="changes")
    is_open = models.BooleanField(_("selling"))
    reason = models.CharField(_("reason"), max_length=255)
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("listing change")
        verbose_name_plural = _("listing changes")
        ordering = ["-at"]

    def __str__(self):
        return f"{self.listing} {'opened' if self.is_open else 'closed'}: {self.reason}"


class StockCount(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", _("draft")
        CONFIRMED = "confirmed", _("confirmed")

    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="counts")
    reference = models.CharField(_("reference"), max_length=100, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=State.choices, default=State.DRAFT)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        verbose_name = _("stock count")
        verbose_name_plural = _("stock counts")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.warehouse_id} count {self.reference or self.pk} ({self.status})"


class StockCountLine(models.Model):
    count = models.ForeignKey(StockCount, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="+")
    counted = models.PositiveIntegerField(_("counted"))
    counted_at = models.DateTimeField(
        _("counted at"), default=timezone.now,
        help_text=_("When the quantity was entered: stock that moved after it is not counted in it."))
    system_on_hand = models.IntegerField(
        _("on hand in the system"), null=True, blank=True,
        help_text=_("On hand when the line was counted (taken at confirmation, less what moved since)."))
    reason = models.CharField(_("variance reason"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("count line")
        verbose_name_plural = _("count lines")
        constraints = [models.UniqueConstraint(fields=["count", "sku"], name="countline_count_sku_unique")]

    def __str__(self):
        return f"{self.sku_id}: {self.counted}"

    @property
    def variance(self) -> int | None:
        return None if self.system_on_hand is None else self.counted - self.system_on_hand


class CacheCheck(models.Model):
    """One run of the availability-cache health check: what it sampled, found and repaired."""

    at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)
    sampled = models.PositiveIntegerField(_("SKUs sampled"))
    holes = models.PositiveIntegerField(_("holes"), help_text=_("SKUs or warehouses missing from the cache."))
    wrong = models.PositiveIntegerField(_("wrong values"))
    repaired = models.PositiveIntegerField(_("repaired"))
    hits = models.PositiveBigIntegerField(_("cache hits since the last check"), default=0)
    misses = models.PositiveBigIntegerField(_("cache misses since the last check"), default=0)
    mismatch_ratio = models.FloatField(_("mismatch ratio"))
    alerting = models.BooleanField(_("above the alert threshold"), default=False)
    cache_up = models.BooleanField(_("cache answered"), default=True)

    class Meta:
        verbose_name = _("cache health check")
        verbose_name_plural = _("cache health checks")
        ordering = ["-at"]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.holes} holes, {self.wrong} wrong of {self.sampled}"

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return None if total == 0 else self.hits / total


class CacheGeneration(models.Model):
    """This database's identity in the availability cache: one row, a random token that the
    Redis keys are namespaced by. A new database (migrate, or a flush: the row is created again
    on first use) gets a new token, so Redis can never serve numbers, or refuse writes as older,
    from another database. A restore brings back the backup's token: run
    `manage.py rotate_cache_generation` after one."""

    ONE = 1

    token = models.CharField(_("token"), max_length=32)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("availability cache generation")
        verbose_name_plural = _("availability cache generations")

    def __str__(self):
        return self.token

    @staticmethod
    def new_token() -> str:
        return uuid.uuid4().hex

    @classmethod
    def current(cls) -> str:
        """The token, creating the row if it is missing (a flushed database)."""
        token = cls.objects.filter(pk=cls.ONE).values_list("token", flat=True).first()
        if token is None:
            token = cls.objects.get_or_create(pk=cls.ONE, defaults={"token": cls.new_token()})[0].token
        return token

    @classmethod
    def rotate(cls) -> tuple[str | None, str]:
        """A new token (after a restore): every cached value of the old one is left behind."""
        with transaction.atomic():
            old = cls.objects.select_for_update().filter(pk=cls.ONE).values_list("token", flat=True).first()
            new = cls.new_token()
            cls.objects.update_or_create(pk=cls.ONE, defaults={"token": new})
        return old, new
