"""A split order ships from two warehouses; the physical track follows the last parcel."""

import pytest

from inventory.models import Reservation, StockLevel
from orders import services as order_services
from orders.models import OrderEvent, Shipment, Status
from orders.tests.factories import WarehouseFactory, make_device, make_split_order, ops_actor, scan

pytestmark = pytest.mark.django_db


@pytest.fixture
def split_order():
    order, sh, gz, tea, cup = make_split_order()
    actor = ops_actor()
    order_services.approve_order(order.order_no, actor)
    order_services.request_shipment(order.order_no, actor)
    order.refresh_from_db()
    return order, sh, gz, tea, cup


def test_each_warehouse_packs_and_ships_its_share_and_the_last_parcel_ships_the_order(split_order):
    order, sh, gz, tea, cup = split_order
    assert order.warehouse == sh  # the warehouse with most of the units
    sh_device, _ = make_device(sh)
    gz_device, _ = make_device(gz)

    assert scan(gz_device, order, "pick_started").status_code == 201
    refused = scan(gz_device, order, "pack_verified", items=[{"barcode": tea.barcode, "quantity": 2}])
    assert refused.status_code == 409  # GZ holds the cup, not the tea
    assert scan(gz_device, order, "pack_verified", items=[{"barcode": cup.barcode, "quantity": 1}]).status_code == 201
    first = scan(gz_device, order, "outbound", tracking_no="SF000000000001")
    order.refresh_from_db()
    assert first.status_code == 201
    assert (order.status, order.fulfilment) == (Status.SHIP_REQUESTED, "allocated")
    assert StockLevel.objects.get(warehouse=gz, sku=cup).on_hand == 9

    scan(sh_device, order, "pick_started")
    assert scan(sh_device, order, "pack_verified", items=[{"barcode": tea.barcode, "quantity": 2}]).status_code == 201
    last = scan(sh_device, order, "outbound", tracking_no="SF000000000002")

    order.refresh_from_db()
    assert last.body == {"order_no": order.order_no, "status": "shipped", "fulfilment": "outbound",
                         "fulfilment_order": f"{order.order_no}-F1", "fulfilment_order_status": "outbound"}
    assert Shipment.objects.filter(order=order).count() == 2
    assert not Reservation.objects.filter(order=order, status="active").exists()
    assert StockLevel.objects.get(warehouse=sh, sku=tea).on_hand == 8
    assert dict(Shipment.objects.filter(order=order).values_list("tracking_no", "warehouse__code")) == {
        "SF000000000001": "WH-GZ", "SF000000000002": "WH-SH"}
    partial = OrderEvent.objects.filter(order=order, summary__contains=f"[{order.order_no}-F2]")
    assert partial.count() == 3  # pick, pack and outbound of GZ's share


def test_another_warehouse_scans_a_split_order_only_in_step_order(split_order):
    order, _sh, gz, _tea, cup = split_order
    gz_device, _ = make_device(gz)

    from oms.errors import Conflict

    with pytest.raises(Conflict, match="cannot verify pack .*-F2: it is open"):
        scan(gz_device, order, "pack_verified", items=[{"barcode": cup.barcode, "quantity": 1}])


def test_a_warehouse_holding_nothing_of_the_order_is_refused(split_order):
    order, *_ = split_order
    stranger, _ = make_device(WarehouseFactory(code="WH-BJ"))

    from oms.errors import Forbidden

    with pytest.raises(Forbidden):
        scan(stranger, order, "pick_started")
