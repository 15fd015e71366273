"""Ops pages for inventory."""

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils import timezone

from . import selectors
from .forms import WarningFilterForm

PAGE_SIZE = 100


@login_required
@permission_required("inventory.view_stocklevel", raise_exception=True)
def stock_warnings(request):
    """Per SKU: on hand, safety stock, yesterday's sales, days of cover and status."""
    form = WarningFilterForm(request.GET)
    filters = form.filters()
    now = timezone.now()
    rows = selectors.stock_warnings(**filters, now=now)
    totals = selectors.status_counts(selectors.stock_warnings(**{**filters, "status": None}, now=now))
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    labels = dict(selectors.WarningStatus.choices)
    page.object_list = [{**row, "status_label": labels[row["status"]]} for row in page.object_list]
    sales_date, _start, _end = selectors.sales_day(now)
    context = {
        "form": form,
        "page": page,
        "totals": [(status, label, totals[status]) for status, label in labels.items()],
        "filters": filters,
        "page_query": _query_without(request, "page"),
        "status_query": _query_without(request, "page", "status"),
        "sort_query": _query_without(request, "page", "sort"),
        "sales_date": sales_date,
        "sales_timezone": str(selectors.SALES_TIMEZONE),
        "cover_days": selectors.SUFFICIENT_COVER_DAYS,
    }
    return render(request, "inventory/warnings.html", context)


def _query_without(request, *keys) -> str:
    query = request.GET.copy()
    for key in keys:
        query.pop(key, None)
    return query.urlencode()
