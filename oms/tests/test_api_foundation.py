import pytest
from django.contrib.auth.models import Group

from oms.roles import ROLE_PERMISSIONS, ROLES
from oms.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_token_is_issued_for_valid_credentials_and_opens_the_api(api_client):
    UserFactory(username="amy", role="ops")

    response = api_client.post(
        "/api/v1/auth/token/", {"username": "amy", "password": DEFAULT_PASSWORD}, format="json"
    )

    assert response.status_code == 200
    token = response.json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api_client.get("/api/v1/").status_code == 200


def test_wrong_password_is_a_validation_error_in_the_contract_format(api_client):
    UserFactory(username="amy")

    response = api_client.post(
        "/api/v1/auth/token/", {"username": "amy", "password": "nope"}, format="json"
    )

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation"
    assert "non_field_errors" in body["fields"]


def test_missing_fields_are_named(api_client):
    response = api_client.post("/api/v1/auth/token/", {}, format="json")

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"username", "password"}


def test_malformed_json_is_a_400_naming_the_body(api_client):
    response = api_client.post(
        "/api/v1/auth/token/", data="{not json", content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"] == "validation"
    assert "body" in response.json()["fields"]


def test_api_without_credentials_is_401_and_bad_token_is_401(api_client):
    response = api_client.get("/api/v1/")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"

    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert api_client.get("/api/v1/").status_code == 401


def test_schema_and_docs_are_served_without_any_cdn(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/auth/token/" in schema.content

    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "drf_spectacular_sidecar" in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html


def test_every_role_exists_as_a_group_with_the_permissions_it_is_given():
    assert set(Group.objects.filter(name__in=ROLES).values_list("name", flat=True)) == set(ROLES)
    assert set(ROLE_PERMISSIONS) == set(ROLES)

    ops = Group.objects.get(name="ops")
    ops_perms = {f"{p.content_type.app_label}.{p.codename}" for p in ops.permissions.all()}
    # ops edit beat schedules in the admin
    assert "django_celery_beat.change_periodictask" in ops_perms
    # nobody but superusers manages users
    for group in Group.objects.filter(name__in=ROLES):
        assert not group.permissions.filter(content_type__app_label="auth").exists()


def test_role_grants_follow_their_patterns_only():
    from django.contrib.auth.models import Permission

    from oms.roles import permissions_for

    perms = list(Permission.objects.select_related("content_type"))
    cs = {f"{p.content_type.app_label}.{p.codename}" for p in permissions_for("customer_service", perms)}
    assert all(name.startswith(("orders.view_", "orders.add_order_note", "inventory.view_",
                                "channels.view_", "alerts.view_")) for name in cs)
