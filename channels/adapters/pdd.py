"""Pinduoduo through `pdd.order.number.list.increment.get` (订单增量接口).

Reference: ../shared/reference/channel-payment-bank-formats.md §2.4.

- By `start_updated_at`/`end_updated_at` (Unix seconds), windows of at most 30 minutes, the
  window ending no later than 3 minutes before now ("结束时间不小于拼多多系统时间前3min可以避免
  漏单"): `clamp_window` drops the newest 3 minutes, so a pull must advance its cursor to the
  end of the clamped window (see ChannelAdapter.clamp_window).
- `page` from 1, read from the last page backwards; `page_size` 100.
- The answer `order_sn_increment_get_response` carries whole orders (`order_sn_list[]`).
- Money is yuan as JSON numbers (read exactly through their text, never as floats).
- Refunds are order-level (`refund_status`), there are no per-line refunds.
- Signature (not in the reference): md5(secret + sorted k/v + secret), upper-case.
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
    shown,
)
from .fields import count, identifier, local_time, money, readable, text, without_empty_times, yuan
from .signing import sign_sorted_params

INCREMENT = "pdd.order.number.list.increment.get"
ONLINE_SEND = "pdd.logistics.online.send"
# Pinduoduo's "调用过于频繁" (called too often): worth a retry. From PDD's error table, not
# from the reference.
RETRY_CODES = frozenset({"70031"})


class PinduoduoAdapter(ChannelAdapter):
    kind = "pdd"
    max_window_seconds = 30 * 60
    settle_seconds = 3 * 60  # the newest minutes PDD may still be indexing
    page_size = 100
    # order_status → unified status (1 待发货, 2 已发货待签收, 3 已签收).
    status_map = {
        "1": "paid",
        "2": None,
        "3": None,
    }
    # Order-level refund_status that overrides it (1 无售后或售后关闭, 2 售后处理中, 3 退款中,
    # 4 退款成功). Only a successful refund changes the order; the others are in progress.
    refund_status_map = {"1": None, "2": None, "3": None, "4": "refunded"}
    # confirm_status (0 未成交, 1 已成交, 2 已取消): a cancelled deal cancels the order.
    confirm_status_map = {"0": None, "1": None, "2": "cancelled"}

    # --- fetch ----------------------------------------------------------------------------

    def clamp_window(self, window: Window) -> Window | None:
        end = min(window.end, self.now() - timedelta(seconds=self.settle_seconds))
        if end <= window.start:
            return None
        return Window(window.start, end)

    def fetch(self, window: Window) -> Iterator[dict]:
        for part in self.windows(window):
            def page(number: int, part=part) -> tuple[list, int]:
                reply = self.api(INCREMENT, {
                    "start_updated_at": int(part.start.timestamp()),
                    "end_updated_at": int(part.end.timestamp()),
                    "is_lucky_flag": 0,
                    "order_status": 5,  # all
                    "refund_status": 5,  # all
                    "page": number,
                    "page_size": self.page_size,
                    "use_has_next": "false",
                })
                body = reply.get("order_sn_increment_get_response")
                if not isinstance(body, dict):
                    raise ChannelAPIError("pdd: no order_sn_increment_get_response in the answer")
                return body.get("order_sn_list") or [], int(body.get("total_count") or 0)

            for orders in pages_backwards(page, 1, self.page_size):
                yield from orders

    def api(self, method: str, params: dict) -> dict:
        body = {
            "type": method,
            "client_id": self.credential("client_id"),
            "access_token": self.credential("access_token"),
            "timestamp": str(int(self.now().timestamp())),
            "data_type": "JSON",
            **{key: str(value) for key, value in params.items()},
        }
        body["sign"] = sign_sorted_params(body, self.credential("client_secret"))
        reply = self.call("POST", self.base_url, json=body)
        error = reply.get("error_response")
        if error:
            code = text(error.get("error_code"))
            message = (f"pdd {method}: {code} {error.get('error_msg') or ''} "
                       f"{error.get('sub_code') or ''} {error.get('sub_msg') or ''}").strip()
            if code in RETRY_CODES:
                raise TransportError(message)
            raise ChannelAPIError(message)
        return reply

    # --- normalise ------------------------------------------------------------------------

    def external_id(self, raw: dict) -> str:
        if not isinstance(raw, dict):
            raise NormaliseError("order", "not a JSON object")
        return identifier(raw.get("order_sn"), "order_sn")

    def normalise(self, raw: dict) -> dict:
        order_sn = self.external_id(raw)
        order_status = text(raw.get("order_status"))
        status = self.platform_status(order_status, "order_status")
        refund_status = text(raw.get("refund_status")) or "1"
        confirm_status = text(raw.get("confirm_status")) or "1"
        if refund_status not in self.refund_status_map:
            raise NormaliseError("refund_status", f"unknown refund status {shown(raw.get('refund_status'))}")
        if confirm_status not in self.confirm_status_map:
            raise NormaliseError("confirm_status", f"unknown confirm status {shown(raw.get('confirm_status'))}")
        status = self.refund_status_map[refund_status] or self.confirm_status_map[confirm_status] or status

        items = raw.get("item_list")
        if not isinstance(items, list) or not items:
            raise NormaliseError("item_list", "no items")
        lines = []
        for index, item in enumerate(items):
            field = f"item_list[{index}]"
            if not isinstance(item, dict):
                raise NormaliseError(field, "not a JSON object")
            lines.append({
                "sku": text(item.get("outer_id") or item.get("outer_goods_id") or item.get("sku_id")),
                "quantity": count(item.get("goods_count"), f"{field}.goods_count"),
                "unit_price": money(yuan(item.get("goods_price"), f"{field}.goods_price")),
                "discount": "0.00",
                "external_line_id": text(item.get("sku_id")),
                "name": text(item.get("goods_name")),
            })
        goods = yuan(raw.get("goods_amount"), "goods_amount")
        postage = yuan(raw.get("postage"), "postage", default="0")
        paid = yuan(raw.get("pay_amount"), "pay_amount")
        shippable = (
            order_status == "1" and refund_status == "1" and confirm_status != "2"
            and text(raw.get("risk_control_status")) in ("", "0")
            and text(raw.get("group_status")) in ("", "1")
        )
        data = {
            "external_order_id": order_sn,
            "status": status,
            "platform_status": order_status,
            "platform_refund_status": refund_status,
            "shippable": shippable,
            "placed_at": local_time(raw.get("created_time"), "created_time"),
            "paid_at": local_time(raw.get("pay_time"), "pay_time"),
            "updated_at": local_time(raw.get("updated_at"), "updated_at"),
            "currency": "CNY",
            "receiver": {
                "name": readable(raw.get("receiver_name"), raw.get("receiver_name_mask")),
                "phone": readable(raw.get("receiver_phone"), raw.get("receiver_phone_mask")),
                "province": text(raw.get("province")),
                "city": text(raw.get("city")),
                "district": text(raw.get("town")),
                "address": readable(raw.get("address"), raw.get("address_mask")),
            },
            "lines": lines,
            "shipping_fee": money(postage),
            # PDD documents pay_amount = goods_amount − discount_amount + postage.
            "discount_total": money(goods + postage - paid),
            "payable": money(paid),
            "platform_discount_amount": money(yuan(raw.get("discount_amount"), "discount_amount", default="0")),
            "buyer_message": text(raw.get("buyer_memo")),
            "seller_memo": text(raw.get("remark")),
        }
        return without_empty_times(data)

    # --- push back ------------------------------------------------------------------------

    def push_shipment(self, external_order_id: str, carrier: str, tracking_no: str) -> dict:
        """`pdd.logistics.online.send` (order_sn, logistics_id, tracking_number). Not in the
        reference; PDD wants its numeric logistics_id: credentials["carrier_codes"] maps."""
        codes = (getattr(self.channel, "credentials", None) or {}).get("carrier_codes") or {}
        return self.api(ONLINE_SEND, {"order_sn": external_order_id,
                                      "logistics_id": codes.get(carrier, carrier),
                                      "tracking_number": tracking_no})
