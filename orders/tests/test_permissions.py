"""Who may call what: every order-spine endpoint × every role (ARCHITECTURE.md: roles).

401 without credentials, 403 authenticated but not allowed (and nothing changes), 2xx allowed.
The warehouse_device role is a registered scanner's token, bound to the order's warehouse.
"""

import pytest
from rest_framework.test import APIClient

from inventory.models import SKU, Reservation, StockLevel, Warehouse
from orders.models import Order, OrderEvent, WarehouseDevice
from orders.scanning import PICK_STARTED
from orders.tests.factories import (
    DEFAULT_STOCK_WAREHOUSE,
    SKUFactory,
    WarehouseFactory,
    advance,
    make_device,
    make_order,
    scan_body,
    stock_order,
    stock_up,
)

pytestmark = pytest.mark.django_db

ROLES = ["ops", "customer_service", "finance", "warehouse_device", "integration", "anonymous"]


def expect(ops, cs, finance, device, integration, anonymous=401) -> dict:
    return dict(zip(ROLES, [ops, cs, finance, device, integration, anonymous], strict=True))


READ_ORDERS = expect(200, 200, 200, 403, 200)
NOTES = expect(201, 201, 403, 403, 403)
SCANNER = expect(403, 403, 403, 201, 403)
MASTER_READ = expect(200, 200, 403, 403, 403)


def ops_only(code: int) -> dict:
    return expect(code, 403, 403, 403, 403)


def manual_order_body() -> dict:
    stock_up(WarehouseFactory(code=DEFAULT_STOCK_WAREHOUSE, priority=1000), [(SKUFactory(code="SKU-001"), 1)])
    return {
        "receiver": {"name": "张三", "phone": "13800001234", "province": "上海",
                     "address": "世纪大道100号"},
        "status": "paid",
        "lines": [{"sku": "SKU-001", "quantity": 1, "unit_price": "9.90"}],
        "payable": "9.90",
    }


# Each builder sets up what its call needs and returns (method, path, body).


def orders_list(ops, wh):
    make_order()
    return "get", "/api/v1/orders/", None


def orders_retrieve(ops, wh):
    return "get", f"/api/v1/orders/{make_order().order_no}/", None


def orders_timeline(ops, wh):
    return "get", f"/api/v1/orders/{make_order().order_no}/timeline/", None


def orders_create(ops, wh):
    return "post", "/api/v1/orders/", manual_order_body()


def orders_approve(ops, wh):
    return "post", f"/api/v1/orders/{make_order().order_no}/approve/", {}


def orders_route(ops, wh):
    order = make_order()
    stock_order(wh, order)  # routing moves the reservation: the target needs the stock
    return "post", f"/api/v1/orders/{order.order_no}/route/", {"warehouse": wh.code}


def orders_ship_request(ops, wh):
    order = advance(make_order(), "routed", warehouse=wh, actor=ops)
    return "post", f"/api/v1/orders/{order.order_no}/ship-request/", {}


def orders_cancel(ops, wh):
    return "post", f"/api/v1/orders/{make_order().order_no}/cancel/", {"reason": "customer asked"}


def orders_notes(ops, wh):
    return "post", f"/api/v1/orders/{make_order().order_no}/notes/", {"text": "called the customer"}


def scanner_event(ops, wh):
    order = advance(make_order(), "ship_requested", warehouse=wh, actor=ops)
    return "post", "/api/v1/warehouse/events/", scan_body(order, PICK_STARTED)


def device_register(ops, wh):
    return "post", "/api/v1/warehouse/devices/", {"warehouse": wh.code, "name": "dock-9"}


def warehouses_list(ops, wh):
    return "get", "/api/v1/inventory/warehouses/", None


def warehouses_retrieve(ops, wh):
    return "get", f"/api/v1/inventory/warehouses/{wh.code}/", None


def warehouses_create(ops, wh):
    return "post", "/api/v1/inventory/warehouses/", {"code": "WH-NEW", "name": "New"}


def warehouses_update(ops, wh):
    return "patch", f"/api/v1/inventory/warehouses/{wh.code}/", {"priority": 1}


def skus_list(ops, wh):
    SKUFactory()
    return "get", "/api/v1/inventory/skus/", None


def skus_retrieve(ops, wh):
    return "get", f"/api/v1/inventory/skus/{SKUFactory().code}/", None


def skus_create(ops, wh):
    return "post", "/api/v1/inventory/skus/", {"code": "SKU-NEW", "barcode": "6909990000001",
                                               "name": "New"}


ENDPOINTS = {
    "orders-list": (orders_list, READ_ORDERS),
    "orders-retrieve": (orders_retrieve, READ_ORDERS),
    "orders-timeline": (orders_timeline, READ_ORDERS),
    "orders-create": (orders_create, ops_only(201)),
    "orders-approve": (orders_approve, ops_only(200)),
    "orders-route": (orders_route, ops_only(200)),
    "orders-ship-request": (orders_ship_request, ops_only(200)),
    "orders-cancel": (orders_cancel, ops_only(200)),
    "orders-notes": (orders_notes, NOTES),
    "scanner-event": (scanner_event, SCANNER),
    "device-register": (device_register, ops_only(201)),
    "warehouses-list": (warehouses_list, MASTER_READ),
    "warehouses-retrieve": (warehouses_retrieve, MASTER_READ),
    "warehouses-create": (warehouses_create, ops_only(201)),
    "warehouses-update": (warehouses_update, ops_only(200)),
    "skus-list": (skus_list, MASTER_READ),
    "skus-retrieve": (skus_retrieve, MASTER_READ),
    "skus-create": (skus_create, ops_only(201)),
}

CASES = [
    pytest.param(endpoint, role, expected[role], id=f"{endpoint}-{role}")
    for endpoint, (_build, expected) in ENDPOINTS.items()
    for role in ROLES
]


@pytest.fixture
def client_as(client_for, warehouse):
    def make(role: str) -> APIClient:
        if role == "anonymous":
            return APIClient()
        if role == "warehouse_device":
            _device, token = make_device(warehouse, "pack-B")
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
            return client
        return client_for(role)

    return make


def world() -> dict:
    """Everything the calls could change."""
    return {
        "orders": sorted(Order.objects.values_list("order_no", "status", "fulfilment", "warehouse_id")),
        "events": OrderEvent.objects.count(),
        "devices": WarehouseDevice.objects.count(),
        "warehouses": sorted(Warehouse.objects.values_list("code", "priority")),
        "skus": SKU.objects.count(),
        "reservations": sorted(Reservation.objects.values_list("pk", "warehouse_id", "status")),
        "stock": sorted(StockLevel.objects.values_list("warehouse_id", "sku_id", "on_hand", "reserved")),
    }


@pytest.mark.parametrize(("endpoint", "role", "status"), CASES)
def test_permission_matrix(endpoint, role, status, client_as, ops, warehouse, manual_channel):
    client = client_as(role)
    build, _expected = ENDPOINTS[endpoint]
    method, path, body = build(ops, warehouse)
    before = world()

    call = getattr(client, method)
    response = call(path) if body is None else call(path, body, format="json")

    assert response.status_code == status, response.content
    if status in (401, 403):
        assert response.json()["error"] == ("unauthenticated" if status == 401 else "forbidden")
        assert world() == before  # a refused request changes nothing


def test_the_matrix_covers_every_role():
    for _build, expected in ENDPOINTS.values():
        assert set(expected) == set(ROLES)
