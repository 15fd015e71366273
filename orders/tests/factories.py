"""Factories and helpers for the order spine.

Master data (warehouses, SKUs, channels) is plain factory_boy. Orders are never written as
rows: `make_order` goes through `orders.services.create_order`, and `advance` moves an order
through the same services and scanner events that production uses, so every order a test
sees has the events, timestamps and invariants a real one has.
"""

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from channels.models import Channel, ChannelKind
from inventory.models import SKU, Warehouse
from inventory.services import receive_stock
from oms.tests.factories import UserFactory
from orders import services
from orders.devices import create_device
from orders.events import Actor
from orders.models import Order, WarehouseDevice
from orders.scanning import OUTBOUND, PACK_VERIFIED, PICK_STARTED, ScanReply, apply_scanner_event
from orders.serializers import ScannerEventSerializer


class WarehouseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Warehouse
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"WH{n:03d}")
    name = factory.LazyAttribute(lambda o: f"Warehouse {o.code}")
    provinces = factory.LazyFunction(lambda: ["上海", "江苏"])
    priority = 100
    active = True


class SKUFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SKU
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"SKU-{n:04d}")
    barcode = factory.Sequence(lambda n: f"690{n:010d}")
    name = factory.LazyAttribute(lambda o: f"Product {o.code}")
    category = "general"


class ChannelFactory(factory.django.DjangoModelFactory):
    """kind "taobao" (the default) gets the order number prefix TB from Channel.save()."""

    class Meta:
        model = Channel
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"SHOP{n:03d}")
    name = factory.LazyAttribute(lambda o: f"Shop {o.code}")
    kind = ChannelKind.TAOBAO


_external_ids = iter(range(10**9))


def order_payload(
    lines=None,
    *,
    status: str = "paid",
    external_order_id: str | None = None,
    phone: str = "13800001234",
    **overrides,
) -> dict:
    """The validated order input of CONTRACTS.md: `lines` as [(sku, quantity, unit_price)]."""
    if lines is None:
        lines = [(SKUFactory(), 1, Decimal("99.00"))]
    line_data = [
        {"sku": sku, "quantity": quantity, "unit_price": Decimal(str(price)), "discount": Decimal("0")}
        for sku, quantity, price in lines
    ]
    data = {
        "external_order_id": external_order_id or f"EXT-{next(_external_ids):08d}",
        "status": status,
        "currency": "CNY",
        "buyer": {"name": "张三", "phone": phone},
        "receiver": {
            "name": "张三", "phone": phone, "province": "上海", "city": "上海市",
            "district": "浦东新区", "address": "世纪大道100号",
        },
        "lines": line_data,
        "shipping_fee": Decimal("0.00"),
        "discount_total": Decimal("0.00"),
    }
    data.update(overrides)
    if "payable" not in overrides:
        data["payable"] = services.order_amounts(data)["expected_payable"]
    return data


DEFAULT_STOCK_WAREHOUSE = "WH-DEFAULT"


def stock_up(warehouse, lines, factor: int = 10) -> None:
    """Receive enough of every line's SKU in `warehouse` (through the inventory service)."""
    for sku, quantity in lines:
        receive_stock(warehouse.code, sku.code, quantity * factor, reference="test stock")


def stock_order(warehouse, order: Order, factor: int = 10) -> None:
    """`stock_up` for every line of an existing order."""
    stock_up(warehouse, [(line.sku, line.quantity) for line in order.lines.select_related("sku")], factor)


def make_order(channel=None, lines=None, status: str = "paid", actor: Actor | None = None,
               stock: bool = True, **overrides) -> Order:
    """An order created through `services.create_order`, as a channel would create it.

    `lines` is [(sku, quantity, unit_price)]; `status` is the channel status
    (pending_payment | paid | cancelled | refunded); other keyword arguments override the
    payload (placed_at, paid_at, receiver, payable, external_order_id, ...). With `stock`
    (the default) the SKUs are first received in the WH-DEFAULT warehouse, so a paid order
    reserves there instead of going on hold as out of stock."""
    channel = channel or ChannelFactory()
    data = order_payload(lines, status=status, **overrides)
    if stock:
        stock_up(WarehouseFactory(code=DEFAULT_STOCK_WAREHOUSE, priority=1000),
                 [(line["sku"], line["quantity"]) for line in data["lines"]])
    order, _result = services.create_order(channel, data, actor or Actor.for_channel(channel))
    return Order.objects.get(pk=order.pk)


SHANGHAI = {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
            "district": "浦东新区", "address": "世纪大道100号"}


def make_split_order(**overrides):
    """A paid order of a channel that allows split shipments, to a Shanghai receiver: tea × 2
    in stock only in WH-SH (which ships to Shanghai first), cup × 1 only in WH-GZ.
    Returns (order, sh, gz, tea, cup)."""
    sh = WarehouseFactory(code="WH-SH", provinces=["上海"], priority=20)
    gz = WarehouseFactory(code="WH-GZ", provinces=["广东"], priority=10)
    tea = SKUFactory(code="TEA", barcode="6900000000001")
    cup = SKUFactory(code="CUP", barcode="6900000000002")
    receive_stock(sh.code, tea.code, 10)
    receive_stock(gz.code, cup.code, 10)
    order = make_order(channel=ChannelFactory(allow_split=True), stock=False, receiver=SHANGHAI,
                       lines=[(tea, 2, "10.00"), (cup, 1, "5.00")], **overrides)
    return order, sh, gz, tea, cup


def ops_actor(**user_fields) -> Actor:
    return Actor.for_user(UserFactory(role="ops", **user_fields))


def make_device(warehouse, name: str | None = None) -> tuple[WarehouseDevice, str]:
    """A scanner registered through `orders.devices.create_device`: (device, token)."""
    return create_device(warehouse.code, name or f"scanner-{uuid.uuid4().hex[:8]}")


def scan_body(order, type: str, *, at: datetime | None = None, event_id=None,
              station: str = "pack-B", items=None, carrier: str = "SF",
              tracking_no: str | None = None) -> dict:
    """A scanner event body as the device sends it (JSON-ready)."""
    body = {
        "event_id": str(event_id or uuid.uuid4()),
        "order_no": order.order_no if isinstance(order, Order) else order,
        "type": type,
        "scanned_at": (at or timezone.now()).isoformat(),
        "station": station,
        "operator": "w017",
    }
    if type == PACK_VERIFIED:
        body["items"] = items if items is not None else matching_items(order)
    elif items is not None:
        body["items"] = items
    if type == OUTBOUND:
        body["carrier"] = carrier
        body["tracking_no"] = tracking_no or f"SF{uuid.uuid4().int % 10**12:012d}"
    return body


def matching_items(order) -> list[dict]:
    return [
        {"barcode": barcode, "quantity": quantity}
        for barcode, quantity in order.lines.values_list("sku__barcode", "quantity")
    ]


def scan(device, order, type: str, **kwargs) -> ScanReply:
    """Apply a scanner event through the API's serializer and the scanner service."""
    serializer = ScannerEventSerializer(data=scan_body(order, type, **kwargs))
    serializer.is_valid(raise_exception=True)
    return apply_scanner_event(device, serializer.validated_data)


STAGES = ("paid", "approved", "routed", "ship_requested", "picking", "packed", "outbound")


def advance(
    order: Order,
    stage: str,
    *,
    warehouse=None,
    device=None,
    actor: Actor | None = None,
    at: datetime | None = None,
    ship: bool = True,
    station: str = "pack-B",
    step: timedelta = timedelta(seconds=1),
) -> Order:
    """Move a paid order to `stage` through the services and scanner events.

    Stages in order: paid → approved (which allocates the order to the warehouse holding its
    reservation) → routed (re-routed to `warehouse`, a new one by default, stocked first) →
    ship_requested → picking → packed → outbound. An order that already has a warehouse is
    re-routed only when another `warehouse` is given. With `ship=False` the ship request is
    skipped, so the physical stages run while the status stays approved. `at` backdates the
    steps (each one `step` after the previous); without it they happen now."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; one of {STAGES}")
    actor = actor or ops_actor()
    clock = iter(at + step * i for i in range(len(STAGES))) if at else None

    def when():
        return next(clock) if clock else None

    target = STAGES.index(stage)
    done = {"paid"}
    order.refresh_from_db()
    if order.approved_at is not None:
        done.add("approved")
    if order.warehouse_id is not None and (warehouse is None or warehouse.pk == order.warehouse_id):
        done.add("routed")
    if order.ship_requested_at is not None:
        done.add("ship_requested")
    physical = ("allocated", "picking", "packed", "outbound")
    if order.fulfilment in physical:
        done.update(physical[1:physical.index(order.fulfilment) + 1])
    for name in STAGES[1:target + 1]:
        if name in done:
            continue
        if name == "approved":
            services.approve_order(order.order_no, actor, at=when())
        elif name == "routed":
            warehouse = warehouse or WarehouseFactory()
            stock_order(warehouse, order)
            services.route_order(order.order_no, warehouse.code, actor, at=when())
        elif name == "ship_requested":
            if ship:
                services.request_shipment(order.order_no, actor, at=when())
        else:
            order.refresh_from_db()
            if device is None:
                device, _token = make_device(order.warehouse)
            event_type = {"picking": PICK_STARTED, "packed": PACK_VERIFIED, "outbound": OUTBOUND}[name]
            reply = scan(device, order, event_type, at=when() or timezone.now(), station=station)
            assert reply.status_code == 201, reply.body
    order.refresh_from_db()
    return order
