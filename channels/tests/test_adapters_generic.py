"""The generic webhook adapter (CONTRACTS.md body) and what every adapter shares: the
registry, money and time conversion, the default HTTP transport."""

from datetime import datetime
from decimal import Decimal

import pytest
import requests

from channels.adapters import ADAPTERS
from channels.adapters.base import (
    ChannelAPIError,
    NormaliseError,
    TransportError,
    Window,
    split_window,
)
from channels.adapters.fields import SHANGHAI, fen, local_time, money, unix_time, yuan
from channels.adapters.generic import GenericAdapter
from channels.adapters.http import requests_transport
from channels.models import ChannelKind

from .adapter_support import fake_channel, load


def adapter() -> GenericAdapter:
    return GenericAdapter(fake_channel("MINI", ""))


# --- generic ----------------------------------------------------------------------------------


def test_the_webhook_body_is_the_unified_input_unchanged():
    body = load("generic", "webhook_paid")

    data = adapter().normalise(body)

    assert data == body and data is not body
    assert adapter().external_id(body) == "MP-10001"


def test_the_status_map_is_the_unified_statuses():
    assert GenericAdapter.status_map == {s: s for s in ("pending_payment", "paid", "cancelled", "refunded")}


@pytest.mark.parametrize("change, field", [
    ({"external_order_id": ""}, "external_order_id"),
    ({"status": "shipped"}, "status"),
    ({"lines": []}, "lines"),
])
def test_a_malformed_body_names_the_field(change, field):
    with pytest.raises(NormaliseError) as error:
        adapter().normalise(load("generic", "webhook_paid") | change)
    assert error.value.field == field


def test_a_null_paid_at_is_left_out():
    assert "paid_at" not in adapter().normalise(load("generic", "webhook_paid") | {"paid_at": None})


def test_generic_channels_are_push_only():
    assert list(adapter().fetch(Window(datetime(2025, 3, 1, tzinfo=SHANGHAI),
                                       datetime(2025, 3, 2, tzinfo=SHANGHAI)))) == []


# --- registry ---------------------------------------------------------------------------------


def test_every_channel_kind_has_an_adapter_of_that_kind():
    assert set(ADAPTERS) == set(ChannelKind.values)
    for kind, cls in ADAPTERS.items():
        assert cls.kind == kind
        assert all(v in (None, "pending_payment", "paid", "cancelled", "refunded") for v in cls.status_map.values())


# --- money ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("12.3", "12.30"), ("0", "0.00"), (7, "7.00"), (0.1, "0.10"), (59.9, "59.90"), ("1E+2", "100.00"),
    ("-0.00", "0.00"), (" 8.00 ", "8.00"), (Decimal("3.5"), "3.50"),
])
def test_yuan_amounts_become_exact_two_decimal_strings(value, expected):
    assert money(yuan(value, "payment")) == expected


def test_point_one_plus_point_two_is_point_three_exactly():
    assert yuan("0.1", "a") + yuan("0.2", "b") == Decimal("0.30")
    assert yuan(0.1, "a") + yuan(0.2, "b") == Decimal("0.30")  # even from JSON floats
    assert money(fen(10, "a") + fen(20, "b")) == "0.30"


@pytest.mark.parametrize("value", ["12.345", "abc", "", None, "NaN", "Infinity", True, [1]])
def test_unreadable_amounts_are_refused_naming_the_field(value):
    with pytest.raises(NormaliseError) as error:
        yuan(value, "payment")
    assert error.value.field == "payment"


def test_fen_12345_is_123_45():
    assert money(fen(12345, "pay_amount")) == "123.45"


# --- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("2025-03-01 10:03:40", "2025-03-01T10:03:40+08:00"),  # naive Beijing time
    ("2025-03-01T02:00:00Z", "2025-03-01T10:00:00+08:00"),
    ("2025-03-01T10:00:00+08:00", "2025-03-01T10:00:00+08:00"),
    ("0001-01-01 00:00:00", None), ("", None), (None, None),
    (1740794540, "2025-03-01T10:02:20+08:00"),
])
def test_times_become_aware_iso_in_shanghai(value, expected):
    assert local_time(value, "t") == expected


def test_unix_zero_is_no_time_and_garbage_names_the_field():
    assert unix_time(0, "pay_time") is None
    with pytest.raises(NormaliseError) as error:
        local_time("2025-02-30 10:00:00", "created")
    assert error.value.field == "created"


def test_split_window_covers_the_window_without_gaps():
    start = datetime(2025, 3, 1, tzinfo=SHANGHAI)
    parts = split_window(Window(start, start.replace(day=3, hour=6)), 24 * 3600)

    assert [p.start.day for p in parts] == [1, 2, 3]
    assert all(a.end == b.start for a, b in zip(parts, parts[1:], strict=False))
    assert split_window(Window(start, start), 60) == []


# --- the default transport -----------------------------------------------------------------


class FakeResponse:
    def __init__(self, status, body=None, text=""):
        self.status_code, self._body, self.text = status, body, text

    def json(self):
        if self._body is None:
            raise ValueError("not JSON")
        return self._body


@pytest.fixture
def session(monkeypatch):
    from channels.adapters import http

    class Session:
        answer = None

        def request(self, method, url, **kwargs):
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    fake = Session()
    monkeypatch.setattr(http, "_session", lambda: fake)
    return fake


def test_the_default_transport_returns_status_and_json(session):
    session.answer = FakeResponse(200, {"ok": True})

    assert requests_transport("GET", "https://x.test/") == (200, {"ok": True})


@pytest.mark.parametrize("answer", [
    requests.ConnectTimeout("slow"), requests.ReadTimeout("slow"), requests.ConnectionError("refused"),
    FakeResponse(502, {"error": "bad gateway"}), FakeResponse(200, None, "<html>gateway</html>"),
])
def test_the_default_transport_turns_network_trouble_into_transport_errors(session, answer):
    session.answer = answer

    with pytest.raises(TransportError):
        requests_transport("GET", "https://x.test/")


def test_the_default_transport_leaves_4xx_to_the_adapter(session):
    session.answer = FakeResponse(401, None, "unauthorised")

    assert requests_transport("GET", "https://x.test/") == (401, {"error": "unauthorised"})


def test_a_bad_url_is_a_channel_error(session):
    session.answer = requests.exceptions.MissingSchema("no scheme")

    with pytest.raises(ChannelAPIError):
        requests_transport("GET", "x.test")


def test_an_adapter_without_a_transport_uses_requests(session):
    session.answer = FakeResponse(500, {})
    taobao = ADAPTERS["taobao"](fake_channel("TB", "https://eco.taobao.com/router/rest", app_key="k",
                                             app_secret="s", session="x"))

    with pytest.raises(TransportError):
        list(taobao.fetch(Window(datetime(2025, 3, 1, tzinfo=SHANGHAI), datetime(2025, 3, 1, 1, tzinfo=SHANGHAI))))


# --- what every adapter produces is what the order serializer reads ---------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("kind, platform, fixture", [
    ("taobao", "taobao", "trade_paid"), ("taobao", "taobao", "trade_wait_pay"),
    ("taobao", "taobao", "trade_line_refund"), ("jd", "jd", "order_wait_stock_out"),
    ("jd", "jd", "order_cod"), ("douyin", "douyin", "order_paid"), ("douyin", "douyin", "order_pending"),
    ("pdd", "pdd", "order_paid"), ("shopify", "shopify", "order_paid"),
    ("shopify", "shopify", "order_partially_refunded"), ("generic", "generic", "webhook_paid"),
])
def test_normalised_orders_pass_the_channel_order_serializer(kind, platform, fixture):
    from orders.serializers import ChannelOrderSerializer
    from orders.tests.factories import SKUFactory

    for code in ("TSHIRT-BLK-M", "MUG-WHT", "SKU-001"):
        SKUFactory(code=code)
    data = ADAPTERS[kind](fake_channel("X", "https://x.test/", app_key="k")).normalise(load(platform, fixture))

    serializer = ChannelOrderSerializer(data=data)

    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data["payable"] == Decimal(data["payable"])
