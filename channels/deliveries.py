"""Webhook deliveries: accepted at once, processed by a worker in pages (CONTRACTS.md).

The webhook verifies the signature, archives the body as a pending RawPayload and answers
`202 {"delivery", "result": "accepted"}`. A worker then takes the channel's pending deliveries a
page at a time (claimed with one UPDATE … SKIP LOCKED, so workers never share one) through the
same batch path as a pull. Each order is applied in its own transaction with its delivery's
outcome, so a worker killed mid-page leaves the rest pending with a claim that expires after a
minute: the next worker takes them, and none is applied twice.

One wake-up message per channel and second at most (a cache key): the worker drains everything
pending, then drops the key and looks once more, so a delivery that arrived meanwhile is not
left waiting. The beat task `channels.process_deliveries` is the backstop for a lost message.
"""

import time
from datetime import timedelta

from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from oms.queueing import send

from . import intake
from .models import Channel, RawPayload

PAGE_SIZE = 200
CLAIM_FOR = timedelta(minutes=1)
TASK = "channels.process_deliveries"
MAX_WAIT_SECONDS = 5.0
RESULTS = {"invalid": "failed"}  # RawPayload outcome → the contract's result where they differ


def accept(channel: Channel, body: bytes) -> RawPayload:
    """Archive a verified delivery (a JSON object) as pending and wake a worker."""
    payload = intake.archive(channel, body, "webhook")
    wake(channel.pk)
    return payload


def wake(channel_id: int) -> None:
    if cache.add(_wake_key(channel_id), 1, timeout=1):
        send(TASK, channel_id)  # the archive is committed: the webhook runs outside a transaction


def _wake_key(channel_id: int) -> str:
    return f"deliveries-wake:{channel_id}"


def process_pending(channel_id: int) -> int:
    """Every pending delivery of the channel, page by page; how many were processed."""
    channel = Channel.objects.get(pk=channel_id)
    done = 0
    while True:
        page = claim(channel_id)
        if not page:
            cache.delete(_wake_key(channel_id))
            page = claim(channel_id)  # arrived between the last claim and the key's removal
            if not page:
                return done
        intake.apply_archived(channel, page)
        done += len(page)


def claim(channel_id: int, size: int = PAGE_SIZE) -> list[RawPayload]:
    now = timezone.now()
    table = RawPayload._meta.db_table
    skip_locked = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET claimed_at = %s WHERE id IN ("  # noqa: S608
            f" SELECT id FROM {table} WHERE channel_id = %s AND outcome = 'pending' AND source = 'webhook'"
            f" AND (claimed_at IS NULL OR claimed_at < %s) ORDER BY id LIMIT %s{skip_locked}) RETURNING id",
            [now, channel_id, now - CLAIM_FOR, size])
        ids = [row[0] for row in cursor.fetchall()]
    return list(RawPayload.objects.filter(pk__in=ids).order_by("pk"))


def channels_with_pending() -> list[int]:
    return list(RawPayload.objects.filter(outcome="pending", source="webhook")
                .values_list("channel_id", flat=True).distinct())


def wait_for(payload: RawPayload, seconds: float) -> RawPayload:
    """`Prefer: wait=<s>`: the delivery once processed, or as it is when the time is up."""
    deadline = time.monotonic() + min(seconds, MAX_WAIT_SECONDS)
    while payload.outcome == RawPayload.Outcome.PENDING and time.monotonic() < deadline:
        time.sleep(0.02)
        payload.refresh_from_db(fields=["outcome", "errors", "order", "processed_at"])
    return payload


def outcome(payload: RawPayload) -> dict:
    pending = payload.outcome == RawPayload.Outcome.PENDING
    return {
        "delivery": str(payload.pk),
        "result": "accepted" if pending else RESULTS.get(payload.outcome, payload.outcome),
        "order_no": None if pending or payload.order_id is None else payload.order.order_no,
        "reasons": [] if pending else payload.errors,
    }


def requested_wait(prefer: str) -> float:
    """Seconds from a `Prefer: wait=<s>` header (RFC 7240), capped at 5; 0 when absent or bad."""
    for part in prefer.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                return max(0.0, min(float(value.strip()), MAX_WAIT_SECONDS))
            except ValueError:
                return 0.0
    return 0.0
