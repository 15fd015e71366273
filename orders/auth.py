"""Scanner authentication: one query finds the token, its user, its device and its warehouse.

Nothing about a token is kept between requests: every request reads the token's row again, so
a revoked scanner (user deactivated, token or device deleted, device moved to another
warehouse) is refused on its very next request, in every worker process. What makes this cheap
is that the statement is written once and prepared by psycopg (`oms.rowsql.fetch_instances`)
instead of being compiled by the ORM on every request.
"""

from functools import cache

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import BasePermission

from inventory.models import Warehouse
from oms.rowsql import Selection, fetch_instances

from .models import WarehouseDevice

# What the scanner path reads of the user; the rest of the row stays deferred.
USER_FIELDS = ("id", "is_active", "is_staff", "is_superuser")


@cache
def _device_token_query(vendor: str, token_model: type) -> tuple[str, tuple[Selection, ...]]:
    User = get_user_model()
    token = Selection.of(token_model, ("key", "user", "created"), "t")
    user_fields = {*USER_FIELDS, User.USERNAME_FIELD}
    user = Selection.of(User, [f.name for f in User._meta.concrete_fields if f.attname in user_fields], "u")
    device = Selection.of(WarehouseDevice, None, "d")
    warehouse = Selection.of(Warehouse, ("id", "code"), "w")
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name

    def col(selection: Selection, name: str) -> str:
        return f"{quote(selection.alias)}.{quote(selection.model._meta.get_field(name).column)}"

    selections = (token, user, device, warehouse)
    # Names from the models, the key a parameter.
    sql = (
        f"SELECT {', '.join(s.columns(quote) for s in selections)} "  # noqa: S608
        f"FROM {token.source(quote)} "
        f"INNER JOIN {user.source(quote)} ON {col(user, User._meta.pk.name)} = {col(token, 'user')} "
        f"INNER JOIN {device.source(quote)} ON {col(device, 'user')} = {col(token, 'user')} "
        f"INNER JOIN {warehouse.source(quote)} ON {col(warehouse, 'id')} = {col(device, 'warehouse')} "
        f"WHERE {col(token, 'key')} = %s"
    )
    return sql, selections


class DeviceTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        model = self.get_model()
        sql, selections = _device_token_query(connections[DEFAULT_DB_ALIAS].vendor, model)
        found = fetch_instances(sql, [key], selections)
        if found is not None:
            token, user, device, warehouse = found
            if user.is_active:
                device.warehouse = warehouse
                device.user = user  # also caches user.warehouse_device
                token.user = user
                return user, token
        # Unknown token, inactive user, or a user who is not a device (a staff token):
        # DRF's answers, the same as before.
        return self._authenticate_any_token(model, key)

    def _authenticate_any_token(self, model, key):
        try:
            token = model.objects.select_related("user__warehouse_device").get(key=key)
        except model.DoesNotExist:
            return super().authenticate_credentials(key)  # raises the standard 401
        if not token.user.is_active:
            return super().authenticate_credentials(key)
        return token.user, token


class IsWarehouseDevice(BasePermission):
    """A registered scanner (warehouse_device role, bound to one warehouse) and nothing else.

    The binding row is created only by `orders.devices.create_device`, together with the role;
    deactivating the device's user revokes it."""

    message = "only a registered warehouse device may post scanner events"

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and hasattr(user, "warehouse_device"))


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    """How the API docs describe the scanners' token (same header as staff tokens)."""

    target_class = "orders.auth.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Scanner device token: `Token <token>` from POST /api/v1/warehouse/devices/",
        }
