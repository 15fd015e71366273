from datetime import datetime

from celery import shared_task

from . import approvals, cases, services


@shared_task(name="orders.sweep_shipped")
def sweep_shipped() -> int:
    """Every minute: ship_requested + outbound scan recorded → shipped, if it did not fire."""
    return services.sweep_shipped()


@shared_task(name="orders.expire_unpaid_reservations")
def expire_unpaid_reservations() -> int:
    """Every minute: stock held for unpaid orders past its expiry goes back on sale."""
    return services.expire_unpaid_reservations()


@shared_task(name="orders.transfer_overdue_approvals")
def transfer_overdue_approvals() -> list[dict]:
    """Every 5 minutes: approval tasks past due pass to the backup; superiors are listed."""
    return [
        {key: value.isoformat() if isinstance(value, datetime) else value for key, value in notice.items()}
        for notice in approvals.transfer_overdue()
    ]


@shared_task(name="orders.detect_exception_cases")
def detect_exception_cases() -> dict:
    """Every minute: open exception cases for held, out-of-stock and unpaid orders."""
    return cases.detect_cases()
