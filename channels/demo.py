"""A demo channel wired to the sandbox marketplace, so `make run` shows orders arriving live."""

import os
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import Channel, ShipmentTracking
from .schedules import ensure_pull_schedule


def load(stdout) -> None:
    bind = os.environ.get("OMS_BIND", "127.0.0.1:8000")
    channel, created = Channel.objects.get_or_create(
        code="SANDBOX-TB",
        defaults={
            "name": "沙箱淘宝店 (sandbox)",
            "kind": "sandbox",
            "api_base_url": f"http://{bind}/sandbox/taobao/router/rest",
            "credentials": {"app_key": "demo"},
            # Start ten minutes back, not a day: the sandbox makes an order every 10 s.
            "sync_cursor": timezone.now() - timedelta(minutes=10),
        },
    )
    ensure_pull_schedule(channel)
    if created:
        stdout.write(f"  channel SANDBOX-TB pulls {channel.api_base_url} every minute")
    _demo_tracking(stdout)


def _demo_tracking(stdout) -> None:
    """The demo's shipped parcels polled once from the sandbox carrier, so their timelines show
    the route so far; beat polls them again as they become due. Never against a real carrier."""
    if settings.OMS_CARRIER_ADAPTER != "sandbox":
        return
    from . import tracking

    now = timezone.now()
    tracking.adopt_untracked(now)
    never_polled = ShipmentTracking.objects.filter(
        shipment__order__external_order_id__startswith="DEMO-", last_polled_at__isnull=True)
    result = tracking.poll_rows(list(never_polled.values_list("pk", flat=True)), now=now)
    if result.polled or result.failed:
        stdout.write(f"  tracking: {result.polled} demo parcels polled from the sandbox carrier"
                     + (f" ({result.failed} without a record yet)" if result.failed else ""))
