"""JD POP through `jingdong.pop.order.search` (with `optional_fields`, which JD requires).

Reference: ../shared/reference/channel-payment-bank-formats.md §2.2.

- `start_date`/`end_date` as Beijing "yyyy-MM-dd HH:mm:ss", span at most one month (we use
  28 days so no calendar month is exceeded), `dateType` 0 = by modification time.
- `page_size` 50 (the newer doc's maximum). Pages are read from the last back to the first as
  for TOP (the reference is silent on JD's direction; backwards never skips an order).
- The answer sits under `jingdong_pop_order_search_responce` (JD's spelling) →
  `searchorderinfo_result` → `orderTotal`, `orderInfoList`.
- Money is yuan strings; `consigneeInfo.mobile` arrives masked and is kept as given.
- Signature: md5(secret + sorted k/v + secret), upper-case (JD's 宙斯 rule; not in the
  reference).
"""

from __future__ import annotations

from collections.abc import Iterator

from .base import ChannelAdapter, ChannelAPIError, NormaliseError, Window, pages_backwards
from .fields import beijing, count, identifier, local_time, money, text, without_empty_times, yuan
from .signing import compact_json, sign_sorted_params

SEARCH = "jingdong.pop.order.search"
SHIPMENT = "jingdong.pop.order.shipment"

OPTIONAL_FIELDS = ",".join([
    "orderId", "venderId", "orderType", "payType", "orderTotalPrice", "orderSellerPrice",
    "orderPayment", "freightPrice", "sellerDiscount", "orderState", "orderStateRemark",
    "orderRemark", "venderRemark", "orderStartTime", "orderEndTime", "paymentConfirmTime",
    "modified", "consigneeInfo", "itemInfoList", "couponDetailList", "waybill", "logisticsId",
])


class JDAdapter(ChannelAdapter):
    kind = "jd"
    max_window_seconds = 28 * 24 * 3600
    page_size = 50
    status_map = {
        "WAIT_SELLER_STOCK_OUT": "paid",  # 等待出库: the shippable state
        "WAIT_SELLER_DELIVERY": "paid",  # 等待发货 (海外购 only)
        "WAIT_SEND_CODE": "paid",  # LOC: waiting for the code to be sent
        "PAUSE": None,  # paused on the platform: shippable=False
        "POP_ORDER_PAUSE": None,
        "LOCKED": None,  # locked (e.g. a cancellation request pending): shippable=False
        "WAIT_GOODS_RECEIVE_CONFIRM": None,  # shipped
        "SEND_TO_DISTRIBUTION_CENER": None,  # LBP/SOPL: sent to the distribution centre
        "DISTRIBUTION_CENTER_RECEIVED": None,
        "RECEIPTS_CONFIRM": None,
        "FINISHED_L": None,
        "TRADE_CANCELED": "cancelled",
    }
    # The states asked for in order_state (JD takes a comma list).
    order_states = (
        "WAIT_SELLER_STOCK_OUT", "WAIT_SELLER_DELIVERY", "WAIT_GOODS_RECEIVE_CONFIRM", "PAUSE",
        "POP_ORDER_PAUSE", "LOCKED", "FINISHED_L", "TRADE_CANCELED",
    )
    shippable_statuses = frozenset({"WAIT_SELLER_STOCK_OUT"})

    # --- fetch ----------------------------------------------------------------------------

    def fetch(self, window: Window) -> Iterator[dict]:
        for part in self.windows(window):
            def page(number: int, part=part) -> tuple[list, int]:
                result = self.jos(SEARCH, {
                    "start_date": beijing(part.start),
                    "end_date": beijing(part.end),
                    "order_state": ",".join(self.order_states),
                    "optional_fields": OPTIONAL_FIELDS,
                    "page": str(number),
                    "page_size": str(self.page_size),
                    "sortType": 1,
                    "dateType": 0,
                })
                search = (result.get("jingdong_pop_order_search_responce") or {}).get("searchorderinfo_result")
                if not isinstance(search, dict):
                    raise ChannelAPIError("jd: no jingdong_pop_order_search_responce.searchorderinfo_result")
                api_result = search.get("apiResult") or {}
                if api_result and not api_result.get("success", True):
                    raise ChannelAPIError(f"jd {SEARCH}: {api_result.get('englishErrCode') or ''} "
                                          f"{api_result.get('chineseErrCode') or ''}".strip())
                return search.get("orderInfoList") or [], int(search.get("orderTotal") or 0)

            for orders in pages_backwards(page, 1, self.page_size):
                yield from orders

    def jos(self, method: str, params: dict) -> dict:
        query = {
            "method": method,
            "app_key": self.credential("app_key"),
            "access_token": self.credential("access_token"),
            "timestamp": beijing(self.now()),
            "v": "2.0",
            "360buy_param_json": compact_json(params),
        }
        query["sign"] = sign_sorted_params(query, self.credential("app_secret"))
        reply = self.call("GET", self.base_url, params=query)
        error = reply.get("error_response")
        if error:
            raise ChannelAPIError(f"jd {method}: code {error.get('code')} "
                                  f"{error.get('zh_desc') or error.get('en_desc') or ''}".strip())
        return reply

    # --- normalise ------------------------------------------------------------------------

    def external_id(self, raw: dict) -> str:
        if not isinstance(raw, dict):
            raise NormaliseError("orderInfo", "not a JSON object")
        return identifier(raw.get("orderId"), "orderId")

    def normalise(self, raw: dict) -> dict:
        order_id = self.external_id(raw)
        platform_status = raw.get("orderState")
        status = self.platform_status(platform_status, "orderState")
        items = raw.get("itemInfoList")
        if not isinstance(items, list) or not items:
            raise NormaliseError("itemInfoList", "no items")
        lines = []
        for index, item in enumerate(items):
            field = f"itemInfoList[{index}]"
            if not isinstance(item, dict):
                raise NormaliseError(field, "not a JSON object")
            lines.append({
                "sku": text(item.get("outerSkuId") or item.get("skuId")),
                "quantity": count(item.get("itemTotal"), f"{field}.itemTotal"),
                "unit_price": money(yuan(item.get("jdPrice"), f"{field}.jdPrice")),
                "discount": "0.00",
                "external_line_id": text(item.get("skuId")),
                "name": text(item.get("skuName")),
            })
        consignee = raw.get("consigneeInfo") or {}
        if not isinstance(consignee, dict):
            raise NormaliseError("consigneeInfo", "not a JSON object")
        # JD's totals: orderTotalPrice = the goods at list price, orderPayment = what the
        # buyer pays (after seller and platform discounts, with freight).
        total = yuan(raw.get("orderTotalPrice"), "orderTotalPrice")
        freight = yuan(raw.get("freightPrice"), "freightPrice", default="0")
        payment = yuan(raw.get("orderPayment"), "orderPayment")
        data = {
            "external_order_id": order_id,
            "status": status,
            "platform_status": platform_status,
            "shippable": platform_status in self.shippable_statuses,
            # payType is a code, or a code and its label ("1-货到付款", "4-在线支付").
            "cash_on_delivery": text(raw.get("payType")).split("-", 1)[0].strip() == "1",
            "placed_at": local_time(raw.get("orderStartTime"), "orderStartTime"),
            "paid_at": local_time(raw.get("paymentConfirmTime"), "paymentConfirmTime"),
            "updated_at": local_time(raw.get("modified"), "modified"),
            "currency": "CNY",
            "receiver": {
                "name": text(consignee.get("fullname")),
                "phone": text(consignee.get("mobile") or consignee.get("telephone")),
                "province": text(consignee.get("province")),
                "city": text(consignee.get("city")),
                "district": text(consignee.get("county")),
                "address": text(consignee.get("fullAddress")),
            },
            "lines": lines,
            "shipping_fee": money(freight),
            "discount_total": money(total + freight - payment),
            "payable": money(payment),
            "platform_seller_discount": money(yuan(raw.get("sellerDiscount"), "sellerDiscount", default="0")),
            "buyer_message": text(raw.get("orderRemark")),
            "seller_memo": text(raw.get("venderRemark")),
        }
        return without_empty_times(data)

    # --- push back ------------------------------------------------------------------------

    def push_shipment(self, external_order_id: str, carrier: str, tracking_no: str) -> dict:
        """`jingdong.pop.order.shipment` (orderId, logiCoprId, logiNo). Not in the reference;
        JD wants its own carrier id: credentials["carrier_codes"] maps ours to it."""
        codes = (getattr(self.channel, "credentials", None) or {}).get("carrier_codes") or {}
        reply = self.jos(SHIPMENT, {"orderId": external_order_id,
                                    "logiCoprId": codes.get(carrier, carrier), "logiNo": tracking_no})
        result = (reply.get("jingdong_pop_order_shipment_responce") or {}).get("sopjosshipment_result") or {}
        if result and not result.get("success", True):
            raise ChannelAPIError(f"jd {SHIPMENT}: {result}")
        return reply
