"""Re-normalise archived payloads of a time window, e.g. after a cleansing rule was fixed."""

import contextlib
from datetime import datetime

from django.db import transaction

from oms.errors import DomainError
from orders import services as order_services
from orders.events import Actor

from .intake import IngestResult, process
from .models import Channel, RawPayload


def payloads_in(channel: Channel, since: datetime, until: datetime):
    return RawPayload.objects.filter(channel=channel, received_at__gte=since, received_at__lt=until) \
        .exclude(source="replay").order_by("received_at", "pk")


def replay(channel: Channel, since: datetime, until: datetime, progress=None) -> dict[str, int]:
    """Each payload again through the current rules, in the order received. An order first
    created under a wrong id (the rule was missing) is cancelled as superseded, with a link."""
    counts: dict[str, int] = {}
    payloads = payloads_in(channel, since, until)
    total = payloads.count()
    for done, payload in enumerate(payloads.iterator(), start=1):
        previous = payload.order
        result = _replay_one(payload)
        if previous is not None and result.order_no and previous.order_no != result.order_no:
            _supersede(previous.order_no, result.order_no, channel)
            counts["superseded"] = counts.get("superseded", 0) + 1
        counts[result.result] = counts.get(result.result, 0) + 1
        if progress:
            progress(done, total)
    return counts


def _replay_one(payload: RawPayload) -> IngestResult:
    with transaction.atomic():
        return process(payload)


def _supersede(order_no: str, replacement: str, channel: Channel) -> None:
    # Already shipped or cancelled: left for ops to decide; the replay is on both timelines.
    with contextlib.suppress(DomainError):
        order_services.cancel_order(order_no, f"superseded by {replacement} after replay "
                                              f"(channel order id corrected)", Actor.for_channel(channel))
