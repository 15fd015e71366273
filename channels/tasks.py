from celery import shared_task

from .adapters.base import TransportError
from .models import Channel
from .pulls import PullBusy, pull


@shared_task(name="channels.pull_channel_orders", autoretry_for=(TransportError,), retry_backoff=5,
             retry_backoff_max=300, retry_jitter=True, max_retries=5)
def pull_channel_orders(channel_id: int) -> int | None:
    """One incremental pull (beat runs one schedule per active channel). 5xx and timeouts
    retry with backoff; a pull already running for the channel makes this one a no-op."""
    if not Channel.objects.filter(pk=channel_id, active=True).exists():
        return None
    try:
        return pull(channel_id).pk
    except PullBusy:
        return None
