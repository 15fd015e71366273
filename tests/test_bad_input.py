"""Bad input answers a clear 4xx, never a 500 (issue 15): beyond-bigint paging, NUL bytes,
malformed ids."""

import pytest
from django.test import Client

from oms.tests.factories import DEFAULT_PASSWORD, UserFactory
from orders.tests.factories import ChannelFactory

pytestmark = pytest.mark.django_db


def test_a_limit_beyond_bigint_is_capped_and_such_an_offset_is_a_400(client_for):
    ops = client_for("ops")
    assert ops.get("/api/v1/orders/?limit=99999999999999999999999").status_code == 200
    reply = ops.get("/api/v1/orders/?offset=99999999999999999999999")
    assert reply.status_code == 400 and "offset" in reply.json()["fields"]


@pytest.mark.parametrize("url", [
    "/api/v1/inventory/availability/?sku=SKU%00X",
    "/api/v1/orders/?channel=A%00B",
    "/api/v1/alerts/?order_no=%00",
])
def test_a_nul_byte_in_a_query_is_a_400(client_for, url):
    reply = client_for("ops").get(url)
    assert reply.status_code == 400 and reply.json()["fields"] == {"query": ["a NUL byte is not allowed"]}


def test_a_nul_byte_on_a_page_is_a_400():
    user = UserFactory(role="customer_service", is_staff=True)
    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    assert client.get("/cs/orders/?q=TB%00").status_code == 400
    assert client.get("/admin/orders/order/?status=%00").status_code == 400


def test_a_malformed_alert_id_is_a_404_not_a_500(client_for):
    ops = client_for("ops")
    assert ops.post("/api/v1/alerts/null,null/acknowledge/").status_code == 404
    assert ops.post("/api/v1/alerts/99999999999999999999999/acknowledge/").status_code == 404


def test_a_line_sku_with_a_nul_byte_is_a_400_naming_the_line(client_for):
    ChannelFactory(code="MANUAL")
    body = {"external_order_id": "NUL-1", "status": "paid", "currency": "CNY",
            "receiver": {"name": "张三", "phone": "13800001234", "province": "上海", "address": "世纪大道100号"},
            "lines": [{"sku": "SKU\x00X", "quantity": 1, "unit_price": "10.00"}], "payable": "10.00"}
    reply = client_for("ops").post("/api/v1/orders/", body, format="json")
    assert reply.status_code == 400
    assert any(key.startswith("lines") for key in reply.json()["fields"])
