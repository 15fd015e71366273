import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from oms.schedules import DEFAULT_SCHEDULES, ensure_default_schedules

pytestmark = pytest.mark.django_db


def test_migrate_installs_every_default_schedule():
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {schedule.name for schedule in DEFAULT_SCHEDULES} <= names


def test_an_interval_edited_by_ops_survives_the_next_migrate():
    task = PeriodicTask.objects.get(name="oms: worker heartbeat")
    task.interval, _ = IntervalSchedule.objects.get_or_create(every=5, period=IntervalSchedule.MINUTES)
    task.save()

    assert ensure_default_schedules() == 0

    task.refresh_from_db()
    assert (task.interval.every, task.interval.period) == (5, IntervalSchedule.MINUTES)


def test_celery_runs_tasks_safely_twice_and_bounded():
    from oms.celery import app

    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert 0 < app.conf.task_soft_time_limit < app.conf.task_time_limit
    assert app.conf.beat_scheduler == "oms.beat:ResilientDatabaseScheduler"
