from celery import shared_task

from .cache_health import run_check


@shared_task(name="inventory.check_availability_cache")
def check_availability_cache() -> int:
    """Every 10 minutes: compare the availability cache with the database and repair it."""
    return run_check().pk
