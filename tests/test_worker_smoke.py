"""A real Celery worker process executes a real task, on the embedded default and on Redis."""

import sqlite3
import subprocess
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection

from tests.processes import PYTHON, ROOT, clean_env, manage

pytestmark = pytest.mark.slow


def start_worker(env: dict[str, str], queue: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "celery", "-A", "oms", "worker", "--pool=solo", "-Q", queue,
         "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def send_heartbeat(env: dict[str, str], queue: str, worker_name: str) -> None:
    result = manage(
        "shell", "-c",
        f"from oms.tasks import heartbeat; heartbeat.apply_async(args=[{worker_name!r}], queue={queue!r})",
        env=env,
    )
    assert result.returncode == 0, result.stderr


def wait_for(predicate, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return None


def stop(worker: subprocess.Popen) -> str:
    worker.terminate()
    try:
        output, _ = worker.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        output, _ = worker.communicate()
    return output


def test_embedded_default_sqlite_and_file_system_broker_run_a_real_task(tmp_path):
    env = clean_env(OMS_VAR_DIR=str(tmp_path))
    migrated = manage("migrate", "--no-input", env=env, timeout=300)
    assert migrated.returncode == 0, migrated.stderr
    queue = f"smoke-{uuid.uuid4().hex[:8]}"
    worker = start_worker(env, queue)
    try:
        send_heartbeat(env, queue, "smoke-fs")

        def heartbeat_row():
            with sqlite3.connect(tmp_path / "oms.sqlite3") as db:
                return db.execute(
                    "SELECT beats FROM oms_workerheartbeat WHERE worker = 'smoke-fs'"
                ).fetchone()

        row = wait_for(heartbeat_row)
    finally:
        output = stop(worker)
    assert row == (1,), output


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_and_redis_broker_run_a_real_task(tmp_path):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL or 127.0.0.1:6379)")
    db = connection.settings_dict
    test_db_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = clean_env(OMS_VAR_DIR=str(tmp_path), DATABASE_URL=test_db_url, REDIS_URL=settings.REDIS_URL)
    if db["PASSWORD"]:
        env["PGPASSWORD"] = db["PASSWORD"]
    queue = f"smoke-{uuid.uuid4().hex[:8]}"
    worker = start_worker(env, queue)
    try:
        send_heartbeat(env, queue, "smoke-redis")
        from oms.models import WorkerHeartbeat

        row = wait_for(lambda: WorkerHeartbeat.objects.filter(worker="smoke-redis").first())
    finally:
        output = stop(worker)
    assert row is not None and row.beats == 1, output
