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
