"""Demo master data and orders in every stage, stuck ones included. Idempotent."""

import uuid
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from channels.models import Channel
from inventory import services as inventory
from inventory.models import SKU, ChannelListing, StockLevel, Warehouse

from . import services
from .devices import create_device
from .events import SYSTEM, Actor
from .models import WarehouseDevice
from .scanning import apply_scanner_event

WAREHOUSES = [
    ("WH-SH", "上海仓", ["上海", "江苏", "浙江", "安徽"], 10),
    ("WH-GZ", "广州仓", ["广东", "广西", "福建", "海南"], 20),
    ("WH-BJ", "北京仓", ["北京", "天津", "河北", "山东"], 30),
]
SKUS = [
    ("SKU-TEA-001", "6901234567890", "明前龙井 250g", "tea"),
    ("SKU-TEA-002", "6901234567891", "正山小种 200g", "tea"),
    ("SKU-CUP-001", "6901234567892", "青瓷茶杯 2只装", "teaware"),
    ("SKU-POT-001", "6901234567893", "紫砂壶 300ml", "teaware"),
    ("SKU-GIFT-01", "6901234567894", "中秋茶礼盒", "gift"),
]
CHANNELS = [
    ("TB-FLAGSHIP", "天猫旗舰店", "taobao"),
    ("JD-SELF", "京东自营店", "jd"),
    ("DY-SHOP", "抖音小店", "douyin"),
    ("MINIAPP", "微信小程序", "generic"),
]
RECEIVERS = [
    ("张三", "13800001234", "上海", "上海市", "浦东新区", "世纪大道100号"),
    ("李四", "13900005678", "广东", "深圳市", "南山区", "科技园南路8号"),
    ("王五", "137****4321", "北京", "北京市", "朝阳区", "建国路88号"),
]
# (external id, stage, hours ago the order was placed, receiver index)
DEMO_ORDERS = [
    ("DEMO-0001", "pending_payment", 0.2, 0),
    ("DEMO-0002", "paid", 0.3, 1),
    ("DEMO-0003", "paid", 2.5, 0),           # stuck: paid, not reviewed for hours
    ("DEMO-0004", "approved", 1, 2),
    ("DEMO-0005", "routed", 1.5, 1),
    ("DEMO-0006", "ship_requested", 2, 0),
    ("DEMO-0007", "stuck_at_pack", 20, 0),   # stuck: ship requested, picked, no outbound 17 h
    ("DEMO-0008", "packed", 3, 1),
    ("DEMO-0009", "shipped", 26, 0),
    ("DEMO-0010", "delivered", 80, 2),
    ("DEMO-0011", "completed", 200, 1),
    ("DEMO-0012", "cancelled", 5, 2),
    ("DEMO-0013", "on_hold", 6, 0),
    ("DEMO-0014", "outbound_before_request", 4, 1),
]


def load(stdout) -> None:
    for code, name, provinces, priority in WAREHOUSES:
        Warehouse.objects.get_or_create(code=code, defaults={"name": name, "provinces": provinces, "priority": priority})
    for code, barcode, name, category in SKUS:
        SKU.objects.get_or_create(code=code, defaults={"barcode": barcode, "name": name, "category": category})
    for code, name, kind in CHANNELS:
        Channel.objects.get_or_create(code=code, defaults={"name": name, "kind": kind})
    _demo_stock(stdout)
    device = WarehouseDevice.objects.filter(warehouse__code="WH-SH", name="pack-B").first()
    if device is None:
        device, token = create_device("WH-SH", "pack-B")
        stdout.write(f"  scanner device WH-SH/pack-B token: {token}")
    created = sum(_demo_order(device, *spec) for spec in DEMO_ORDERS)
    stdout.write(f"  orders: {created} created ({len(DEMO_ORDERS)} demo orders in all)")


def _demo_stock(stdout) -> None:
    """Stock in every warehouse, safety levels, listings on the flagship store, one promo cap
    and one SKU low enough that its listings closed. Only the first time."""
    if StockLevel.objects.exists():
        return
    for warehouse in Warehouse.objects.filter(code__in=[w[0] for w in WAREHOUSES]):
        for code, *_ in SKUS:
            quantity = 6 if code == "SKU-GIFT-01" else 200
            inventory.receive_stock(warehouse.code, code, quantity, reference="demo opening stock")
            inventory.set_safety_stock(warehouse.code, code, 10 if code == "SKU-GIFT-01" else 20)
    flagship = Channel.objects.get(code="TB-FLAGSHIP")
    for sku in SKU.objects.filter(code__in=[s[0] for s in SKUS]):
        ChannelListing.objects.get_or_create(
            channel=flagship, sku=sku, defaults={"promo_cap": 100 if sku.code == "SKU-TEA-002" else None})
    inventory.review_listings(SKU.objects.get(code="SKU-GIFT-01").pk)
    stdout.write("  stock: 3 warehouses × 5 SKUs received; SKU-GIFT-01 below safety (listing closed)")


def _demo_order(device, external_id, stage, hours_ago, receiver_index) -> bool:
    now = timezone.now()
    placed = now - timedelta(hours=hours_ago)
    name, phone, province, city, district, address = RECEIVERS[receiver_index]
    skus = {s.code: s for s in SKU.objects.filter(code__in=["SKU-TEA-001", "SKU-CUP-001"])}
    lines = [
        {"sku": skus["SKU-TEA-001"], "quantity": 2, "unit_price": Decimal("168.00"), "discount": Decimal("0")},
        {"sku": skus["SKU-CUP-001"], "quantity": 1, "unit_price": Decimal("59.00"), "discount": Decimal("0")},
    ]
    data = {
        "external_order_id": external_id,
        "status": "pending_payment" if stage == "pending_payment" else "paid",
        "placed_at": placed,
        "paid_at": placed + timedelta(minutes=2),
        "currency": "CNY",
        "buyer": {"name": name, "phone": phone},
        "receiver": {"name": name, "phone": phone, "province": province, "city": city,
                     "district": district, "address": address},
        "lines": lines,
        "shipping_fee": Decimal("0"),
        "discount_total": Decimal("10.00"),
        "payable": Decimal("385.00"),
    }
    channel = Channel.objects.get(code="TB-FLAGSHIP" if receiver_index != 1 else "JD-SELF")
    order, result = services.create_order(channel, data, Actor.for_channel(channel))
    if result != "created":
        return False
    _advance(order.order_no, stage, placed, device)
    return True


def _advance(order_no, stage, placed, device) -> None:  # noqa: C901 - a straight script
    ops = Actor("user:ops")
    at = placed + timedelta(minutes=10)
    if stage in ("pending_payment", "paid"):
        return
    if stage == "cancelled":
        services.cancel_order(order_no, "buyer changed their mind", ops, at=at)
        return
    if stage == "on_hold":
        services.hold_order(order_no, "address needs confirmation with the buyer", ops, at=at)
        return
    services.approve_order(order_no, ops, at=at)
    if stage == "approved":
        return
    warehouse = "WH-SH" if stage in ("stuck_at_pack", "packed", "shipped", "delivered", "completed",
                                     "outbound_before_request", "ship_requested") else "WH-GZ"
    services.route_order(order_no, warehouse, ops, at=at + timedelta(minutes=1))
    if stage == "routed":
        return
    if stage != "outbound_before_request":
        services.request_shipment(order_no, ops, at=at + timedelta(minutes=2))
    if stage == "ship_requested":
        return
    scan_at = at + timedelta(minutes=30)
    _scan(device, order_no, "pick_started", scan_at)
    if stage == "stuck_at_pack":
        return
    _scan(device, order_no, "pack_verified", scan_at + timedelta(minutes=10),
          items=[{"barcode": "6901234567890", "quantity": 2}, {"barcode": "6901234567892", "quantity": 1}])
    if stage == "packed":
        return
    _scan(device, order_no, "outbound", scan_at + timedelta(minutes=20),
          carrier="SF", tracking_no=f"SF{uuid.uuid4().int % 10**12:012d}")
    if stage in ("shipped", "outbound_before_request"):
        return
    from django.db import transaction

    from . import fulfilment
    with transaction.atomic():
        order = services.lock_order(order_no)
        for share in fulfilment.shares_of(order):
            fulfilment.carrier_update(order, share, "mark_delivered", SYSTEM, at=scan_at + timedelta(hours=30),
                                      summary="carrier: signed for", payload={})
        services.transition(order, "mark_delivered", SYSTEM, at=scan_at + timedelta(hours=30))
        if stage == "completed":
            services.transition(order, "complete", SYSTEM, at=scan_at + timedelta(days=7))


def _scan(device, order_no, kind, at, **extra) -> None:
    event = {"event_id": uuid.uuid4(), "order_no": order_no, "type": kind, "scanned_at": at,
             "station": "pack-B", "operator": "w017", **extra}
    reply = apply_scanner_event(device, event)
    if reply.status_code >= 300:
        raise RuntimeError(f"demo scan refused: {reply.body}")
