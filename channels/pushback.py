"""Tell the channel an order shipped: its tracking number goes back through the adapter.

For WeChat mini-program orders this is the shipping-info upload that releases the frozen
payment, so failures are kept visible (on the shipment and the order's timeline) and retried.
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from orders.events import Actor, EventKind, Track, record_event
from orders.models import Shipment

from .adapters import ADAPTERS
from .adapters.base import ChannelAPIError, TransportError

PUSHLESS_KINDS = {"generic"}


def needs_push(shipment: Shipment) -> bool:
    channel = shipment.order.channel
    return channel.kind not in PUSHLESS_KINDS and bool(channel.api_base_url)


LOST_AFTER = timedelta(hours=1)


def claim_pushes(limit: int = 500) -> list[int]:
    """Shipments to push now: new ones, and queued ones whose task seems lost. Each is
    claimed with one conditional UPDATE, so two sweeps never queue the same shipment."""
    now = timezone.now()
    candidates = list(
        Shipment.objects.filter(
            Q(push_status="pending") | Q(push_status="queued", push_queued_at__lt=now - LOST_AFTER)
        ).order_by("pk").values_list("pk", "push_status", "push_queued_at")[:limit]
    )
    claimed = []
    for shipment_id, status, queued_at in candidates:
        if Shipment.objects.filter(pk=shipment_id, push_status=status, push_queued_at=queued_at) \
                .update(push_status="queued", push_queued_at=now):
            claimed.append(shipment_id)
    return claimed


def push_shipment(shipment_id: int, attempt_is_last: bool = False) -> str:
    """One attempt. Returns the shipment's push status. Raises TransportError to be retried."""
    shipment = Shipment.objects.select_related("order__channel").get(pk=shipment_id)
    if shipment.push_status in ("sent", "not_needed", "failed"):
        return shipment.push_status
    order, channel = shipment.order, shipment.order.channel
    if not needs_push(shipment):
        Shipment.objects.filter(pk=shipment_id).update(push_status="not_needed")
        return "not_needed"
    Shipment.objects.filter(pk=shipment_id).update(push_attempts=F("push_attempts") + 1)
    actor = Actor.for_channel(channel)
    try:
        reply = ADAPTERS[channel.kind](channel).push_shipment(
            order.external_order_id, shipment.carrier, shipment.tracking_no)
    except TransportError as exc:
        if attempt_is_last:
            _fail(shipment, order, actor, f"gave up after retries: {exc}")
        raise
    except ChannelAPIError as exc:
        _fail(shipment, order, actor, str(exc))
        return "failed"
    with transaction.atomic():
        Shipment.objects.filter(pk=shipment_id).update(push_status="sent", pushed_at=timezone.now(),
                                                       push_error="")
        record_event(order, track=Track.SYSTEM, kind=EventKind.API_CALL, actor=actor,
                     summary=f"tracking {shipment.carrier} {shipment.tracking_no} sent to {channel.code}",
                     payload={"reply": reply if isinstance(reply, dict) else str(reply)})
    return "sent"


def _fail(shipment, order, actor, reason: str) -> None:
    with transaction.atomic():
        Shipment.objects.filter(pk=shipment.pk).update(push_status="failed", push_error=reason[:2000])
        record_event(order, track=Track.SYSTEM, kind=EventKind.API_CALL, actor=actor,
                     summary=f"sending tracking {shipment.tracking_no} to {order.channel.code} failed: {reason}"[:255],
                     payload={"error": reason})
