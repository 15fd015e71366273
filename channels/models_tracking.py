"""Carrier tracking of one shipment: where the parcel is, as the carrier last told us.

One row per `orders.Shipment`, created when the parcel leaves the warehouse. The order's
timeline keeps every checkpoint as an `OrderEvent`; this row keeps the carrier's view in one
place for the sweeps (poll what is due, flag what went quiet) and for the alert rules.
"""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from .carriers import TrackingState

NO_RECORD = ""  # no checkpoint from the carrier yet


class TrackingStatus(models.TextChoices):
    NO_RECORD = NO_RECORD, _("no record yet")
    COLLECTED = "collected", _("collected")
    IN_TRANSIT = "in_transit", _("in transit")
    DELIVERING = "delivering", _("out for delivery")
    SIGNED = "signed", _("signed for")
    PROBLEM = "problem", _("problem")
    RETURNED = "returned", _("returned")
    REJECTED = "rejected", pgettext_lazy("parcel", "rejected")


# Still on its way to the receiver: polled, and expected to keep moving.
# Plain strings: the partial index's condition is written into the migration.
IN_FLIGHT = [NO_RECORD, *(str(state) for state in (
    TrackingState.COLLECTED, TrackingState.IN_TRANSIT, TrackingState.DELIVERING,
    TrackingState.PROBLEM))]


def heard_at():
    """When we last heard of the parcel: its last push or poll, or, never heard of, its
    outbound scan. Coalesced because GREATEST is NULL with any NULL on SQLite (PostgreSQL
    skips NULLs); the poll sweep filters on this exact expression, which is indexed."""
    return Greatest("outbound_at", Coalesce("last_polled_at", "outbound_at"),
                    Coalesce("last_push_at", "outbound_at"))


# The carrier adapters' states, one for one.
assert set(TrackingStatus.values) == {NO_RECORD, *map(str, TrackingState)}


class ShipmentTracking(models.Model):
    shipment = models.OneToOneField(
        "orders.Shipment", on_delete=models.CASCADE, related_name="tracking",
        verbose_name=_("shipment"),
    )
    adapter = models.CharField(
        _("tracking source"), max_length=16, help_text=_("kuaidi100 or sandbox")
    )
    state = models.CharField(
        _("carrier state"), max_length=12, choices=TrackingStatus.choices, blank=True,
        default=NO_RECORD,
    )
    outbound_at = models.DateTimeField(
        _("outbound at"), help_text=_("The shipment's outbound scan, copied for the sweeps.")
    )
    last_event_at = models.DateTimeField(
        _("newest checkpoint at"), null=True, blank=True,
        help_text=_("Carrier time of the newest checkpoint; empty until the first one."),
    )
    last_polled_at = models.DateTimeField(_("last polled at"), null=True, blank=True)
    last_push_at = models.DateTimeField(_("last push at"), null=True, blank=True)
    poll_error = models.TextField(_("last poll error"), blank=True)
    subscribed_at = models.DateTimeField(_("subscribed at"), null=True, blank=True)
    subscribe_error = models.TextField(_("subscribe error"), blank=True)
    checkpoints = models.JSONField(
        _("checkpoints"), default=list, blank=True, help_text=_("Newest first, at most 100.")
    )
    anomalies = models.JSONField(
        _("anomalies"), default=list, blank=True,
        help_text=_("Codes seen in the latest update: no_update, off_route, repeated_returns."),
    )
    returns_count = models.PositiveSmallIntegerField(
        _("return episodes"), default=0,
        help_text=_("Runs of returned/rejected checkpoints; one refusal is one episode."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("shipment tracking")
        verbose_name_plural = _("shipment tracking")
        indexes = [
            # "Quiet for 48 h" and the alert rule: state = '' AND last_event_at IS NULL, or an
            # in-flight state with last_event_at before a cutoff.
            models.Index(fields=["state", "last_event_at"], name="tracking_state_event_idx"),
            # The poll sweep: in-flight parcels not heard of for the poll interval.
            models.Index(heard_at(), condition=Q(state__in=IN_FLIGHT), name="tracking_poll_due_idx"),
        ]

    def __str__(self):
        return f"{self.shipment} {self.state or '-'}"
