"""SIGKILL the Celery worker in the middle of a statement import: nothing half-imported, the
import not left "importing" for good, the sweep's next attempt imports it exactly once."""

import os
import signal
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection

from reconciliation import jobs
from reconciliation.models import Statement, StatementImport, StatementLine
from reconciliation.tests import statement_files as files
from tests.processes import clean_env, send_task, start_worker

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
LINES = 150_000  # a second or two of COPY: long enough to be killed halfway


def test_an_import_killed_halfway_is_imported_once_by_the_next_attempt(tmp_path, django_capture_on_commit_callbacks):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL or 127.0.0.1:6379) for the worker's broker")
    db = connection.settings_dict
    env = clean_env(OMS_VAR_DIR=str(tmp_path), REDIS_URL=settings.REDIS_URL,
                    DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}")
    job = StatementImport.objects.create(account="acct", size=0, checksum="e" * 64,
                                         data=files.big_generic_csv(LINES))
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    worker = start_worker(queue, env)
    try:
        send_task("reconciliation.tasks", "import_statement_file", [job.pk], queue, env)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and StatementImport.objects.get(pk=job.pk).state != "running":
            time.sleep(0.05)
        assert StatementImport.objects.get(pk=job.pk).state == "running", "the worker never took the import"
        time.sleep(0.5)  # rows are streaming into the database now
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    job.refresh_from_db()
    assert job.state == "running" and not Statement.objects.exists() and not StatementLine.objects.exists()

    # The killed worker's connection is gone with its lock: the sweep sees it at once.
    deadline = time.monotonic() + 10
    swept = {}
    while time.monotonic() < deadline:
        with django_capture_on_commit_callbacks(execute=True):  # the retry runs inline here
            swept = jobs.sweep(job.started_at + timedelta(minutes=2))
        if swept["imports_retried"]:
            break
        time.sleep(0.2)
    assert swept["imports_retried"] == 1, swept
    job.refresh_from_db()
    assert (job.state, job.attempts) == ("imported", 2)
    assert Statement.objects.count() == 1 and StatementLine.objects.count() == LINES
