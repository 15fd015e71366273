import pytest
from rest_framework.test import APIClient

from channels.models import MANUAL_CHANNEL_CODE, Channel, ChannelKind
from orders.tests.factories import WarehouseFactory, make_device, ops_actor


@pytest.fixture
def manual_channel(db):
    """The MANUAL channel of the data migration (re-made if a transactional test flushed it)."""
    channel, _ = Channel.objects.get_or_create(
        code=MANUAL_CHANNEL_CODE,
        defaults={"name": "Manual entry", "kind": ChannelKind.GENERIC, "order_prefix": "MN"},
    )
    return channel


@pytest.fixture
def ops(db):
    return ops_actor()


@pytest.fixture
def warehouse(db):
    return WarehouseFactory(code="WH-SH", name="Shanghai")


@pytest.fixture
def device_and_token(warehouse):
    return make_device(warehouse, "pack-B")


@pytest.fixture
def device(device_and_token):
    return device_and_token[0]


@pytest.fixture
def device_client(device_and_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {device_and_token[1]}")
    return client
