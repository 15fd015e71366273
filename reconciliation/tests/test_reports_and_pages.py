"""The monthly per-channel sheet, its exports, and the finance pages."""

import io
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from openpyxl import load_workbook

from oms.tests.factories import UserFactory
from orders.tests.factories import ChannelFactory, make_order
from reconciliation.matching import run_reconciliation
from reconciliation.models import Discrepancy
from reconciliation.reports import monthly_by_channel
from reconciliation.tests.factories import pay, statement

pytestmark = pytest.mark.django_db

TZ = timezone.get_current_timezone()
NOV = datetime(2025, 11, 15, 12, 0, tzinfo=TZ)


@pytest.fixture
def douyin_november():
    """Douyin shop 2025-11 as finance keeps it: 1,876,320 receivable, 1,869,450 paid."""
    douyin = ChannelFactory(code="DY-SHOP", name="Douyin shop")
    make_order(douyin, payable=Decimal("1000000.00"), paid_at=NOV, external_order_id="DY-1")
    make_order(douyin, payable=Decimal("876320.00"), paid_at=NOV, external_order_id="DY-2")
    statement([
        ("S1", "1000000.00", "0", NOV + timedelta(days=1), "payment", "DY-1"),
        ("S2", "869450.00", "0", NOV + timedelta(days=1), "payment", "DY-2"),
    ], account="DY-SHOP", profile="channel_settlement", provider="channel:DY-SHOP", channel=douyin)
    run_reconciliation(date(2025, 11, 1), date(2025, 11, 30))
    return douyin


def test_monthly_report_per_channel(douyin_november):
    mismatch = Discrepancy.objects.get()
    assert mismatch.kind == "amount_mismatch" and mismatch.difference == Decimal("-6870.00")
    mismatch.status = "appealing"
    mismatch.save()
    [row] = monthly_by_channel(date(2025, 11, 1))
    assert (row.channel, row.receivable, row.paid, row.difference, row.status, row.source) == (
        "DY-SHOP", Decimal("1876320.00"), Decimal("1869450.00"), Decimal("-6870.00"),
        "appealing", "settlement")
    assert row.collection_rate == Decimal("99.63")


def test_report_exports_csv_and_xlsx(douyin_november, client):
    client.force_login(UserFactory(role="finance"))
    csv = client.get("/finance/reports/monthly/?month=2025-11&format=csv")
    assert csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[1].startswith("2025-11,DY-SHOP,Douyin shop,1876320.00,1869450.00,-6870.00")
    xlsx = client.get("/finance/reports/monthly/?month=2025-11&format=xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert [c.value for c in sheet[2]][:6] == ["2025-11", "DY-SHOP", "Douyin shop", 1876320, 1869450, -6870]


def test_finance_pages_render_for_finance_only(douyin_november, client):
    client.force_login(UserFactory(role="customer_service"))
    assert client.get("/finance/").status_code == 403
    client.force_login(UserFactory(role="finance"))
    for url in ["/finance/", "/finance/?month=2025-11", "/finance/statements/", "/finance/discrepancies/",
                "/finance/discrepancies/?kind=amount_mismatch", "/finance/vouchers/", "/finance/matches/",
                "/finance/reports/monthly/?month=2025-11",
                f"/finance/discrepancies/{Discrepancy.objects.get().pk}/"]:
        assert client.get(url).status_code == 200, url
    page = client.get("/finance/reports/monthly/?month=2025-11").content.decode()
    assert "1876320.00" in page and "-6870.00" in page


def test_a_discrepancy_is_worked_on_its_page(douyin_november, client):
    client.force_login(UserFactory(role="finance", username="amy"))
    found = Discrepancy.objects.get()
    client.post(f"/finance/discrepancies/{found.pk}/", {"status": "appealing", "assignee": "amy",
                                                        "note": "appeal filed with Douyin"})
    found.refresh_from_db()
    assert found.status == "appealing" and found.assignee.username == "amy"
    assert found.history.last().note == "appeal filed with Douyin"


def test_reversal_from_the_voucher_page(client):
    order = make_order(status="pending_payment", payable=Decimal("9.90"))
    voucher = pay(order.order_no, "9.90")
    client.force_login(UserFactory(role="finance"))
    reply = client.post(f"/finance/vouchers/{voucher.transaction_no}/reverse/", {"reason": "test payment"})
    assert reply.status_code == 302
    voucher.refresh_from_db()
    assert voucher.status == "reversed"
    client.force_login(UserFactory(role="ops"))
    other = pay(make_order(status="pending_payment", payable=Decimal("1.00")).order_no, "1.00")
    assert client.post(f"/finance/vouchers/{other.transaction_no}/reverse/", {"reason": "x"}).status_code == 403
