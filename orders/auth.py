"""Scanner authentication: one query finds the token, its user and its device."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import BasePermission


class DeviceTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        model = self.get_model()
        original = model.objects
        try:
            token = original.select_related("user__warehouse_device").get(key=key)
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
