"""Shopify Admin GraphQL-style sandbox: POST /sandbox/shopify/admin/api/<version>/graphql.json

Built on GraphQL, as the field notes (channel-payment-bank-formats.md §2.5) advise; the notes
only list the legacy REST fields, so the shape here is Shopify's documented GraphQL Admin API.

Request: header `X-Shopify-Access-Token: <shop key>` (any non-empty value; it names the sandbox
shop — real Shopify names the shop by host name), JSON body {"query", "variables",
"operationName"}. <version> is YYYY-MM or "unstable" and is echoed in X-Shopify-API-Version.

    query($cursor: String, $q: String) {
      orders(first: 50, after: $cursor, sortKey: UPDATED_AT,
             query: "updated_at:>='2026-01-09T02:00:00Z' updated_at:<'2026-01-09T03:00:00Z'") {
        edges { cursor node { id name updatedAt displayFinancialStatus displayFulfillmentStatus
          totalPriceSet { shopMoney { amount currencyCode } }
          lineItems(first: 10) { edges { node { sku quantity
            originalUnitPriceSet { shopMoney { amount } } } } } } }
        pageInfo { hasNextPage endCursor } } }

Answer (HTTP 200): exactly the fields asked for, plus Shopify's cost extension:
    {"data": {"orders": {"edges": [{"cursor": "eyJsYXN0X2lkIjo…", "node": {
        "id": "gid://shopify/Order/123400177234567", "name": "#177234567",
        "updatedAt": "2026-01-09T02:01:10Z", "displayFinancialStatus": "PAID",
        "displayFulfillmentStatus": "UNFULFILLED",
        "totalPriceSet": {"shopMoney": {"amount": "336.0", "currencyCode": "CNY"}},
        "lineItems": {"edges": [{"node": {"sku": "SKU-TEA-001", "quantity": 2,
            "originalUnitPriceSet": {"shopMoney": {"amount": "168.0"}}}}]}}}],
      "pageInfo": {"hasNextPage": false, "endCursor": "eyJsYXN0X2lkIjo…"}}},
     "extensions": {"cost": {"requestedQueryCost": …, "actualQueryCost": …, "throttleStatus": {…}}}}

orders: arguments first (1..250, required: `last`/`before` are not supported), after, query,
sortKey (ID default, CREATED_AT, PROCESSED_AT, UPDATED_AT), reverse. Cursors are Shopify-like
base64 JSON {"last_id", "last_value"} and keyset-paged, so a page never skips an order that
kept its sort key. `query` is Shopify search syntax: updated_at / created_at / processed_at
with :, :>, :>=, :<, :<= and a value in ISO 8601 (Z or offset; no offset or a bare date = shop
time, Asia/Shanghai), optionally quoted; "AND" is accepted; other terms are ignored with a
warning in extensions.search, as Shopify does. Orders more than 60 days old are not visible
(an app without read_all_orders). Every order is seen as of the moment of the call.
order(id: "gid://shopify/Order/…") and shop { name myshopifyDomain currencyCode ianaTimezone }
are also served. Mutations are refused ("Field … doesn't exist on type 'Mutation'").

Order fields: id, legacyResourceId, name, createdAt, processedAt, updatedAt, cancelledAt,
cancelReason (CUSTOMER for a buyer cancel, OTHER for an unpaid timeout), closed, closedAt,
confirmed, test, email, phone, note, tags, sourceName, discountCodes, currencyCode,
presentmentCurrencyCode, taxesIncluded (true), displayFinancialStatus (PENDING → PAID →
PARTIALLY_REFUNDED | REFUNDED; VOIDED after a buyer cancel, EXPIRED after an unpaid timeout),
displayFulfillmentStatus (UNFULFILLED: the sandbox never ships), subtotalPriceSet (goods −
discounts), totalDiscountsSet, totalShippingPriceSet, totalTaxSet (0), totalPriceSet (payable =
subtotal + shipping), totalRefundedSet, currentSubtotalPriceSet, currentTotalPriceSet,
shippingAddress / billingAddress (name, firstName, lastName, phone, address1 = district +
street, address2 = 街道, city, province (English, e.g. "Zhejiang"), provinceCode ("ZJ"),
country, countryCodeV2 "CN", zip, company), customer (id, displayName, firstName, lastName,
email, phone), lineItems(first, after) connection of LineItem (id, name, title, variantTitle,
sku, quantity, currentQuantity, refundableQuantity, requiresShipping, originalUnitPriceSet,
originalTotalSet, totalDiscountSet, discountedTotalSet (original − allocated discount),
discountAllocations { allocatedAmountSet }, customAttributes), refunds(first) list of Refund
(id, createdAt, note, totalRefundedSet, refundLineItems(first) connection of RefundLineItem
(lineItem, quantity, restockType, subtotalSet)). Money amounts are Shopify Decimal strings
("336.0", "39.9", "29.99"). Phones are masked as "138-****-1234".
A refunded line's refund is its line total less its discount, plus shipping when it is the
order's only line (then REFUNDED); a requested refund only moves updatedAt.

Errors: no token → 401 {"errors": "[API] Invalid API key or access token (unrecognized login
or wrong password)"}; no or unreadable body → 400 {"errors": {"query": "Required parameter
missing or invalid"}}; GraphQL errors (syntax, unknown field, bad argument) → 200
{"errors": [{"message", "locations", "path"?, "extensions": {"code", …}}]} with no data;
error_rate fault → 503 {"errors": "Service Unavailable"} with Retry-After: 1.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import faults as fault
from . import stream
from .config import enabled, resolve
from .graphql import Executor, GraphQLError, parse

SHOP_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
MAX_PAGE = 250
VISIBLE_DAYS = 60
VERSION = re.compile(r"^(\d{4}-\d{2}|unstable)$")

MONEY = "MoneyBag"
SCHEMA = {
    "QueryRoot": {"orders": "OrderConnection!", "order": "Order", "shop": "Shop!"},
    "Mutation": {},
    "Shop": {"name": "String!", "myshopifyDomain": "String!", "currencyCode": "CurrencyCode!",
             "ianaTimezone": "String!"},
    "OrderConnection": {"edges": "[OrderEdge!]!", "nodes": "[Order!]!", "pageInfo": "PageInfo!"},
    "OrderEdge": {"cursor": "String!", "node": "Order!"},
    "PageInfo": {"hasNextPage": "Boolean!", "hasPreviousPage": "Boolean!",
                 "startCursor": "String", "endCursor": "String"},
    "Order": {
        "id": "ID!", "legacyResourceId": "UnsignedInt64!", "name": "String!",
        "createdAt": "DateTime!", "processedAt": "DateTime!", "updatedAt": "DateTime!",
        "cancelledAt": "DateTime", "cancelReason": "OrderCancelReason", "closed": "Boolean!",
        "closedAt": "DateTime", "confirmed": "Boolean!", "test": "Boolean!", "email": "String",
        "phone": "String", "note": "String", "tags": "[String!]!", "sourceName": "String",
        "discountCodes": "[String!]!", "currencyCode": "CurrencyCode!",
        "presentmentCurrencyCode": "CurrencyCode!", "taxesIncluded": "Boolean!",
        "displayFinancialStatus": "OrderDisplayFinancialStatus",
        "displayFulfillmentStatus": "OrderDisplayFulfillmentStatus!",
        "subtotalPriceSet": MONEY, "totalDiscountsSet": MONEY, "totalShippingPriceSet": MONEY + "!",
        "totalTaxSet": MONEY, "totalPriceSet": MONEY + "!", "totalRefundedSet": MONEY + "!",
        "currentSubtotalPriceSet": MONEY + "!", "currentTotalPriceSet": MONEY + "!",
        "shippingAddress": "MailingAddress", "billingAddress": "MailingAddress",
        "customer": "Customer", "lineItems": "LineItemConnection!", "refunds": "[Refund!]!",
    },
    "MoneyBag": {"shopMoney": "MoneyV2!", "presentmentMoney": "MoneyV2!"},
    "MoneyV2": {"amount": "Decimal!", "currencyCode": "CurrencyCode!"},
    "MailingAddress": {k: "String" for k in (
        "name", "firstName", "lastName", "phone", "address1", "address2", "city", "province",
        "provinceCode", "country", "countryCodeV2", "zip", "company")},
    "Customer": {"id": "ID!", "displayName": "String!", "firstName": "String",
                 "lastName": "String", "email": "String", "phone": "String"},
    "LineItemConnection": {"edges": "[LineItemEdge!]!", "nodes": "[LineItem!]!",
                           "pageInfo": "PageInfo!"},
    "LineItemEdge": {"cursor": "String!", "node": "LineItem!"},
    "LineItem": {
        "id": "ID!", "name": "String!", "title": "String!", "variantTitle": "String",
        "sku": "String", "quantity": "Int!", "currentQuantity": "Int!",
        "refundableQuantity": "Int!", "requiresShipping": "Boolean!",
        "originalUnitPriceSet": MONEY + "!", "originalTotalSet": MONEY + "!",
        "totalDiscountSet": MONEY + "!", "discountedTotalSet": MONEY + "!",
        "discountAllocations": "[DiscountAllocation!]!", "customAttributes": "[Attribute!]!",
    },
    "DiscountAllocation": {"allocatedAmountSet": MONEY + "!"},
    "Attribute": {"key": "String!", "value": "String"},
    "Refund": {"id": "ID!", "createdAt": "DateTime", "note": "String",
               "totalRefundedSet": MONEY + "!", "refundLineItems": "RefundLineItemConnection!"},
    "RefundLineItemConnection": {"edges": "[RefundLineItemEdge!]!", "nodes": "[RefundLineItem!]!",
                                 "pageInfo": "PageInfo!"},
    "RefundLineItemEdge": {"cursor": "String!", "node": "RefundLineItem!"},
    "RefundLineItem": {"lineItem": "LineItem!", "quantity": "Int!", "restockType": "String!",
                       "subtotalSet": MONEY + "!"},
}
CONNECTION_ARGS = {"first", "after", "last", "before", "reverse"}
ARGUMENTS = {
    ("QueryRoot", "orders"): CONNECTION_ARGS | {"query", "sortKey", "savedSearchId"},
    ("QueryRoot", "order"): {"id"},
    ("Order", "lineItems"): CONNECTION_ARGS,
    ("Order", "refunds"): {"first"},
    ("Refund", "refundLineItems"): CONNECTION_ARGS,
}
SORT_KEYS = {"ID", "CREATED_AT", "PROCESSED_AT", "UPDATED_AT"}


# --- Values ---------------------------------------------------------------------------------


def iso(t: int | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decimal_string(value: Decimal) -> str:
    """Shopify's Decimal scalar: no trailing zeros, at least one decimal ("336.0", "39.9")."""
    text = format(value.normalize(), "f")
    return text if "." in text else text + ".0"


def money_bag(value: Decimal) -> dict:
    money = {"amount": decimal_string(value), "currencyCode": "CNY"}
    return {"shopMoney": money, "presentmentMoney": dict(money)}


def encode_cursor(last_id: int, last_value) -> str:
    raw = json.dumps({"last_id": last_id, "last_value": last_value}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> dict:
    try:
        data = json.loads(base64.b64decode(cursor.encode(), validate=True))
        int(data["last_id"])
        return data
    except (ValueError, TypeError, KeyError):
        raise GraphQLError(f"Invalid cursor for current pagination sort: {cursor!r}",
                           extensions={"code": "BAD_REQUEST"}) from None


def connection(items: list):
    """A field with first/after arguments over a short list (line items, refund lines)."""

    def resolve_(args, path):
        if args.get("last") is not None or args.get("before") is not None:
            raise GraphQLError("The sandbox supports first/after pagination only", path=path)
        first = args.get("first")
        if first is None:
            raise GraphQLError("you must provide one of first or last", path=path)
        if not 0 <= int(first) <= MAX_PAGE:
            raise GraphQLError(f"The page size must be between 0 and {MAX_PAGE}", path=path)
        ordered = list(reversed(items)) if args.get("reverse") else items
        start = int(decode_cursor(args["after"])["last_value"]) if args.get("after") else 0
        page = ordered[start:start + int(first)]
        edges = [{"cursor": encode_cursor(start + n, start + n + 1), "node": item}
                 for n, item in enumerate(page)]
        return {"edges": edges, "nodes": page, "pageInfo": {
            "hasNextPage": start + len(page) < len(ordered), "hasPreviousPage": start > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None}}

    return resolve_


# --- Orders as Shopify sees them ------------------------------------------------------------


def order_number(shop: stream.Shop, index: int) -> int:
    return int(f"{shop.code:04d}{index:011d}")


def index_of(shop: stream.Shop, number) -> int | None:
    text = str(number)
    if not text.isdigit() or len(text) < 15 or int(text[:4]) != shop.code:
        return None
    return int(text[4:])


def financial_status(v: stream.OrderView) -> str:
    if v.closed:
        return "VOIDED" if v.plan.close_kind == "cancel" else "EXPIRED"
    if not v.paid:
        return "PENDING"
    if v.any_refunded:
        return "REFUNDED" if v.fully_refunded else "PARTIALLY_REFUNDED"
    return "PAID"


def address(name: str, phone: str, a: stream.Address) -> dict:
    return {"name": name, "firstName": name[1:], "lastName": name[0],
            "phone": stream.mask_phone(phone, "shopify"), "address1": f"{a.district}{a.detail}",
            "address2": a.town, "city": a.city, "province": a.province_en,
            "provinceCode": a.province_code, "country": "China", "countryCodeV2": "CN",
            "zip": a.zip, "company": None}


def render_order(v: stream.OrderView) -> dict:
    shop, c, plan = v.shop, v.content, v.plan
    number = order_number(shop, v.index)
    lone = len(c.lines) == 1
    line_items, refunds, refunded_total = [], [], stream.ZERO
    for n, line in enumerate(c.lines):
        _title, _props, _price, en, variant, _num_iid, _sku_id = stream.catalog_entry(line.sku)
        refunded = v.refund_state(n) == "refunded"
        item = {
            "id": f"gid://shopify/LineItem/{number}{line.number}", "name": f"{en} - {variant}",
            "title": en, "variantTitle": variant, "sku": line.sku, "quantity": line.quantity,
            "currentQuantity": 0 if refunded else line.quantity,
            "refundableQuantity": line.quantity if v.paid and not refunded and not v.closed else 0,
            "requiresShipping": True, "originalUnitPriceSet": money_bag(line.price),
            "originalTotalSet": money_bag(line.total), "totalDiscountSet": money_bag(line.discount),
            "discountedTotalSet": money_bag(line.payment),
            "discountAllocations": [{"allocatedAmountSet": money_bag(line.discount)}] if line.discount else [],
            "customAttributes": [],
        }
        line_items.append(item)
        if refunded:
            amount = line.payment + (c.post_fee if lone else stream.ZERO)
            refunded_total += amount
            refunds.append({
                "id": f"gid://shopify/Refund/{number}{line.number}", "createdAt": iso(plan.refunded_at),
                "note": "买家申请退款", "totalRefundedSet": money_bag(amount),
                "refundLineItems": connection([{"lineItem": item, "quantity": line.quantity,
                                                "restockType": "NO_RESTOCK",
                                                "subtotalSet": money_bag(line.payment)}]),
            })
    subtotal = c.goods - c.discount
    closed_at = plan.closed_at if v.closed else None
    buyer = c.buyer
    return {
        "id": f"gid://shopify/Order/{number}", "legacyResourceId": str(number),
        "name": f"#{v.index}", "createdAt": iso(v.created), "processedAt": iso(v.created),
        "updatedAt": iso(v.modified), "cancelledAt": iso(closed_at),
        "cancelReason": None if closed_at is None else ("CUSTOMER" if plan.close_kind == "cancel" else "OTHER"),
        "closed": closed_at is not None, "closedAt": iso(closed_at), "confirmed": True,
        "test": False, "email": buyer.email, "phone": stream.mask_phone(buyer.phone, "shopify"),
        "note": c.buyer_message or None, "tags": [], "sourceName": "web",
        "discountCodes": ["SANDBOX" + str(int(c.discount))] if c.discount else [],
        "currencyCode": "CNY", "presentmentCurrencyCode": "CNY", "taxesIncluded": True,
        "displayFinancialStatus": financial_status(v), "displayFulfillmentStatus": "UNFULFILLED",
        "subtotalPriceSet": money_bag(subtotal), "totalDiscountsSet": money_bag(c.discount),
        "totalShippingPriceSet": money_bag(c.post_fee), "totalTaxSet": money_bag(stream.ZERO),
        "totalPriceSet": money_bag(c.payable), "totalRefundedSet": money_bag(refunded_total),
        "currentSubtotalPriceSet": money_bag(max(subtotal - refunded_total, stream.ZERO)),
        "currentTotalPriceSet": money_bag(c.payable - refunded_total),
        "shippingAddress": address(c.receiver_name, c.receiver_phone, v.address),
        "billingAddress": address(buyer.name, buyer.phone, buyer.home),
        "customer": {"id": f"gid://shopify/Customer/{shop.code}{buyer.number:06d}",
                     "displayName": buyer.name, "firstName": buyer.given_name,
                     "lastName": buyer.surname, "email": buyer.email,
                     "phone": stream.mask_phone(buyer.phone, "shopify")},
        "lineItems": connection(line_items),
        "refunds": lambda args, path: refunds[: args.get("first") or None],
    }


# --- Search syntax --------------------------------------------------------------------------

TERM = re.compile(r"""(\S+?):(>=|<=|>|<|=)?('[^']*'|"[^"]*"|\S+)|(\S+)""")


def parse_moment(text: str) -> int | None:
    text = text.strip("'\"")
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SHOP_TZ)
    return int(moment.timestamp()) if moment.microsecond == 0 else moment.timestamp()


def search(query: str | None) -> tuple[dict, list]:
    """Shopify search syntax → ({"updated": [lo, hi), "created": [lo, hi)}, warnings)."""
    bounds = {"updated": [0, 2**62], "created": [0, 2**62]}
    warnings = []
    for m in TERM.finditer(query or ""):
        name, op, value, bare = m.groups()
        if bare is not None:
            if bare.upper() not in ("AND",):
                warnings.append({"field": bare, "message": "Free-text search is not supported by the sandbox."})
            continue
        key = {"updated_at": "updated", "created_at": "created", "processed_at": "created"}.get(name)
        if key is None:
            warnings.append({"field": name, "message": "Invalid search field for this query."})
            continue
        moment = parse_moment(value)
        if moment is None:
            warnings.append({"field": name, "message": f"Invalid date value {value!r}."})
            continue
        floor, ceil = int(moment // 1), -int(-moment // 1)
        lo, hi = {">": (floor + 1, None), ">=": (ceil, None), "<": (None, ceil),
                  "<=": (None, floor + 1)}.get(op, (ceil, floor + 1))
        if lo is not None:
            bounds[key][0] = max(bounds[key][0], lo)
        if hi is not None:
            bounds[key][1] = min(bounds[key][1], hi)
    return bounds, warnings


# --- The orders connection ------------------------------------------------------------------


class Orders:
    def __init__(self, call):
        self.call = call
        self.shop, self.at = call.shop, call.at

    def sort_value(self, plan: stream.Plan, sort_key: str):
        if sort_key == "UPDATED_AT":
            return plan.modified_at(self.at)
        if sort_key in ("CREATED_AT", "PROCESSED_AT"):
            return plan.created
        return plan.index

    def cursor_value(self, value, sort_key: str):
        return iso(value) if sort_key != "ID" else order_number(self.shop, value)

    def __call__(self, args, path):
        if args.get("last") is not None or args.get("before") is not None:
            raise GraphQLError("The sandbox supports first/after pagination only", path=path)
        first = args.get("first")
        if first is None:
            raise GraphQLError("you must provide one of first or last", path=path,
                               extensions={"code": "BAD_REQUEST"})
        if not isinstance(first, int) or not 0 <= first <= MAX_PAGE:
            raise GraphQLError(f"Field 'orders' argument 'first' must be between 0 and {MAX_PAGE}, got {first}",
                               path=path, extensions={"code": "MAX_PAGE_SIZE_EXCEEDED"})
        sort_key = str(args.get("sortKey") or "ID")
        if sort_key not in SORT_KEYS:
            raise GraphQLError(f"Argument 'sortKey' on Field 'orders' has an invalid value ({sort_key})",
                               path=path, extensions={"code": "argumentLiteralsIncompatible"})
        reverse = bool(args.get("reverse"))
        bounds, warnings = search(args.get("query"))
        if warnings:
            self.call.search_warnings.append({"path": path, "query": args.get("query"),
                                              "warnings": warnings})
        after = None
        if args.get("after"):
            data = decode_cursor(args["after"])
            index = index_of(self.shop, data["last_id"])
            if index is None:
                raise GraphQLError("Invalid cursor for current pagination sort", path=path)
            value = data.get("last_value")
            if sort_key != "ID":
                value = parse_moment(str(value))
                if value is None:
                    raise GraphQLError("Invalid cursor for current pagination sort", path=path)
            else:
                value = index
            after = (value, index)
        found = self.scan(bounds, sort_key, reverse, after, first + 1)
        page, has_next = found[:first], len(found) > first
        edges = []
        for value, plan in page:
            node = render_order(self.shop.view(plan.index, self.at))
            cursor = encode_cursor(order_number(self.shop, plan.index), self.cursor_value(value, sort_key))
            edges.append({"cursor": cursor, "node": node})
        end_cursor = edges[-1]["cursor"] if edges else None
        query_key = json.dumps({k: v for k, v in args.items() if k != "after"}, sort_keys=True, default=str)
        if has_next and len(edges) > 1 and fault.duplicates_at(
                self.call.faults, self.call.cfg.seed, query_key, args.get("after") or ""):
            end_cursor = edges[-2]["cursor"]
            self.call.applied.append("duplicate_across_pages")
        self.call.cost += 2 + len(edges) * 3
        self.call.requested_cost += 2 + first * 3
        return {"edges": edges, "nodes": [e["node"] for e in edges], "pageInfo": {
            "hasNextPage": has_next, "hasPreviousPage": after is not None,
            "startCursor": edges[0]["cursor"] if edges else None, "endCursor": end_cursor}}

    def scan(self, bounds: dict, sort_key: str, reverse: bool, after, limit: int) -> list:
        """Up to `limit` (sort value, plan) matching the bounds, in sort order after `after`."""
        shop, at = self.shop, self.at
        u_lo, u_hi = bounds["updated"]
        c_lo = max(bounds["created"][0], at - VISIBLE_DAYS * 86400, u_lo - stream.HORIZON)
        c_hi = min(bounds["created"][1], u_hi, at + 1)
        if c_lo >= c_hi:
            return []
        lo, hi = shop.first_index_at(c_lo), shop.first_index_at(c_hi)  # indexes [lo, hi)
        by_updated = sort_key == "UPDATED_AT"
        if after is not None:
            value, index = after
            if not by_updated:
                lo, hi = (lo, min(hi, index)) if reverse else (max(lo, index + 1), hi)
            elif reverse:
                hi = min(hi, shop.first_index_at(value + 1))
            else:
                lo = max(lo, shop.first_index_at(max(0, value - stream.HORIZON)))

        def wanted(plan):
            if not bounds["created"][0] <= plan.created < bounds["created"][1]:
                return None
            updated = plan.modified_at(at)
            if updated is None or not u_lo <= updated < u_hi:
                return None
            key = (self.sort_value(plan, sort_key), plan.index)
            if after is not None and by_updated and (key >= after if reverse else key <= after):
                return None
            return key

        indexes = range(hi - 1, lo - 1, -1) if reverse else range(lo, hi)
        if not by_updated:
            found = []
            for i in indexes:
                plan = shop.plan(i)
                key = wanted(plan)
                if key is not None:
                    found.append((key[0], plan))
                    if len(found) == limit:
                        break
            return found
        # By updatedAt: orders change up to HORIZON after placement, so scan in placement order
        # and stop once no later-scanned order can beat the worst of the `limit` best so far.
        best: list = []  # sorted keys (ascending, or descending when reverse via negation)
        plans = {}
        for i in indexes:
            plan = shop.plan(i)
            if len(best) == limit:
                worst = best[-1]
                if not reverse and plan.created >= worst[0]:
                    break
                if reverse and plan.created + stream.HORIZON <= -worst[0]:
                    break
            key = wanted(plan)
            if key is None:
                continue
            entry = (-key[0], -key[1]) if reverse else key
            if len(best) == limit and entry >= best[-1]:
                continue
            bisect.insort(best, entry)
            plans[plan.index] = plan
            del best[limit:]
        out = []
        for entry in best:
            value, index = (-entry[0], -entry[1]) if reverse else entry
            out.append((value, plans[index]))
        return out


# --- The endpoint ---------------------------------------------------------------------------


class Call:
    def __init__(self, request, token: str, body: bytes):
        self.cfg = resolve(token, request)
        self.faults = self.cfg.faults
        self.shop = stream.shop_for("shopify", token, self.cfg.seed, self.cfg.orders_per_minute,
                                    self.cfg.skus)
        self.at = stream.now()
        self.fingerprint = body.decode("utf-8", "replace")
        self.applied: list[str] = []
        self.search_warnings: list = []
        self.cost = self.requested_cost = 1

    def root(self) -> dict:
        def order(args, path):
            index = index_of(self.shop, str(args.get("id") or "").rsplit("/", 1)[-1])
            view = None if index is None else self.shop.view(index, self.at)
            return None if view is None else render_order(view)

        return {"orders": Orders(self), "order": order, "shop": {
            "name": f"Sandbox shop {self.shop.key}",
            "myshopifyDomain": f"sandbox-{self.shop.code}.myshopify.com",
            "currencyCode": "CNY", "ianaTimezone": "Asia/Shanghai"}}


class OrderExecutor(Executor):
    """Applies the field faults to every Order object of the answer."""

    call: Call

    def execute(self, selections, type_name, value, path):
        out = super().execute(selections, type_name, value, path)
        if type_name == "Order":
            self.call.applied += fault.mutate_order(out, self.call.faults, "shopify")
        return out


def _respond(body, status=200, call: Call | None = None, version: str = "") -> JsonResponse:
    response = JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})
    if version:
        response["X-Shopify-API-Version"] = version
    if call is not None:
        fault.annotate(response, call.applied, call.faults)
    return response


@csrf_exempt
def graphql_view(request, version: str):
    if not enabled():
        raise Http404("sandbox disabled")
    if request.method != "POST":
        return _respond({"errors": "Not Found"}, status=404)
    if not VERSION.match(version):
        return _respond({"errors": "Not Found"}, status=404)
    token = request.headers.get("X-Shopify-Access-Token", "").strip()
    if not token:
        return _respond({"errors": "[API] Invalid API key or access token (unrecognized login "
                                   "or wrong password)"}, status=401, version=version)
    call = Call(request, token, request.body)
    fault.slow(call.faults)
    if call.faults.slow_pages:
        call.applied.append("slow_pages")
    if fault.fails(call.faults, call.cfg.seed, call.fingerprint, call.at):
        call.applied.append("error_rate")
        response = _respond({"errors": "Service Unavailable"}, status=503, call=call, version=version)
        response["Retry-After"] = "1"
        return response
    try:
        payload = json.loads(request.body or b"null")
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return _respond({"errors": {"query": "Required parameter missing or invalid"}},
                        status=400, call=call, version=version)
    variables = payload.get("variables") or {}
    try:
        document = parse(payload["query"])
        executor = OrderExecutor(SCHEMA, ARGUMENTS, document, variables, payload.get("operationName"))
        executor.call = call
        if executor.operation.kind != "query":
            root_type, root = "Mutation", {}
        else:
            root_type, root = "QueryRoot", call.root()
        data = executor.run(root, root_type)
    except GraphQLError as err:
        return _respond({"errors": [err.as_dict()]}, call=call, version=version)
    extensions = {"cost": {"requestedQueryCost": call.requested_cost, "actualQueryCost": call.cost,
                           "throttleStatus": {"maximumAvailable": 2000.0,
                                              "currentlyAvailable": 2000.0 - call.cost,
                                              "restoreRate": 100.0}}}
    if call.search_warnings:
        extensions["search"] = call.search_warnings
    return _respond({"data": data, "extensions": extensions}, call=call, version=version)
