"""One django-celery-beat schedule per channel, so ops see and edit each pull in the admin."""

from django_celery_beat.models import IntervalSchedule, PeriodicTask

TASK = "channels.pull_channel_orders"


def schedule_name(channel) -> str:
    return f"channels: pull {channel.code}"


def ensure_pull_schedule(channel) -> PeriodicTask | None:
    """Create or update the channel's pull schedule; channels without an API pull nothing."""
    pulls = bool(channel.api_base_url) and channel.kind != "generic"
    existing = PeriodicTask.objects.filter(name=schedule_name(channel)).first()
    if not pulls:
        if existing:
            existing.enabled = False
            existing.save(update_fields=["enabled"])
        return existing
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=channel.pull_interval_seconds, period=IntervalSchedule.SECONDS)
    task, _ = PeriodicTask.objects.update_or_create(
        name=schedule_name(channel),
        defaults={"task": TASK, "interval": interval, "args": f"[{channel.pk}]", "enabled": channel.active},
    )
    return task
