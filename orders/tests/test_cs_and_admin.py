"""The customer-service pages and the ops admin, through the test client as people use them."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from oms.tests.factories import DEFAULT_PASSWORD, UserFactory
from orders.models import Order, OrderEvent, Status
from orders.tests.factories import advance, make_order

pytestmark = pytest.mark.django_db


def logged_in(role: str | None = None, **fields) -> Client:
    user = UserFactory(role=role, is_staff=True, **fields)
    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    return client


@pytest.fixture
def stuck_order():
    """Ship requested 18 h ago, picked at pack-B, no outbound scan since."""
    start = timezone.now() - timedelta(hours=18)
    order = make_order(phone="13912345678", placed_at=start - timedelta(minutes=5),
                       paid_at=start - timedelta(minutes=4))
    return advance(order, "picking", at=start, station="pack-B", step=timedelta(minutes=1))


def test_cs_page_shows_the_blocking_point_of_a_stuck_order(stuck_order):
    client = logged_in("customer_service")
    client.post("/i18n/setlang/", {"language": "en"})

    response = client.get(f"/cs/orders/{stuck_order.order_no}/")

    assert response.status_code == 200
    html = re.sub(r"\s+", " ", response.content.decode())
    blocking = html[html.index('id="blocking"'):][:400]
    assert re.search(r"ship requested → no outbound scan for 17 h 5\d min", blocking), blocking
    assert "last seen at pack-B" in blocking
    # both columns: what the customer saw, and what actually happened
    assert "What the customer saw" in html and "What actually happened" in html
    assert "pick started at pack-B" in html


def test_cs_page_names_the_share_and_warehouse_a_stuck_order_waits_on(stuck_order):
    client = logged_in("customer_service")
    client.post("/i18n/setlang/", {"language": "en"})

    html = re.sub(r"\s+", " ", client.get(f"/cs/orders/{stuck_order.order_no}/").content.decode())

    share = stuck_order.fulfilment_orders.exclude(status="cancelled").get()
    blocking = html[html.index('id="blocking"'):][:500]
    assert f"waiting on {share.code} in {share.warehouse.code}" in blocking
    table = html[html.index('id="fulfilment-orders"'):][:800]
    assert share.code in table and "picking" in table and "pack-B" in table


def test_cs_page_speaks_chinese_by_default(stuck_order):
    client = logged_in("customer_service")

    html = re.sub(r"\s+", " ", client.get(f"/cs/orders/{stuck_order.order_no}/").content.decode())

    assert "已申请发货 → 17 小时" in html
    assert "未见出库扫描" in html and "最后出现在 pack-B" in html


def test_a_fresh_order_shows_no_blocking_point():
    order = make_order()
    client = logged_in("customer_service")

    assert 'id="blocking"' not in client.get(f"/cs/orders/{order.order_no}/").content.decode()


@pytest.mark.parametrize("query", ["order_no", "external_order_id", "13912345678", "+86 139-1234-5678"])
def test_search_by_order_number_channel_id_or_buyer_phone(stuck_order, query):
    client = logged_in("customer_service")
    value = getattr(stuck_order, query, query)

    response = client.get("/cs/orders/", {"q": value})

    assert response.status_code == 302
    assert response["Location"] == f"/cs/orders/{stuck_order.order_no}/"


def test_masked_phone_search_finds_orders_and_flags_them_as_weak():
    masked = make_order(phone="139****5678", receiver={
        "name": "李四", "phone": "139****5678", "province": "广东", "city": "深圳市",
        "district": "南山区", "address": "科技园南路8号"})
    client = logged_in("customer_service")

    response = client.get("/cs/orders/", {"q": "13900005678"})

    assert response.status_code == 200
    assert masked.order_no in response.content.decode()
    assert response.context["weak"] is True


def test_cs_adds_a_note_that_lands_on_the_timeline(stuck_order):
    client = logged_in("customer_service")

    response = client.post(f"/cs/orders/{stuck_order.order_no}/", {"text": "客户来电催发货"})

    assert response.status_code == 302
    note = OrderEvent.objects.get(order=stuck_order, kind="note")
    assert note.payload["text"] == "客户来电催发货"
    assert note.actor.startswith("user:")


def test_finance_reads_but_cannot_add_notes(stuck_order):
    client = logged_in("finance")

    assert client.get(f"/cs/orders/{stuck_order.order_no}/").status_code == 200
    client.post(f"/cs/orders/{stuck_order.order_no}/", {"text": "x"})
    assert not OrderEvent.objects.filter(order=stuck_order, kind="note").exists()


def test_cs_pages_need_login_and_the_read_permission(stuck_order):
    assert Client().get("/cs/orders/").status_code == 302  # to the login page
    assert logged_in(None).get("/cs/orders/").status_code == 403
    assert logged_in("customer_service").get("/cs/orders/nope/").status_code == 404


def _change_form_data(client, order) -> dict:
    html = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def test_admin_shows_only_the_allowed_transitions_as_buttons():
    order = make_order()
    client = logged_in("ops")

    html = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()

    buttons = set(re.findall(r'name="_fsm_transition_to"\s+value="(\w+)"', html))
    assert buttons == {"approve", "hold", "cancel"}


def test_admin_button_runs_the_service_and_writes_the_event():
    order = make_order()
    client = logged_in("ops")
    data = _change_form_data(client, order)

    client.post(f"/admin/orders/order/{order.pk}/change/", {**data, "_fsm_transition_to": "approve"})

    order.refresh_from_db()
    assert order.status == Status.APPROVED
    event = OrderEvent.objects.filter(order=order, to_state="approved").get()
    assert event.actor.startswith("user:")


def test_admin_cancel_asks_for_a_reason_first():
    order = make_order()
    client = logged_in("ops")
    data = _change_form_data(client, order)

    response = client.post(f"/admin/orders/order/{order.pk}/change/", {**data, "_fsm_transition_to": "cancel"})
    assert response.status_code == 302 and response["Location"].endswith("/transition/cancel/")
    client.post(response["Location"], {"reason": "buyer asked by phone"})

    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (Status.CANCELLED, "buyer asked by phone")


def test_admin_route_form_assigns_the_warehouse():
    from orders.tests.factories import WarehouseFactory, stock_order

    order = advance(make_order(), "approved")
    warehouse = WarehouseFactory(code="WH-GZ")
    stock_order(warehouse, order)
    client = logged_in("ops")

    client.post(f"/admin/orders/order/{order.pk}/route/", {"warehouse": "WH-GZ"})

    order.refresh_from_db()
    assert (order.warehouse, order.fulfilment) == (warehouse, "allocated")
    assert list(order.reservations.filter(status="active").values_list("warehouse", flat=True)) == [warehouse.pk]


def test_admin_route_to_a_warehouse_without_stock_shows_why_and_changes_nothing():
    from orders.tests.factories import DEFAULT_STOCK_WAREHOUSE, WarehouseFactory

    order = advance(make_order(), "approved")
    WarehouseFactory(code="WH-GZ")
    events = order.events.count()
    client = logged_in("ops")
    client.post("/i18n/setlang/", {"language": "en"})

    response = client.post(f"/admin/orders/order/{order.pk}/route/", {"warehouse": "WH-GZ"}, follow=True)

    assert response.status_code == 200
    sku = order.lines.get().sku.code
    assert re.search(rf'class="error">out of stock: {sku} needs 1, 0 available<', response.content.decode(),
                     re.IGNORECASE)
    order.refresh_from_db()
    assert (order.warehouse.code, order.fulfilment) == (DEFAULT_STOCK_WAREHOUSE, "allocated")
    assert order.events.count() == events
    assert list(order.reservations.values_list("warehouse__code", "status")) == [
        (DEFAULT_STOCK_WAREHOUSE, "active")
    ]


def test_admin_never_saves_order_fields_directly():
    order = make_order()
    client = logged_in("ops")
    data = _change_form_data(client, order)

    client.post(f"/admin/orders/order/{order.pk}/change/", {**data, "receiver_name": "hacker", "_save": "1"})

    assert Order.objects.get(pk=order.pk).receiver_name == "张三"


def test_admin_filters_and_search_answer():
    order = make_order()
    client = logged_in("ops")

    assert client.get("/admin/orders/order/", {"status__exact": "paid"}).status_code == 200
    response = client.get("/admin/orders/order/", {"q": order.order_no})
    assert order.order_no in response.content.decode()

