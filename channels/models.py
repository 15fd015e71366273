import secrets

from django.db import models
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
    allow_split = models.BooleanField(
        _("allow split shipments"), default=False,
        help_text=_("When no single warehouse can ship every line, ship from several."),
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
