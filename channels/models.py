import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ChannelKind(models.TextChoices):
    TAOBAO = "taobao", _("Taobao / Tmall")
    JD = "jd", _("JD")
    DOUYIN = "douyin", _("Douyin shop")
    PDD = "pdd", _("Pinduoduo")
    SHOPIFY = "shopify", _("Shopify")
    GENERIC = "generic", _("Generic webhook")
    SANDBOX = "sandbox", _("Sandbox marketplace")


# The two letters that open a unified order number: TB2026010900123.
ORDER_PREFIX_BY_KIND = {
    ChannelKind.TAOBAO: "TB",
    ChannelKind.JD: "JD",
    ChannelKind.DOUYIN: "DY",
    ChannelKind.PDD: "PD",
    ChannelKind.SHOPIFY: "SH",
    ChannelKind.GENERIC: "GN",
    ChannelKind.SANDBOX: "SB",
}

MANUAL_CHANNEL_CODE = "MANUAL"


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


class Channel(models.Model):
    """A sales channel (a shop on a platform, the mini-program, manual entry)."""

    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=ChannelKind.choices)
    order_prefix = models.CharField(
        _("order number prefix"), max_length=4,
        help_text=_("Opens the unified order numbers of this channel, e.g. TB."),
    )
    active = models.BooleanField(_("active"), default=True)
    webhook_secret = models.CharField(_("webhook secret"), max_length=100, default=new_webhook_secret)
    reserve_on = models.CharField(
        _("reserve stock on"), max_length=10, default="payment",
        choices=[("payment", _("payment")), ("creation", _("creation (with expiry)"))],
    )
    pending_reservation_minutes = models.PositiveIntegerField(
        _("unpaid reservation expires after (minutes)"), default=30
    )
    settlement_lag_days = models.PositiveSmallIntegerField(
        _("settlement lag (days)"), default=1,
        help_text=_("A settlement file dated D covers the business day D minus this (T+1: 1)."),
    )
    api_base_url = models.URLField(_("API base URL"), blank=True)
    credentials = models.JSONField(
        _("credentials"), default=dict, blank=True,
        help_text=_("app_key, app_secret, session/access token… as the platform needs."),
    )
    pull_interval_seconds = models.PositiveIntegerField(_("pull every (seconds)"), default=60)
    pull_overlap_seconds = models.PositiveIntegerField(
        _("window overlap (seconds)"), default=120,
        help_text=_("Each pull starts this much before the cursor: late-indexed orders are not missed."),
    )
    sync_cursor = models.DateTimeField(_("pulled up to"), null=True, blank=True)
    pull_claimed_until = models.DateTimeField(
        _("pull running until"), null=True, blank=True,
        help_text=_("Set while a pull runs, so only one pull of a channel runs at a time."),
    )
    allow_split = models.BooleanField(
        _("allow split shipments"), default=False,
        help_text=_("When no single warehouse can ship every line, ship from several."),
    )
    signature_version = models.PositiveSmallIntegerField(
        _("webhook signature version"), default=2, choices=[(1, _("1: HMAC of the body")),
                                                            (2, _("2: HMAC of timestamp and body"))],
        help_text=_("2 for every channel created now (signed timestamp, 300 s); 1 only for channels "
                    "created before, until their sender signs version 2."),
    )
    completion_days = models.PositiveSmallIntegerField(
        _("completed after delivery (days)"), default=10,
        help_text=_("A delivered order is completed this many days after delivery, as the "
                    "channel's automatic receipt confirmation does (Taobao/Tmall: 10 days)."),
    )

    class Meta:
        ordering = ["code"]
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self):
        return f"{self.code} {self.name}"

    def save(self, *args, **kwargs):
        if not self.order_prefix:
            self.order_prefix = ORDER_PREFIX_BY_KIND.get(self.kind, "OM")
        super().save(*args, **kwargs)


class ChannelSkuMapping(models.Model):
    """A channel's own SKU code for one of ours, when it is neither our code nor the barcode."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="sku_mappings")
    external_code = models.CharField(_("channel SKU code"), max_length=100)
    sku = models.ForeignKey("inventory.SKU", on_delete=models.CASCADE, related_name="+")

    class Meta:
        verbose_name = _("channel SKU mapping")
        verbose_name_plural = _("channel SKU mappings")
        constraints = [
            models.UniqueConstraint(fields=["channel", "external_code"], name="sku_mapping_unique")
        ]

    def __str__(self):
        return f"{self.channel_id}:{self.external_code} → {self.sku_id}"


class CleansingRule(models.Model):
    """A fix applied to every normalised order of a channel before validation, editable by
    ops (e.g. strip the "ERR" an integration glued onto every order id)."""

    class Action(models.TextChoices):
        DROP_FIELD = "drop_field", _("drop the field")
        STRIP_SUFFIX = "strip_suffix", _("strip a suffix")
        STRIP_PREFIX = "strip_prefix", _("strip a prefix")
        MAP_VALUE = "map_value", _("map a value")

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="cleansing_rules")
    position = models.PositiveSmallIntegerField(_("order"), default=0)
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    field = models.CharField(
        _("field"), max_length=100,
        help_text=_("Dotted path in the order input: external_order_id, receiver.address, lines[].sku"),
    )
    argument = models.CharField(
        _("argument"), max_length=255, blank=True,
        help_text=_("The suffix/prefix to strip, or for map_value 'from=>to'."),
    )
    active = models.BooleanField(_("active"), default=True)
    note = models.CharField(_("why"), max_length=255, blank=True)

    class Meta:
        ordering = ["channel", "position", "pk"]
        verbose_name = _("cleansing rule")
        verbose_name_plural = _("cleansing rules")

    def __str__(self):
        return f"{self.channel_id}: {self.action} {self.field} {self.argument}".strip()


class RawPayload(models.Model):
    """Every raw order exactly as received, before any rule touched it: the archive that
    replay re-normalises after a rule is fixed. The body is never changed."""

    class Outcome(models.TextChoices):
        PENDING = "pending", _("pending")
        CREATED = "created", _("created")
        UPDATED = "updated", _("updated")
        UNCHANGED = "unchanged", _("unchanged")
        MERGED = "merged", _("merged")
        HELD = "held", _("held")
        INVALID = "invalid", _("invalid (not an order)")

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="raw_payloads")
    external_order_id = models.CharField(_("channel order id"), max_length=100, blank=True, db_index=True)
    source = models.CharField(_("source"), max_length=10)  # webhook, pull, replay
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)
    body = models.TextField(_("body"))
    sha256 = models.CharField(_("sha256"), max_length=64, db_index=True)
    outcome = models.CharField(_("outcome"), max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    errors = models.JSONField(_("reasons"), default=list, blank=True)
    order = models.ForeignKey("orders.Order", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    sync_run = models.ForeignKey("SyncRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="payloads")
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    # A webhook delivery accepted but not processed yet is taken by one worker at a time; a
    # claim older than a minute is a dead worker's and is taken again (channels.deliveries).
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("raw payload")
        verbose_name_plural = _("raw payloads")
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["channel", "received_at"], name="rawpayload_channel_time_idx"),
            models.Index(fields=["channel", "id"], name="rawpayload_pending_webhook_idx",
                         condition=models.Q(outcome="pending", source="webhook")),
        ]

    def __str__(self):
        return f"{self.channel_id}:{self.external_order_id} {self.outcome}"


class SyncRun(models.Model):
    """One pull of one channel: the window, what it found, how it went."""

    class State(models.TextChoices):
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="sync_runs")
    window_start = models.DateTimeField(_("window start"))
    window_end = models.DateTimeField(_("window end"))
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=State.choices, default=State.RUNNING)
    fetched = models.PositiveIntegerField(_("fetched"), default=0)
    created = models.PositiveIntegerField(_("created"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    unchanged = models.PositiveIntegerField(_("unchanged"), default=0)
    held = models.PositiveIntegerField(_("held"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")
        ordering = ["-started_at"]

    def __str__(self):
        return f"{self.channel_id} {self.window_start:%H:%M}–{self.window_end:%H:%M} {self.status}"

    @property
    def duration_seconds(self) -> float | None:
        return None if self.finished_at is None else (self.finished_at - self.started_at).total_seconds()


class SchemaValueType(models.TextChoices):
    STR = "str", _("string")
    INT = "int", _("integer")
    FLOAT = "float", _("decimal number")
    BOOL = "bool", _("boolean")
    NULL = "null", _("null")
    OBJECT = "object", _("object")
    ARRAY = "array", _("array")


class SchemaField(models.Model):
    """One (path, value type) seen in a channel's raw orders, e.g.
    `orders.order[].outer_sku_id` as str. `accepted` fields are the channel's known schema:
    those learned in its first payloads, compatible retypes (null, int↔float) and those an
    operator acknowledged; the others were seen after learning and wait in a SchemaDrift.
    last_seen and seen_count are written at most once a minute per field (approximate)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="schema_fields")
    path = models.CharField(_("path"), max_length=255)
    value_type = models.CharField(_("value type"), max_length=8, choices=SchemaValueType.choices)
    accepted = models.BooleanField(_("known"), default=False)
    first_seen = models.DateTimeField(_("first seen"))
    last_seen = models.DateTimeField(_("last seen"))
    seen_count = models.PositiveBigIntegerField(_("times seen"), default=1)

    class Meta:
        ordering = ["channel", "path", "value_type"]
        verbose_name = _("schema field")
        verbose_name_plural = _("schema fields")
        constraints = [
            models.UniqueConstraint(fields=["channel", "path", "value_type"], name="schema_field_unique")
        ]

    def __str__(self):
        return f"{self.channel_id}: {self.path} ({self.value_type})"


class SchemaDrift(models.Model):
    """A change in what a channel sends: a new key, a key that vanished, or a key whose value
    type changed. The rows one payload revealed share a `change_set`, so the "channel API
    changed" alert is raised once per (channel, change set). At most one unacknowledged
    drift exists per (channel, kind, path)."""

    class Kind(models.TextChoices):
        NEW = "new", _("new field")
        VANISHED = "vanished", _("vanished field")
        RETYPED = "retyped", _("retyped field")

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="schema_drifts")
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    path = models.CharField(_("path"), max_length=255)
    old_type = models.CharField(_("old type"), max_length=40, blank=True)
    new_type = models.CharField(_("new type"), max_length=8, blank=True)
    change_set = models.CharField(
        _("change set"), max_length=16, db_index=True,
        help_text=_("Shared by the drifts one payload revealed."),
    )
    example = models.JSONField(_("example payload"), null=True, blank=True)
    payload = models.ForeignKey(RawPayload, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="+", verbose_name=_("raw payload"))
    detected_at = models.DateTimeField(_("detected at"), default=timezone.now, db_index=True)
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                        blank=True, related_name="+", verbose_name=_("acknowledged by"))

    class Meta:
        ordering = ["-detected_at", "-pk"]
        verbose_name = _("schema drift")
        verbose_name_plural = _("schema drifts")
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "kind", "path"], condition=models.Q(acknowledged_at__isnull=True),
                name="schema_drift_one_open",
            )
        ]

    def __str__(self):
        change = f"{self.old_type}→{self.new_type}" if self.kind == self.Kind.RETYPED else self.kind
        return f"{self.channel_id}: {self.path} {change}"


from .models_tracking import ShipmentTracking  # noqa: E402, F401  (carrier tracking, one file)
