from celery import shared_task

from . import services


@shared_task(name="orders.sweep_shipped")
def sweep_shipped() -> int:
    """Every minute: ship_requested + outbound scan recorded → shipped, if it did not fire."""
    return services.sweep_shipped()


@shared_task(name="orders.expire_unpaid_reservations")
def expire_unpaid_reservations() -> int:
    """Every minute: stock held for unpaid orders past its expiry goes back on sale."""
    return services.expire_unpaid_reservations()
