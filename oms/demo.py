"""Demo accounts and data for `make run`. Idempotent: running it again changes nothing."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from .roles import CUSTOMER_SERVICE, FINANCE, OPS

DEMO_PASSWORD = "oms-demo-2026"  # noqa: S105 - printed on purpose, refused in production
DEMO_USERS = (
    # username, role (None: superuser)
    ("admin", None),
    ("ops", OPS),
    ("cs", CUSTOMER_SERVICE),
    ("finance", FINANCE),
)


class DemoRefused(Exception):
    pass


def ensure_demo_users() -> list[tuple[str, str]]:
    if settings.PRODUCTION:
        raise DemoRefused("demo accounts are never created with OMS_ENV=production")
    User = get_user_model()
    accounts = []
    for username, role in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": role is None}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        if role:
            user.groups.add(Group.objects.get(name=role))
        accounts.append((username, role or "superuser"))
    return accounts
