"""The live-stream sale: 1,000 units, 1,327 concurrent paid orders over 16 connections."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.db.models import Sum

from channels.models import Channel
from inventory.models import SKU, Reservation, StockLevel, StockMovement
from inventory.services import receive_stock
from orders import services
from orders.events import Actor
from orders.models import Order, Status
from orders.tests.factories import ChannelFactory, SKUFactory, WarehouseFactory, order_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

UNITS = 1000
ORDERS = 1327
CONNECTIONS = 16


def test_flash_sale_never_oversells():
    warehouse = WarehouseFactory(code="WH-LIVE")
    sku = SKUFactory(code="SKU-LIVE")
    channel = ChannelFactory(code="DY-LIVE", kind="douyin")
    receive_stock(warehouse.code, sku.code, UNITS, reference="live stream stock")
    payloads = [
        order_payload([(sku, 1, Decimal("99.00"))], status="paid", external_order_id=f"LIVE-{i:05d}",
                      phone=f"138{i:08d}")
        for i in range(ORDERS)
    ]
    barrier = threading.Barrier(CONNECTIONS)
    errors = []

    def buyer(worker: int) -> None:
        try:
            barrier.wait()
            my_channel = Channel.objects.get(pk=channel.pk)
            for data in payloads[worker::CONNECTIONS]:
                services.create_order(my_channel, data, Actor.for_channel(my_channel))
        except Exception as exc:  # noqa: BLE001 - reported below with the worker
            errors.append((worker, repr(exc)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=buyer, args=(i,)) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    level = StockLevel.objects.get(warehouse=warehouse, sku=sku)
    assert (level.on_hand, level.reserved) == (UNITS, UNITS)
    orders = Order.objects.filter(channel=channel)
    assert orders.count() == ORDERS
    assert Reservation.objects.filter(sku=sku, status="active").count() == UNITS
    held = orders.filter(status=Status.ON_HOLD)
    assert held.count() == ORDERS - UNITS
    assert all(reason.startswith("out of stock: SKU-LIVE needs 1, 0 available")
               for reason in held.values_list("hold_reason", flat=True))
    assert orders.filter(status=Status.PAID).count() == UNITS
    ledger = StockMovement.objects.filter(sku=sku).aggregate(on_hand=Sum("on_hand_delta"),
                                                              reserved=Sum("reserved_delta"))
    assert ledger == {"on_hand": level.on_hand, "reserved": level.reserved}
    assert connection.vendor == "postgresql"
    assert SKU.objects.get(pk=sku.pk).code == "SKU-LIVE"
