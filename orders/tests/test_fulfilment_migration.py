"""Orders allocated before fulfilment orders existed get one share per warehouse (migration 0011)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("orders", "0010_fulfilment_orders"), ("inventory", "0005_reservation_order_status_index"),
          ("channels", "0008_channel_completion_days")]
AFTER = [("orders", "0011_fulfilment_orders_for_existing")]


@pytest.fixture
def migrated_back():
    """Back to before migration 0011; every app forward to its latest again afterwards, so the
    tests after this one find the schema they expect."""
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_existing_orders_get_their_shares_and_shipments_are_linked(migrated_back):
    executor = MigrationExecutor(connection)
    apps = executor.loader.project_state(BEFORE).apps
    Channel = apps.get_model("channels", "Channel")
    Warehouse = apps.get_model("inventory", "Warehouse")
    SKU = apps.get_model("inventory", "SKU")
    Order = apps.get_model("orders", "Order")
    OrderLine = apps.get_model("orders", "OrderLine")
    Reservation = apps.get_model("inventory", "Reservation")
    Shipment = apps.get_model("orders", "Shipment")

    now = timezone.now()
    channel = Channel.objects.create(code="MIG", name="Migration", kind="generic", order_prefix="MG")
    sh = Warehouse.objects.create(code="MIG-SH", name="SH")
    gz = Warehouse.objects.create(code="MIG-GZ", name="GZ")
    tea = SKU.objects.create(code="MIG-TEA", barcode="6911111111111", name="tea")
    cup = SKU.objects.create(code="MIG-CUP", barcode="6922222222222", name="cup")

    def order(no, status, fulfilment, warehouse, **extra):
        return Order.objects.create(
            order_no=no, channel=channel, external_order_id=no, receiver_name="张三", receiver_phone="138",
            receiver_province="上海", receiver_address="x", warehouse=warehouse, status=status,
            fulfilment=fulfilment, placed_at=now - timedelta(days=1), **extra)

    # A split order whose GZ parcel left while SH still picks.
    split = order("MG1", "ship_requested", "picking", sh, picking_started_at=now)
    tea_line = OrderLine.objects.create(order=split, line_no=1, sku=tea, quantity=2, unit_price="10.00")
    cup_line = OrderLine.objects.create(order=split, line_no=2, sku=cup, quantity=1, unit_price="5.00")
    Reservation.objects.create(order=split, order_line=tea_line, warehouse=sh, sku=tea, quantity=2)
    Reservation.objects.create(order=split, order_line=cup_line, warehouse=gz, sku=cup, quantity=1,
                               status="consumed")
    Shipment.objects.create(order=split, warehouse=gz, carrier="SF", tracking_no="SF1", outbound_at=now)
    # A delivered order and a cancelled one, each in one warehouse; an unrouted unpaid one.
    delivered = order("MG2", "delivered", "delivered", sh, physical_outbound_at=now, delivered_at=now)
    OrderLine.objects.create(order=delivered, line_no=1, sku=tea, quantity=1, unit_price="10.00")
    Shipment.objects.create(order=delivered, warehouse=sh, carrier="SF", tracking_no="SF2", outbound_at=now)
    cancelled = order("MG3", "cancelled", "allocated", gz, cancelled_at=now)
    OrderLine.objects.create(order=cancelled, line_no=1, sku=cup, quantity=1, unit_price="5.00")
    unrouted = order("MG4", "pending_payment", "unallocated", None)
    OrderLine.objects.create(order=unrouted, line_no=1, sku=cup, quantity=1, unit_price="5.00")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    apps = executor.loader.project_state(AFTER).apps
    FulfilmentOrder = apps.get_model("orders", "FulfilmentOrder")
    Shipment = apps.get_model("orders", "Shipment")

    def shares(no):
        return sorted(FulfilmentOrder.objects.filter(order__order_no=no).values_list(
            "warehouse__code", "status", "lines__order_line__line_no", "lines__quantity"))

    assert shares("MG1") == [("MIG-GZ", "outbound", 2, 1), ("MIG-SH", "picking", 1, 2)]
    assert shares("MG2") == [("MIG-SH", "delivered", 1, 1)]
    assert shares("MG3") == [("MIG-GZ", "cancelled", 1, 1)]
    assert shares("MG4") == []
    assert dict(Shipment.objects.values_list("tracking_no", "fulfilment_order__warehouse__code")) == {
        "SF1": "MIG-GZ", "SF2": "MIG-SH"}
