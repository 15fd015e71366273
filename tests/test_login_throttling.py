"""Login throttling (django-axes): wrong passwords lock that username from that address out of
the API token endpoint and the admin login, the right password included (issue 15)."""

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from oms.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@override_settings(AXES_ENABLED=True, AXES_FAILURE_LIMIT=5)
def test_the_token_endpoint_locks_out_after_five_wrong_passwords():
    user = UserFactory(role="ops")
    client = APIClient()
    for _ in range(4):
        reply = client.post("/api/v1/auth/token/", {"username": user.username, "password": "wrong"}, format="json")
        assert reply.status_code == 400
    assert client.post("/api/v1/auth/token/", {"username": user.username, "password": "wrong"},
                       format="json").status_code == 429
    right = client.post("/api/v1/auth/token/", {"username": user.username, "password": DEFAULT_PASSWORD},
                        format="json")
    assert right.status_code == 429 and "token" not in right.content.decode()
    # Another address is not locked out by this one.
    other = APIClient(REMOTE_ADDR="10.9.8.7")
    assert other.post("/api/v1/auth/token/", {"username": user.username, "password": DEFAULT_PASSWORD},
                      format="json").status_code == 200


@override_settings(AXES_ENABLED=True, AXES_FAILURE_LIMIT=5)
def test_the_admin_login_locks_out_after_five_wrong_passwords():
    user = UserFactory(role="ops", is_staff=True)
    client = Client()
    for _ in range(5):
        client.post("/admin/login/", {"username": user.username, "password": "wrong"})
    reply = client.post("/admin/login/", {"username": user.username, "password": DEFAULT_PASSWORD})
    assert reply.status_code == 429
    assert "_auth_user_id" not in client.session
