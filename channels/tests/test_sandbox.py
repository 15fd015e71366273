"""The sandbox marketplace through the Django test client: windows, pagination, updates, fault
knobs, platform error envelopes and determinism. The clock is fixed (stream.now) so every
answer is reproducible."""

import importlib
import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.urls import include, path

from channels.sandbox import config, faults, stream

# The tests mount the sandbox themselves, so they do not depend on oms/urls.py.
urlpatterns = [path("sandbox/", include("channels.sandbox.urls"))]
pytestmark = pytest.mark.urls(__name__)

TOP = "/sandbox/taobao/router/rest"
GQL = "/sandbox/shopify/admin/api/2025-01/graphql.json"
INCREMENT = "taobao.trades.sold.increment.get"
BEIJING = timezone(timedelta(hours=8))
NOW = int(datetime(2026, 1, 9, 12, 0, 0, tzinfo=BEIJING).timestamp())
HOUR = 3600
DEMO_SKUS = {"SKU-TEA-001", "SKU-TEA-002", "SKU-CUP-001", "SKU-POT-001", "SKU-GIFT-01"}


@pytest.fixture(autouse=True)
def sandbox(settings, monkeypatch):
    settings.OMS_SANDBOX_ENABLED = True
    settings.OMS_SANDBOX_SEED = "test-seed"
    settings.OMS_SANDBOX_ORDERS_PER_MINUTE = 6
    settings.OMS_SANDBOX_SKUS = list(DEMO_SKUS)
    settings.OMS_SANDBOX_FAULTS = ""
    settings.OMS_SANDBOX_SHOPS = {}
    clock = {"now": NOW}
    monkeypatch.setattr(stream, "now", lambda: clock["now"])
    slept = []
    monkeypatch.setattr(faults, "sleep", slept.append)
    return type("Sandbox", (), {"clock": clock, "slept": slept})


def bj(t: int) -> str:
    return datetime.fromtimestamp(t, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def from_bj(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING).timestamp())


def utc(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_utc(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


# --- Taobao helpers -------------------------------------------------------------------------


def top(client, **params):
    params.setdefault("app_key", "shop-a")
    return client.get(TOP, params)


def increment(client, start, end, **params):
    response = top(client, method=INCREMENT, start_modified=bj(start), end_modified=bj(end), **params)
    assert response.status_code == 200, response.content
    return response.json()["trades_sold_increment_get_response"]


def trades_of(body) -> list[dict]:
    return body.get("trades", {}).get("trade", [])


def pull_taobao(client, start, end, page_size=40, backwards=True, **params) -> list[dict]:
    """Every trade of a window, as TOP advises: read the count, then page from the last."""
    first = increment(client, start, end, page_size=page_size, **params)
    pages = math.ceil(first["total_results"] / page_size)
    order = range(pages, 0, -1) if backwards else range(1, pages + 1)
    out = []
    for page_no in order:
        body = first if page_no == 1 else increment(client, start, end, page_size=page_size,
                                                    page_no=page_no, **params)
        out += trades_of(body)
    return out


def pull_taobao_windows(client, start, end, step, **params) -> list[dict]:
    out = []
    for lo in range(start, end, step):
        out += pull_taobao(client, lo, min(lo + step, end), **params)
    return out


# --- Shopify helpers ------------------------------------------------------------------------

ORDER_FIELDS = """
    id name createdAt updatedAt cancelledAt closedAt displayFinancialStatus displayFulfillmentStatus
    subtotalPriceSet { shopMoney { amount currencyCode } }
    totalDiscountsSet { shopMoney { amount } }
    totalShippingPriceSet { shopMoney { amount } }
    totalPriceSet { shopMoney { amount currencyCode } }
    totalRefundedSet { shopMoney { amount } }
    shippingAddress { name phone province provinceCode city address1 }
    lineItems(first: 10) { edges { node { id sku quantity currentQuantity
        originalUnitPriceSet { shopMoney { amount } } originalTotalSet { shopMoney { amount } }
        totalDiscountSet { shopMoney { amount } } } } }
"""
ORDERS_QUERY = """
query Orders($first: Int!, $after: String, $q: String, $sort: OrderSortKeys, $reverse: Boolean) {
  orders(first: $first, after: $after, query: $q, sortKey: $sort, reverse: $reverse) {
    edges { cursor node { FIELDS } }
    pageInfo { hasNextPage endCursor }
  }
}""".replace("FIELDS", ORDER_FIELDS)


def gql(client, query, variables=None, shop_key="shop-a", **headers):
    body = json.dumps({"query": query, "variables": variables or {}})
    if shop_key:
        headers["HTTP_X_SHOPIFY_ACCESS_TOKEN"] = shop_key
    return client.post(GQL, data=body, content_type="application/json", **headers)


def window_query(start, end) -> str:
    return f"updated_at:>='{utc(start)}' updated_at:<'{utc(end)}'"


def shopify_page(client, start, end, first=50, after=None, sort="UPDATED_AT", reverse=False, **headers):
    response = gql(client, ORDERS_QUERY, {"first": first, "after": after, "q": window_query(start, end),
                                          "sort": sort, "reverse": reverse}, **headers)
    assert response.status_code == 200, response.content
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["orders"]


def pull_shopify(client, start, end, first=50, sort="UPDATED_AT", reverse=False, **headers) -> list[dict]:
    out, after = [], None
    while True:
        page = shopify_page(client, start, end, first, after, sort, reverse, **headers)
        out += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return out
        after = page["pageInfo"]["endCursor"]


def amount(bag) -> Decimal:
    return Decimal(bag["shopMoney"]["amount"])


# --- Windows and pagination -----------------------------------------------------------------


def test_taobao_windows_and_pages_return_every_order_exactly_once(client):
    start, end = NOW - 3 * HOUR, NOW
    by_window = pull_taobao_windows(client, start, end, HOUR, page_size=7)
    tids = [t["tid"] for t in by_window]
    assert len(tids) == len(set(tids)), "an order came twice"

    whole = pull_taobao(client, start, end, page_size=100)
    forward = pull_taobao(client, start, end, page_size=13, backwards=False)
    assert {t["tid"] for t in whole} == set(tids) == {t["tid"] for t in forward}
    assert len(whole) == len(forward) == len(tids)

    # Every order placed in the range is there (slots are contiguous), none placed too early.
    placed = sorted((from_bj(t["created"]), int(t["tid"][4:-1])) for t in by_window)
    inside = [slot for created, slot in placed if created >= start]
    assert inside == list(range(inside[0], inside[0] + len(inside)))
    assert 6 * 180 - 2 <= len(inside) <= 6 * 180
    assert all(created >= start - stream.HORIZON for created, _ in placed)
    assert all(start <= from_bj(t["modified"]) < end for t in by_window)


def test_taobao_pages_are_sorted_by_modified_descending_and_count_right(client):
    body = increment(client, NOW - 600, NOW, page_size=100)
    modified = [t["modified"] for t in trades_of(body)]
    assert modified == sorted(modified, reverse=True)
    assert body["total_results"] == len(modified) and body["has_next"] is False

    paged = increment(client, NOW - 600, NOW, page_size=10, use_has_next="true")
    assert "total_results" not in paged and paged["has_next"] is True
    last = increment(client, NOW - 600, NOW, page_size=10, page_no=math.ceil(len(modified) / 10))
    assert last["has_next"] is False and last["total_results"] == len(modified)
    beyond = increment(client, NOW - 600, NOW, page_size=10, page_no=999)
    assert "trades" not in beyond and beyond["has_next"] is False

    empty = increment(client, NOW + HOUR, NOW + 2 * HOUR)  # the future has no orders yet
    assert empty["total_results"] == 0 and "trades" not in empty


def test_shopify_windows_and_cursor_pages_return_every_order_exactly_once(client):
    start, end = NOW - 3 * HOUR, NOW
    nodes = []
    for lo in range(start, end, HOUR):
        nodes += pull_shopify(client, lo, lo + HOUR, first=25)
    ids = [n["id"] for n in nodes]
    assert len(ids) == len(set(ids))
    assert all(start <= from_utc(n["updatedAt"]) < end for n in nodes)
    for sort, reverse in [("ID", False), ("ID", True), ("UPDATED_AT", True), ("CREATED_AT", False)]:
        again = pull_shopify(client, start, end, first=40, sort=sort, reverse=reverse)
        assert sorted(n["id"] for n in again) == sorted(ids), (sort, reverse)
    by_updated = pull_shopify(client, start, end, first=40)
    assert [n["updatedAt"] for n in by_updated] == sorted(n["updatedAt"] for n in by_updated)
    placed = sorted(int(n["id"].rsplit("/", 1)[1][4:]) for n in nodes
                    if from_utc(n["createdAt"]) >= start)
    assert placed == list(range(placed[0], placed[0] + len(placed)))


def test_shopify_first_page_without_a_query_is_the_oldest_visible_and_pages_on(client):
    page = shopify_page(client, 0, NOW + 1, first=3, sort="ID")
    assert len(page["edges"]) == 3 and page["pageInfo"]["hasNextPage"]
    created = [from_utc(e["node"]["createdAt"]) for e in page["edges"]]
    assert NOW - 60 * 86400 <= created[0] < NOW - 60 * 86400 + 60


def test_shopify_nested_line_items_page_with_their_own_cursor(client):
    query = """{ orders(first: 50, query: "WINDOW") { nodes { id
        lineItems(first: 1) { edges { cursor node { sku } } pageInfo { hasNextPage endCursor } } } } }""".replace("WINDOW", window_query(NOW - HOUR, NOW))
    nodes = gql(client, query).json()["data"]["orders"]["nodes"]
    multi = next(n for n in nodes if n["lineItems"]["pageInfo"]["hasNextPage"])
    order = gql(client, """query($id: ID!, $after: String) { order(id: $id) {
        lineItems(first: 5, after: $after) { nodes { sku } } } }""",
                {"id": multi["id"], "after": multi["lineItems"]["pageInfo"]["endCursor"]}).json()
    rest = order["data"]["order"]["lineItems"]["nodes"]
    assert rest and multi["lineItems"]["edges"][0]["node"]["sku"] not in {r["sku"] for r in rest}


# --- Content ----------------------------------------------------------------------------------


def test_taobao_trades_are_realistic_and_consistent_to_the_cent(client):
    trades = pull_taobao(client, NOW - 3 * HOUR, NOW, page_size=100)
    provinces = set()
    for t in trades:
        lines = t["orders"]["order"]
        assert 1 <= len(lines) <= 3
        assert {line["outer_sku_id"] for line in lines} <= DEMO_SKUS
        assert re.fullmatch(r"1\d\d\*{4}\d{4}", t["receiver_mobile"])
        assert t["receiver_name"] and t["receiver_state"] and t["receiver_city"] and t["oaid"]
        provinces.add(t["receiver_state"])
        total = sum(Decimal(line["total_fee"]) for line in lines)
        discount = sum(Decimal(line["discount_fee"]) for line in lines)
        assert Decimal(t["total_fee"]) == total and Decimal(t["discount_fee"]) == discount
        assert Decimal(t["payment"]) == total - discount + Decimal(t["post_fee"])
        for line in lines:
            assert Decimal(line["total_fee"]) == Decimal(line["price"]) * line["num"]
            post = Decimal(t["post_fee"]) if len(lines) == 1 else 0
            assert Decimal(line["payment"]) == Decimal(line["total_fee"]) - Decimal(line["discount_fee"]) + post
            assert re.fullmatch(r"\d+\.\d\d", line["price"])
        if t["status"] == "WAIT_BUYER_PAY":
            assert "pay_time" not in t
        if t["status"] == "TRADE_CLOSED_BY_TAOBAO":
            assert "end_time" in t and "pay_time" not in t
    statuses = {t["status"] for t in trades}
    assert {"WAIT_BUYER_PAY", "WAIT_SELLER_SEND_GOODS", "TRADE_CLOSED_BY_TAOBAO"} <= statuses
    assert len(provinces) >= 15
    assert any(t["discount_fee"] != "0.00" for t in trades) and any(t["post_fee"] != "0.00" for t in trades)
    refunds = {line["refund_status"] for t in trades for line in t["orders"]["order"]}
    assert {"NO_REFUND", "SUCCESS"} <= refunds


def test_shopify_orders_are_consistent_to_the_cent(client):
    nodes = pull_shopify(client, NOW - 3 * HOUR, NOW, first=100)
    statuses = set()
    for n in nodes:
        items = [e["node"] for e in n["lineItems"]["edges"]]
        goods = sum(amount(i["originalTotalSet"]) for i in items)
        discounts = sum(amount(i["totalDiscountSet"]) for i in items)
        assert amount(n["totalDiscountsSet"]) == discounts
        assert amount(n["subtotalPriceSet"]) == goods - discounts
        assert amount(n["totalPriceSet"]) == goods - discounts + amount(n["totalShippingPriceSet"])
        assert all(amount(i["originalTotalSet"]) == amount(i["originalUnitPriceSet"]) * i["quantity"] for i in items)
        assert n["totalPriceSet"]["shopMoney"]["currencyCode"] == "CNY"
        assert re.fullmatch(r"1\d\d-\*{4}-\d{4}", n["shippingAddress"]["phone"])
        assert {i["sku"] for i in items} <= DEMO_SKUS
        statuses.add(n["displayFinancialStatus"])
    assert {"PENDING", "PAID", "VOIDED", "EXPIRED"} <= statuses
    assert statuses & {"PARTIALLY_REFUNDED", "REFUNDED"}


def test_the_sku_list_is_configurable(client, settings):
    settings.OMS_SANDBOX_SKUS = "A-1, B-2"
    trades = pull_taobao(client, NOW - HOUR, NOW, page_size=100)
    assert {line["outer_sku_id"] for t in trades for line in t["orders"]["order"]} == {"A-1", "B-2"}
    settings.OMS_SANDBOX_SHOPS = {"shop-c": {"skus": ["C-1"], "orders_per_minute": 1}}
    trades = pull_taobao(client, NOW - HOUR, NOW, page_size=100, app_key="shop-c")
    assert {line["outer_sku_id"] for t in trades for line in t["orders"]["order"]} == {"C-1"}
    placed = [t for t in trades if from_bj(t["created"]) >= NOW - HOUR]
    assert 59 <= len(placed) <= 61 and len(trades) > len(placed)  # + earlier orders changed since


def test_the_same_buyers_shop_on_several_shops_and_reorder_duplicates_exist(client):
    a = {t["receiver_mobile"] for t in pull_taobao(client, NOW - 3 * HOUR, NOW, page_size=100)}
    b = {t["receiver_mobile"] for t in pull_taobao(client, NOW - 3 * HOUR, NOW, page_size=100, app_key="shop-b")}
    assert a & b
    shop = stream.Shop("taobao", "shop-a", "test-seed")
    reorders = [i for i in shop.indexes(NOW - 86400, NOW) if shop.is_reorder(i)]
    assert reorders
    i = reorders[0]
    first, again = shop.content(i - 1), shop.content(i)
    assert (first.buyer, first.lines, first.address) == (again.buyer, again.lines, again.address)
    assert shop.plan(i - 1).close_kind == "timeout" and shop.plan(i - 1).paid_at is None


# --- Updates ----------------------------------------------------------------------------------


def test_updates_appear_in_later_windows_not_in_earlier_ones(client, sandbox):
    early = {t["tid"]: t for t in pull_taobao(client, NOW - HOUR, NOW, page_size=100)}
    pending = {tid for tid, t in early.items() if t["status"] == "WAIT_BUYER_PAY"}
    assert pending

    sandbox.clock["now"] = NOW + 2 * HOUR
    later = {t["tid"]: t for t in pull_taobao_windows(client, NOW, NOW + 2 * HOUR, HOUR, page_size=100)}
    moved = pending & set(later)
    assert moved, "pending orders never changed"
    assert {later[tid]["status"] for tid in moved} <= {"WAIT_SELLER_SEND_GOODS", "TRADE_CLOSED_BY_TAOBAO", "TRADE_CLOSED"}
    assert all(later[tid]["modified"] > early[tid]["modified"] for tid in moved)
    # Seen now, the early window no longer holds the orders that changed since.
    early_again = {t["tid"] for t in pull_taobao(client, NOW - HOUR, NOW, page_size=100)}
    assert not early_again & set(later)
    assert early_again | set(later) >= set(early)


def test_an_order_goes_pending_paid_refund_requested_refunded(client, sandbox):
    sandbox.clock["now"] = NOW + 2 * HOUR
    day = pull_taobao_windows(client, NOW - 20 * HOUR, NOW + 2 * HOUR, 4 * HOUR, page_size=100)
    refunded = next(t for t in day if len(t["orders"]["order"]) > 1
                    and any(line["refund_status"] == "SUCCESS" for line in t["orders"]["order"]))
    tid = refunded["tid"]
    assert refunded["status"] == "WAIT_SELLER_SEND_GOODS"  # the other lines still ship
    line = next(line for line in refunded["orders"]["order"] if line["refund_status"] == "SUCCESS")
    assert line["status"] == "TRADE_CLOSED" and line["refund_id"]

    def at(t):
        sandbox.clock["now"] = t
        return top(client, method="taobao.trade.fullinfo.get", tid=tid).json()["trade_fullinfo_get_response"]["trade"]

    created, paid = from_bj(refunded["created"]), from_bj(refunded["pay_time"])
    seen = [at(created), at(paid), at(from_bj(refunded["modified"]) - 1), at(from_bj(refunded["modified"]))]
    assert [s["status"] for s in seen] == ["WAIT_BUYER_PAY", "WAIT_SELLER_SEND_GOODS",
                                           "WAIT_SELLER_SEND_GOODS", "WAIT_SELLER_SEND_GOODS"]
    refund_states = [next(o for o in s["orders"]["order"] if o["oid"] == line["oid"])["refund_status"] for s in seen]
    assert refund_states == ["NO_REFUND", "NO_REFUND", "WAIT_SELLER_AGREE", "SUCCESS"]
    assert [s["modified"] for s in seen] == sorted({s["modified"] for s in seen})
    assert seen[0]["payment"] == seen[-1]["payment"]
    sandbox.clock["now"] = created - 1
    gone = top(client, method="taobao.trade.fullinfo.get", tid=tid).json()
    assert gone["error_response"]["sub_code"] == "isv.trade-not-exist"


def test_shopify_updates_move_updated_at_and_status(client, sandbox):
    early = {n["id"]: n for n in pull_shopify(client, NOW - HOUR, NOW, first=100)}
    pending = {i for i, n in early.items() if n["displayFinancialStatus"] == "PENDING"}
    sandbox.clock["now"] = NOW + 2 * HOUR
    later = {n["id"]: n for n in pull_shopify(client, NOW, NOW + 2 * HOUR, first=100)}
    moved = pending & set(later)
    assert moved
    assert {later[i]["displayFinancialStatus"] for i in moved} <= {"PAID", "VOIDED", "EXPIRED", "REFUNDED", "PARTIALLY_REFUNDED"}
    refunded = [n for n in later.values() if n["displayFinancialStatus"] in ("REFUNDED", "PARTIALLY_REFUNDED")]
    for n in refunded:
        items = [e["node"] for e in n["lineItems"]["edges"]]
        assert any(i["currentQuantity"] == 0 for i in items) and amount(n["totalRefundedSet"]) > 0


# --- Fault knobs ------------------------------------------------------------------------------


def test_slow_pages_sleep_per_request_and_globally(client, sandbox, settings):
    response = top(client, method=INCREMENT, start_modified=bj(NOW - HOUR), end_modified=bj(NOW),
                   sandbox_faults="slow_pages=0.25")
    assert response.status_code == 200 and sandbox.slept == [0.25]
    assert "slow_pages" in response["X-Sandbox-Faults-Applied"]
    settings.OMS_SANDBOX_FAULTS = "slow_pages=0.5"
    shopify_page(client, NOW - HOUR, NOW)
    assert sandbox.slept == [0.25, 0.5]
    top(client, method=INCREMENT, start_modified=bj(NOW - HOUR), end_modified=bj(NOW),
        sandbox_faults="slow_pages=99")
    assert sandbox.slept[-1] == config.MAX_SLOW_SECONDS


def test_error_rate_one_always_answers_503_with_a_platform_body(client, settings):
    settings.OMS_SANDBOX_FAULTS = "error_rate=1"
    response = top(client, method=INCREMENT, start_modified=bj(NOW - HOUR), end_modified=bj(NOW))
    assert response.status_code == 503
    err = response.json()["error_response"]
    assert err["code"] == 10 and err["sub_code"].startswith("isp.")
    response = gql(client, ORDERS_QUERY, {"first": 5})
    assert response.status_code == 503 and response.json() == {"errors": "Service Unavailable"}
    assert response["Retry-After"] == "1"
    # A request can switch a global knob off.
    assert top(client, method=INCREMENT, start_modified=bj(NOW - HOUR), end_modified=bj(NOW),
               sandbox_faults="error_rate=0").status_code == 200
    assert gql(client, ORDERS_QUERY, {"first": 5}, HTTP_X_SANDBOX_FAULTS="error_rate=0").status_code == 200


def test_error_rate_is_deterministic_per_seed_and_a_later_retry_can_succeed(client, sandbox):
    def statuses():
        return [top(client, method=INCREMENT, start_modified=bj(NOW - HOUR), end_modified=bj(NOW),
                    page_size=5, page_no=p, sandbox_faults="error_rate=0.3").status_code for p in range(1, 41)]

    first = statuses()
    assert first == statuses()
    assert 3 <= first.count(503) <= 25 and set(first) == {200, 503}
    failing = first.index(503) + 1
    params = dict(method=INCREMENT, start_modified=bj(NOW - HOUR), end_modified=bj(NOW), page_size=5,
                  page_no=failing, sandbox_faults="error_rate=0.3")
    retries = []
    for second in range(1, 20):
        sandbox.clock["now"] = NOW + second
        retries.append(top(client, **params).status_code)
        if retries[-1] == 200:
            break
    assert retries[-1] == 200
    sandbox.clock["now"] = NOW
    assert [top(client, **params, sandbox_seed="other").status_code for _ in range(3)] in (
        [200] * 3, [503] * 3)


def test_duplicate_across_pages_repeats_a_boundary_order_and_loses_none(client):
    clean = pull_taobao(client, NOW - HOUR, NOW, page_size=10)
    body = increment(client, NOW - HOUR, NOW, page_size=10, sandbox_faults="duplicate_across_pages=1")
    pages = math.ceil(body["total_results"] / 10)
    assert body["total_results"] == len(clean) + pages - 1
    paged = [trades_of(increment(client, NOW - HOUR, NOW, page_size=10, page_no=p,
                                 sandbox_faults="duplicate_across_pages=1")) for p in range(1, pages + 1)]
    for before, after in zip(paged, paged[1:], strict=False):
        assert before[-1]["tid"] == after[0]["tid"]
    tids = [t["tid"] for page in paged for t in page]
    assert len(tids) > len(set(tids)) and set(tids) == {t["tid"] for t in clean}

    clean_ids = [n["id"] for n in pull_shopify(client, NOW - HOUR, NOW, first=10)]
    dup_ids = [n["id"] for n in pull_shopify(client, NOW - HOUR, NOW, first=10,
                                             HTTP_X_SANDBOX_FAULTS="duplicate_across_pages=1")]
    assert len(dup_ids) > len(clean_ids) and set(dup_ids) == set(clean_ids)


def test_new_field_renamed_field_and_retyped_field(client, settings):
    def one(**params):
        return trades_of(increment(client, NOW - HOUR, NOW, page_size=20, **params))

    plain = one()
    assert all("sandbox_new_field" not in t and "receiver_mobile" in t for t in plain)
    with_new = one(sandbox_faults="new_field=1")
    assert all(t["sandbox_new_field"] == "1" for t in with_new)
    assert all(t["order_id_suffix"] == "ERR" for t in one(sandbox_faults="new_field=order_id_suffix:ERR"))
    renamed = one(sandbox_faults="renamed_field=1")
    assert all("receiver_mobile" not in t for t in renamed)
    assert [t["receiver_phone"] for t in renamed] == [t["receiver_mobile"] for t in plain]
    custom = one(sandbox_faults="renamed_field=orders.order.outer_sku_id:outer_id")
    assert all("outer_id" in line and "outer_sku_id" not in line for t in custom for line in t["orders"]["order"])
    retyped = one(sandbox_faults="retyped_field=1")
    assert all(isinstance(t["payment"], float) for t in retyped)
    assert [Decimal(str(t["payment"])) for t in retyped] == [Decimal(t["payment"]) for t in plain]

    settings.OMS_SANDBOX_FAULTS = "new_field=1,renamed_field=1,retyped_field=1"
    response = gql(client, ORDERS_QUERY, {"first": 10, "q": window_query(NOW - HOUR, NOW)})
    nodes = [e["node"] for e in response.json()["data"]["orders"]["edges"]]
    assert nodes and all(n["sandboxNewField"] == "1" for n in nodes)
    assert all("phone" not in n["shippingAddress"] and "phoneNumber" in n["shippingAddress"] for n in nodes)
    assert all(isinstance(e["node"]["quantity"], str) for n in nodes for e in n["lineItems"]["edges"])
    assert set(response["X-Sandbox-Faults-Applied"].split(",")) == {"new_field", "renamed_field", "retyped_field"}
    full = top(client, method="taobao.trade.fullinfo.get", tid=plain[0]["tid"]).json()
    assert "sandbox_new_field" in full["trade_fullinfo_get_response"]["trade"]


def test_faults_from_the_environment_and_per_shop(client, settings, monkeypatch):
    del settings.OMS_SANDBOX_FAULTS
    monkeypatch.setenv("OMS_SANDBOX_FAULTS", "new_field=1,unknown_knob=3")
    assert all("sandbox_new_field" in t for t in trades_of(increment(client, NOW - HOUR, NOW)))
    response = top(client, method=INCREMENT, start_modified=bj(NOW - HOUR), end_modified=bj(NOW),
                   sandbox_faults="slow_pages=soon")
    assert response.status_code == 200 and response["X-Sandbox-Faults-Applied"] == "new_field"
    assert response["X-Sandbox-Faults-Ignored"] == "unknown_knob,slow_pages=soon"
    monkeypatch.delenv("OMS_SANDBOX_FAULTS")
    settings.OMS_SANDBOX_SHOPS = {"flaky": {"faults": {"error_rate": 1}}}
    assert top(client, method=INCREMENT, start_modified=bj(NOW - HOUR), end_modified=bj(NOW),
               app_key="flaky").status_code == 503
    assert top(client, method=INCREMENT, start_modified=bj(NOW - HOUR), end_modified=bj(NOW)).status_code == 200


def test_fault_spec_parsing():
    knobs, ignored = config.parse_faults(
        "slow_pages=0.5,error_rate=0.1,duplicate_across_pages=1,new_field=1,renamed_field=1,bogus=2")
    assert knobs == {"slow_pages": 0.5, "error_rate": 0.1, "duplicate_across_pages": 1.0,
                     "new_field": "1", "renamed_field": "1"}
    assert ignored == ("bogus",)
    assert config.Faults().merged("error_rate=5,new_field=0").error_rate == 1.0
    assert config.Faults(new_field="x").merged("new_field=off").new_field == ""
    assert config.parse_faults("error_rate=lots") == ({}, ("error_rate=lots",))


# --- Platform errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("params, code, sub_code", [
    ({"app_key": ""}, 28, "isv.missing-parameter:app_key"),
    ({"method": ""}, 21, None),
    ({"method": "taobao.trades.sold.get"}, 22, "isv.invalid-method"),
    ({"start_modified": ""}, 40, "isv.missing-parameter:start_modified"),
    ({"start_modified": "2026/01/09 10:00"}, 41, "isv.invalid-parameter:start_modified"),
    ({"start_modified": bj(NOW - 86401)}, 15, "isv.invalid-parameter"),
    ({"end_modified": bj(NOW - 2 * HOUR)}, 41, "isv.invalid-parameter:end_modified"),
    ({"start_modified": bj(NOW - 100 * 86400), "end_modified": bj(NOW - 99 * 86400)}, 15, "isv.invalid-parameter"),
    ({"page_size": "101"}, 41, "isv.invalid-parameter:page_size"),
    ({"page_no": "0"}, 41, "isv.invalid-parameter:page_no"),
    ({"status": "SHIPPED"}, 41, "isv.invalid-parameter:status"),
])
def test_taobao_bad_params_get_the_top_error_envelope(client, params, code, sub_code):
    query = {"method": INCREMENT, "start_modified": bj(NOW - HOUR), "end_modified": bj(NOW), **params}
    response = top(client, **query)
    assert response.status_code == 200  # TOP answers errors with HTTP 200
    body = response.json()
    assert list(body) == ["error_response"]
    assert body["error_response"]["code"] == code
    assert body["error_response"].get("sub_code") == sub_code
    assert body["error_response"]["msg"] and body["error_response"]["request_id"]


def test_taobao_fullinfo_and_fields(client):
    trade = trades_of(increment(client, NOW - HOUR, NOW, page_size=1))[0]
    full = top(client, method="taobao.trade.fullinfo.get", tid=trade["tid"]).json()["trade_fullinfo_get_response"]["trade"]
    assert full == trade
    narrow = top(client, method="taobao.trade.fullinfo.get", tid=trade["tid"],
                 fields="tid,status,payment,orders.oid,orders.num", include_oaid="true").json()
    narrow = narrow["trade_fullinfo_get_response"]["trade"]
    assert set(narrow) == {"tid", "status", "payment", "orders", "oaid"}
    assert all(set(line) == {"oid", "num"} for line in narrow["orders"]["order"])
    assert trades_of(increment(client, NOW - HOUR, NOW, page_size=3, fields="tid,modified"))[0].keys() == {"tid", "modified"}
    other_shop = top(client, method="taobao.trade.fullinfo.get", tid=trade["tid"], app_key="shop-b").json()
    assert other_shop["error_response"]["sub_code"] == "isv.trade-not-exist"
    missing = top(client, method="taobao.trade.fullinfo.get").json()
    assert missing["error_response"]["code"] == 40


def test_taobao_status_filter_and_offline_send(client):
    paid = trades_of(increment(client, NOW - HOUR, NOW, page_size=100, status="WAIT_SELLER_SEND_GOODS"))
    pending = trades_of(increment(client, NOW - HOUR, NOW, page_size=100, status="WAIT_BUYER_PAY"))
    assert paid and pending
    assert {t["status"] for t in paid} == {"WAIT_SELLER_SEND_GOODS"}
    ok = top(client, method="taobao.logistics.offline.send", tid=paid[0]["tid"], out_sid="SF1234567890",
             company_code="SF").json()
    assert ok["logistics_offline_send_response"]["shipping"] == {"is_success": True}
    refused = top(client, method="taobao.logistics.offline.send", tid=pending[0]["tid"],
                  out_sid="SF1", company_code="SF").json()
    assert refused["error_response"]["code"] == 15


def test_shopify_without_a_token_is_401(client):
    response = gql(client, ORDERS_QUERY, {"first": 5}, shop_key="")
    assert response.status_code == 401
    assert "Invalid API key or access token" in response.json()["errors"]


@pytest.mark.parametrize("query, variables, needle", [
    ("{ orders(first: 5) { edges { node { id bogus } } } }", {}, "Field 'bogus' doesn't exist on type 'Order'"),
    ("{ orders(first: 5) { edges { node { id totalPriceSet } } } }", {}, "Field must have selections"),
    ("{ orders(first: 5) { edges { node { id { x } } } } }", {}, "Selections can't be made on scalars"),
    ("{ orders { edges { cursor } } }", {}, "you must provide one of first or last"),
    ("{ orders(first: 300) { edges { cursor } } }", {}, "between 0 and 250"),
    ("{ orders(first: 5, colour: RED) { edges { cursor } } }", {}, "doesn't accept argument 'colour'"),
    ("{ orders(first: 5, sortKey: PRICE) { edges { cursor } } }", {}, "invalid value"),
    ("{ orders(first: 5, after: \"nonsense\") { edges { cursor } } }", {}, "Invalid cursor"),
    ("{ orders(first: 5 { edges { cursor } } }", {}, "Parse error on \"{\""),
    ("query($n: Int!) { orders(first: $n) { edges { cursor } } }", {}, "Variable $n of type Int!"),
    ("mutation { orderCancel(orderId: \"x\") { job { id } } }", {}, "doesn't exist on type 'Mutation'"),
])
def test_shopify_bad_queries_get_graphql_errors(client, query, variables, needle):
    response = gql(client, query, variables)
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    assert needle in body["errors"][0]["message"], body


def test_shopify_bad_bodies_and_methods(client):
    response = client.post(GQL, data="{not json", content_type="application/json",
                           HTTP_X_SHOPIFY_ACCESS_TOKEN="shop-a")
    assert response.status_code == 400
    assert response.json() == {"errors": {"query": "Required parameter missing or invalid"}}
    assert client.get(GQL, HTTP_X_SHOPIFY_ACCESS_TOKEN="shop-a").status_code == 404
    assert client.post("/sandbox/shopify/admin/api/latest/graphql.json", data="{}",
                       content_type="application/json", HTTP_X_SHOPIFY_ACCESS_TOKEN="shop-a").status_code == 404


def test_shopify_graphql_reader_handles_fragments_aliases_typename_and_search_warnings(client):
    query = """
    # a comment
    query Sync($q: String = "updated_at:>='SINCE' AND status:open") {
      recent: orders(first: 2, query: $q, sortKey: UPDATED_AT, reverse: true) {
        edges { node { __typename ...Money ... on Order { legacy: legacyResourceId } } }
      }
      shop { name currencyCode ianaTimezone }
    }
    fragment Money on Order { total: totalPriceSet { shopMoney { amount } } name @include(if: true) id @skip(if: true) }
    """.replace("SINCE", utc(NOW - HOUR))
    body = gql(client, query).json()
    nodes = [e["node"] for e in body["data"]["recent"]["edges"]]
    assert len(nodes) == 2
    assert set(nodes[0]) == {"__typename", "total", "name", "legacy"} and nodes[0]["__typename"] == "Order"
    assert body["data"]["shop"]["currencyCode"] == "CNY"
    warnings = body["extensions"]["search"][0]["warnings"]
    assert warnings == [{"field": "status", "message": "Invalid search field for this query."}]
    one = gql(client, "query($id: ID!) { order(id: $id) { name } }",
              {"id": f"gid://shopify/Order/{nodes[0]['legacy']}"}).json()
    assert one["data"]["order"]["name"] == nodes[0]["name"]
    assert gql(client, '{ order(id: "gid://shopify/Order/1") { name } }').json()["data"]["order"] is None


# --- Determinism, switches ------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_answers_and_another_seed_does_not(client, settings):
    def snapshot(**extra):
        taobao = top(client, method=INCREMENT, start_modified=bj(NOW - HOUR), end_modified=bj(NOW),
                     page_size=30, **extra).content
        shopify = gql(client, ORDERS_QUERY, {"first": 30, "q": window_query(NOW - HOUR, NOW)},
                      **({"HTTP_X_SANDBOX_SEED": extra["sandbox_seed"]} if extra else {})).content
        return taobao, shopify

    first = snapshot()
    stream.shop_for.cache_clear()  # a fresh process computes the same
    assert snapshot() == first
    other = snapshot(sandbox_seed="another-seed")
    assert other[0] != first[0] and other[1] != first[1]
    settings.OMS_SANDBOX_SEED = "another-seed"
    assert snapshot() == other
    tids_a = {t["tid"] for t in trades_of(json.loads(first[0])["trades_sold_increment_get_response"])}
    tids_b = {t["tid"] for t in trades_of(json.loads(other[0])["trades_sold_increment_get_response"])}
    assert not tids_a & tids_b


def test_shop_keys_have_separate_streams(client):
    a = trades_of(increment(client, NOW - HOUR, NOW, page_size=5))
    b = trades_of(increment(client, NOW - HOUR, NOW, page_size=5, app_key="shop-b"))
    assert {t["tid"][:4] for t in a} != {t["tid"][:4] for t in b}


def test_disabled_sandbox_answers_404(client, settings):
    settings.OMS_SANDBOX_ENABLED = False
    assert top(client, method=INCREMENT).status_code == 404
    assert gql(client, ORDERS_QUERY, {"first": 1}).status_code == 404


def test_enabled_by_default_except_in_production(settings, monkeypatch):
    del settings.OMS_SANDBOX_ENABLED
    monkeypatch.delenv("OMS_SANDBOX_ENABLED", raising=False)
    settings.OMS_ENV = "development"
    assert config.enabled()
    settings.OMS_ENV = "production"
    assert not config.enabled()
    from channels.sandbox import urls

    try:
        assert importlib.reload(urls).urlpatterns == []
    finally:
        settings.OMS_ENV = "development"
        importlib.reload(urls)
    assert len(urls.urlpatterns) == 2
