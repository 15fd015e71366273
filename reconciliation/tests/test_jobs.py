"""Statement imports and reconciliation runs as background work that survives a stopped broker
and a killed worker: accepted at once, bounded in size, retried by the sweep, never doubled."""

import threading
from datetime import date, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.utils import timezone

from oms.celery import app as current_app
from oms.tests.factories import UserFactory
from reconciliation import jobs
from reconciliation.matching import queue_run
from reconciliation.models import ReconciliationRun, Statement, StatementImport, StatementLine
from reconciliation.tests import statement_files as files

pytestmark = pytest.mark.django_db
API = "/api/v1/reconciliation/statements/"
# Sweeps are run at a fixed morning, before the nightly catch-up hour, unless about it.
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.get_fixed_timezone(8 * 60))


def started(model, pk, minutes_before_now: int):
    field = "submitted_at" if model is StatementImport else "started_at"
    model.objects.filter(pk=pk).update(**{field: NOW - timedelta(minutes=minutes_before_now)})


def upload(client, content: bytes, name="bill.csv", account="acct", path=API):
    return client.post(path, {"file": SimpleUploadedFile(name, content), "account": account}, format="multipart")


@pytest.fixture
def broker_down():
    """A real unreachable broker (nothing listens on port 9), not a stub: tasks are sent for real."""
    conf = current_app.conf
    saved = conf.task_always_eager, conf.broker_url
    conf.task_always_eager, conf.broker_url = False, "redis://127.0.0.1:9/0"
    forget_connections()
    yield
    conf.task_always_eager, conf.broker_url = saved
    forget_connections()


def forget_connections():
    current_app._pool = None
    current_app.amqp._producer_pool = None


def test_the_page_hands_the_file_to_a_worker_and_follows_its_progress(client, django_capture_on_commit_callbacks):
    client.force_login(UserFactory(role="finance"))
    with django_capture_on_commit_callbacks(execute=True):
        reply = client.post("/finance/statements/upload/", {
            "file": SimpleUploadedFile("big.csv", files.big_generic_csv(12_000)), "account": "acct"})
    assert reply.status_code == 202, reply.content
    body = reply.json()
    assert body["state"] == "queued"  # the worker runs after the commit (inline in tests)
    progress = client.get(body["progress_url"]).json()
    assert (progress["state"], progress["done"], progress["statement"]) == ("imported", 12_000, Statement.objects.get().pk)
    assert StatementImport.objects.get().data == b""  # the bytes go once the lines hold them

    with django_capture_on_commit_callbacks(execute=True):
        bad = client.post("/finance/statements/upload/", {
            "file": SimpleUploadedFile("bad.csv", b"transaction_no,order_no,amount,occurred_at\r\nT,M,x,2025-03-01\r\n"),
            "account": "acct"})
    refused = client.get(bad.json()["progress_url"]).json()
    assert refused["state"] == "refused" and refused["rows"][0]["column"] == "amount" and refused["bad_rows"] == 1
    assert Statement.objects.count() == 1
    page = client.get("/finance/statements/")
    assert b"bad.csv" in page.content  # the refused import is listed with its outcome


def test_the_api_imports_small_files_inline_and_large_ones_in_a_worker(client_for, settings,
                                                                       django_capture_on_commit_callbacks):
    finance = client_for("finance")
    small = files.big_generic_csv(3)
    assert upload(finance, small).status_code == 201
    settings.OMS_STATEMENT_INLINE_BYTES = 1000
    with django_capture_on_commit_callbacks(execute=True):
        reply = upload(finance, files.big_generic_csv(500), account="acct-2")
    assert reply.status_code == 202, reply.json()
    job = StatementImport.objects.get()
    assert reply["Location"] == f"/api/v1/reconciliation/imports/{job.pk}/"
    done = finance.get(reply["Location"]).json()
    assert done["state"] == "imported" and done["statement"]["lines"] == 500
    assert done["progress"] == {"done": 500, "total": 500}
    # Queued or imported, the same file is refused at once.
    again = upload(finance, files.big_generic_csv(500), account="acct-2")
    assert again.status_code == 409 and "already imported" in again.json()["detail"]
    assert client_for("ops").get(reply["Location"]).status_code == 200  # ops read finance
    assert client_for("customer_service").get(reply["Location"]).status_code == 403


def test_a_file_over_the_cap_is_refused_413_before_it_is_read(client_for, client, settings):
    settings.OMS_STATEMENT_MAX_BYTES = 100_000
    content = files.big_generic_csv(5_000)
    assert len(content) > 100_000 + 64 * 1024
    reply = upload(client_for("finance"), content)
    assert reply.status_code == 413 and "OMS_STATEMENT_MAX_BYTES" in reply.json()["detail"]
    client.force_login(UserFactory(role="finance"))
    page = client.post("/finance/statements/upload/", {"file": SimpleUploadedFile("big.csv", content), "account": "a"})
    assert page.status_code == 413
    # Just over the file cap but within the multipart slack: the file's own size decides.
    settings.OMS_STATEMENT_MAX_BYTES = len(content) - 1
    assert upload(client_for("finance"), content).status_code == 413
    assert not Statement.objects.exists() and not StatementImport.objects.exists()


def test_a_broker_outage_loses_no_run_and_no_import(client_for, settings, broker_down):
    """The statement and its queued run commit although the broker is down (once the import's
    201 was a 500 with the statement saved and no run); the sweep sends them once it is back."""
    finance = client_for("finance")
    reply = upload(finance, files.wechat_bill([files.wechat_payment(1)]), account="wx-1")
    assert reply.status_code == 201, reply.json()
    run = ReconciliationRun.objects.get()
    assert (run.state, run.trigger, run.period_start) == ("queued", "import", date(2025, 3, 1))
    settings.OMS_STATEMENT_INLINE_BYTES = 10
    big = upload(finance, files.big_generic_csv(50), account="acct")
    assert big.status_code == 202 and StatementImport.objects.get().state == "queued"
    started(ReconciliationRun, run.pk, 5)
    assert jobs.sweep(NOW)["runs_resent"] == 0  # still down: nothing sent


def test_the_sweep_sends_what_the_broker_missed(client_for, django_capture_on_commit_callbacks):
    run = ReconciliationRun.objects.create(period_start=date(2025, 3, 1), period_end=date(2025, 3, 1),
                                           trigger="import", state="queued")
    job = StatementImport.objects.create(account="acct", size=10, checksum="c" * 64,
                                         data=files.big_generic_csv(20))
    started(ReconciliationRun, run.pk, 3)
    started(StatementImport, job.pk, 3)
    with django_capture_on_commit_callbacks(execute=True):
        done = jobs.sweep(NOW)
    assert (done["runs_resent"], done["imports_resent"]) == (1, 1)
    run.refresh_from_db()
    job.refresh_from_db()
    assert run.state == "done" and job.state == "imported" and job.statement.lines == 20
    # A second delivery of either message finds it claimed: nothing runs twice.
    assert jobs.run_import(job.pk) is None
    from reconciliation.matching import run_queued
    assert run_queued(run.pk) is None
    assert StatementLine.objects.count() == 20


def test_an_interrupted_run_is_failed_and_retried_a_bounded_number_of_times(django_capture_on_commit_callbacks):
    long_ago = NOW - timedelta(hours=1)
    dead = ReconciliationRun.objects.create(period_start=date(2025, 3, 1), period_end=date(2025, 3, 1),
                                            trigger="schedule", state="running")
    ReconciliationRun.objects.filter(pk=dead.pk).update(started_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.sweep(NOW)["runs_retried"] == 1
    dead.refresh_from_db()
    assert dead.state == "failed" and dead.error == str(jobs.INTERRUPTED)
    retry = ReconciliationRun.objects.exclude(pk=dead.pk).get()
    assert (retry.state, retry.attempt, retry.trigger) == ("done", 2, "schedule")
    last = ReconciliationRun.objects.create(period_start=date(2025, 3, 2), period_end=date(2025, 3, 2),
                                            trigger="manual", state="running", attempt=jobs.MAX_ATTEMPTS)
    ReconciliationRun.objects.filter(pk=last.pk).update(started_at=long_ago)
    assert jobs.sweep(NOW)["runs_failed"] == 1
    assert not ReconciliationRun.objects.filter(period_start=date(2025, 3, 2), state="queued").exists()


def test_an_interrupted_import_is_imported_by_the_next_attempt(django_capture_on_commit_callbacks):
    job = StatementImport.objects.create(account="acct", size=10, checksum="d" * 64, state="running",
                                         attempts=1, data=files.big_generic_csv(30),
                                         started_at=NOW - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.sweep(NOW)["imports_retried"] == 1
    job.refresh_from_db()
    assert (job.state, job.attempts, job.statement.lines) == ("imported", 2, 30)


def test_a_missed_nightly_run_is_queued_after_the_catch_up_hour(settings, django_capture_on_commit_callbacks):
    tz = timezone.get_current_timezone()
    morning = datetime(2026, 3, 2, 9, 30, tzinfo=tz)
    assert jobs.sweep(morning)["nightly_queued"] == 0  # before 10:00 the schedule still may run it
    noon = datetime(2026, 3, 2, 12, 0, tzinfo=tz)
    with django_capture_on_commit_callbacks(execute=False):
        assert jobs.sweep(noon)["nightly_queued"] == 1
    run = ReconciliationRun.objects.get()
    assert (run.period_start, run.trigger, run.state) == (date(2026, 3, 1), "schedule", "queued")
    ReconciliationRun.objects.filter(pk=run.pk).update(started_at=noon)
    assert jobs.sweep(noon + timedelta(minutes=1))["nightly_queued"] == 0  # once


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_sweep_leaves_a_live_run_alone_and_takes_a_dead_one():
    """A worker holds its run's row locked until it commits: the sweep, on another connection,
    skips that one however old, and takes the one nobody holds."""
    old = NOW - timedelta(hours=2)
    live = ReconciliationRun.objects.create(period_start=date(2025, 3, 1), period_end=date(2025, 3, 1),
                                            trigger="manual", state="running", attempt=jobs.MAX_ATTEMPTS)
    dead = ReconciliationRun.objects.create(period_start=date(2025, 3, 2), period_end=date(2025, 3, 2),
                                            trigger="manual", state="running", attempt=jobs.MAX_ATTEMPTS)
    ReconciliationRun.objects.filter(pk__in=[live.pk, dead.pk]).update(started_at=old)
    holding, release = threading.Event(), threading.Event()

    def worker():
        with transaction.atomic():
            ReconciliationRun.objects.select_for_update().get(pk=live.pk)
            holding.set()
            release.wait(15)
        connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert holding.wait(10)
        result = jobs.sweep(NOW)
    finally:
        release.set()
        thread.join()
    assert result["runs_failed"] == 1
    assert ReconciliationRun.objects.get(pk=live.pk).state == "running"
    assert ReconciliationRun.objects.get(pk=dead.pk).state == "failed"


def test_queue_run_writes_the_row_in_the_callers_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        queue_run(date(2025, 3, 1), date(2025, 3, 1), "manual")
        raise RuntimeError("the caller rolls back")
    assert not ReconciliationRun.objects.exists()
