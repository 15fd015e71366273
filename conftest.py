import pytest
from django.db import connection
from rest_framework.test import APIClient

from oms.tests.factories import UserFactory


def pytest_collection_modifyitems(config, items):
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL (row locks, CHECK constraints under concurrency); "
        "set DATABASE_URL or start PostgreSQL on 127.0.0.1:5432"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def empty_cache(django_db_setup):
    """The test Redis database starts empty: ids restart with each test database."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Test users get a password; the production hasher's 1M PBKDF2 rounds would dominate."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def client_for(db):
    """client_for("ops") → an APIClient authenticated by token as a user holding that role."""

    def make(role: str | None = None, **user_fields) -> APIClient:
        from rest_framework.authtoken.models import Token

        user = UserFactory(role=role, **user_fields)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        client.user = user
        return client

    return make
