"""Celery beat's database scheduler, made to outlive a database blip.

django-celery-beat catches database errors in some places but not all (reading the schedule
after a change, installing entries), and one "too many clients" error ends beat for good:
nothing is scheduled again until someone restarts it. Here a tick that meets a database error
logs it, drops the connection and the in-memory heap (an entry popped before the error is not
lost) and tries again a few seconds later. bin/supervise restarts beat should it still exit.
"""

import contextlib
import logging

from django.db import close_old_connections, connection
from django.db.utils import DatabaseError, InterfaceError
from django_celery_beat.schedulers import DatabaseScheduler

log = logging.getLogger(__name__)


class ResilientDatabaseScheduler(DatabaseScheduler):
    retry_seconds = 5.0

    def tick(self, *args, **kwargs):
        try:
            return super().tick(*args, **kwargs)
        except (DatabaseError, InterfaceError) as exc:
            log.warning("beat: database error (%s: %s); retrying in %.0f s",
                        exc.__class__.__name__, str(exc).strip(), self.retry_seconds)
            self._forget_connection()
            self._heap = None
            self._initial_read = True  # read the whole schedule again once the database answers
            return self.retry_seconds

    def _forget_connection(self):
        with contextlib.suppress(DatabaseError, InterfaceError):
            connection.close()
        close_old_connections()
