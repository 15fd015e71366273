"""Run manage.py and Celery as separate processes, the way a user or CI does."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def clean_env(**overrides: str) -> dict[str, str]:
    """The current environment without the test run's backend choices, plus `overrides`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "OMS_VAR_DIR",
                       "CELERY_TASK_ALWAYS_EAGER", "OMS_ENV", "SECRET_KEY", "DEBUG"}
    }
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_worker(queue: str, env: dict[str, str]) -> subprocess.Popen:
    """A Celery worker of its own queue, in its own session so a test can SIGKILL it whole."""
    return subprocess.Popen(
        [PYTHON, "-m", "celery", "-A", "oms", "worker", "--pool=solo", "-Q", queue, "--without-heartbeat",
         "--without-gossip", "--without-mingle", "--loglevel=WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def send_task(module: str, task: str, args: list, queue: str, env: dict[str, str]) -> None:
    sent = manage("shell", "-c", f"from {module} import {task}; {task}.apply_async(args={args!r}, queue={queue!r})",
                  env=env)
    assert sent.returncode == 0, sent.stderr
