"""Default Celery beat schedules, created once in django-celery-beat's tables.

Ops edit them in the admin afterwards; migrate only adds the ones that are missing and never
overwrites an edited interval (beat's own `beat_schedule` sync would).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class DefaultSchedule:
    name: str
    task: str
    every_seconds: int | None = None
    crontab: dict | None = None  # e.g. {"minute": "0", "hour": "9"}


DEFAULT_SCHEDULES: list[DefaultSchedule] = [
    DefaultSchedule("oms: worker heartbeat", "oms.heartbeat", every_seconds=60),
    DefaultSchedule("orders: close shipped orders (sweep)", "orders.sweep_shipped", every_seconds=60),
    DefaultSchedule("inventory: availability cache health check", "inventory.check_availability_cache",
                    every_seconds=600),
    DefaultSchedule("channels: process webhook deliveries left pending", "channels.process_deliveries",
                    every_seconds=10),
    DefaultSchedule("channels: send tracking numbers to channels", "channels.send_shipment_pushes",
                    every_seconds=30),
    # Hourly, but each parcel is polled only when unheard of for OMS_TRACKING_POLL_HOURS (6 h).
    DefaultSchedule("channels: poll carrier tracking (due parcels)", "channels.poll_tracking",
                    every_seconds=3600),
    # Also adopts (subscribes) new shipments: tracking starts within a minute of the outbound
    # scan without a broker round trip on the scanner's request path.
    DefaultSchedule("channels: start tracking new parcels, flag those quiet for 48 h",
                    "channels.check_stale_tracking", every_seconds=60),
    DefaultSchedule("orders: complete delivered orders after the channel's confirmation period",
                    "orders.complete_delivered", every_seconds=3600),
    DefaultSchedule("orders: release expired unpaid reservations", "orders.expire_unpaid_reservations",
                    every_seconds=60),
    DefaultSchedule("orders: pass overdue approvals to the backup", "orders.transfer_overdue_approvals",
                    every_seconds=300),
    DefaultSchedule("orders: detect exception cases", "orders.detect_exception_cases", every_seconds=60),
    DefaultSchedule("alerts: scan alert rules", "alerts.check_alerts", every_seconds=60),
    DefaultSchedule("alerts: deliver notifications (retries)", "alerts.deliver_notifications",
                    every_seconds=30),
    DefaultSchedule("reconciliation: nightly run for the previous day",
                    "reconciliation.nightly_reconciliation", crontab={"minute": "0", "hour": "9"}),
    DefaultSchedule("reconciliation: retry interrupted runs and imports, queue a missed nightly run",
                    "reconciliation.sweep", every_seconds=60),
    DefaultSchedule("reconciliation: link payments to unpaid orders",
                    "reconciliation.paid_without_record", every_seconds=60),
]


def ensure_default_schedules(**kwargs) -> int:
    from django.conf import settings
    from django_celery_beat.models import (
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
    )

    created = 0
    for default in DEFAULT_SCHEDULES:
        if PeriodicTask.objects.filter(name=default.name).exists():
            continue
        if default.crontab is not None:
            crontab, _ = CrontabSchedule.objects.get_or_create(
                timezone=settings.TIME_ZONE, **default.crontab
            )
            PeriodicTask.objects.create(name=default.name, task=default.task, crontab=crontab)
        else:
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=default.every_seconds, period=IntervalSchedule.SECONDS
            )
            PeriodicTask.objects.create(name=default.name, task=default.task, interval=interval)
        created += 1
    return created
