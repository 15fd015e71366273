"""Finance reports: the monthly per-channel sheet finance used to keep by hand, and the
dashboard's series. Aggregates in the database, one query per figure."""

import calendar
import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from channels.models import Channel
from orders.models import Order, Status

from .models import (
    COUNTED_STATUSES,
    UNSETTLED_STATUSES,
    Discrepancy,
    DiscrepancyStatus,
    FundVoucher,
    StatementLine,
)

NOT_RECEIVABLE = [Status.PENDING_PAYMENT, Status.CANCELLED, Status.REFUNDED]
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class ChannelMonth:
    channel: str
    name: str
    receivable: Decimal
    paid: Decimal
    source: str  # "settlement" or "vouchers": where "platform paid" comes from
    open_discrepancies: int

    @property
    def difference(self) -> Decimal:
        return self.paid - self.receivable

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def collection_rate(self) -> Decimal | None:
        return (self.paid / self.receivable * 100).quantize(Decimal("0.01")) if self.receivable else None

    status: str = ""


def month_bounds(month: date) -> tuple[date, date]:
    first = month.replace(day=1)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def _aware(day: date) -> datetime:
    return datetime.combine(day, time.min, timezone.get_current_timezone())


def monthly_by_channel(month: date) -> list[ChannelMonth]:
    first, last = month_bounds(month)
    paid_range = (_aware(first), _aware(last + timedelta(days=1)))
    receivable = dict(
        Order.objects.filter(paid_at__gte=paid_range[0], paid_at__lt=paid_range[1])
        .exclude(status__in=NOT_RECEIVABLE).values_list("channel__code").annotate(Sum("payable_amount"))
    )
    settled = dict(
        StatementLine.objects.filter(statement__channel__isnull=False, business_date__range=(first, last))
        .values_list("statement__channel__code").annotate(Sum("amount"))
    )
    by_vouchers = dict(
        FundVoucher.objects.filter(order__isnull=False, status__in=COUNTED_STATUSES,
                                   business_date__range=(first, last))
        .values_list("order__channel__code").annotate(Sum("amount"))
    )
    discrepancies = {
        row["channel_code"]: row
        for row in Discrepancy.objects.filter(business_date__range=(first, last))
        .values("channel_code").annotate(
            unsettled=Count("id", filter=Q(status__in=UNSETTLED_STATUSES)),
            appealing=Count("id", filter=Q(status=DiscrepancyStatus.APPEALING)),
        )
    }
    rows = []
    for channel in Channel.objects.order_by("code"):
        code = channel.code
        if code not in receivable and code not in settled and code not in by_vouchers:
            continue
        source = "settlement" if code in settled else "vouchers"
        paid = settled.get(code) if code in settled else by_vouchers.get(code, ZERO)
        found = discrepancies.get(code, {"unsettled": 0, "appealing": 0})
        row = ChannelMonth(code, channel.name, _money(receivable.get(code)), _money(paid), source,
                           found["unsettled"])
        rows.append(ChannelMonth(**{**row.__dict__, "status": _status(row, found)}))
    return rows


def _money(value) -> Decimal:
    # SQLite sums decimals without their scale; two places everywhere.
    return (value or ZERO).quantize(Decimal("0.01"))


STATUS_LABELS = {"appealing": _("appealing"), "open": _("open"), "balanced": _("balanced"),
                 "explained": _("explained")}


def _status(row: ChannelMonth, found: dict) -> str:
    if found["appealing"]:
        return "appealing"
    if found["unsettled"]:
        return "open"
    return "balanced" if row.difference == 0 else "explained"


REPORT_HEADER = ["month", "channel", "name", "system receivable", "platform paid", "difference",
                 "collection rate %", "source", "open discrepancies", "status"]


def report_rows(month: date) -> list[list]:
    label = month.strftime("%Y-%m")
    return [
        [label, r.channel, r.name, r.receivable, r.paid, r.difference, r.collection_rate,
         r.source, r.open_discrepancies, r.status]
        for r in monthly_by_channel(month)
    ]


def report_csv(month: date) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_HEADER)
    writer.writerows(report_rows(month))
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # the BOM makes Excel read UTF-8


def report_xlsx(month: date) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = month.strftime("%Y-%m")
    sheet.append(REPORT_HEADER)
    for row in report_rows(month):
        sheet.append(row)
    for column in "DEF":
        for cell in sheet[column][1:]:
            cell.number_format = "#,##0.00"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def daily_differences(days: int = 30) -> list[tuple[date, Decimal, int]]:
    """(business day, net difference, findings) of the last `days` days, oldest first."""
    since = timezone.localdate() - timedelta(days=days - 1)
    totals = {
        row["business_date"]: (_money(row["net"]), row["n"])
        for row in Discrepancy.objects.filter(business_date__gte=since)
        .values("business_date").annotate(net=Sum("difference"), n=Count("id"))
    }
    return [(since + timedelta(days=i), *totals.get(since + timedelta(days=i), (ZERO, 0)))
            for i in range(days)]


def open_by_kind() -> list[tuple[str, int, Decimal]]:
    return [
        (row["kind"], row["n"], _money(row["net"]))
        for row in Discrepancy.objects.filter(status__in=UNSETTLED_STATUSES)
        .values("kind").annotate(n=Count("id"), net=Sum("difference")).order_by("-n")
    ]
