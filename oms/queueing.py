"""Sending a task to the broker after a commit without letting a broker outage fail the request.

The database row that describes the work (a queued run, a queued import) is the promise; the
broker message is only a wake-up call. When the broker is down the message is skipped with a
warning and the sweep of the owning app picks the row up once workers run again.

Tasks are named, not imported, so a service never imports its own app's Celery entry points
(which import the service: a cycle).
"""

import logging

from django.db import transaction

from oms.celery import app as current_app

log = logging.getLogger(__name__)


def enqueue_on_commit(task_name: str, *args) -> None:
    transaction.on_commit(lambda: send(task_name, *args))


def send(task_name: str, *args) -> bool:
    found = task(task_name)
    if found.app.conf.task_always_eager:
        found.delay(*args)  # inline (tests): its failure is the caller's to see
        return True
    try:
        found.delay(*args)
    except Exception as exc:  # noqa: BLE001 - kombu, redis and socket errors alike mean "not sent"
        log.warning("could not enqueue %s%r (%s: %s); the sweep will pick it up",
                    task_name, args, exc.__class__.__name__, exc)
        return False
    return True


def task(name: str):
    if name not in current_app.tasks:
        current_app.loader.import_default_modules()  # outside a worker, tasks modules load lazily
    return current_app.tasks[name]
