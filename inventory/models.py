from django.db import models
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
