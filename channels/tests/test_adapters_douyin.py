"""Douyin shop (抖店) adapter against `order.searchList`-shaped payloads (reference §2.3)."""

import hashlib
import hmac
import json

import pytest

from channels.adapters.base import ChannelAPIError, NormaliseError, TransportError
from channels.adapters.douyin import DouyinAdapter
from channels.adapters.fields import fen

from .adapter_support import FakeTransport, adds_up, at, fake_channel, load, window

EXPECTED_STATUS = {
    "1": "pending_payment",
    "105": "paid",
    "2": "paid",
    "101": None,
    "3": None,
    "4": "cancelled",
    "5": None,
}


def adapter(transport=None) -> DouyinAdapter:
    channel = fake_channel("DY1", "https://openapi-fxg.jinritemai.com", app_key="7000000000000000001",
                           app_secret="dysecret", access_token="dy-token")
    return DouyinAdapter(channel, transport)


def douyin_server(call):
    return 200, load("douyin", f"search_page_{call.json['page']}")


def test_the_status_map_covers_every_documented_order_status():
    assert DouyinAdapter.status_map == EXPECTED_STATUS


@pytest.mark.parametrize("order_status, expected", sorted(EXPECTED_STATUS.items()))
def test_each_order_status_maps_as_documented(order_status, expected):
    raw = load("douyin", "order_paid") | {"order_status": int(order_status)}

    data = adapter().normalise(raw)

    assert data["status"] == expected
    assert data["shippable"] is (order_status == "2")  # 105 is paid but in risk review


def test_an_unknown_order_status_names_the_field():
    with pytest.raises(NormaliseError) as error:
        adapter().normalise(load("douyin", "order_paid") | {"order_status": 99})
    assert error.value.field == "order_status"


@pytest.mark.parametrize("amount, expected", [
    (12345, "123.45"), (0, "0.00"), (1, "0.01"), (10, "0.10"), ("6400", "64.00"), (99999999999, "999999999.99"),
])
def test_fen_become_exact_yuan_strings(amount, expected):
    assert format(fen(amount, "pay_amount"), "f") == expected


@pytest.mark.parametrize("amount", [123.5, "12.5", "abc", None, True])
def test_fractional_or_unreadable_fen_are_refused(amount):
    with pytest.raises(NormaliseError):
        fen(amount, "pay_amount")


def test_a_paid_order_normalises_with_amounts_in_fen_converted():
    data = adapter().normalise(load("douyin", "order_paid"))

    assert data["external_order_id"] == "6920000000000000001"
    assert data["status"] == "paid" and data["shippable"] is True
    assert data["placed_at"] == "2025-03-01T10:01:40+08:00"  # 1740794500
    assert data["paid_at"] == "2025-03-01T10:02:20+08:00"
    assert data["updated_at"] == "2025-03-01T10:03:20+08:00"
    assert [(line["sku"], line["quantity"], line["unit_price"]) for line in data["lines"]] == [
        ("TSHIRT-BLK-M", 2, "64.00"), ("MUG-WHT", 1, "35.45")]
    assert (data["shipping_fee"], data["discount_total"], data["payable"]) == ("6.00", "10.00", "159.45")
    assert data["platform_promotion_amount"] == "10.00"
    assert adds_up(data)


def test_encrypted_receivers_fall_back_to_their_masked_companions():
    receiver = adapter().normalise(load("douyin", "order_paid"))["receiver"]

    assert receiver == {"name": "王**", "phone": "138****1234", "province": "广东省", "city": "深圳市",
                        "district": "南山区", "address": "粤海街道科技园****"}


def test_a_masked_phone_without_ciphertext_is_kept_as_given():
    raw = load("douyin", "order_paid") | {"post_tel": "138****1234", "mask_post_tel": "ignored"}

    assert adapter().normalise(raw)["receiver"]["phone"] == "138****1234"


def test_a_refund_on_one_sku_order_marks_that_line_only():
    data = adapter().normalise(load("douyin", "order_paid"))

    assert data["status"] == "paid"
    assert [line["refund_status"] for line in data["lines"]] == ["none", "refunded"]


def test_pending_and_cancelled_orders():
    pending = adapter().normalise(load("douyin", "order_pending"))
    cancelled = adapter().normalise(load("douyin", "order_cancelled"))

    assert pending["status"] == "pending_payment" and "paid_at" not in pending
    assert pending["payable"] == "123.45"
    assert cancelled["status"] == "cancelled"


def test_missing_order_id_names_the_field():
    raw = load("douyin", "order_paid")
    del raw["order_id"]

    with pytest.raises(NormaliseError) as error:
        adapter().normalise(raw)
    assert error.value.field == "order_id"


def test_fetch_starts_at_page_zero_and_walks_back_to_it():
    transport = FakeTransport(douyin_server)
    douyin = adapter(transport)
    douyin.page_size = 2
    douyin.now = lambda: at("2025-03-01 20:00:00")

    orders = list(douyin.fetch(window("2025-03-01 09:00", "2025-03-01 20:00")))

    assert [c.json["page"] for c in transport.calls] == [0, 1, 0]
    first = transport.calls[0]
    assert first.method == "POST" and first.url == "https://openapi-fxg.jinritemai.com/order/searchList"
    assert (first.json["update_time_start"], first.json["update_time_end"]) == (1740790800, 1740830400)
    assert first.json["size"] == 2 and first.json["order_by"] == "update_time"
    assert [o["order_id"] for o in orders] == ["6920000000000000201", "6920000000000000101", "6920000000000000001"]


def test_fetch_reads_one_page_when_everything_fits_on_page_zero():
    transport = FakeTransport(douyin_server)

    orders = list(adapter(transport).fetch(window("2025-03-01 09:00", "2025-03-01 20:00")))

    assert [c.json["page"] for c in transport.calls] == [0]
    assert len(orders) == 2  # page 0 of the fixture holds two of the three


def test_requests_are_signed_with_hmac_sha256_over_the_sorted_param_json():
    transport = FakeTransport(douyin_server)
    douyin = adapter(transport)
    douyin.now = lambda: at("2025-03-01 20:00:00")

    list(douyin.fetch(window("2025-03-01 09:00", "2025-03-01 20:00")))

    call = transport.calls[0]
    param_json = json.dumps(call.json, sort_keys=True, separators=(",", ":"))
    pattern = (f"dysecretapp_key7000000000000000001methodorder.searchListparam_json{param_json}"
               f"timestamp2025-03-01 20:00:00v2dysecret")
    assert call.params["sign"] == hmac.new(b"dysecret", pattern.encode(), hashlib.sha256).hexdigest()
    assert call.params["sign_method"] == "hmac-sha256" and call.params["access_token"] == "dy-token"
    # The body posted is the signed text itself, byte for byte, as the official SDK sends it.
    assert call.data == param_json.encode() and call.headers["Content-Type"] == "application/json"


def test_a_window_deeper_than_douyin_pages_is_halved():
    seen = []

    def server(call):
        span = call.json["update_time_end"] - call.json["update_time_start"]
        seen.append(span)
        total = 60_000 if span > 3600 else 1
        return 200, {"code": 10000, "data": {"total": total, "shop_order_list": [
            load("douyin", "order_paid")] if total == 1 else []}}

    orders = list(adapter(FakeTransport(server)).fetch(window("2025-03-01 09:00", "2025-03-01 11:00")))

    assert seen == [7200, 3600, 3600]
    assert len(orders) == 2


@pytest.mark.parametrize("answer, error", [
    ((500, {}), TransportError),
    ((200, load("douyin", "error_service")), TransportError),  # isp.service-error 20004: retry
    ((200, load("douyin", "error_token")), ChannelAPIError),
])
def test_errors(answer, error):
    with pytest.raises(error):
        list(adapter(FakeTransport(lambda call: answer)).fetch(window("2025-03-01 09:00", "2025-03-01 10:00")))
