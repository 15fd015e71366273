import pytest

from channels.models import Channel
from inventory.services import receive_stock
from orders.tests.factories import SKUFactory, WarehouseFactory


@pytest.fixture
def channel():
    """A generic push channel (the own mini-program), signing by version 2."""
    return Channel.objects.create(code="MINI", name="Mini-program", kind="generic")


@pytest.fixture
def sku():
    sku = SKUFactory(code="SKU-001", barcode="6901234567890")
    receive_stock(WarehouseFactory(code="WH-SH", provinces=["上海"]).code, sku.code, 100)
    return sku
