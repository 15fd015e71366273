from datetime import datetime

from celery import shared_task

from . import approvals, cases, services


@shared_task(name="orders.sweep_shipped")
def sweep_shipped() -> int:
    """Every minute: ship_requested + outbound scan recorded → shipped, if it did not fire."""
    return services.sweep_shipped()


@shared_task(name="orders.complete_delivered")
def complete_delivered() -> int:
    """Hourly: delivered orders past their channel's confirmation period are completed."""
    return services.complete_delivered()


@shared_task(name="orders.expire_unpaid_reservations")
def expire_unpaid_reservations() -> int:
    """Every minute: stock held for unpaid orders past its expiry goes back on sale."""
    return services.expire_unpaid_reservations()


@shared_task(name="orders.transfer_overdue_approvals")
def transfer_overdue_approvals() -> list[dict]:
    """Every 5 minutes: approval tasks past due pass to the backup; the backup and the
    superior are told by email."""
    from alerts.delivery import notify_people

    notices = approvals.transfer_overdue()
    for notice in notices:
        what = "passed to you" if notice["action"] == "transferred" else "is overdue"
        notify_people([notice["superior_id"], notice["backup_id"]],
                      title=f"Approval of {notice['order_no']} {what}",
                      text=f"The approval task of order {notice['order_no']} was due at {notice['due_at']:%Y-%m-%d %H:%M} "
                           f"and is {notice['action']}.", subject=f"order:{notice['order_no']}")
    return [
        {key: value.isoformat() if isinstance(value, datetime) else value for key, value in notice.items()}
        for notice in notices
    ]


@shared_task(name="orders.detect_exception_cases")
def detect_exception_cases() -> dict:
    """Every minute: open exception cases for held, out-of-stock and unpaid orders."""
    return cases.detect_cases()
