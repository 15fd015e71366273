"""Incremental pulls: one channel, one window, every order through intake, then the cursor.

Only one pull of a channel runs at a time (a claim taken with one conditional UPDATE, never a
transaction held across HTTP). The window starts `pull_overlap_seconds` before the cursor, so
orders the platform indexed late are not missed (intake makes the overlap harmless). The window
is pulled in slices of at most OMS_PULL_SLICE_SECONDS, and the cursor moves to a slice's end
only after every order of the slice is committed: a worker killed halfway leaves the cursor at
the last whole slice. A pull stops after the slice that passes OMS_PULL_BUDGET_SECONDS (well
inside the task's time limit) and the next one goes on from there, so a backlog longer than one
task may take drains run by run instead of starting over each time.

Orders go to intake a page at a time (`ingest_page`, the platform's page size): each page is
archived at once, its unchanged orders recognised with one query, each other order applied in
its own transaction.
"""

import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from itertools import islice

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .adapters import ADAPTERS
from .adapters.base import TransportError, Window, split_window
from .intake import ingest_page
from .models import Channel, SyncRun

FIRST_PULL_LOOKBACK = timedelta(hours=24)
CLAIM_FOR = timedelta(minutes=10)


class PullBusy(Exception):
    """Another pull of this channel is running."""


def claim(channel_id: int) -> bool:
    now = timezone.now()
    return bool(
        Channel.objects.filter(pk=channel_id)
        .filter(Q(pull_claimed_until__isnull=True) | Q(pull_claimed_until__lt=now))
        .update(pull_claimed_until=now + CLAIM_FOR)
    )


def _checkpoint(channel_id: int, cursor) -> None:
    """A slice is committed: the cursor moves there and the claim is renewed."""
    Channel.objects.filter(pk=channel_id).update(sync_cursor=cursor, pull_claimed_until=timezone.now() + CLAIM_FOR)


def slice_seconds() -> int:
    return int(getattr(settings, "OMS_PULL_SLICE_SECONDS", 3600))


def budget_seconds() -> float:
    return float(getattr(settings, "OMS_PULL_BUDGET_SECONDS", 120))


def _close_interrupted_runs(channel_id: int) -> int:
    """Runs still "running" when the claim was free: their worker was killed (the cursor kept
    its last whole slice, so this pull goes on from there)."""
    return SyncRun.objects.filter(channel_id=channel_id, status=SyncRun.State.RUNNING).update(
        status=SyncRun.State.FAILED, finished_at=timezone.now(),
        error="interrupted: the worker stopped before the pull finished; the next pull went on from the cursor",
    )


def release(channel_id: int) -> None:
    Channel.objects.filter(pk=channel_id).update(pull_claimed_until=None)


def next_window(channel: Channel, now=None) -> Window:
    now = now or timezone.now()
    start = (channel.sync_cursor or now - FIRST_PULL_LOOKBACK) - timedelta(seconds=channel.pull_overlap_seconds)
    return Window(start, now)


RUN_COUNTER = {"created": "created", "updated": "updated", "unchanged": "unchanged", "merged": "updated",
               "held": "held"}  # IngestResult.result → SyncRun counter ("failed" for the rest)


def pages(raws: Iterable[dict], size: int) -> Iterator[list[dict]]:
    """The fetched orders in lists of `size` (the adapters yield them one by one)."""
    iterator = iter(raws)
    while page := list(islice(iterator, max(size, 1))):
        yield page


def pull(channel_id: int, transport=None) -> SyncRun:
    if not claim(channel_id):
        raise PullBusy(f"a pull of channel {channel_id} is already running")
    channel = Channel.objects.get(pk=channel_id)
    _close_interrupted_runs(channel_id)
    adapter = ADAPTERS[channel.kind](channel, transport=transport)
    # Pinduoduo drops its newest minutes: the cursor may only reach what was really asked for.
    window = adapter.clamp_window(next_window(channel))
    if window is None:
        release(channel.pk)
        raise PullBusy(f"nothing to pull yet for channel {channel.code}")
    run = SyncRun.objects.create(channel=channel, window_start=window.start, window_end=window.end)
    started = time.monotonic()
    try:
        for part in split_window(window, slice_seconds()):
            for page in pages(adapter.fetch(part), adapter.page_size):
                run.fetched += len(page)
                for result in ingest_page(channel, page, "pull", sync_run=run):
                    field = RUN_COUNTER.get(result.result, "failed")
                    setattr(run, field, getattr(run, field) + 1)
            _checkpoint(channel.pk, part.end)
            run.window_end = part.end  # what this run covered
            if part.end < window.end and time.monotonic() - started > budget_seconds():
                break  # the rest of the backlog is the next pull's
        run.status = SyncRun.State.SUCCEEDED
    except Exception as exc:
        run.status = SyncRun.State.FAILED
        run.error = f"{exc.__class__.__name__}: {exc}"[:2000]
        raise
    finally:
        run.finished_at = timezone.now()
        run.save()
        release(channel.pk)
    return run


__all__ = ["pull", "PullBusy", "TransportError"]
