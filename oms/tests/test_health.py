import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: Redis "stopped"


def test_healthz_is_200_when_database_broker_and_cache_answer(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert {name: check["status"] for name, check in body["checks"].items() if name != "worker"} == {
        "database": "ok",
        "broker": "ok",
        "cache": "ok",
    }


@override_settings(
    CELERY_BROKER_URL=DEAD_REDIS,
    CELERY_BROKER_TRANSPORT_OPTIONS={},
    CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": DEAD_REDIS,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    },
)
def test_stopped_redis_gives_503_naming_broker_and_cache_while_the_app_still_serves(client):
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert sorted(body["down"]) == ["broker", "cache"]
    assert body["checks"]["database"]["status"] == "ok"
    assert "Error" in body["checks"]["cache"]["error"]
    # The rest of the app does not depend on Redis to serve.
    assert client.get("/admin/login/").status_code == 200
    assert client.post("/api/v1/auth/token/", {"username": "x", "password": "y"}).status_code == 400


def test_healthz_reports_worker_heartbeat_age(client):
    from oms.tasks import heartbeat

    heartbeat("worker-a")
    heartbeat("worker-a")

    worker = client.get("/healthz").json()["checks"]["worker"]

    assert worker["status"] == "ok"
    assert worker["worker"] == "worker-a"
    assert worker["age_seconds"] < 5


def test_healthz_only_answers_get(client):
    assert client.post("/healthz").status_code == 405


def test_livez_answers_without_touching_any_backend(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/livez")
    assert response.status_code == 200 and response.content == b"ok"
    assert client.post("/livez").status_code == 405
