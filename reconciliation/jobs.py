"""Background work of finance that must survive a stopped broker or a killed worker.

Queued runs and statement imports are rows first (written in the transaction that asks for
them) and broker messages second (`oms.queueing`): a message lost to a broker outage is sent
again by the sweep, a message delivered twice finds the row already claimed. A worker holds
the row of the run or import it works on locked until it commits, so the sweep recognises a
"running" row whose worker is gone (on PostgreSQL at once; elsewhere after the task's time
limit), marks it interrupted and queues the next attempt. Both runs and imports are all or
nothing, so an interrupted one left nothing behind to undo.
"""

import hashlib
import logging
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from oms.errors import Conflict, DomainError
from oms.queueing import enqueue_on_commit, send

from .importing import StatementRejected, already_imported, import_statement, require_account
from .matching import RUN_TASK, queue_run
from .models import ReconciliationRun, Statement, StatementImport

log = logging.getLogger(__name__)

IMPORT_TASK = "reconciliation.import_statement_file"
MAX_ATTEMPTS = 3
SHOWN_BAD_ROWS = 500
INTERRUPTED = _("interrupted: the worker stopped before it finished")
Run = ReconciliationRun
Job = StatementImport


# --- statement imports ----------------------------------------------------------------------

@transaction.atomic
def submit_import(data: bytes, *, account: str, profile: str = "", filename: str = "",
                  provider: str = "", user=None) -> StatementImport:
    """Accept a file for a worker to import; refused at once when already imported or queued."""
    account = require_account(account)
    checksum = hashlib.sha256(data).hexdigest()
    if (earlier := Statement.objects.filter(account=account, checksum=checksum).first()) is not None:
        raise already_imported(earlier)
    pending = Job.objects.filter(account=account, checksum=checksum,
                                 state__in=[Job.State.QUEUED, Job.State.RUNNING]).first()
    if pending is not None:
        raise Conflict(f"this file is already being imported for account {account} (import {pending.pk})",
                       statement_import=pending.pk)
    job = Job.objects.create(account=account, profile=profile or "", provider=provider or "",
                             filename=filename[:255], size=len(data), checksum=checksum, data=data,
                             submitted_by=user)
    enqueue_on_commit(IMPORT_TASK, job.pk)
    return job


def run_import(job_id: int) -> StatementImport | None:
    """Claim a queued import and run it; None when another worker already took it."""
    claimed = Job.objects.filter(pk=job_id, state=Job.State.QUEUED).update(
        state=Job.State.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1)
    if not claimed:
        return None
    job = Job.objects.get(pk=job_id)
    key = progress_key(job_id)
    try:
        with transaction.atomic():
            Job.objects.select_for_update().only("pk").get(pk=job_id)  # held: see the module doc
            statement = import_statement(
                bytes(job.data), account=job.account, profile=job.profile or None,
                filename=job.filename, provider=job.provider, user=job.submitted_by,
                progress=lambda done, total: cache.set(key, {"done": done, "total": total}, 3600),
            )
            _end(job, Job.State.IMPORTED, statement=statement)
    except StatementRejected as exc:
        _end(job, Job.State.REFUSED, detail=exc.detail, rows=exc.rows[:SHOWN_BAD_ROWS], bad_rows=len(exc.rows))
    except DomainError as exc:  # the same file imported meanwhile (409)
        _end(job, Job.State.REFUSED, detail=exc.detail)
    except Exception as exc:
        _end(job, Job.State.FAILED, detail=f"{exc.__class__.__name__}: {exc}"[:2000], keep_file=True)
        raise
    job.refresh_from_db()
    return job


def _end(job: StatementImport, state: str, *, keep_file: bool = False, **fields) -> None:
    if not keep_file:
        fields["data"] = b""  # done with it: the statement lines hold what counts
    Job.objects.filter(pk=job.pk).update(state=state, finished_at=timezone.now(), **fields)


def progress_key(job_id: int) -> str:
    return f"statement-import:{job_id}"


def import_status(job: StatementImport) -> dict:
    """What the page and the API show while a file imports and after."""
    live = cache.get(progress_key(job.pk)) or {"done": 0, "total": 0}
    status = {"import": job.pk, "state": job.state, "state_label": str(job.get_state_display()),
              "done": live["done"], "total": live["total"], "detail": job.detail}
    if job.state == Job.State.IMPORTED:
        statement = job.statement
        status.update(statement=statement.pk, profile=statement.profile, lines=statement.lines,
                      period_start=statement.period_start, period_end=statement.period_end,
                      done=statement.lines, total=statement.lines)
    elif job.state == Job.State.REFUSED:
        status.update(rows=job.rows, bad_rows=job.bad_rows)
    return status


# --- the sweep ---------------------------------------------------------------------------------

def sweep(now: datetime | None = None) -> dict:
    """Every minute (beat): interrupted work retried or failed, unsent messages sent again, a
    nightly run the schedule missed queued. Returns what it did, by kind."""
    now = now or timezone.now()
    done = {"runs_retried": 0, "runs_failed": 0, "imports_retried": 0, "imports_failed": 0}
    with transaction.atomic():
        for run in _interrupted(Run.objects.filter(state=Run.State.RUNNING), now):
            Run.objects.filter(pk=run.pk).update(state=Run.State.FAILED, error=str(INTERRUPTED), finished_at=now)
            if run.attempt < MAX_ATTEMPTS:
                queue_run(run.period_start, run.period_end, run.trigger, run.started_by, run.attempt + 1)
                done["runs_retried"] += 1
            else:
                done["runs_failed"] += 1
        for job in _interrupted(Job.objects.filter(state=Job.State.RUNNING).defer("data"), now):
            if job.attempts < MAX_ATTEMPTS:
                Job.objects.filter(pk=job.pk).update(state=Job.State.QUEUED)
                enqueue_on_commit(IMPORT_TASK, job.pk)
                done["imports_retried"] += 1
            else:
                _end(job, Job.State.FAILED, detail=str(INTERRUPTED), keep_file=True)
                done["imports_failed"] += 1
    done["runs_resent"] = _resend(Run.objects.filter(state=Run.State.QUEUED, started_at__lt=now - _pickup()), RUN_TASK)
    done["imports_resent"] = _resend(
        Job.objects.filter(state=Job.State.QUEUED, submitted_at__lt=now - _pickup())
        .filter(Q(started_at__isnull=True) | Q(started_at__lt=now - _pickup())), IMPORT_TASK)
    done["nightly_queued"] = int(_catch_up_nightly(now) is not None)
    return done


def _interrupted(running, now: datetime):
    """Running rows whose worker is gone. Only PostgreSQL can tell a live lock holder apart;
    elsewhere a row older than the longest task's hard time limit is dead by definition."""
    if connection.vendor == "postgresql":
        # A minute's grace covers the instant between a claim's commit and its lock.
        return list(running.filter(started_at__lt=now - timedelta(minutes=1)).select_for_update(skip_locked=True))
    return list(running.filter(started_at__lt=now - timedelta(seconds=longest_task_seconds() + 60)))


def _resend(queued, task_name: str) -> int:
    ids = list(queued.values_list("pk", flat=True)[:100])
    return sum(send(task_name, pk) for pk in ids)


def _pickup() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "OMS_QUEUED_PICKUP_SECONDS", 120)))


def longest_task_seconds() -> int:
    return max(int(settings.CELERY_TASK_TIME_LIMIT), int(getattr(settings, "OMS_IMPORT_TIME_LIMIT", 1800)))


def _catch_up_nightly(now: datetime) -> ReconciliationRun | None:
    """The previous day's run, queued when nothing covered it today by the catch-up hour (the
    broker or beat was down at the nightly time, or the run was never sent)."""
    local = timezone.localtime(now)
    hour, minute = (int(x) for x in getattr(settings, "OMS_NIGHTLY_CATCHUP_AFTER", "10:00").split(":"))
    if local.time() < time(hour, minute):
        return None
    yesterday = local.date() - timedelta(days=1)
    today_start = datetime.combine(local.date(), time.min, timezone.get_current_timezone())
    covered = Run.objects.filter(period_start__lte=yesterday, period_end__gte=yesterday, started_at__gte=today_start)
    if covered.exists():
        return None
    with transaction.atomic():
        log.warning("no reconciliation run of %s by %s: queuing the nightly run", yesterday, local)
        return queue_run(yesterday, yesterday, Run.Trigger.SCHEDULE)
