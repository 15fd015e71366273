from celery import shared_task

from .adapters.base import TransportError
from .carriers import CarrierError
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


@shared_task(name="channels.push_shipment", bind=True, autoretry_for=(TransportError,),
             retry_backoff=10, retry_backoff_max=1800, retry_jitter=True, max_retries=8)
def push_shipment(self, shipment_id: int) -> str:
    """After the outbound scan: the tracking number to the channel, retried with backoff."""
    from .pushback import push_shipment as push

    return push(shipment_id, attempt_is_last=self.request.retries >= self.max_retries)


@shared_task(name="channels.send_shipment_pushes")
def send_shipment_pushes() -> int:
    """Every 30 s: each newly shipped order's tracking number is queued for its channel
    (and a push whose task was lost is queued again)."""
    from .pushback import claim_pushes

    ids = claim_pushes()
    for shipment_id in ids:
        push_shipment.delay(shipment_id)
    return len(ids)


@shared_task(name="channels.subscribe_shipment_tracking", bind=True, autoretry_for=(CarrierError,),
             retry_backoff=30, retry_backoff_max=1800, retry_jitter=True, max_retries=6)
def subscribe_shipment_tracking(self, shipment_id: int) -> str:
    """After the outbound scan: the parcel's tracking row and its carrier subscription."""
    from .tracking import subscribe_shipment

    return subscribe_shipment(shipment_id, attempt_is_last=self.request.retries >= self.max_retries)


@shared_task(name="channels.poll_tracking")
def poll_tracking() -> dict:
    """Hourly: poll the parcels not heard of for OMS_TRACKING_POLL_HOURS (each every 6 h)."""
    from .tracking import poll_due

    result = poll_due()
    return {"due": result.due, "polled": result.polled, "failed": result.failed}


@shared_task(name="channels.check_stale_tracking")
def check_stale_tracking() -> dict:
    """Every minute: new shipments get their tracking row and a subscription (kept off the
    scanner's request path on purpose), parcels with no carrier news for 48 h get no_update and
    a case."""
    from .tracking import check_stale

    result = check_stale()
    for shipment_id in result.adopted:
        subscribe_shipment_tracking.delay(shipment_id)
    return {"flagged": result.flagged, "adopted": len(result.adopted)}


@shared_task(name="channels.process_deliveries")
def process_deliveries(channel_id: int | None = None) -> int:
    """Webhook deliveries of one channel (woken by the webhook), or of every channel with some
    pending (beat, every 10 s: the backstop for a wake-up lost to a broker outage)."""
    from .deliveries import channels_with_pending, process_pending

    ids = [channel_id] if channel_id is not None else channels_with_pending()
    return sum(process_pending(pk) for pk in ids)
