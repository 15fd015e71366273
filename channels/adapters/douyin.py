"""Douyin shop (抖店) through `order.searchList` (POST /order/searchList).

Reference: ../shared/reference/channel-payment-bank-formats.md §2.3.

- By `update_time_start`/`update_time_end` (Unix seconds), `page` counted FROM 0, `size` ≤ 100,
  ordered by update_time. Pages are read from the last back to page 0 (the reference is
  silent on the direction; backwards never skips an order), and a window holding more than
  the 50,000 orders Douyin lets one page through is halved until it fits.
- Money is in fen (integer cents) and is converted exactly: 12345 → "123.45".
- PII (`post_receiver`, `post_tel`) comes encrypted; a `mask_post_*` companion is used when the
  field is ciphertext, else the value is kept as given.
- `isp.service-error` 20004/20005 is retried (TransportError); other errors are final.
- Signature (not in the reference): HMAC-SHA256 keyed by the app secret over
  secret + "app_key…method…param_json…timestamp…v…" + secret, param_json being the sorted,
  compact JSON of the business parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from .base import (
    ChannelAdapter,
    ChannelAPIError,
    NormaliseError,
    TransportError,
    Window,
    pages_backwards,
)
from .fields import (
    beijing,
    count,
    fen,
    identifier,
    money,
    readable,
    text,
    unix_time,
    without_empty_times,
)
from .signing import compact_json, sign_douyin

SEARCH = "order.searchList"
LOGISTICS_ADD = "order.logisticsAdd"
RETRY_CODES = frozenset({"20004", "20005"})


class DouyinAdapter(ChannelAdapter):
    kind = "douyin"
    max_window_seconds = 24 * 3600
    page_size = 100
    max_depth = 50_000  # orders one query may page through
    status_map = {
        "1": "pending_payment",  # 待支付 / 待确认
        "105": "paid",  # 已支付, in risk review or waiting for the group: shippable=False
        "2": "paid",  # 备货中: "只有此状态下才可发货"
        "101": None,  # 部分发货
        "3": None,  # 已发货
        "4": "cancelled",  # 已取消
        "5": None,  # 已完成
    }
    # sku_order after_sale_info.refund_status → the line's refund_status.
    line_refund_map = {"0": "none", "1": "requested", "3": "refunded", "4": "closed"}
    shippable_statuses = frozenset({"2"})

    # --- fetch ----------------------------------------------------------------------------

    def fetch(self, window: Window) -> Iterator[dict]:
        for part in self.windows(window):
            yield from self._fetch_window(part)

    def _fetch_window(self, window: Window) -> Iterator[dict]:
        def page(number: int) -> tuple[list, int]:
            data = self.api(SEARCH, {
                "update_time_start": int(window.start.timestamp()),
                "update_time_end": int(window.end.timestamp()),
                "order_by": "update_time",
                "order_asc": False,
                "page": number,
                "size": self.page_size,
            })
            return data.get("shop_order_list") or [], int(data.get("total") or 0)

        first, total = page(0)
        if total > self.max_depth and window.end - window.start > timedelta(seconds=1):
            middle = window.start + (window.end - window.start) / 2
            yield from self._fetch_window(Window(window.start, middle))
            yield from self._fetch_window(Window(middle, window.end))
            return
        answered = iter([(first, total)])  # page 0 is already read: reuse it as the probe

        def probe_then_page(number: int) -> tuple[list, int]:
            if number == 0:
                cached = next(answered, None)
                if cached is not None:
                    return cached
            return page(number)

        for orders in pages_backwards(probe_then_page, 0, self.page_size):
            yield from orders

    def api(self, method: str, params: dict) -> dict:
        app_key, secret = self.credential("app_key"), self.credential("app_secret")
        timestamp = beijing(self.now())
        param_json = compact_json(params)
        query = {
            "app_key": app_key,
            "method": method,
            "access_token": self.credential("access_token"),
            "timestamp": timestamp,
            "v": "2",
            "sign_method": "hmac-sha256",
            "sign": sign_douyin(app_key, secret, method, param_json, timestamp),
        }
        url = self.base_url.rstrip("/") + "/" + method.replace(".", "/")
        # The body is the very text that was signed, as the official SDK posts it: serialised
        # again by the HTTP client (other spacing or key order) it would not match the sign.
        reply = self.call("POST", url, params=query, data=param_json.encode(),
                          headers={"Content-Type": "application/json"})
        err_no, code = reply.get("err_no"), reply.get("code")
        ok = (err_no in (None, 0, "0")) and (code in (None, 10000, "10000"))
        if not ok:
            sub_code = text(reply.get("sub_code"))
            message = (f"douyin {method}: {code or err_no} {reply.get('msg') or reply.get('message') or ''} "
                       f"{sub_code} {reply.get('sub_msg') or ''}").strip()
            if "isp.service-error" in sub_code or text(code) in RETRY_CODES or text(err_no) in RETRY_CODES \
                    or any(sub_code.endswith(f":{c}") for c in RETRY_CODES):
                raise TransportError(message)
            raise ChannelAPIError(message)
        data = reply.get("data")
        if not isinstance(data, dict):
            raise ChannelAPIError(f"douyin {method}: answer without data")
        return data

    # --- normalise ------------------------------------------------------------------------

    def external_id(self, raw: dict) -> str:
        if not isinstance(raw, dict):
            raise NormaliseError("shop_order", "not a JSON object")
        return identifier(raw.get("order_id"), "order_id")

    def normalise(self, raw: dict) -> dict:
        order_id = self.external_id(raw)
        platform_status = raw.get("order_status")
        status = self.platform_status(platform_status, "order_status")
        skus = raw.get("sku_order_list")
        if not isinstance(skus, list) or not skus:
            raise NormaliseError("sku_order_list", "no sku orders")
        lines, goods = [], fen(0, "sku_order_list")
        for index, sku in enumerate(skus):
            field = f"sku_order_list[{index}]"
            if not isinstance(sku, dict):
                raise NormaliseError(field, "not a JSON object")
            quantity = count(sku.get("item_num"), f"{field}.item_num")
            unit = fen(sku.get("origin_amount"), f"{field}.origin_amount")
            if sku.get("sum_amount") not in (None, ""):
                goods += fen(sku.get("sum_amount"), f"{field}.sum_amount")
            else:
                goods += unit * quantity
            after_sale = sku.get("after_sale_info") or {}
            refund = text(after_sale.get("refund_status") if isinstance(after_sale, dict) else "") or "0"
            lines.append({
                "sku": text(sku.get("out_sku_id") or sku.get("code") or sku.get("sku_id")),
                "quantity": quantity,
                "unit_price": money(unit),
                "discount": "0.00",
                "external_line_id": text(sku.get("order_id")),
                "name": text(sku.get("product_name")),
                "gift": text(sku.get("given_product_type")) == "FREE",
                "refund_status": self.line_refund_map.get(refund, "requested"),
                "platform_refund_status": refund,
            })
        address = raw.get("post_addr") or {}
        masked_address = raw.get("mask_post_addr") or {}
        if not isinstance(address, dict):
            raise NormaliseError("post_addr", "not a JSON object")
        post = fen(raw.get("post_amount"), "post_amount", default=0)
        paid = fen(raw.get("pay_amount"), "pay_amount")
        data = {
            "external_order_id": order_id,
            "status": status,
            "platform_status": text(platform_status),
            "shippable": text(platform_status) in self.shippable_statuses,
            "placed_at": unix_time(raw.get("create_time"), "create_time"),
            "paid_at": unix_time(raw.get("pay_time"), "pay_time"),
            "updated_at": unix_time(raw.get("update_time"), "update_time"),
            "currency": "CNY",
            "receiver": {
                "name": readable(raw.get("post_receiver"), raw.get("mask_post_receiver")),
                "phone": readable(raw.get("post_tel"), raw.get("mask_post_tel")),
                "province": _name(address.get("province")),
                "city": _name(address.get("city")),
                "district": _name(address.get("town")),
                "address": _name(address.get("street")) + readable(
                    address.get("detail"),
                    masked_address.get("detail") if isinstance(masked_address, dict) else None),
            },
            "lines": lines,
            "shipping_fee": money(post),
            # Douyin's own figures: Σ sum_amount (price × count) + post − pay_amount is every
            # discount (shop, platform, talent, payment) and price change together.
            "discount_total": money(goods + post - paid),
            "payable": money(paid),
            "platform_promotion_amount": money(fen(raw.get("promotion_amount"), "promotion_amount", default=0)),
            "buyer_message": text(raw.get("buyer_words")),
            "seller_memo": text(raw.get("seller_words")),
        }
        return without_empty_times(data)

    # --- push back ------------------------------------------------------------------------

    def push_shipment(self, external_order_id: str, carrier: str, tracking_no: str) -> dict:
        """`order.logisticsAdd` (order_id, company_code, logistics_code). Not in the
        reference; carrier codes map through credentials["carrier_codes"]."""
        codes = (getattr(self.channel, "credentials", None) or {}).get("carrier_codes") or {}
        return self.api(LOGISTICS_ADD, {"order_id": external_order_id,
                                        "company_code": codes.get(carrier, carrier),
                                        "logistics_code": tracking_no})


def _name(part) -> str:
    """post_addr parts are {"id", "name"} objects (a bare string is taken as the name)."""
    if isinstance(part, dict):
        return text(part.get("name"))
    return text(part)
