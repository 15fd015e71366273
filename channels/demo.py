"""A demo channel wired to the sandbox marketplace, so `make run` shows orders arriving live."""

import os
from datetime import timedelta

from django.utils import timezone

from .models import Channel
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
