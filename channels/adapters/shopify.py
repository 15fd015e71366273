"""Shopify through the Admin GraphQL API (`orders` query); the REST Admin API is legacy.

Reference: ../shared/reference/channel-payment-bank-formats.md §2.5 (REST field notes, and
"build this adapter on GraphQL"); the GraphQL names follow shopify.dev.

- POST {shop}/admin/api/{version}/graphql.json with `X-Shopify-Access-Token`.
- `orders(first, after, sortKey: UPDATED_AT, query: "updated_at:>='…' AND updated_at:<'…'")`,
  cursor pagination: follow `pageInfo.endCursor` while `pageInfo.hasNextPage`. An order with
  more line items than the first page holds gets the rest through `order(id).lineItems`.
- Status from `displayFinancialStatus`; `cancelledAt` cancels an order that is not refunded;
  a paid order already (partly) fulfilled on Shopify carries no news (None), like a shipped
  order on the Chinese platforms.
- Money is decimal strings in `…Set.shopMoney.amount` (shop currency = `currencyCode`).
- GraphQL errors come with HTTP 200: THROTTLED is retried (TransportError), others are final.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

from .base import ChannelAdapter, ChannelAPIError, NormaliseError, TransportError, Window
from .fields import count, identifier, local_time, money, text, whole, without_empty_times, yuan

API_VERSION = "2025-10"

_MONEY = "shopMoney { amount currencyCode }"
_LINE_ITEM = f"id sku name quantity currentQuantity originalUnitPriceSet {{ {_MONEY} }}"
ORDER_FIELDS = f"""
    id legacyResourceId name createdAt updatedAt processedAt cancelledAt cancelReason closedAt
    displayFinancialStatus displayFulfillmentStatus currencyCode taxesIncluded phone note
    shippingAddress {{ name phone province provinceCode city address1 address2 zip countryCodeV2 }}
    subtotalPriceSet {{ {_MONEY} }} totalPriceSet {{ {_MONEY} }}
    totalShippingPriceSet {{ {_MONEY} }} totalDiscountsSet {{ {_MONEY} }} totalTaxSet {{ {_MONEY} }}
    transactions(first: 10) {{ kind status processedAt }}
    lineItems(first: 30) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {_LINE_ITEM} }} }}
"""
ORDERS_QUERY = f"""query Orders($first: Int!, $after: String, $query: String!) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{ {ORDER_FIELDS} }}
  }}
}}"""
LINE_ITEMS_QUERY = f"""query LineItems($id: ID!, $after: String) {{
  order(id: $id) {{
    lineItems(first: 100, after: $after) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {_LINE_ITEM} }} }}
  }}
}}"""
FULFILLMENT_ORDERS_QUERY = """query FulfillmentOrders($id: ID!) {
  order(id: $id) { fulfillmentOrders(first: 20) { nodes { id status } } }
}"""
FULFILLMENT_CREATE = """mutation FulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status }
    userErrors { field message }
  }
}"""


class ShopifyAdapter(ChannelAdapter):
    kind = "shopify"
    max_window_seconds = 24 * 3600
    page_size = 20  # orders per page; with 30 line items each the query stays under cost 1000
    # displayFinancialStatus → unified status.
    status_map = {
        "PENDING": "pending_payment",
        "AUTHORIZED": "pending_payment",  # validated, not captured: not money yet
        "PARTIALLY_PAID": "pending_payment",
        "PAID": "paid",
        "PARTIALLY_REFUNDED": "paid",  # some lines refunded: the order goes on
        "REFUNDED": "refunded",
        "VOIDED": "cancelled",  # authorisation voided
        "EXPIRED": "cancelled",  # authorisation expired
    }
    # displayFulfillmentStatus values meaning the goods already left (shipped on Shopify).
    shipped_on_platform = frozenset({"FULFILLED", "PARTIALLY_FULFILLED"})
    paid_kinds = frozenset({"SALE", "CAPTURE"})

    # --- fetch ----------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        url = self.base_url.rstrip("/")
        if url.endswith(".json"):
            return url
        return f"{url}/admin/api/{self.credential('api_version', API_VERSION)}/graphql.json"

    def graphql(self, query: str, variables: dict) -> dict:
        reply = self.call("POST", self.endpoint, json={"query": query, "variables": variables},
                          headers={"X-Shopify-Access-Token": self.credential("access_token"),
                                   "Content-Type": "application/json"})
        errors = reply.get("errors")
        if errors:
            if isinstance(errors, list) and any(
                    (e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors if isinstance(e, dict)):
                raise TransportError("shopify: throttled")
            raise ChannelAPIError(f"shopify: {str(errors)[:500]}")
        data = reply.get("data")
        if not isinstance(data, dict):
            raise ChannelAPIError("shopify: answer without data")
        return data

    def fetch(self, window: Window) -> Iterator[dict]:
        for part in self.windows(window):
            search = (f"updated_at:>='{_utc(part.start)}' AND updated_at:<'{_utc(part.end)}'")
            cursor = None
            while True:
                data = self.graphql(ORDERS_QUERY, {"first": self.page_size, "after": cursor, "query": search})
                orders = data.get("orders")
                if not isinstance(orders, dict):
                    raise ChannelAPIError("shopify: answer without orders")
                for order in _nodes(orders):
                    yield self._with_all_line_items(order)
                page = orders.get("pageInfo") or {}
                if not page.get("hasNextPage"):
                    break
                cursor = page.get("endCursor")
                if not cursor:
                    raise ChannelAPIError("shopify: hasNextPage without endCursor")

    def _with_all_line_items(self, order: dict) -> dict:
        items = order.get("lineItems") or {}
        page = items.get("pageInfo") or {}
        if not page.get("hasNextPage"):
            return order
        nodes, cursor = list(_nodes(items)), page.get("endCursor")
        while cursor:
            data = self.graphql(LINE_ITEMS_QUERY, {"id": order["id"], "after": cursor})
            more = (data.get("order") or {}).get("lineItems") or {}
            nodes.extend(_nodes(more))
            more_page = more.get("pageInfo") or {}
            cursor = more_page.get("endCursor") if more_page.get("hasNextPage") else None
        return {**order, "lineItems": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": nodes}}

    # --- normalise ------------------------------------------------------------------------

    def external_id(self, raw: dict) -> str:
        if not isinstance(raw, dict):
            raise NormaliseError("order", "not a JSON object")
        legacy = raw.get("legacyResourceId")
        if legacy not in (None, ""):
            return identifier(legacy, "legacyResourceId")
        gid = identifier(raw.get("id"), "id")
        return gid.rsplit("/", 1)[-1]

    def normalise(self, raw: dict) -> dict:
        order_id = self.external_id(raw)
        financial = raw.get("displayFinancialStatus")
        fulfilment = text(raw.get("displayFulfillmentStatus"))
        status = self.platform_status(financial, "displayFinancialStatus")
        if raw.get("cancelledAt") and status in ("pending_payment", "paid"):
            status = "cancelled"
        elif status == "paid" and fulfilment in self.shipped_on_platform:
            status = None

        items = raw.get("lineItems")
        nodes = list(_nodes(items)) if isinstance(items, dict) else items
        if not isinstance(nodes, list) or not nodes:
            raise NormaliseError("lineItems", "no line items")
        if isinstance(items, dict) and _has_next_page(items):
            raise NormaliseError("lineItems", "only the first page of line items was fetched")
        lines = []
        for index, item in enumerate(nodes):
            field = f"lineItems[{index}]"
            if not isinstance(item, dict):
                raise NormaliseError(field, "not a JSON object")
            quantity = count(item.get("quantity"), f"{field}.quantity")
            current = item.get("currentQuantity")
            current = quantity if current in (None, "") else whole(current, f"{field}.currentQuantity")
            refunded = max(quantity - current, 0)
            lines.append({
                "sku": text(item.get("sku")),
                "quantity": quantity,
                "unit_price": money(_amount(item, "originalUnitPriceSet", f"{field}.originalUnitPriceSet")),
                "discount": "0.00",
                "external_line_id": text(item.get("id")).rsplit("/", 1)[-1],
                "name": text(item.get("name")),
                "refund_status": "none" if not refunded else ("refunded" if current == 0 else "partially_refunded"),
                "refunded_quantity": refunded,
            })

        address = raw.get("shippingAddress") or {}
        if not isinstance(address, dict):
            raise NormaliseError("shippingAddress", "not a JSON object")
        tax = _amount(raw, "totalTaxSet", "totalTaxSet", default="0")
        data = {
            "external_order_id": order_id,
            "status": status,
            "platform_status": text(financial),
            "platform_fulfilment_status": fulfilment,
            "shippable": status == "paid" and fulfilment == "UNFULFILLED",
            "name": text(raw.get("name")),
            "placed_at": local_time(raw.get("createdAt"), "createdAt"),
            "paid_at": self._paid_at(raw),
            "updated_at": local_time(raw.get("updatedAt"), "updatedAt"),
            "currency": text(raw.get("currencyCode")) or "CNY",
            "buyer": {"name": text(address.get("name")), "phone": text(raw.get("phone"))},
            "receiver": {
                "name": text(address.get("name")),
                "phone": text(address.get("phone") or raw.get("phone")),
                "province": text(address.get("province")),
                "city": text(address.get("city")),
                "district": "",
                "address": " ".join(p for p in (text(address.get("address1")), text(address.get("address2"))) if p),
                "zip": text(address.get("zip")),
                "country": text(address.get("countryCodeV2")),
            },
            "lines": lines,
            "shipping_fee": money(_amount(raw, "totalShippingPriceSet", "totalShippingPriceSet", default="0")),
            "discount_total": money(_amount(raw, "totalDiscountsSet", "totalDiscountsSet", default="0")),
            "payable": money(_amount(raw, "totalPriceSet", "totalPriceSet")),
            # Tax on top of the prices (taxesIncluded false) is part of totalPriceSet but has no
            # place in the unified order: such an order will not add up and is held for review.
            "tax": money(tax),
            "taxes_included": bool(raw.get("taxesIncluded")),
            "buyer_message": text(raw.get("note")),
        }
        return without_empty_times(data)

    def _paid_at(self, raw: dict) -> str | None:
        transactions = raw.get("transactions") or []
        if not isinstance(transactions, list):
            raise NormaliseError("transactions", "not a list")
        moments = [
            local_time(t.get("processedAt"), "transactions[].processedAt")
            for t in transactions
            if isinstance(t, dict) and t.get("status") == "SUCCESS" and text(t.get("kind")) in self.paid_kinds
        ]
        moments = [m for m in moments if m]
        return min(moments) if moments else None

    # --- push back ------------------------------------------------------------------------

    def push_shipment(self, external_order_id: str, carrier: str, tracking_no: str) -> dict:
        """Fulfil every open fulfillment order of the order with the tracking number
        (`fulfillmentCreate`)."""
        gid = external_order_id if external_order_id.startswith("gid://") else f"gid://shopify/Order/{external_order_id}"
        data = self.graphql(FULFILLMENT_ORDERS_QUERY, {"id": gid})
        open_orders = [
            node["id"] for node in _nodes((data.get("order") or {}).get("fulfillmentOrders") or {})
            if node.get("status") in ("OPEN", "IN_PROGRESS")
        ]
        if not open_orders:
            raise ChannelAPIError(f"shopify: order {external_order_id} has no open fulfillment order")
        result = self.graphql(FULFILLMENT_CREATE, {"fulfillment": {
            "lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": fid} for fid in open_orders],
            "trackingInfo": {"company": carrier, "number": tracking_no},
            "notifyCustomer": True,
        }})
        created = result.get("fulfillmentCreate") or {}
        if created.get("userErrors"):
            raise ChannelAPIError(f"shopify fulfillmentCreate: {created['userErrors']}")
        return result


def _nodes(connection: dict) -> Iterator[dict]:
    """The nodes of a GraphQL connection, given as `nodes` or as `edges[].node`; whatever is
    not a list of them is no nodes (a node that is no object is the caller's to refuse)."""
    if "nodes" in connection:
        nodes = connection.get("nodes")
        yield from nodes if isinstance(nodes, list) else []
    else:
        edges = connection.get("edges")
        for edge in edges if isinstance(edges, list) else []:
            yield (edge.get("node") or {}) if isinstance(edge, dict) else edge


def _has_next_page(connection: dict) -> bool:
    page = connection.get("pageInfo")
    return isinstance(page, dict) and bool(page.get("hasNextPage"))


def _amount(obj: dict, key: str, field: str, default: str | None = None):
    bag = obj.get(key)
    if bag is None and default is not None:
        return yuan(default, field)
    if not isinstance(bag, dict):
        raise NormaliseError(field, "missing")
    shop = bag.get("shopMoney") or {}
    if not isinstance(shop, dict):
        raise NormaliseError(f"{field}.shopMoney", "not a JSON object")
    return yuan(shop.get("amount"), f"{field}.shopMoney.amount", default=default)


def _utc(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
