"""Registering warehouse scanner devices: a service user bound to one warehouse, with a token."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from inventory.models import Warehouse
from oms.errors import Conflict, Invalid
from oms.roles import WAREHOUSE_DEVICE

from .models import WarehouseDevice


@transaction.atomic
def create_device(warehouse_code: str, name: str) -> tuple[WarehouseDevice, str]:
    name = (name or "").strip()
    if not name:
        raise Invalid({"name": ["A device name is required."]})
    try:
        warehouse = Warehouse.objects.get(code=warehouse_code)
    except Warehouse.DoesNotExist:
        raise Invalid({"warehouse": [f"no warehouse with code {warehouse_code!r}"]}) from None
    if WarehouseDevice.objects.filter(warehouse=warehouse, name=name).exists():
        raise Conflict(f"warehouse {warehouse.code} already has a device named {name!r}")
    User = get_user_model()
    user = User.objects.create(username=f"device-{warehouse.code}-{name}"[:150].lower(), is_active=True)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=WAREHOUSE_DEVICE))
    device = WarehouseDevice.objects.create(user=user, warehouse=warehouse, name=name)
    token = Token.objects.create(user=user)
    return device, token.key
