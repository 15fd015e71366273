"""Celery beat outlives a database outage (it once died on one "too many clients" error and
stayed down until someone restarted it)."""

import pytest
from django.db import connection

from oms.beat import ResilientDatabaseScheduler
from oms.celery import app


@pytest.mark.django_db(transaction=True)
def test_a_tick_during_a_database_outage_is_retried_and_the_schedule_comes_back():
    scheduler = ResilientDatabaseScheduler(app=app, lazy=True)
    assert scheduler.schedule  # the default schedules, read from the database
    settings_dict = connection.settings_dict
    saved = settings_dict.get("HOST"), settings_dict.get("PORT"), settings_dict.get("NAME")
    connection.close()
    if connection.vendor == "postgresql":
        settings_dict["PORT"] = "9"  # nothing listens there: every connect is refused, for real
    else:
        settings_dict["NAME"] = "/nonexistent/dir/db.sqlite3"
    scheduler._initial_read = True  # the next tick must read the schedule: the path that died
    try:
        assert scheduler.tick() == ResilientDatabaseScheduler.retry_seconds
        assert scheduler.tick() == ResilientDatabaseScheduler.retry_seconds
    finally:
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"], settings_dict["NAME"] = saved
    delay = scheduler.tick()
    assert delay != ResilientDatabaseScheduler.retry_seconds or scheduler.schedule
    assert "oms: worker heartbeat" in scheduler.schedule


def test_the_procfile_supervises_worker_and_beat():
    from pathlib import Path

    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text()
    for name in ("worker", "beat"):
        line = next(line for line in procfile.splitlines() if line.startswith(f"{name}:"))
        assert "bin/supervise" in line
