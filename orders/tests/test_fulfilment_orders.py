"""Fulfilment orders (issue 13): a warehouse's share of an order is a thing of its own.

Each test is one of the defects a review found on split orders, holds after an outbound,
partial cancels and refunds; each failed before fulfilment orders existed."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from inventory import services as inventory
from inventory.models import Reservation, StockLevel
from oms.errors import Conflict
from orders import services
from orders.models import CaseKind, ExceptionCase, Shipment, Status
from orders.tests.factories import (
    SHANGHAI,
    ChannelFactory,
    SKUFactory,
    WarehouseFactory,
    make_device,
    make_order,
    make_split_order,
    ops_actor,
    scan,
)
from reconciliation.tests.factories import notice
from reconciliation.vouchers import record_notice

pytestmark = pytest.mark.django_db


@pytest.fixture
def split():
    """Tea × 2 reserved in WH-SH, cup × 1 in WH-GZ; approved, with a scanner in each."""
    order, sh, gz, tea, cup = make_split_order(payable="25.00")
    ops = ops_actor()
    services.approve_order(order.order_no, ops)
    order.refresh_from_db()
    return {"order": order, "sh": sh, "gz": gz, "tea": tea, "cup": cup, "ops": ops,
            "sh_device": make_device(sh)[0], "gz_device": make_device(gz)[0]}


def ship_share(device, order, *, at=None, items=None):
    at = at or timezone.now()
    for step, when in (("pick_started", at), ("pack_verified", at + timedelta(seconds=1)),
                       ("outbound", at + timedelta(seconds=2))):
        reply = scan(device, order, step, at=when, **({"items": items} if step == "pack_verified" else {}))
        assert reply.status_code == 201, reply.body


def level(warehouse, sku):
    return StockLevel.objects.values_list("on_hand", "reserved").get(warehouse=warehouse, sku=sku)


def active(order):
    return sorted(Reservation.objects.filter(order=order, status="active")
                  .values_list("sku__code", "warehouse__code", "quantity"))


def test_approval_makes_one_fulfilment_order_per_warehouse(split):
    order = split["order"]
    shares = list(order.fulfilment_orders.order_by("number").values_list("number", "warehouse__code", "status"))
    assert shares == [(1, "WH-SH", "open"), (2, "WH-GZ", "open")]
    assert list(order.fulfilment_orders.get(number=2).lines.values_list("order_line__sku__code", "quantity")) == [
        ("CUP", 1)]
    assert order.fulfilment == "allocated"


def test_rerouting_after_one_parcel_left_moves_only_what_is_still_in_a_warehouse(split):
    # Defect 1: the re-route re-reserved every line, the shipped cup included.
    order, gz, cup, tea = split["order"], split["gz"], split["cup"], split["tea"]
    ship_share(split["gz_device"], order, items=[{"barcode": cup.barcode, "quantity": 1}])
    bj = WarehouseFactory(code="WH-BJ")
    inventory.receive_stock(bj.code, tea.code, 10)
    inventory.receive_stock(bj.code, cup.code, 10)

    services.route_order(order.order_no, bj.code, split["ops"])

    assert active(order) == [("TEA", "WH-BJ", 2)]
    assert level(gz, cup) == (9, 0)  # shipped once, not reserved again
    assert level(bj, cup) == (10, 0)
    shares = list(order.fulfilment_orders.order_by("number").values_list("warehouse__code", "status"))
    assert shares == [("WH-SH", "cancelled"), ("WH-GZ", "outbound"), ("WH-BJ", "open")]
    bj_device, _ = make_device(bj)
    ship_share(bj_device, order, at=timezone.now() + timedelta(seconds=5),
               items=[{"barcode": tea.barcode, "quantity": 2}])
    order.refresh_from_db()
    assert order.fulfilment == "outbound"
    assert level(bj, tea) == (8, 0)


def test_a_share_whose_picking_started_is_not_rerouted(split):
    order = split["order"]
    assert scan(split["gz_device"], order, "pick_started").status_code == 201
    with pytest.raises(Conflict) as refused:
        services.route_order(order.order_no, split["sh"].code, split["ops"])
    assert refused.value.extra["state"] == {"fulfilment_order": f"{order.order_no}-F2", "warehouse": "WH-GZ",
                                            "status": "picking"}
    assert refused.value.extra["allowed"] == ["cancel", "verify_pack"]


def test_hold_and_release_after_one_parcel_left_reserves_nothing_again(split):
    # Defect 2: release after an outbound reserved the shipped units again, for good.
    order, gz, cup, sh, tea = split["order"], split["gz"], split["cup"], split["sh"], split["tea"]
    ship_share(split["gz_device"], order, items=[{"barcode": cup.barcode, "quantity": 1}])

    services.hold_order(order.order_no, "address check", split["ops"])
    services.release_hold(order.order_no, split["ops"])

    assert active(order) == [("TEA", "WH-SH", 2)]
    assert level(gz, cup) == (9, 0)
    assert level(sh, tea) == (10, 2)
    assert order.fulfilment_orders.exclude(status="cancelled").count() == 2


def test_hold_is_refused_once_every_parcel_left(split):
    order, cup, tea = split["order"], split["cup"], split["tea"]
    ship_share(split["gz_device"], order, items=[{"barcode": cup.barcode, "quantity": 1}])
    ship_share(split["sh_device"], order, items=[{"barcode": tea.barcode, "quantity": 2}])
    with pytest.raises(Conflict, match="already left"):
        services.hold_order(order.order_no, "too late", split["ops"])


def test_cancel_after_one_parcel_left_cancels_the_rest_and_opens_an_intercept_case(split):
    # Defect 3: the order ended `cancelled` with a parcel on the road, no case, no alert.
    order, sh, tea, cup = split["order"], split["sh"], split["tea"], split["cup"]
    ship_share(split["gz_device"], order, items=[{"barcode": cup.barcode, "quantity": 1}])

    services.cancel_order(order.order_no, "buyer cancelled", split["ops"])

    order.refresh_from_db()
    assert order.status == Status.REFUNDING
    assert order.refund_due == Decimal("25.00")
    assert order.fulfilment == "outbound"  # what is left of the order: the parcel out
    assert level(sh, tea) == (10, 0)
    assert active(order) == []
    assert dict(order.fulfilment_orders.values_list("warehouse__code", "status")) == {
        "WH-SH": "cancelled", "WH-GZ": "outbound"}
    case = ExceptionCase.objects.get(order=order)
    assert case.kind == CaseKind.INTERCEPT_RETURN and case.status == "open"
    from alerts.engine import check_alerts, ensure_builtin_rules

    ensure_builtin_rules()
    check_alerts()
    from alerts.models import Alert

    assert Alert.objects.filter(rule__code="parcel-out-cancelled", order=order).exists()


def test_a_channel_cancel_after_an_outbound_is_not_a_plain_update(split):
    order, cup = split["order"], split["cup"]
    ship_share(split["gz_device"], order, items=[{"barcode": cup.barcode, "quantity": 1}])
    from orders.tests.factories import order_payload

    data = order_payload([(split["tea"], 2, "10.00"), (cup, 1, "5.00")], status="cancelled",
                         external_order_id=order.external_order_id, receiver=SHANGHAI, payable="25.00")
    _order, result = services.create_order(order.channel, data, ops_actor())

    order.refresh_from_db()
    assert result == "updated"
    assert order.status == Status.REFUNDING
    assert order.exception_cases.filter(kind=CaseKind.INTERCEPT_RETURN).exists()
    assert order.events.filter(summary__startswith="cancelled on the channel after parcels left").exists()


def test_each_warehouse_keeps_its_own_scan_clock_and_its_own_shipment(split):
    # Defect 4: the second warehouse's parcel recorded the main warehouse, and its earlier scan
    # time was refused forever because the last scan time was shared.
    order, cup, tea = split["order"], split["cup"], split["tea"]
    now = timezone.now()
    ship_share(split["sh_device"], order, at=now - timedelta(minutes=1), items=[{"barcode": tea.barcode, "quantity": 2}])
    ship_share(split["gz_device"], order, at=now - timedelta(minutes=10), items=[{"barcode": cup.barcode, "quantity": 1}])
    assert dict(Shipment.objects.filter(order=order).values_list("warehouse__code", "fulfilment_order__number")) == {
        "WH-SH": 1, "WH-GZ": 2}
    order.refresh_from_db()
    assert order.fulfilment == "outbound"


def test_an_event_id_reused_for_another_order_is_refused(split, warehouse):
    # Defect 5: the reused id got the first order's stored reply with 200.
    other = make_order()
    services.approve_order(other.order_no, split["ops"])
    other.refresh_from_db()
    event_id = uuid.uuid4()
    assert scan(split["sh_device"], split["order"], "pick_started", event_id=event_id).status_code == 201
    again = scan(split["sh_device"], split["order"], "pick_started", event_id=event_id)
    assert again.status_code == 200
    with pytest.raises(Conflict, match="already used for pick_started of order"):
        scan(split["sh_device"], split["order"], "pack_verified", event_id=event_id,
             items=[{"barcode": split["tea"].barcode, "quantity": 2}])


def test_a_channel_refund_closes_when_the_refund_vouchers_cover_it():
    # Defect 6: orders stopped at `refunding` for good.
    order = make_order(payable="30.00", lines=[(SKUFactory(), 1, "30.00")])
    from orders.tests.factories import order_payload

    line = order.lines.get()
    data = order_payload([(line.sku, 1, "30.00")], status="refunded", external_order_id=order.external_order_id,
                         payable="30.00")
    services.create_order(order.channel, data, ops_actor())
    order.refresh_from_db()
    assert (order.status, order.refund_due) == (Status.REFUNDING, Decimal("30.00"))

    record_notice(notice(order.order_no, "10.00", kind="refund"))
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.REFUNDING, Decimal("10.00"))
    record_notice(notice(order.order_no, "20.00", kind="refund"))
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.REFUNDED, Decimal("30.00"))
    assert order.events.filter(to_state=Status.REFUNDED).exists()


def test_a_delivered_order_completes_after_its_channel_confirmation_period(ops):
    from orders.tests.factories import advance
    from orders.tests.test_state_machine import _carrier

    order = advance(make_order(channel=ChannelFactory(completion_days=7)), "outbound", actor=ops)
    _carrier(order.order_no, "mark_delivered", at=timezone.now())
    from django.db import transaction

    with transaction.atomic():
        locked = services.lock_order(order.order_no)
        services.transition(locked, "mark_delivered", ops, at=timezone.now() - timedelta(days=8))
    assert services.complete_delivered() == 1
    order.refresh_from_db()
    assert order.status == Status.COMPLETED
    assert services.complete_delivered() == 0


def test_ops_split_a_share_by_hand_through_the_api(client_for):
    # Both lines reserved in WH-SH (one share); the cup goes to WH-GZ by hand.
    sh = WarehouseFactory(code="WH-SH", provinces=["上海"], priority=20)
    gz = WarehouseFactory(code="WH-GZ", provinces=["广东"], priority=10)
    tea, cup = SKUFactory(code="TEA", barcode="6900000000001"), SKUFactory(code="CUP", barcode="6900000000002")
    for warehouse, sku in ((sh, tea), (sh, cup), (gz, cup)):
        inventory.receive_stock(warehouse.code, sku.code, 10)
    order = make_order(stock=False, receiver=SHANGHAI, lines=[(tea, 2, "10.00"), (cup, 1, "5.00")])
    services.approve_order(order.order_no, ops_actor())
    ops = client_for("ops")
    url = f"/api/v1/orders/{order.order_no}/route/"

    refused = ops.post(url, {"warehouse": "WH-GZ", "lines": [2]}, format="json")
    assert refused.status_code == 400 and "lines" in refused.json()["fields"]
    unknown = ops.post(url, {"warehouse": "WH-GZ", "fulfilment_order": 1, "lines": [9]}, format="json")
    assert unknown.status_code == 400 and unknown.json()["fields"]["lines"] == [f"line 9 is not in {order.order_no}-F1"]

    split = ops.post(url, {"warehouse": "WH-GZ", "fulfilment_order": 1, "lines": [2]}, format="json")

    assert split.status_code == 200, split.json()
    shares = {s["number"]: (s["warehouse"], s["status"], [(line["sku"], line["quantity"]) for line in s["lines"]])
              for s in split.json()["fulfilment_orders"]}
    assert shares == {1: ("WH-SH", "open", [("TEA", 2)]), 2: ("WH-GZ", "open", [("CUP", 1)])}
    assert active(order) == [("CUP", "WH-GZ", 1), ("TEA", "WH-SH", 2)]
    assert level(sh, cup) == (10, 0)

    assert scan(make_device(gz)[0], order, "pick_started").status_code == 201
    busy = ops.post(url, {"warehouse": "WH-SH", "fulfilment_order": 2}, format="json")
    assert busy.status_code == 409
    assert busy.json()["state"] == {"fulfilment_order": f"{order.order_no}-F2", "warehouse": "WH-GZ",
                                    "status": "picking"}
