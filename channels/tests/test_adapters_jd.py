"""JD POP adapter against `jingdong.pop.order.search`-shaped payloads (reference §2.2)."""

import hashlib
import json

import pytest

from channels.adapters.base import ChannelAPIError, NormaliseError, TransportError
from channels.adapters.jd import OPTIONAL_FIELDS, SEARCH, JDAdapter

from .adapter_support import FakeTransport, adds_up, at, fake_channel, load, window

EXPECTED_STATUS = {
    "WAIT_SELLER_STOCK_OUT": "paid",
    "WAIT_SELLER_DELIVERY": "paid",
    "WAIT_SEND_CODE": "paid",
    "PAUSE": None,
    "POP_ORDER_PAUSE": None,
    "LOCKED": None,
    "WAIT_GOODS_RECEIVE_CONFIRM": None,
    "SEND_TO_DISTRIBUTION_CENER": None,
    "DISTRIBUTION_CENTER_RECEIVED": None,
    "RECEIPTS_CONFIRM": None,
    "FINISHED_L": None,
    "TRADE_CANCELED": "cancelled",
}


def adapter(transport=None) -> JDAdapter:
    channel = fake_channel("JD1", "https://api.jd.com/routerjson", app_key="jdkey", app_secret="jdsecret",
                           access_token="jd-token")
    return JDAdapter(channel, transport)


def jd_server(call):
    params = json.loads(call.params["360buy_param_json"])
    return 200, load("jd", f"search_page_{params['page']}")


def test_the_status_map_covers_every_documented_order_state():
    assert JDAdapter.status_map == EXPECTED_STATUS


@pytest.mark.parametrize("state, expected", sorted(EXPECTED_STATUS.items()))
def test_each_order_state_maps_as_documented(state, expected):
    raw = load("jd", "order_wait_stock_out") | {"orderState": state}

    assert adapter().normalise(raw)["status"] == expected


def test_an_unknown_order_state_names_the_field():
    with pytest.raises(NormaliseError) as error:
        adapter().normalise(load("jd", "order_wait_stock_out") | {"orderState": "NEW_STATE"})
    assert error.value.field == "orderState"


def test_an_order_waiting_for_stock_out_normalises():
    data = adapter().normalise(load("jd", "order_wait_stock_out"))

    assert data["external_order_id"] == "290011223344"
    assert data["status"] == "paid" and data["shippable"] is True and data["cash_on_delivery"] is False
    assert data["placed_at"] == "2025-03-01T10:04:10+08:00"
    assert data["paid_at"] == "2025-03-01T10:05:00+08:00"
    assert data["receiver"] == {"name": "李*", "phone": "139****5678", "province": "北京", "city": "北京市",
                                "district": "朝阳区", "address": "北京北京市朝阳区望京街道****"}
    assert [(line["sku"], line["quantity"], line["unit_price"]) for line in data["lines"]] == [
        ("TSHIRT-BLK-M", 2, "64.00"), ("MUG-WHT", 1, "35.50")]
    # 163.50 goods + 5.00 freight − 148.50 paid: seller discount 10.00 and a platform coupon 10.00
    assert (data["shipping_fee"], data["discount_total"], data["payable"]) == ("5.00", "20.00", "148.50")
    assert data["platform_seller_discount"] == "10.00"
    assert adds_up(data)


def test_an_order_updated_after_payment_keeps_its_id():
    first = adapter().normalise(load("jd", "order_wait_stock_out"))
    later = adapter().normalise(load("jd", "order_updated"))

    assert first["external_order_id"] == later["external_order_id"]
    assert first["updated_at"] < later["updated_at"] and later["seller_memo"] == "加急"


def test_a_cancelled_order_and_a_cash_on_delivery_order():
    cancelled = adapter().normalise(load("jd", "order_canceled"))
    cod = adapter().normalise(load("jd", "order_cod"))

    assert cancelled["status"] == "cancelled" and cancelled["shippable"] is False
    assert cod["status"] == "paid" and cod["cash_on_delivery"] is True
    assert "paid_at" not in cod  # "0001-01-01 00:00:00" means not yet


@pytest.mark.parametrize(("pay_type", "cod"), [("1-货到付款", True), ("4-在线支付", False), ("1", True), ("4", False)])
def test_pay_type_is_read_as_a_code_with_or_without_its_label(pay_type, cod):
    raw = load("jd", "order_wait_stock_out") | {"payType": pay_type}
    assert adapter().normalise(raw)["cash_on_delivery"] is cod


@pytest.mark.parametrize("field, value", [("orderId", None), ("orderPayment", "abc"), ("itemInfoList", [])])
def test_unreadable_orders_name_the_field(field, value):
    raw = load("jd", "order_wait_stock_out")
    if value is None:
        raw.pop(field)
    else:
        raw[field] = value

    with pytest.raises(NormaliseError) as error:
        adapter().normalise(raw)
    assert error.value.field == field


def test_fetch_pages_backwards_with_optional_fields_and_a_signature():
    transport = FakeTransport(jd_server)
    jd = adapter(transport)
    jd.page_size = 2
    jd.now = lambda: at("2025-03-01 20:00:00")

    orders = list(jd.fetch(window("2025-03-01 09:00", "2025-03-01 20:00")))

    sent = [json.loads(c.params["360buy_param_json"]) for c in transport.calls]
    assert [p["page"] for p in sent] == ["1", "2", "1"]
    assert all(p["optional_fields"] == OPTIONAL_FIELDS and p["dateType"] == 0 for p in sent)
    assert (sent[0]["start_date"], sent[0]["end_date"]) == ("2025-03-01 09:00:00", "2025-03-01 20:00:00")
    assert [o["orderId"] for o in orders] == ["290011223344", "290011227777", "290011229999"]
    for call in transport.calls:
        params = dict(call.params)
        sign = params.pop("sign")
        joined = "".join(f"{k}{params[k]}" for k in sorted(params))
        assert sign == hashlib.md5(f"jdsecret{joined}jdsecret".encode(), usedforsecurity=False).hexdigest().upper()
        assert params["method"] == SEARCH and params["access_token"] == "jd-token"


def test_windows_longer_than_four_weeks_are_split():
    transport = FakeTransport(lambda call: (200, load("jd", "search_page_2") | {
        "jingdong_pop_order_search_responce": {"searchorderinfo_result": {"orderInfoList": [], "orderTotal": 0}}}))

    list(adapter(transport).fetch(window("2025-01-01 00:00", "2025-03-01 00:00")))

    spans = [(json.loads(c.params["360buy_param_json"])["start_date"],
              json.loads(c.params["360buy_param_json"])["end_date"]) for c in transport.calls]
    assert spans == [("2025-01-01 00:00:00", "2025-01-29 00:00:00"), ("2025-01-29 00:00:00", "2025-02-26 00:00:00"),
                     ("2025-02-26 00:00:00", "2025-03-01 00:00:00")]


@pytest.mark.parametrize("answer, error", [
    ((503, {}), TransportError),
    ((200, load("jd", "error_response")), ChannelAPIError),
    ((200, load("jd", "search_failed")), ChannelAPIError),
    ((403, {"error": "forbidden"}), ChannelAPIError),
])
def test_errors(answer, error):
    with pytest.raises(error):
        list(adapter(FakeTransport(lambda call: answer)).fetch(window("2025-03-01 09:00", "2025-03-01 10:00")))
