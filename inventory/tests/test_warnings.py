"""The inventory warning page: status per SKU, yesterday's sales in Shanghai time, days of
cover, filters, severity sort; one aggregated query."""

import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from inventory import selectors, services, stock
from inventory.models import ChannelListing
from oms.tests.factories import DEFAULT_PASSWORD, UserFactory
from orders.tests.factories import ChannelFactory, SKUFactory, WarehouseFactory

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 10:00 in Shanghai is 02:00 UTC: "yesterday" is 2026-01-08 there.
NOW = datetime(2026, 1, 9, 10, 0, tzinfo=SHANGHAI)


def shanghai(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@contextmanager
def clock(moment: datetime):
    """Movements written inside get `moment` as their created_at (in UTC, as now() is)."""
    with mock.patch("django.utils.timezone.now", return_value=moment.astimezone(UTC)):
        yield


def receive(wh, sku, quantity, safety=None):
    services.receive_stock(wh.code, sku.code, quantity, reference="test")
    if safety is not None:
        services.set_safety_stock(wh.code, sku.code, safety)


def ship(wh, sku, quantity, at: datetime):
    """Units leave the warehouse through the ledger: reserved, then shipped, at `at`."""
    with clock(at):
        assert stock.reserve(wh.pk, sku.pk, quantity, reference="T1", reason="order") is not None
        stock.ship(wh.pk, sku.pk, quantity, reference="T1", reason="shipped")


def rows(**filters) -> list[dict]:
    return list(selectors.stock_warnings(now=NOW, **filters))


def by_code(**filters) -> dict[str, dict]:
    return {row["code"]: row for row in rows(**filters)}


@pytest.fixture
def wh():
    return WarehouseFactory(code="WH-A", name="Warehouse A")


@pytest.fixture
def spread(wh):
    """One SKU in each status (and one that did not sell yesterday)."""
    yesterday = shanghai(2026, 1, 8, 15, 0)
    skus = {code: SKUFactory(code=code, category="cups" if code == "IDLE-1" else "pots")
            for code in ("OUT-1", "WARN-1", "NORM-1", "SUFF-1", "IDLE-1")}
    receive(wh, skus["OUT-1"], 5)
    assert stock.reserve(wh.pk, skus["OUT-1"].pk, 5, reference="T0") is not None  # 0 available
    receive(wh, skus["WARN-1"], 3, safety=3)                                      # at safety
    receive(wh, skus["NORM-1"], 25, safety=2)
    ship(wh, skus["NORM-1"], 5, yesterday)                                        # 20 left: 4 days
    receive(wh, skus["SUFF-1"], 80)
    ship(wh, skus["SUFF-1"], 10, yesterday)                                       # 70 left: 7 days
    receive(wh, skus["IDLE-1"], 10)                                               # no sales
    return skus


# --- the query ------------------------------------------------------------------------------


def test_status_cover_and_sales_per_sku_most_severe_first(spread):
    result = rows()

    assert [(r["code"], r["status"], r["on_hand"], r["available"], r["safety"], r["sold"], r["cover"])
            for r in result] == [
        ("OUT-1", "out", 5, 0, 0, 0, None),
        ("WARN-1", "warning", 3, 3, 3, 0, None),
        ("NORM-1", "normal", 20, 20, 2, 5, 4.0),
        ("SUFF-1", "sufficient", 70, 70, 0, 10, 7.0),   # exactly 7 days is sufficient
        ("IDLE-1", "sufficient", 10, 10, 0, 0, None),   # no sales: no cover figure, last
    ]
    assert [r["severity"] for r in result] == [0, 1, 2, 3, 3]


def test_least_severe_first_and_other_sorts(spread):
    assert [r["code"] for r in rows(sort="-severity")] == [
        "IDLE-1", "SUFF-1", "NORM-1", "WARN-1", "OUT-1"]
    assert [r["code"] for r in rows(sort="sales")][:2] == ["SUFF-1", "NORM-1"]
    assert [r["code"] for r in rows(sort="code")] == sorted(spread)
    assert [r["code"] for r in rows(sort="nonsense")] == [r["code"] for r in rows()]


def test_thresholds_are_module_constants(spread, monkeypatch):
    monkeypatch.setattr(selectors, "SUFFICIENT_COVER_DAYS", 3)
    assert by_code()["NORM-1"]["status"] == "sufficient"

    monkeypatch.setattr(selectors, "SUFFICIENT_COVER_DAYS", 8)
    assert by_code()["SUFF-1"]["status"] == "normal"

    monkeypatch.setattr(selectors, "OUT_OF_STOCK_AT", 3)
    assert by_code()["WARN-1"]["status"] == "out"


def test_yesterday_is_the_shanghai_calendar_day(wh):
    sku = SKUFactory(code="DAY-1")
    receive(wh, sku, 100)
    ship(wh, sku, 1, shanghai(2026, 1, 7, 23, 59))       # the day before yesterday
    ship(wh, sku, 2, shanghai(2026, 1, 8, 0, 0))         # yesterday's first minute
    ship(wh, sku, 4, shanghai(2026, 1, 8, 23, 59, 59))   # yesterday's last second
    ship(wh, sku, 8, shanghai(2026, 1, 9, 0, 0))         # today, though still 01-08 in UTC
    with clock(shanghai(2026, 1, 8, 12, 0)):             # other kinds are not sales
        services.receive_stock(wh.code, sku.code, 50)
        assert stock.reserve(wh.pk, sku.pk, 16) is not None

    row = by_code()["DAY-1"]

    assert row["sold"] == 6
    assert selectors.sales_day(NOW)[0].isoformat() == "2026-01-08"
    assert row["available"] == 100 - 15 + 50 - 16
    assert row["cover"] == pytest.approx(119 / 6)


def test_sums_active_warehouses_or_shows_one(wh):
    other = WarehouseFactory(code="WH-B")
    closed = WarehouseFactory(code="WH-X", active=False)
    sku = SKUFactory(code="MULTI")
    receive(wh, sku, 10, safety=1)
    receive(other, sku, 20, safety=2)
    receive(closed, sku, 500)
    ship(other, sku, 5, shanghai(2026, 1, 8, 9, 0))
    ship(closed, sku, 50, shanghai(2026, 1, 8, 9, 0))

    everywhere = by_code()["MULTI"]
    assert (everywhere["on_hand"], everywhere["safety"], everywhere["sold"]) == (25, 3, 5)
    assert (everywhere["cover"], everywhere["status"]) == (5.0, "normal")

    only_a = by_code(warehouse=wh)["MULTI"]
    assert (only_a["on_hand"], only_a["sold"], only_a["cover"], only_a["status"]) == (
        10, 0, None, "sufficient")

    only_b = by_code(warehouse=other)["MULTI"]
    assert (only_b["on_hand"], only_b["sold"]) == (15, 5)

    assert by_code(warehouse=closed)["MULTI"]["on_hand"] == 450


def test_a_warehouse_shows_only_the_skus_it_stocks(wh):
    other = WarehouseFactory(code="WH-B")
    receive(wh, SKUFactory(code="HERE"), 1)
    receive(other, SKUFactory(code="THERE"), 1)

    assert set(by_code(warehouse=wh)) == {"HERE"}
    assert set(by_code()) == {"HERE", "THERE"}


def test_filter_by_category_channel_and_status(spread):
    shop = ChannelFactory(code="TMALL")
    other_shop = ChannelFactory(code="JD")
    ChannelListing.objects.create(channel=shop, sku=spread["NORM-1"])
    ChannelListing.objects.create(channel=shop, sku=spread["OUT-1"], is_open=False)
    ChannelListing.objects.create(channel=other_shop, sku=spread["SUFF-1"])

    assert set(by_code(category="cups")) == {"IDLE-1"}
    assert set(by_code(category="pots")) == {"OUT-1", "WARN-1", "NORM-1", "SUFF-1"}
    assert [r["code"] for r in rows(channel=shop)] == ["OUT-1", "NORM-1"]
    assert [r["code"] for r in rows(channel=shop, category="pots", status="normal")] == ["NORM-1"]
    assert [r["code"] for r in rows(status="sufficient")] == ["SUFF-1", "IDLE-1"]


def test_status_counts(spread):
    assert selectors.status_counts(selectors.stock_warnings(now=NOW)) == {
        "out": 1, "warning": 1, "normal": 1, "sufficient": 2}


def test_one_query_whatever_the_number_of_skus(wh, django_assert_num_queries):
    for n in range(30):
        sku = SKUFactory(code=f"BULK-{n:02d}")
        receive(wh, sku, 10 + n)
        if n % 3 == 0:
            ship(wh, sku, 2, shanghai(2026, 1, 8, 12, 0))

    with django_assert_num_queries(1):
        result = rows()

    assert len(result) == 30
    assert sum(r["sold"] for r in result) == 20


# --- the page -------------------------------------------------------------------------------


def logged_in(role="ops", language=None) -> Client:
    user = UserFactory(role=role)
    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    if language:
        client.post("/i18n/setlang/", {"language": language})
    return client


@pytest.fixture
def live(wh):
    """A spread for the real clock (the page asks for today's yesterday)."""
    yesterday = timezone.now() - timedelta(days=1)
    out, cups, quiet = (SKUFactory(code="P-OUT", category="cups"),
                        SKUFactory(code="P-LOW", category="cups"),
                        SKUFactory(code="P-IDLE", category="pots"))
    receive(wh, out, 2)
    ship(wh, out, 2, yesterday)
    receive(wh, cups, 30)
    ship(wh, cups, 8, yesterday)          # 22 left, 2.75 days
    receive(wh, quiet, 10)
    return wh


def table_rows(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr data-sku="([^"]+)" data-status="([^"]+)">', html)


def test_page_lists_skus_by_severity_in_chinese_by_default(live):
    response = logged_in().get("/inventory/warnings/")

    assert response.status_code == 200
    html = response.content.decode()
    assert table_rows(html) == [("P-OUT", "out"), ("P-LOW", "normal"), ("P-IDLE", "sufficient")]
    assert "库存预警" in html and "缺货" in html and "充足" in html
    flat = re.sub(r"\s+", " ", html)
    row = flat[flat.index('data-sku="P-LOW"'):]
    assert '<td class="num">8</td> <td class="num">2.8</td>' in row
    idle = flat[flat.index('data-sku="P-IDLE"'):]
    assert '<td class="num">0</td> <td class="num">—</td>' in idle


def test_page_in_english_with_filters_and_sort(live):
    client = logged_in(language="en")
    other = WarehouseFactory(code="WH-B")
    receive(other, SKUFactory(code="P-ELSEWHERE", category="cups"), 5)

    html = client.get("/inventory/warnings/").content.decode()
    assert "Inventory warnings" in html and "out of stock: 1" in html
    assert len(table_rows(html)) == 4

    html = client.get("/inventory/warnings/", {"warehouse": "WH-A", "category": "cups"}).content.decode()
    assert [code for code, _ in table_rows(html)] == ["P-OUT", "P-LOW"]

    html = client.get("/inventory/warnings/", {"status": "sufficient"}).content.decode()
    assert [code for code, _ in table_rows(html)] == ["P-ELSEWHERE", "P-IDLE"]

    html = client.get("/inventory/warnings/", {"sort": "-severity", "warehouse": "WH-A"}).content.decode()
    assert [code for code, _ in table_rows(html)] == ["P-IDLE", "P-LOW", "P-OUT"]


def test_channel_filter_on_the_page(live):
    shop = ChannelFactory(code="TMALL")
    ChannelListing.objects.create(channel=shop, sku=live.stock_levels.get(sku__code="P-LOW").sku)

    html = logged_in().get("/inventory/warnings/", {"channel": "TMALL"}).content.decode()

    assert table_rows(html) == [("P-LOW", "normal")]


def test_an_unknown_filter_value_is_shown_and_ignored(live):
    response = logged_in(language="en").get("/inventory/warnings/", {"warehouse": "WH-NOPE"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Warehouse:" in html and "Select a valid choice" in html
    assert len(table_rows(html)) == 3


def test_page_is_paginated(live, monkeypatch):
    from inventory import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    client = logged_in(language="en")

    first = client.get("/inventory/warnings/", {"category": "cups"}).content.decode()
    assert len(table_rows(first)) == 2 and "Next" not in first

    first = client.get("/inventory/warnings/").content.decode()
    assert len(table_rows(first)) == 2 and "page=2" in first and "Page 1 of 2 (3 SKUs)" in first
    second = client.get("/inventory/warnings/", {"page": 2}).content.decode()
    assert table_rows(second) == [("P-IDLE", "sufficient")]


def test_page_needs_login_and_the_stock_permission(live):
    anonymous = Client().get("/inventory/warnings/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]

    assert logged_in(role=None).get("/inventory/warnings/").status_code == 403
    assert logged_in(role="finance").get("/inventory/warnings/").status_code == 403
    assert logged_in(role="ops").get("/inventory/warnings/").status_code == 200
