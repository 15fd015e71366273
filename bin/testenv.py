"""Pick the test backends: PostgreSQL and Redis when they answer, SQLite and files otherwise.

Prints shell `export` lines for bin/test. CI on these machines must find both servers.
"""

import os
import shlex
import sys

PG_DEFAULT = "postgres://postgres@127.0.0.1:5432/oms"
REDIS_DEFAULT = "redis://127.0.0.1:6379/15"


def postgres_answers(url: str) -> bool:
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    try:
        psycopg.connect(
            host=cfg["HOST"] or None,
            port=cfg["PORT"] or None,
            user=cfg["USER"] or None,
            password=cfg["PASSWORD"] or None,
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except psycopg.Error as exc:
        print(f"# PostgreSQL at {url} does not answer: {exc}".replace("\n", " "), file=sys.stderr)
        return False
    return True


def redis_answers(url: str) -> bool:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        print(f"# Redis at {url} does not answer: {exc}", file=sys.stderr)
        return False
    return True


def main() -> None:
    env = {}
    db_url = os.environ.get("DATABASE_URL", "")
    if not db_url.startswith("sqlite"):
        candidate = db_url or PG_DEFAULT
        env["DATABASE_URL"] = candidate if postgres_answers(candidate) else ""
    redis_url = os.environ.get("REDIS_URL") or REDIS_DEFAULT
    env["REDIS_URL"] = redis_url if redis_answers(redis_url) else ""
    env["CELERY_BROKER_URL"] = os.environ.get("CELERY_BROKER_URL", "")
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
