"""Pinduoduo adapter against `pdd.order.number.list.increment.get`-shaped payloads (§2.4)."""

import hashlib
from datetime import timedelta
from decimal import Decimal

import pytest

from channels.adapters.base import ChannelAPIError, NormaliseError, TransportError, Window
from channels.adapters.pdd import INCREMENT, PinduoduoAdapter

from .adapter_support import FakeTransport, adds_up, at, fake_channel, load, window

EXPECTED_STATUS = {"1": "paid", "2": None, "3": None}
EMPTY = {"order_sn_increment_get_response": {"total_count": 0, "order_sn_list": []}}


def adapter(transport=None, now="2025-03-01 12:00:00") -> PinduoduoAdapter:
    channel = fake_channel("PDD1", "https://gw-api.pinduoduo.com/api/router", client_id="pddclient",
                           client_secret="pddsecret", access_token="pdd-token")
    pdd = PinduoduoAdapter(channel, transport)
    pdd.now = lambda: at(now)
    return pdd


def test_the_status_tables():
    assert PinduoduoAdapter.status_map == EXPECTED_STATUS
    assert PinduoduoAdapter.refund_status_map == {"1": None, "2": None, "3": None, "4": "refunded"}
    assert PinduoduoAdapter.confirm_status_map == {"0": None, "1": None, "2": "cancelled"}


@pytest.mark.parametrize("order_status, refund_status, confirm_status, expected", [
    (1, 1, 1, "paid"), (2, 1, 1, None), (3, 1, 1, None),
    (1, 2, 1, "paid"), (1, 3, 1, "paid"), (1, 4, 1, "refunded"), (3, 4, 1, "refunded"),
    (1, 1, 2, "cancelled"), (1, 1, 0, "paid"),
])
def test_status_from_order_refund_and_confirm_status(order_status, refund_status, confirm_status, expected):
    raw = load("pdd", "order_paid") | {"order_status": order_status, "refund_status": refund_status,
                                       "confirm_status": confirm_status}

    assert adapter().normalise(raw)["status"] == expected


@pytest.mark.parametrize("field, value", [("order_status", 9), ("refund_status", 7), ("confirm_status", 5)])
def test_unknown_statuses_name_their_field(field, value):
    with pytest.raises(NormaliseError) as error:
        adapter().normalise(load("pdd", "order_paid") | {field: value})
    assert error.value.field == field


def test_a_paid_order_normalises_with_yuan_numbers_read_exactly():
    data = adapter().normalise(load("pdd", "order_paid"))

    assert data["external_order_id"] == "250301-123456789012345"
    assert data["status"] == "paid" and data["shippable"] is True
    assert data["paid_at"] == "2025-03-01T09:58:30+08:00"
    assert [(line["sku"], line["quantity"], line["unit_price"]) for line in data["lines"]] == [
        ("TSHIRT-BLK-M", 2, "59.90"), ("MUG-WHT", 1, "0.30")]
    assert (data["shipping_fee"], data["discount_total"], data["payable"]) == ("0.00", "5.00", "115.10")
    assert sum(Decimal(line["unit_price"]) * line["quantity"] for line in data["lines"]) == Decimal("120.10")
    assert adds_up(data)


def test_encrypted_receivers_use_the_mask_companions():
    receiver = adapter().normalise(load("pdd", "order_paid"))["receiver"]

    assert receiver == {"name": "赵*", "phone": "186****0001", "province": "四川省", "city": "成都市",
                        "district": "武侯区", "address": "天府大道****"}


def test_an_order_updated_after_payment_keeps_its_id():
    first = adapter().normalise(load("pdd", "order_paid"))
    later = adapter().normalise(load("pdd", "order_paid_updated"))

    assert first["external_order_id"] == later["external_order_id"]
    assert first["updated_at"] < later["updated_at"]


def test_refunded_cancelled_and_shipped_orders():
    refunded = adapter().normalise(load("pdd", "order_refunded"))
    cancelled = adapter().normalise(load("pdd", "order_cancelled"))
    shipped = adapter().normalise(load("pdd", "order_shipped"))

    assert (refunded["status"], refunded["shippable"]) == ("refunded", False)
    assert (cancelled["status"], cancelled["shippable"]) == ("cancelled", False)
    assert (shipped["status"], shipped["shippable"]) == (None, False)
    assert adds_up(shipped) and shipped["shipping_fee"] == "6.00"


def test_risk_review_or_an_unformed_group_is_not_shippable():
    assert adapter().normalise(load("pdd", "order_paid") | {"risk_control_status": 1})["shippable"] is False
    assert adapter().normalise(load("pdd", "order_paid") | {"group_status": 0})["shippable"] is False


def test_an_amount_with_more_than_two_decimals_is_unreadable():
    with pytest.raises(NormaliseError) as error:
        adapter().normalise(load("pdd", "order_paid") | {"pay_amount": 115.105})
    assert error.value.field == "pay_amount"


def test_the_newest_three_minutes_are_left_for_the_next_pull():
    pdd = adapter(now="2025-03-01 12:00:00")

    clamped = pdd.clamp_window(window("2025-03-01 11:50", "2025-03-01 12:00"))

    assert clamped == Window(at("2025-03-01 11:50"), at("2025-03-01 11:57"))
    assert pdd.clamp_window(window("2025-03-01 11:58", "2025-03-01 12:00")) is None


def test_fetch_asks_thirty_minute_windows_ending_three_minutes_ago():
    transport = FakeTransport(lambda call: (200, EMPTY))

    list(adapter(transport, now="2025-03-01 12:00:00").fetch(window("2025-03-01 10:50", "2025-03-01 12:00")))

    spans = [(int(c.json["start_updated_at"]), int(c.json["end_updated_at"])) for c in transport.calls]
    starts = [at("2025-03-01 10:50"), at("2025-03-01 11:20"), at("2025-03-01 11:50")]
    ends = [at("2025-03-01 11:20"), at("2025-03-01 11:50"), at("2025-03-01 11:57")]
    assert spans == [(int(s.timestamp()), int(e.timestamp())) for s, e in zip(starts, ends, strict=True)]
    assert all(e - s <= 1800 for s, e in spans)


def test_a_window_inside_the_newest_three_minutes_asks_nothing():
    transport = FakeTransport(lambda call: (200, EMPTY))

    assert list(adapter(transport).fetch(window("2025-03-01 11:58", "2025-03-01 12:00"))) == []
    assert transport.calls == []


def test_fetch_pages_backwards_from_the_last_page():
    transport = FakeTransport(lambda call: (200, load("pdd", f"increment_page_{call.json['page']}")))
    pdd = adapter(transport)
    pdd.page_size = 2

    orders = list(pdd.fetch(Window(at("2025-03-01 11:00"), at("2025-03-01 11:00") + timedelta(minutes=20))))

    assert [c.json["page"] for c in transport.calls] == ["1", "2", "1"]
    assert [o["order_sn"] for o in orders] == [
        "250301-223456789012345", "250301-123456789012345", "250301-423456789012345", "250301-323456789012345"]
    call = transport.calls[0]
    body = dict(call.json)
    sign = body.pop("sign")
    joined = "".join(f"{k}{body[k]}" for k in sorted(body))
    assert sign == hashlib.md5(f"pddsecret{joined}pddsecret".encode(), usedforsecurity=False).hexdigest().upper()
    assert (body["type"], body["client_id"], body["data_type"]) == (INCREMENT, "pddclient", "JSON")
    assert body["use_has_next"] == "false" and body["page_size"] == "2"


@pytest.mark.parametrize("answer, error", [
    ((502, {}), TransportError),
    ((429, {}), TransportError),
    ((200, load("pdd", "error_too_frequent")), TransportError),
    ((200, load("pdd", "error_response")), ChannelAPIError),
])
def test_errors(answer, error):
    with pytest.raises(error):
        list(adapter(FakeTransport(lambda call: answer)).fetch(window("2025-03-01 11:00", "2025-03-01 11:20")))
