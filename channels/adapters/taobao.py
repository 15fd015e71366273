"""Taobao / Tmall through TOP: `taobao.trades.sold.increment.get` + `taobao.trade.fullinfo.get`.

Reference: ../shared/reference/channel-payment-bank-formats.md §2.1.

- Incremental by `modified`, windows of at most one day, sorted by `modified` descending and
  read from the LAST page back to the first ("必须采用倒序的分页方式…才能避免漏单").
- The increment list is partial: each trade is read again with `taobao.trade.fullinfo.get`
  (`include_oaid`) unless the listed trade already carries its `orders` (the sandbox
  marketplace sends whole trades).
- Money is yuan strings; receivers are masked (`receiver_mobile` "138****1234") with an `oaid`
  standing for the real receiver. They are kept as given.
- Signature: TOP's md5 / hmac / hmac-sha256 over the sorted parameters (signing.py); the
  reference does not describe it.
"""

from __future__ import annotations

from collections.abc import Iterator

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
    identifier,
    join_street,
    local_time,
    money,
    text,
    without_empty_times,
    yuan,
)
from .signing import sign_sorted_params

INCREMENT = "taobao.trades.sold.increment.get"
FULLINFO = "taobao.trade.fullinfo.get"
OFFLINE_SEND = "taobao.logistics.offline.send"

FULLINFO_FIELDS = ",".join([
    "tid", "status", "type", "created", "modified", "pay_time", "consign_time", "end_time",
    "payment", "total_fee", "post_fee", "discount_fee", "adjust_fee", "buyer_nick",
    "buyer_open_uid", "buyer_message", "seller_memo", "seller_flag", "receiver_name",
    "receiver_state", "receiver_city", "receiver_district", "receiver_town", "receiver_address",
    "receiver_zip", "receiver_mobile", "receiver_phone", "oaid", "step_trade_status",
    "orders", "promotion_details",
])


class TaobaoAdapter(ChannelAdapter):
    kind = "taobao"
    max_window_seconds = 24 * 3600
    page_size = 50  # TOP allows 1-100 and advises 40-50
    # Trade status → unified status. None: the platform moved on (shipped, signed, finished)
    # and that is no news for our order.
    status_map = {
        "TRADE_NO_CREATE_PAY": "pending_payment",  # 没有创建支付宝交易
        "WAIT_BUYER_PAY": "pending_payment",
        "PAY_PENDING": "pending_payment",  # 外卡支付付款确认中
        "WAIT_PRE_AUTH_CONFIRM": "pending_payment",  # 0元购合约中
        "WAIT_SELLER_SEND_GOODS": "paid",
        "PAID_FORBID_CONSIGN": "paid",  # paid, shipping forbidden for now: shippable=False
        "SELLER_CONSIGNED_PART": None,  # partly shipped on the platform
        "WAIT_BUYER_CONFIRM_GOODS": None,  # shipped
        "TRADE_BUYER_SIGNED": None,  # signed (cash on delivery)
        "TRADE_FINISHED": None,
        "TRADE_CLOSED": "refunded",  # closed after payment: refunded in full
        "TRADE_CLOSED_BY_TAOBAO": "cancelled",  # closed before payment
    }
    # Sub-order refund_status → the line's unified refund_status.
    line_refund_map = {
        "NO_REFUND": "none",
        "WAIT_SELLER_AGREE": "requested",
        "WAIT_BUYER_RETURN_GOODS": "requested",
        "WAIT_SELLER_CONFIRM_GOODS": "requested",
        "SELLER_REFUSE_BUYER": "refused",
        "CLOSED": "closed",  # the refund request was closed: nothing refunded
        "SUCCESS": "refunded",
    }
    shippable_statuses = frozenset({"WAIT_SELLER_SEND_GOODS"})
    # TOP error codes worth a retry: 7 = App Call Limited, and any isp.* sub-code (the
    # platform's own service failed). Not in the reference: TOP's published error table.
    retry_codes = frozenset({"7"})
    credentials_required = True

    # --- fetch ----------------------------------------------------------------------------

    def fetch(self, window: Window) -> Iterator[dict]:
        for part in self.windows(window):
            yield from self._fetch_window(part)

    def _fetch_window(self, window: Window) -> Iterator[dict]:
        def page(number: int) -> tuple[list, int]:
            reply = self.top(INCREMENT, {
                "fields": "tid,status,modified",
                "start_modified": beijing(window.start),
                "end_modified": beijing(window.end),
                "page_no": number,
                "page_size": self.page_size,
                "use_has_next": "false",
            })
            body = self._response(reply, INCREMENT)
            trades = (body.get("trades") or {}).get("trade") or []
            return trades, int(body.get("total_results") or 0)

        for trades in pages_backwards(page, 1, self.page_size):
            for trade in trades:
                yield self.full_trade(trade)

    def full_trade(self, listed: dict) -> dict:
        """The whole trade for one listed trade (the list only carries a few fields)."""
        if listed.get("orders"):
            return listed
        reply = self.top(FULLINFO, {"fields": FULLINFO_FIELDS, "tid": self.external_id(listed),
                                    "include_oaid": "true"})
        trade = self._response(reply, FULLINFO).get("trade")
        if not isinstance(trade, dict):
            raise ChannelAPIError(f"taobao: {FULLINFO} answered without a trade")
        return trade

    def top(self, method: str, params: dict) -> dict:
        """One signed TOP call (GET on the router URL); platform errors raised."""
        sign_method = self.credential("sign_method", "md5")
        required = None if self.credentials_required else ""
        query = {
            "method": method,
            "app_key": self.credential("app_key"),
            "session": self.credential("session", required),
            "timestamp": beijing(self.now()),
            "format": "json",
            "v": "2.0",
            "sign_method": sign_method,
            **{key: str(value) for key, value in params.items()},
        }
        query = {key: value for key, value in query.items() if value != ""}
        query["sign"] = sign_sorted_params(query, self.credential("app_secret", required), sign_method)
        reply = self.call("GET", self.base_url, params=query)
        error = reply.get("error_response")
        if error:
            message = (f"taobao {method}: code {error.get('code')} {error.get('msg', '')} "
                       f"{error.get('sub_code', '')} {error.get('sub_msg', '')}").strip()
            if str(error.get("code")) in self.retry_codes or str(error.get("sub_code", "")).startswith("isp."):
                raise TransportError(message)
            raise ChannelAPIError(message)
        return reply

    @staticmethod
    def _response(reply: dict, method: str) -> dict:
        key = method.removeprefix("taobao.").replace(".", "_") + "_response"
        body = reply.get(key)
        if not isinstance(body, dict):
            raise ChannelAPIError(f"taobao {method}: no {key} in the answer")
        return body

    # --- normalise ------------------------------------------------------------------------

    @staticmethod
    def _trade(raw: dict) -> dict:
        if not isinstance(raw, dict):
            raise NormaliseError("trade", "not a JSON object")
        for envelope in ("trade_fullinfo_get_response", "trade_get_response"):
            if isinstance(raw.get(envelope), dict):
                raw = raw[envelope].get("trade") or {}
                if not isinstance(raw, dict):
                    raise NormaliseError(f"{envelope}.trade", "not a JSON object")
        return raw

    def external_id(self, raw: dict) -> str:
        trade = self._trade(raw)
        return identifier(trade.get("tid_str") or trade.get("tid"), "tid")

    def normalise(self, raw: dict) -> dict:
        trade = self._trade(raw)
        tid = self.external_id(trade)
        platform_status = trade.get("status")
        status = self.platform_status(platform_status, "status")
        orders = trade.get("orders")
        if isinstance(orders, dict):
            orders = orders.get("order")
        if not isinstance(orders, list) or not orders:
            raise NormaliseError("orders.order", "no sub-orders")

        lines, goods = [], None
        for index, order in enumerate(orders):
            field = f"orders.order[{index}]"
            if not isinstance(order, dict):
                raise NormaliseError(field, "not a JSON object")
            quantity = count(order.get("num"), f"{field}.num")
            price = yuan(order.get("price"), f"{field}.price")
            goods = (goods or 0) + price * quantity
            refund = text(order.get("refund_status")) or "NO_REFUND"
            lines.append({
                "sku": text(order.get("outer_sku_id") or order.get("outer_iid")
                            or order.get("sku_id") or order.get("num_iid")),
                "quantity": quantity,
                "unit_price": money(price),
                "discount": "0.00",
                "external_line_id": text(order.get("oid")),
                "name": text(order.get("title")),
                "refund_status": self.line_refund_map.get(refund, "requested"),
                "platform_refund_status": refund,
                "platform_status": text(order.get("status")),
            })

        # TOP's own totals: total_fee = Σ price × num, payment = what the buyer paid. All the
        # difference (discount_fee, adjust_fee) is the order's discount, so the intake's
        # check "lines − discounts + shipping = payable" holds exactly when our lines add up
        # to TOP's total_fee.
        total_fee = yuan(trade.get("total_fee"), "total_fee") if trade.get("total_fee") not in (None, "") else goods
        post_fee = yuan(trade.get("post_fee"), "post_fee", default="0")
        payment = yuan(trade.get("payment"), "payment")
        receiver = {
            "name": text(trade.get("receiver_name")),
            "phone": text(trade.get("receiver_mobile") or trade.get("receiver_phone")),
            "province": text(trade.get("receiver_state")),
            "city": text(trade.get("receiver_city")),
            "district": text(trade.get("receiver_district")),
            "address": join_street(trade.get("receiver_town"), trade.get("receiver_address")),
            "oaid": text(trade.get("oaid")),
        }
        data = {
            "external_order_id": tid,
            "status": status,
            "platform_status": platform_status,
            "shippable": platform_status in self.shippable_statuses,
            "placed_at": local_time(trade.get("created"), "created"),
            "paid_at": local_time(trade.get("pay_time"), "pay_time"),
            "updated_at": local_time(trade.get("modified"), "modified"),
            "currency": "CNY",
            "buyer": {"name": text(trade.get("buyer_nick")), "phone": "",
                      "open_uid": text(trade.get("buyer_open_uid"))},
            "receiver": receiver,
            "lines": lines,
            "shipping_fee": money(post_fee),
            "discount_total": money(total_fee + post_fee - payment),
            "payable": money(payment),
            "platform_discount_fee": money(yuan(trade.get("discount_fee"), "discount_fee", default="0")),
            "platform_adjust_fee": money(yuan(trade.get("adjust_fee"), "adjust_fee", default="0")),
            "buyer_message": text(trade.get("buyer_message")),
            "seller_memo": text(trade.get("seller_memo")),
        }
        return without_empty_times(data)

    # --- push back ------------------------------------------------------------------------

    def push_shipment(self, external_order_id: str, carrier: str, tracking_no: str) -> dict:
        """`taobao.logistics.offline.send` (tid, out_sid, company_code). Not in the
        reference; carrier codes map through credentials["carrier_codes"] when given."""
        codes = (getattr(self.channel, "credentials", None) or {}).get("carrier_codes") or {}
        reply = self.top(OFFLINE_SEND, {"tid": external_order_id, "out_sid": tracking_no,
                                        "company_code": codes.get(carrier, carrier)})
        shipping = self._response(reply, OFFLINE_SEND).get("shipping") or {}
        if not shipping.get("is_success", False):
            raise ChannelAPIError(f"taobao {OFFLINE_SEND}: not accepted: {shipping}")
        return reply


class SandboxAdapter(TaobaoAdapter):
    """The sandbox marketplace speaks TOP's wire format (for now). Its `app_key` names the
    sandbox shop; it needs no session and no app secret (the request is signed with an empty
    secret when none is set, and the sandbox ignores the signature)."""

    kind = "sandbox"
    credentials_required = False

