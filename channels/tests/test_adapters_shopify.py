"""Shopify adapter against Admin GraphQL `orders`-shaped payloads (reference §2.5, shopify.dev)."""

import pytest

from channels.adapters.base import ChannelAPIError, NormaliseError, TransportError
from channels.adapters.shopify import ShopifyAdapter

from .adapter_support import FakeTransport, adds_up, fake_channel, load, window

EXPECTED_STATUS = {
    "PENDING": "pending_payment",
    "AUTHORIZED": "pending_payment",
    "PARTIALLY_PAID": "pending_payment",
    "PAID": "paid",
    "PARTIALLY_REFUNDED": "paid",
    "REFUNDED": "refunded",
    "VOIDED": "cancelled",
    "EXPIRED": "cancelled",
}
CURSOR = "eyJsYXN0X2lkIjo1ODAxMjM0NTY3ODkxfQ=="


def adapter(transport=None, **extra) -> ShopifyAdapter:
    channel = fake_channel("SHOP", "https://demo-shop.myshopify.com", access_token="shpat_test", **extra)
    return ShopifyAdapter(channel, transport)


def shopify_server(call):
    if "orders(" in call.json["query"]:
        return 200, load("shopify", "orders_page_2" if call.json["variables"]["after"] == CURSOR else "orders_page_1")
    raise AssertionError(call.json["query"])


def test_the_status_map_covers_every_display_financial_status():
    assert ShopifyAdapter.status_map == EXPECTED_STATUS


@pytest.mark.parametrize("financial, expected", sorted(EXPECTED_STATUS.items()))
def test_each_financial_status_maps_as_documented(financial, expected):
    raw = load("shopify", "order_paid") | {"displayFinancialStatus": financial}

    assert adapter().normalise(raw)["status"] == expected


def test_an_unknown_financial_status_names_the_field():
    with pytest.raises(NormaliseError) as error:
        adapter().normalise(load("shopify", "order_paid") | {"displayFinancialStatus": "SOMETHING"})
    assert error.value.field == "displayFinancialStatus"


@pytest.mark.parametrize("fulfilment, status, shippable", [
    ("UNFULFILLED", "paid", True), ("PARTIALLY_FULFILLED", None, False), ("FULFILLED", None, False),
    ("ON_HOLD", "paid", False),
])
def test_fulfilment_on_shopify(fulfilment, status, shippable):
    data = adapter().normalise(load("shopify", "order_paid") | {"displayFulfillmentStatus": fulfilment})

    assert (data["status"], data["shippable"]) == (status, shippable)


def test_a_paid_order_normalises():
    data = adapter().normalise(load("shopify", "order_paid"))

    assert data["external_order_id"] == "5801234567890" and data["name"] == "#1001"
    assert data["status"] == "paid" and data["currency"] == "CNY"
    assert data["placed_at"] == "2025-03-01T10:00:00+08:00"  # 02:00Z
    assert data["paid_at"] == "2025-03-01T10:00:05+08:00"  # the successful SALE
    assert data["receiver"]["phone"] == "+86 138****1234"
    assert data["receiver"]["address"] == "100 Century Avenue Pudong"
    assert [(line["sku"], line["quantity"], line["unit_price"], line["external_line_id"])
            for line in data["lines"]] == [("TSHIRT-BLK-M", 2, "64.00", "13001"), ("MUG-WHT", 1, "35.50", "13002")]
    assert (data["shipping_fee"], data["discount_total"], data["payable"]) == ("8.00", "10.00", "161.50")
    assert adds_up(data)


def test_a_line_refunded_on_a_partially_refunded_order_keeps_the_order_paid():
    data = adapter().normalise(load("shopify", "order_partially_refunded"))

    assert data["status"] == "paid"
    assert [(line["refund_status"], line["refunded_quantity"]) for line in data["lines"]] == [
        ("none", 0), ("refunded", 2)]
    assert data["paid_at"] == "2025-03-01T11:00:00+08:00"  # the SALE, not the REFUND
    assert adds_up(data)


def test_a_cancelled_order():
    data = adapter().normalise(load("shopify", "order_cancelled"))

    assert data["status"] == "cancelled" and "paid_at" not in data  # only an authorisation


def test_a_paid_order_cancelled_without_refund_is_cancelled():
    raw = load("shopify", "order_paid") | {"cancelledAt": "2025-03-01T05:00:00Z"}

    assert adapter().normalise(raw)["status"] == "cancelled"


def test_edges_are_read_like_nodes():
    raw = load("shopify", "order_paid")
    raw["lineItems"] = {"pageInfo": {"hasNextPage": False}, "edges": [{"cursor": "c", "node": n}
                                                                      for n in raw["lineItems"]["nodes"]]}

    assert adapter().normalise(raw)["lines"] == adapter().normalise(load("shopify", "order_paid"))["lines"]


@pytest.mark.parametrize("change, field", [
    ({"id": None, "legacyResourceId": None}, "id"),
    ({"totalPriceSet": {"shopMoney": {"amount": "1.2.3"}}}, "totalPriceSet.shopMoney.amount"),
    ({"lineItems": {"nodes": []}}, "lineItems"),
])
def test_unreadable_orders_name_the_field(change, field):
    with pytest.raises(NormaliseError) as error:
        adapter().normalise(load("shopify", "order_paid") | change)
    assert error.value.field == field


def test_fetch_follows_the_cursor_until_there_is_no_next_page():
    transport = FakeTransport(shopify_server)

    orders = list(adapter(transport).fetch(window("2025-03-01 09:00", "2025-03-01 20:00")))

    assert [c.json["variables"]["after"] for c in transport.calls] == [None, CURSOR]
    first = transport.calls[0]
    assert first.method == "POST"
    assert first.url == "https://demo-shop.myshopify.com/admin/api/2025-10/graphql.json"
    assert first.headers["X-Shopify-Access-Token"] == "shpat_test"
    assert first.json["variables"]["query"] == (
        "updated_at:>='2025-03-01T01:00:00Z' AND updated_at:<'2025-03-01T12:00:00Z'")
    assert "sortKey: UPDATED_AT" in first.json["query"]
    assert "displayFinancialStatus" in first.json["query"] and "pageInfo" in first.json["query"]
    assert [o["legacyResourceId"] for o in orders] == [
        "5801234567890", "5801234567891", "5801234567892", "5801234567893"]


def test_the_api_version_comes_from_the_credentials():
    transport = FakeTransport(shopify_server)

    list(adapter(transport, api_version="2026-01").fetch(window("2025-03-01 09:00", "2025-03-01 10:00")))

    assert transport.calls[0].url.endswith("/admin/api/2026-01/graphql.json")


def test_line_items_beyond_the_first_page_are_fetched():
    big = load("shopify", "order_paid")
    big["lineItems"]["pageInfo"] = {"hasNextPage": True, "endCursor": "LI1"}
    more = load("shopify", "order_partially_refunded")["lineItems"]["nodes"]

    def server(call):
        if "orders(" in call.json["query"]:
            return 200, {"data": {"orders": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": [big]}}}
        assert call.json["variables"] == {"id": "gid://shopify/Order/5801234567890", "after": "LI1"}
        return 200, {"data": {"order": {"lineItems": {"pageInfo": {"hasNextPage": False}, "nodes": more}}}}

    [order] = adapter(FakeTransport(server)).fetch(window("2025-03-01 09:00", "2025-03-01 10:00"))

    assert len(order["lineItems"]["nodes"]) == 4
    assert len(adapter().normalise(order)["lines"]) == 4


def test_an_order_with_unfetched_line_items_is_not_read_as_complete():
    raw = load("shopify", "order_paid")
    raw["lineItems"]["pageInfo"] = {"hasNextPage": True, "endCursor": "LI1"}

    with pytest.raises(NormaliseError) as error:
        adapter().normalise(raw)
    assert error.value.field == "lineItems"


@pytest.mark.parametrize("answer, error", [
    ((500, {}), TransportError),
    ((429, {}), TransportError),
    ((200, load("shopify", "throttled")), TransportError),
    ((200, load("shopify", "access_denied")), ChannelAPIError),
    ((401, {"errors": "[API] Invalid API key or access token"}), ChannelAPIError),
])
def test_errors(answer, error):
    with pytest.raises(error):
        list(adapter(FakeTransport(lambda call: answer)).fetch(window("2025-03-01 09:00", "2025-03-01 10:00")))


def test_push_shipment_fulfils_the_open_fulfillment_orders():
    def server(call):
        if "fulfillmentOrders" in call.json["query"]:
            return 200, {"data": {"order": {"fulfillmentOrders": {"nodes": [
                {"id": "gid://shopify/FulfillmentOrder/1", "status": "OPEN"},
                {"id": "gid://shopify/FulfillmentOrder/2", "status": "CLOSED"}]}}}}
        return 200, {"data": {"fulfillmentCreate": {"fulfillment": {"id": "gid://shopify/Fulfillment/9",
                                                                    "status": "SUCCESS"}, "userErrors": []}}}
    transport = FakeTransport(server)

    adapter(transport).push_shipment("5801234567890", "SF Express", "SF1234567890")

    fulfilment = transport.calls[1].json["variables"]["fulfillment"]
    assert fulfilment["lineItemsByFulfillmentOrder"] == [{"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1"}]
    assert fulfilment["trackingInfo"] == {"company": "SF Express", "number": "SF1234567890"}


def test_push_shipment_user_errors_are_final():
    def server(call):
        if "fulfillmentOrders" in call.json["query"]:
            return 200, {"data": {"order": {"fulfillmentOrders": {"nodes": [
                {"id": "gid://shopify/FulfillmentOrder/1", "status": "OPEN"}]}}}}
        return 200, {"data": {"fulfillmentCreate": {"fulfillment": None,
                                                    "userErrors": [{"field": ["x"], "message": "bad"}]}}}

    with pytest.raises(ChannelAPIError, match="bad"):
        adapter(FakeTransport(server)).push_shipment("5801234567890", "SF", "SF1")
