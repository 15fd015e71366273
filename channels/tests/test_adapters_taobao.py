"""Taobao/Tmall TOP adapter against TOP-shaped payloads (reference §2.1)."""

import hashlib
from datetime import timedelta

import pytest

from channels.adapters import ADAPTERS
from channels.adapters.base import ChannelAPIError, NormaliseError, TransportError, Window
from channels.adapters.taobao import FULLINFO, INCREMENT, SandboxAdapter, TaobaoAdapter

from .adapter_support import FakeTransport, adds_up, at, fake_channel, load, window

# Every trade status of the reference, and what it means for our order.
EXPECTED_STATUS = {
    "TRADE_NO_CREATE_PAY": "pending_payment",
    "WAIT_BUYER_PAY": "pending_payment",
    "PAY_PENDING": "pending_payment",
    "WAIT_PRE_AUTH_CONFIRM": "pending_payment",
    "WAIT_SELLER_SEND_GOODS": "paid",
    "PAID_FORBID_CONSIGN": "paid",
    "SELLER_CONSIGNED_PART": None,
    "WAIT_BUYER_CONFIRM_GOODS": None,
    "TRADE_BUYER_SIGNED": None,
    "TRADE_FINISHED": None,
    "TRADE_CLOSED": "refunded",
    "TRADE_CLOSED_BY_TAOBAO": "cancelled",
}

TRADES = {
    3890001122334455: "trade_paid", 3890001122335500: "trade_line_refund",
    3890001122336600: "trade_closed_by_taobao", 3890001122337700: "trade_closed",
    3890001122338800: "trade_finished",
}


def adapter(transport=None, **credentials) -> TaobaoAdapter:
    creds = {"app_key": "12345678", "app_secret": "s3cret", "session": "6100a-session"} | credentials
    return TaobaoAdapter(fake_channel("TB1", "https://eco.taobao.com/router/rest", **creds), transport)


def top_server(call):
    """A TOP router: increment pages by page_no, full trades by tid."""
    if call.params["method"] == INCREMENT:
        return 200, load("taobao", f"increment_page_{call.params['page_no']}")
    if call.params["method"] == FULLINFO:
        return 200, load("taobao", TRADES[int(call.params["tid"])])
    raise AssertionError(call.params["method"])


# --- status map -------------------------------------------------------------------------------


def test_the_status_map_covers_every_documented_trade_status_and_nothing_else():
    assert TaobaoAdapter.status_map == EXPECTED_STATUS


@pytest.mark.parametrize("platform_status, expected", sorted(EXPECTED_STATUS.items()))
def test_each_trade_status_maps_as_documented(platform_status, expected):
    raw = load("taobao", "trade_paid")
    raw["trade_fullinfo_get_response"]["trade"]["status"] = platform_status

    assert adapter().normalise(raw)["status"] == expected


def test_an_unknown_trade_status_is_unreadable_not_guessed():
    raw = load("taobao", "trade_paid")
    raw["trade_fullinfo_get_response"]["trade"]["status"] = "TRADE_SOMETHING_NEW"

    with pytest.raises(NormaliseError) as error:
        adapter().normalise(raw)
    assert error.value.field == "status"


# --- normalise --------------------------------------------------------------------------------


def test_a_paid_trade_normalises_to_the_unified_order_input():
    data = adapter().normalise(load("taobao", "trade_paid"))

    assert data["external_order_id"] == "3890001122334455"
    assert data["status"] == "paid" and data["shippable"] is True
    assert data["placed_at"] == "2025-03-01T10:00:12+08:00"
    assert data["paid_at"] == "2025-03-01T10:03:39+08:00"
    assert data["updated_at"] == "2025-03-01T10:03:40+08:00"
    assert data["currency"] == "CNY"
    assert data["receiver"] == {
        "name": "张**", "phone": "138****1234", "province": "浙江省", "city": "杭州市",
        "district": "西湖区", "address": "文新街道文***路**号", "oaid": "1XyVf8GvTbkEq3nBwz0iQr5",
    }
    assert [(line["sku"], line["quantity"], line["unit_price"], line["external_line_id"])
            for line in data["lines"]] == [
        ("TSHIRT-BLK-M", 2, "64.00", "3890001122334456"), ("MUG-WHT", 1, "35.50", "3890001122334457")]
    assert (data["shipping_fee"], data["discount_total"], data["payable"]) == ("8.00", "10.00", "161.50")
    assert adds_up(data)


def test_masked_receivers_are_kept_as_given():
    data = adapter().normalise(load("taobao", "trade_paid"))

    assert data["receiver"]["phone"] == "138****1234" and data["receiver"]["name"] == "张**"


def test_an_unpaid_trade_has_no_paid_at_rather_than_a_null_one():
    data = adapter().normalise(load("taobao", "trade_wait_pay"))

    assert data["status"] == "pending_payment" and "paid_at" not in data


def test_a_trade_updated_after_payment_keeps_its_id_with_a_later_modified_time():
    before = adapter().normalise(load("taobao", "trade_wait_pay"))
    paid = adapter().normalise(load("taobao", "trade_paid"))
    updated = adapter().normalise(load("taobao", "trade_paid_updated"))

    assert before["external_order_id"] == paid["external_order_id"] == updated["external_order_id"]
    assert (before["status"], paid["status"], updated["status"]) == ("pending_payment", "paid", "paid")
    assert before["updated_at"] < paid["updated_at"] < updated["updated_at"]
    assert updated["seller_memo"] == "顺丰发货"


def test_a_refund_on_one_sub_order_marks_that_line_only():
    data = adapter().normalise(load("taobao", "trade_line_refund"))

    assert data["status"] == "paid"  # the trade status, not cancelled
    assert [(line["sku"], line["refund_status"]) for line in data["lines"]] == [
        ("TSHIRT-BLK-M", "none"), ("MUG-WHT", "refunded")]
    assert data["lines"][1]["platform_refund_status"] == "SUCCESS"


def test_closed_trades_are_cancelled_before_payment_and_refunded_after():
    closed_unpaid = adapter().normalise(load("taobao", "trade_closed_by_taobao"))
    closed_paid = adapter().normalise(load("taobao", "trade_closed"))

    assert closed_unpaid["status"] == "cancelled" and "paid_at" not in closed_unpaid
    assert closed_paid["status"] == "refunded" and closed_paid["paid_at"] == "2025-03-01T09:10:30+08:00"


def test_discount_and_seller_adjustment_both_land_in_the_discount_total():
    data = adapter().normalise(load("taobao", "trade_finished"))  # discount 1.00, adjust −0.50

    assert data["status"] is None  # finished on the platform: no news
    assert (data["discount_total"], data["payable"]) == ("1.50", "69.50")
    assert (data["platform_discount_fee"], data["platform_adjust_fee"]) == ("1.00", "-0.50")
    assert adds_up(data)


def test_money_is_exact_decimal_strings():
    data = adapter().normalise(load("taobao", "trade_cents"))  # "0.1" + "0.2"

    assert [line["unit_price"] for line in data["lines"]] == ["0.10", "0.20"]
    assert data["payable"] == "0.30" and data["discount_total"] == "0.00"
    assert adds_up(data)


def test_the_bare_trade_reads_like_the_fullinfo_envelope():
    raw = load("taobao", "trade_paid")

    assert adapter().normalise(raw["trade_fullinfo_get_response"]["trade"]) == adapter().normalise(raw)


@pytest.mark.parametrize("field, value, named", [
    ("tid", None, "tid"),
    ("payment", "12.3x", "payment"),
    ("payment", "12.345", "payment"),
    ("created", "yesterday", "created"),
])
def test_unreadable_trades_name_the_field(field, value, named):
    raw = load("taobao", "trade_paid")
    trade = raw["trade_fullinfo_get_response"]["trade"]
    trade.pop("tid_str")
    if value is None:
        trade.pop(field)
    else:
        trade[field] = value

    with pytest.raises(NormaliseError) as error:
        adapter().normalise(raw)
    assert error.value.field == named


def test_missing_tid_is_refused_by_external_id_too():
    with pytest.raises(NormaliseError) as error:
        adapter().external_id({"status": "WAIT_BUYER_PAY"})
    assert error.value.field == "tid"


def test_an_unreadable_quantity_names_its_sub_order():
    raw = load("taobao", "trade_paid")
    raw["trade_fullinfo_get_response"]["trade"]["orders"]["order"][1]["num"] = "two"

    with pytest.raises(NormaliseError) as error:
        adapter().normalise(raw)
    assert error.value.field == "orders.order[1].num"


# --- fetch ------------------------------------------------------------------------------------


def test_fetch_reads_the_last_page_first_and_the_full_trade_of_each():
    transport = FakeTransport(top_server)
    taobao = adapter(transport)
    taobao.page_size = 2

    trades = list(taobao.fetch(window("2025-03-01 09:00", "2025-03-01 20:00")))

    increments = [c.params for c in transport.calls if c.params["method"] == INCREMENT]
    assert [p["page_no"] for p in increments] == ["1", "3", "2", "1"]  # probe, then last → first
    assert {(p["start_modified"], p["end_modified"]) for p in increments} == {
        ("2025-03-01 09:00:00", "2025-03-01 20:00:00")}
    assert all(p["use_has_next"] == "false" and p["page_size"] == "2" for p in increments)
    fullinfo = [c.params for c in transport.calls if c.params["method"] == FULLINFO]
    assert all(p["include_oaid"] == "true" for p in fullinfo)
    assert [t["tid"] for t in trades] == [  # page 3, page 2, page 1; each as TOP sorted it
        3890001122334455, 3890001122335500, 3890001122336600, 3890001122338800, 3890001122337700]
    assert {adapter().normalise(t)["external_order_id"] for t in trades} == {str(t) for t in TRADES}


def test_a_window_that_fits_one_page_is_read_once():
    transport = FakeTransport(top_server)
    taobao = adapter(transport)
    taobao.page_size = 50

    list(taobao.fetch(window("2025-03-01 09:00", "2025-03-01 20:00")))

    assert [c.params["page_no"] for c in transport.calls if c.params["method"] == INCREMENT] == ["1"]


def test_windows_longer_than_a_day_are_split():
    transport = FakeTransport(lambda call: (200, {"trades_sold_increment_get_response": {"total_results": 0}}))

    assert list(adapter(transport).fetch(window("2025-03-01 00:00", "2025-03-03 06:00"))) == []
    assert [(c.params["start_modified"], c.params["end_modified"]) for c in transport.calls] == [
        ("2025-03-01 00:00:00", "2025-03-02 00:00:00"),
        ("2025-03-02 00:00:00", "2025-03-03 00:00:00"),
        ("2025-03-03 00:00:00", "2025-03-03 06:00:00"),
    ]


def test_requests_are_signed_with_the_app_secret_over_the_sorted_parameters():
    transport = FakeTransport(top_server)
    taobao = adapter(transport)
    taobao.now = lambda: at("2025-03-01 20:00:05")

    list(taobao.fetch(window("2025-03-01 09:00", "2025-03-01 20:00")))

    for call in transport.calls:
        params = dict(call.params)
        sign = params.pop("sign")
        joined = "".join(f"{k}{params[k]}" for k in sorted(params))
        assert sign == hashlib.md5(f"s3cret{joined}s3cret".encode(), usedforsecurity=False).hexdigest().upper()
        assert params["app_key"] == "12345678" and params["session"] == "6100a-session"
        assert params["timestamp"] == "2025-03-01 20:00:05"
        assert (params["format"], params["v"], params["sign_method"]) == ("json", "2.0", "md5")
        assert call.method == "GET" and call.url == "https://eco.taobao.com/router/rest"


def test_the_hmac_sign_methods_are_supported():
    signs = set()
    for method in ("md5", "hmac", "hmac-sha256"):
        transport = FakeTransport(lambda call: (200, {"trades_sold_increment_get_response": {"total_results": 0}}))
        taobao = adapter(transport, sign_method=method)
        taobao.now = lambda: at("2025-03-01 20:00:05")
        list(taobao.fetch(window("2025-03-01 09:00", "2025-03-01 10:00")))
        signs.add(transport.calls[0].params["sign"])
        assert transport.calls[0].params["sign_method"] == method
    assert len(signs) == 3


def test_missing_credentials_are_a_channel_error():
    taobao = TaobaoAdapter(fake_channel("TB1", "https://eco.taobao.com/router/rest"), FakeTransport(top_server))

    with pytest.raises(ChannelAPIError, match="app_key"):
        list(taobao.fetch(window("2025-03-01 09:00", "2025-03-01 10:00")))


# --- errors -----------------------------------------------------------------------------------


def test_a_5xx_is_a_transport_error_to_retry():
    transport = FakeTransport(lambda call: (502, {"error": "bad gateway"}))

    with pytest.raises(TransportError):
        list(adapter(transport).fetch(window("2025-03-01 09:00", "2025-03-01 10:00")))


def test_a_timeout_raised_by_the_transport_propagates():
    transport = FakeTransport(lambda call: TransportError("read timeout"))

    with pytest.raises(TransportError, match="timeout"):
        list(adapter(transport).fetch(window("2025-03-01 09:00", "2025-03-01 10:00")))


def test_an_error_body_is_a_channel_api_error():
    transport = FakeTransport(lambda call: (200, load("taobao", "error_invalid_session")))

    with pytest.raises(ChannelAPIError, match="Invalid session"):
        list(adapter(transport).fetch(window("2025-03-01 09:00", "2025-03-01 10:00")))


def test_a_platform_service_error_is_retried():
    transport = FakeTransport(lambda call: (200, load("taobao", "error_isp")))

    with pytest.raises(TransportError, match="isp.top-remote-connection-timeout"):
        list(adapter(transport).fetch(window("2025-03-01 09:00", "2025-03-01 10:00")))


def test_an_error_on_the_full_trade_stops_the_fetch():
    def server(call):
        if call.params["method"] == FULLINFO:
            return 200, load("taobao", "error_invalid_session")
        return top_server(call)

    with pytest.raises(ChannelAPIError):
        list(adapter(FakeTransport(server)).fetch(window("2025-03-01 09:00", "2025-03-01 20:00")))


# --- push back and sandbox --------------------------------------------------------------------


def test_push_shipment_sends_the_tracking_number_offline():
    transport = FakeTransport(lambda call: (200, load("taobao", "offline_send_ok")))
    taobao = adapter(transport, carrier_codes={"SF": "SF"})

    taobao.push_shipment("3890001122334455", "SF", "SF1234567890")

    params = transport.calls[0].params
    assert params["method"] == "taobao.logistics.offline.send"
    assert (params["tid"], params["out_sid"], params["company_code"]) == ("3890001122334455", "SF1234567890", "SF")


def test_the_sandbox_speaks_top_with_only_a_shop_key_and_may_send_whole_trades():
    whole = load("taobao", "trade_paid")["trade_fullinfo_get_response"]["trade"]
    page = {"trades_sold_increment_get_response": {"total_results": 1, "trades": {"trade": [whole]}}}
    transport = FakeTransport(lambda call: (200, page))
    sandbox = ADAPTERS["sandbox"](fake_channel("SBX", "http://127.0.0.1:8765/router/rest", app_key="demo-shop"),
                                  transport)

    trades = list(sandbox.fetch(Window(at("2025-03-01 09:00"), at("2025-03-01 09:00") + timedelta(hours=1))))

    assert isinstance(sandbox, SandboxAdapter) and sandbox.kind == "sandbox"
    assert trades == [whole] and len(transport.calls) == 1  # no fullinfo call
    assert transport.calls[0].params["app_key"] == "demo-shop" and "session" not in transport.calls[0].params
    assert sandbox.normalise(trades[0])["status"] == "paid"
