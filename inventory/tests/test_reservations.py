"""Reservations, routing, release, shipment, listings at safety stock and promo caps."""

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from inventory import services
from inventory.models import ChannelListing, ListingChange, Reservation, StockLevel, StockMovement
from oms.errors import Conflict, Invalid
from orders import services as order_services
from orders.models import Status
from orders.tests.factories import (
    ChannelFactory,
    SKUFactory,
    WarehouseFactory,
    advance,
    make_order,
    ops_actor,
)

pytestmark = pytest.mark.django_db

SHANGHAI = {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
            "district": "浦东新区", "address": "世纪大道100号"}
GUANGDONG = {**SHANGHAI, "province": "广东", "city": "深圳市", "district": "南山区"}


def level(warehouse, sku) -> tuple[int, int]:
    row = StockLevel.objects.get(warehouse=warehouse, sku=sku)
    return row.on_hand, row.reserved


def assert_ledger_matches_counters():
    for row in StockLevel.objects.all():
        sums = StockMovement.objects.filter(warehouse=row.warehouse, sku=row.sku).aggregate(
            on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta"))
        assert (sums["on_hand"] or 0, sums["reserved"] or 0) == (row.on_hand, row.reserved)


@pytest.fixture
def sh():
    return WarehouseFactory(code="WH-SH", provinces=["上海", "江苏"], priority=20)


@pytest.fixture
def gz():
    return WarehouseFactory(code="WH-GZ", provinces=["广东"], priority=10)


# --- receipts and bad input -------------------------------------------------------------------

@pytest.mark.parametrize("quantity", [0, -3, 1.5])
def test_receipt_refuses_non_positive_or_fractional_quantities(sh, quantity):
    sku = SKUFactory()
    with pytest.raises(Invalid) as refused:
        services.receive_stock(sh.code, sku.code, quantity)
    assert "quantity" in refused.value.fields
    assert not StockMovement.objects.exists()


def test_receipt_names_every_unknown_field():
    with pytest.raises(Invalid) as refused:
        services.receive_stock("NOPE", "NOSKU", 5)
    assert set(refused.value.fields) == {"warehouse", "sku"}


def test_receipt_api_400_names_the_field_and_201_returns_the_level(client_for, sh):
    sku = SKUFactory(code="SKU-A")
    ops = client_for("ops")

    bad = ops.post("/api/v1/inventory/receipts/", {"warehouse": "WH-SH", "sku": "SKU-A", "quantity": 0}, format="json")
    unknown = ops.post("/api/v1/inventory/receipts/", {"warehouse": "WH-XX", "sku": "SKU-A", "quantity": 3}, format="json")
    good = ops.post("/api/v1/inventory/receipts/", {"warehouse": "WH-SH", "sku": "SKU-A", "quantity": 7, "reference": "PO-1"}, format="json")

    assert bad.status_code == 400 and "quantity" in bad.json()["fields"]
    assert unknown.status_code == 400 and "warehouse" in unknown.json()["fields"]
    assert good.status_code == 201
    assert good.json()["on_hand"] == 7 and good.json()["available"] == 7
    assert level(sh, sku) == (7, 0)
    assert client_for("customer_service").post(
        "/api/v1/inventory/receipts/", {"warehouse": "WH-SH", "sku": "SKU-A", "quantity": 1}, format="json"
    ).status_code == 403


def test_availability_api_per_warehouse(client_for, sh, gz):
    sku = SKUFactory(code="SKU-B")
    services.receive_stock(sh.code, sku.code, 5)
    services.receive_stock(gz.code, sku.code, 3)
    make_order(lines=[(sku, 2, "10.00")], stock=False, receiver=SHANGHAI)

    body = client_for("customer_service").get("/api/v1/inventory/availability/", {"sku": "SKU-B"}).json()

    by_code = {row["warehouse"]: row for row in body["warehouses"]}
    assert by_code["WH-SH"]["on_hand"] == 5 and by_code["WH-SH"]["reserved"] == 2
    assert by_code["WH-SH"]["available"] == 3 and by_code["WH-GZ"]["available"] == 3
    assert body["available"] == 6
    missing = client_for("ops").get("/api/v1/inventory/availability/", {"sku": "NOPE"})
    assert missing.status_code == 400 and "sku" in missing.json()["fields"]


# --- routing ------------------------------------------------------------------------------------

def test_routing_prefers_the_warehouse_serving_the_province_over_priority(sh, gz):
    sku = SKUFactory()
    for warehouse in (sh, gz):
        services.receive_stock(warehouse.code, sku.code, 10)

    order = make_order(lines=[(sku, 1, "10.00")], stock=False, receiver=SHANGHAI)

    assert Reservation.objects.get(order=order).warehouse == sh


def test_routing_falls_back_to_priority_then_stock(sh, gz):
    sku = SKUFactory()
    bj = WarehouseFactory(code="WH-BJ", provinces=["北京"], priority=10)
    services.receive_stock(sh.code, sku.code, 10)
    services.receive_stock(gz.code, sku.code, 5)
    services.receive_stock(bj.code, sku.code, 50)
    sichuan = {**SHANGHAI, "province": "四川"}

    order = make_order(lines=[(sku, 1, "10.00")], stock=False, receiver=sichuan)

    # WH-GZ and WH-BJ share priority 10; WH-BJ has more stock
    assert Reservation.objects.get(order=order).warehouse == bj


def test_routing_skips_a_serving_warehouse_that_cannot_ship_every_line(sh, gz):
    tea, cup = SKUFactory(), SKUFactory()
    services.receive_stock(sh.code, tea.code, 10)  # WH-SH serves Shanghai but has no cups
    services.receive_stock(gz.code, tea.code, 10)
    services.receive_stock(gz.code, cup.code, 10)

    order = make_order(lines=[(tea, 1, "10.00"), (cup, 1, "5.00")], stock=False, receiver=SHANGHAI)

    assert set(Reservation.objects.filter(order=order).values_list("warehouse__code", flat=True)) == {"WH-GZ"}


def test_split_across_warehouses_only_where_the_channel_allows_it(sh, gz):
    tea, cup = SKUFactory(), SKUFactory()
    services.receive_stock(sh.code, tea.code, 10)
    services.receive_stock(gz.code, cup.code, 10)
    splitting = ChannelFactory(allow_split=True)

    split = make_order(channel=splitting, lines=[(tea, 1, "10.00"), (cup, 1, "5.00")], stock=False,
                       receiver=SHANGHAI)
    whole_only = make_order(lines=[(tea, 1, "10.00"), (cup, 1, "5.00")], stock=False, receiver=SHANGHAI)

    assert dict(Reservation.objects.filter(order=split).values_list("sku__code", "warehouse__code")) == {
        tea.code: "WH-SH", cup.code: "WH-GZ"}
    assert whole_only.status == Status.ON_HOLD
    assert "no single warehouse can ship every line" in whole_only.hold_reason
    assert not Reservation.objects.filter(order=whole_only).exists()


def test_out_of_stock_holds_the_order_with_the_reason_and_reserves_nothing(sh):
    tea, cup = SKUFactory(code="SKU-T"), SKUFactory(code="SKU-C")
    services.receive_stock(sh.code, tea.code, 5)
    services.receive_stock(sh.code, cup.code, 1)

    order = make_order(lines=[(tea, 2, "10.00"), (cup, 3, "5.00")], stock=False, receiver=SHANGHAI)

    assert order.status == Status.ON_HOLD
    assert order.hold_reason == "out of stock: SKU-C needs 3, 1 available"
    assert level(sh, tea) == (5, 0)  # all lines or none
    assert_ledger_matches_counters()


def test_approval_allocates_to_the_reserved_warehouse(sh, gz):
    sku = SKUFactory()
    services.receive_stock(gz.code, sku.code, 3)
    order = make_order(lines=[(sku, 1, "10.00")], stock=False, receiver=SHANGHAI)

    order_services.approve_order(order.order_no, ops_actor())

    order.refresh_from_db()
    assert (order.warehouse, order.fulfilment) == (gz, "allocated")


def test_manual_reroute_moves_the_reservation_atomically_or_not_at_all(sh, gz):
    sku = SKUFactory()
    services.receive_stock(sh.code, sku.code, 5)
    services.receive_stock(gz.code, sku.code, 1)
    order = advance(make_order(lines=[(sku, 2, "10.00")], stock=False, receiver=SHANGHAI), "approved")
    assert order.warehouse == sh

    with pytest.raises(Conflict) as refused:
        order_services.route_order(order.order_no, gz.code, ops_actor())

    assert "needs 2, 1 available" in refused.value.detail
    order.refresh_from_db()
    assert order.warehouse == sh and level(sh, sku) == (5, 2) and level(gz, sku) == (1, 0)

    services.receive_stock(gz.code, sku.code, 5)
    order_services.route_order(order.order_no, gz.code, ops_actor())

    order.refresh_from_db()
    assert order.warehouse == gz
    assert level(sh, sku) == (5, 0) and level(gz, sku) == (6, 2)
    assert Reservation.objects.filter(order=order, status="active").get().warehouse == gz
    assert_ledger_matches_counters()


# --- release, expiry, shipment ------------------------------------------------------------------

def test_cancel_releases_the_reservation(sh):
    sku = SKUFactory()
    services.receive_stock(sh.code, sku.code, 4)
    order = make_order(lines=[(sku, 3, "10.00")], stock=False, receiver=SHANGHAI)

    order_services.cancel_order(order.order_no, "buyer changed their mind", ops_actor())

    assert level(sh, sku) == (4, 0)
    assert Reservation.objects.get(order=order).status == "released"
    assert_ledger_matches_counters()


def test_unpaid_reservation_expires_on_channels_that_reserve_at_creation(sh):
    sku = SKUFactory()
    services.receive_stock(sh.code, sku.code, 2)
    channel = ChannelFactory(reserve_on="creation", pending_reservation_minutes=15)
    unpaid = make_order(channel=channel, lines=[(sku, 2, "10.00")], status="pending_payment",
                        stock=False, receiver=SHANGHAI)
    reservation = Reservation.objects.get(order=unpaid)
    assert reservation.expires_at is not None and level(sh, sku) == (2, 2)

    assert order_services.expire_unpaid_reservations() == 0  # not yet
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert order_services.expire_unpaid_reservations() == 1

    assert level(sh, sku) == (2, 0)
    assert Reservation.objects.get(pk=reservation.pk).status == "released"


def test_payment_keeps_the_creation_reservation_without_expiry(sh):
    sku = SKUFactory()
    services.receive_stock(sh.code, sku.code, 2)
    channel = ChannelFactory(reserve_on="creation")
    order = make_order(channel=channel, lines=[(sku, 1, "10.00")], status="pending_payment",
                       stock=False, receiver=SHANGHAI, external_order_id="PAY-1")

    make_order(channel=channel, lines=[(sku, 1, "10.00")], status="paid", stock=False,
               receiver=SHANGHAI, external_order_id="PAY-1")

    reservation = Reservation.objects.get(order=order)
    assert reservation.status == "active" and reservation.expires_at is None
    assert level(sh, sku) == (2, 1)


def test_outbound_scan_consumes_the_reservation(sh):
    sku = SKUFactory()
    services.receive_stock(sh.code, sku.code, 5)
    order = make_order(lines=[(sku, 2, "10.00")], stock=False, receiver=SHANGHAI)

    advance(order, "packed", warehouse=sh)
    on_hand, reserved = level(sh, sku)
    assert reserved == 2
    advance(order, "outbound")

    assert level(sh, sku) == (on_hand - 2, 0)
    assert Reservation.objects.get(order=order, status__in=["active", "consumed"]).status == "consumed"
    assert StockMovement.objects.filter(sku=sku, kind="ship").get().on_hand_delta == -2
    assert_ledger_matches_counters()


# --- safety stock and promo caps ---------------------------------------------------------------

def test_listing_closes_at_safety_stock_and_reopens_when_replenished(sh):
    sku = SKUFactory(code="SKU-S")
    channel = ChannelFactory()
    listing = ChannelListing.objects.create(channel=channel, sku=sku)
    services.receive_stock(sh.code, sku.code, 12)
    services.set_safety_stock(sh.code, sku.code, 10)

    make_order(channel=channel, lines=[(sku, 2, "10.00")], stock=False, receiver=SHANGHAI)

    listing.refresh_from_db()
    assert not listing.is_open and listing.closed_reason == "safety stock: 10 available ≤ 10"
    assert not services.sellable(channel.pk, sku.pk)

    services.receive_stock(sh.code, sku.code, 5)

    listing.refresh_from_db()
    assert listing.is_open and listing.closed_reason == ""
    assert list(ListingChange.objects.filter(listing=listing).order_by("at", "id").values_list("is_open", flat=True)) == [False, True]


def test_listing_closes_when_the_sum_over_warehouses_reaches_the_summed_safety_stock(sh):
    # The reserving warehouse is far above its own safety (0); the sum is what counts.
    far = WarehouseFactory(code="WH-FAR", provinces=[], priority=900)
    sku = SKUFactory(code="SKU-SUM")
    channel = ChannelFactory()
    listing = ChannelListing.objects.create(channel=channel, sku=sku)
    services.receive_stock(sh.code, sku.code, 10)
    services.receive_stock(far.code, sku.code, 2)
    services.set_safety_stock(far.code, sku.code, 5)
    listing.refresh_from_db()
    assert listing.is_open  # 12 available > 5

    make_order(channel=channel, lines=[(sku, 7, "10.00")], stock=False, receiver=SHANGHAI)

    assert level(sh, sku) == (10, 7)
    listing.refresh_from_db()
    assert not listing.is_open and listing.closed_reason == "safety stock: 5 available ≤ 5"


def test_a_listing_closed_by_hand_stays_closed_on_replenishment(sh):
    sku = SKUFactory()
    listing = ChannelListing.objects.create(channel=ChannelFactory(), sku=sku, is_open=False,
                                            closed_reason="discontinued on this channel")
    services.receive_stock(sh.code, sku.code, 50)

    listing.refresh_from_db()
    assert not listing.is_open


def test_promo_cap_refuses_reservations_beyond_it_even_with_stock(sh):
    sku = SKUFactory(code="SKU-P")
    channel = ChannelFactory()
    services.receive_stock(sh.code, sku.code, 100)
    listing = ChannelListing.objects.create(channel=channel, sku=sku, promo_cap=3)

    first = make_order(channel=channel, lines=[(sku, 2, "10.00")], stock=False, receiver=SHANGHAI)
    second = make_order(channel=channel, lines=[(sku, 2, "10.00")], stock=False, receiver=SHANGHAI)
    other_channel = make_order(lines=[(sku, 2, "10.00")], stock=False, receiver=SHANGHAI)

    assert first.status == Status.PAID and other_channel.status == Status.PAID
    assert second.status == Status.ON_HOLD and "promo cap reached for SKU-P" in second.hold_reason
    listing.refresh_from_db()
    assert listing.promo_reserved == 2
    assert level(sh, sku) == (100, 4)

    order_services.cancel_order(first.order_no, "changed mind", ops_actor())
    listing.refresh_from_db()
    assert listing.promo_reserved == 0


def test_release_hold_reserves_again_or_refuses(sh):
    sku = SKUFactory()
    order = make_order(lines=[(sku, 2, "10.00")], stock=False, receiver=SHANGHAI)
    assert order.status == Status.ON_HOLD

    with pytest.raises(Conflict):
        order_services.release_hold(order.order_no, ops_actor())
    order.refresh_from_db()
    assert order.status == Status.ON_HOLD

    services.receive_stock(sh.code, sku.code, 2)
    order_services.release_hold(order.order_no, ops_actor())
    order.refresh_from_db()
    assert order.status == Status.PAID and level(sh, sku) == (2, 2)


def test_count_decrease_cannot_cut_into_reserved_stock(sh):
    from inventory import stock

    sku = SKUFactory()
    services.receive_stock(sh.code, sku.code, 3)
    make_order(lines=[(sku, 2, "10.00")], stock=False, receiver=SHANGHAI)

    with pytest.raises(stock.LedgerError):
        stock.add_on_hand(sh.pk, sku.pk, -2, "adjustment", reason="count")
    assert level(sh, sku) == (3, 2)


