"""Finance pages: dashboard, statement upload with progress, the difference list, vouchers
(reversal), the pending-confirmation pool and the monthly report. Thin callers of services."""

from datetime import date, timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from oms.errors import DomainError

from . import discrepancies, jobs, paid_check, reports, vouchers
from .importing import MULTIPART_SLACK, StatementRejected, refuse_oversized
from .matching import run_reconciliation
from .models import (
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyStatus,
    FundVoucher,
    PaymentMatch,
    ReconciliationRun,
    Statement,
    StatementImport,
)
from .statements import PROFILES

PAGE_SIZE = 50


def finance_page(perm: str = "reconciliation.view_discrepancy"):
    def wrap(view):
        return login_required(permission_required(perm, raise_exception=True)(view))
    return wrap


def _month(value: str | None) -> date:
    try:
        return date.fromisoformat(f"{value}-01") if value else timezone.localdate().replace(day=1)
    except ValueError:
        return timezone.localdate().replace(day=1)


@finance_page()
def dashboard(request):
    month = _month(request.GET.get("month"))
    series = reports.daily_differences(30)
    scale = max((abs(net) for _day, net, _n in series), default=0) or 1
    context = {
        "month": month,
        "channels": reports.monthly_by_channel(month),
        "series": [(day, net, n, int(abs(net) / scale * 100)) for day, net, n in series],
        "open_by_kind": [(DiscrepancyKind(k).label, k, n, net) for k, n, net in reports.open_by_kind()],
        "runs": ReconciliationRun.objects.order_by("-id")[:8],
        "pending_matches": PaymentMatch.objects.filter(state=PaymentMatch.State.PENDING).count(),
        "yesterday": timezone.localdate() - timedelta(days=1),
    }
    return render(request, "finance/dashboard.html", context)


@require_POST
@finance_page("reconciliation.add_reconciliationrun")
def start_run(request):
    try:
        day = date.fromisoformat(request.POST.get("date", ""))
    except ValueError:
        messages.error(request, _("Pick a day to reconcile."))
        return redirect("finance:dashboard")
    run = run_reconciliation(day, day, ReconciliationRun.Trigger.MANUAL, request.user)
    messages.success(request, _("Run %(id)s for %(day)s: %(counts)s") % {
        "id": run.pk, "day": day, "counts": ", ".join(f"{DiscrepancyKind(k).label} {n}" for k, n in run.counts.items() if n)
        or _("no differences")})
    return redirect("finance:dashboard")


@finance_page("reconciliation.view_statement")
def statements(request):
    page = Paginator(Statement.objects.order_by("-imported_at"), PAGE_SIZE).get_page(request.GET.get("page"))
    imports = StatementImport.objects.defer("data").exclude(state=StatementImport.State.IMPORTED)[:10]
    return render(request, "finance/statements.html", {"page": page, "profiles": PROFILES, "imports": imports})


@require_POST
@finance_page("reconciliation.add_statement")
def upload_statement(request):
    """Hands the file to a worker (202); the page then polls `import_progress` until it ends."""
    try:
        # Before the body is parsed: a too-large upload is never spooled whole.
        refuse_oversized(int(request.META.get("CONTENT_LENGTH") or 0) - MULTIPART_SLACK)
        upload = request.FILES.get("file")
        if upload is None or not request.POST.get("account", "").strip():
            return JsonResponse({"error": "validation", "detail": _("Choose a file and an account."), "rows": []},
                                status=400)
        refuse_oversized(upload.size)
        job = jobs.submit_import(
            upload.read(), account=request.POST["account"], profile=request.POST.get("profile", ""),
            filename=upload.name, provider=request.POST.get("provider", ""), user=request.user,
        )
    except StatementRejected as exc:
        return JsonResponse({"error": "validation", "detail": exc.detail, "rows": exc.rows[:500],
                             "bad_rows": len(exc.rows)}, status=400)
    except DomainError as exc:
        return JsonResponse({"error": "conflict", "detail": exc.detail}, status=exc.status_code)
    job.refresh_from_db()  # imported already where tasks run inline
    return JsonResponse({**jobs.import_status(job),
                         "progress_url": reverse("finance:import-progress", args=[job.pk])}, status=202)


@finance_page("reconciliation.view_statementimport")
def import_progress(request, pk):
    return JsonResponse(jobs.import_status(get_object_or_404(StatementImport.objects.defer("data"), pk=pk)))


@finance_page()
def discrepancy_list(request):
    found = Discrepancy.objects.select_related("assignee").order_by("-business_date", "-id")
    for field in ("kind", "status", "channel_code"):
        if request.GET.get(field):
            found = found.filter(**{field: request.GET[field]})
    if request.GET.get("q"):
        q = request.GET["q"].strip()
        found = found.filter(Q(transaction_no=q) | Q(order_no=q))
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "finance/discrepancies.html", {
        "page": page, "kinds": DiscrepancyKind.choices, "statuses": DiscrepancyStatus.choices,
        "query": query.urlencode(), "selected": request.GET,
    })


@finance_page()
def discrepancy_detail(request, pk):
    discrepancy = get_object_or_404(
        Discrepancy.objects.select_related("voucher", "statement_line", "suggested_voucher", "assignee"), pk=pk)
    if request.method == "POST":
        if not request.user.has_perm("reconciliation.change_discrepancy"):
            messages.error(request, _("You may not change discrepancies."))
        else:
            try:
                discrepancies.update_discrepancy(
                    pk, request.user, status=request.POST.get("status") or None,
                    note=request.POST.get("note", ""), assignee=request.POST.get("assignee"),
                )
                messages.success(request, _("Saved."))
            except DomainError as exc:
                messages.error(request, "; ".join(f"{f}: {', '.join(r)}" for f, r in exc.fields.items())
                               if hasattr(exc, "fields") else exc.detail)
        return redirect("finance:discrepancy", pk=pk)
    labels = dict(DiscrepancyStatus.choices)
    history = list(discrepancy.history.select_related("user"))
    for entry in history:
        entry.from_label = labels.get(entry.from_status, entry.from_status)
        entry.to_label = labels.get(entry.to_status, entry.to_status)
    return render(request, "finance/discrepancy.html", {
        "d": discrepancy, "history": history,
        "statuses": DiscrepancyStatus.choices,
    })


@finance_page("reconciliation.view_fundvoucher")
def voucher_list(request):
    q = request.GET.get("q", "").strip()
    found = FundVoucher.objects.select_related("order", "reverses").order_by("-occurred_at", "-id")
    if q:
        found = found.filter(Q(transaction_no=q) | Q(order_no=q) | Q(order__order_no=q))
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "finance/vouchers.html", {"page": page, "q": q})


@require_POST
@finance_page("reconciliation.reverse_fundvoucher")
def reverse_voucher(request, transaction_no):
    try:
        reversal = vouchers.reverse_voucher(transaction_no, request.POST.get("reason", ""), request.user)
        messages.success(request, _("Reversed by %(no)s.") % {"no": reversal.transaction_no})
    except DomainError as exc:
        messages.error(request, exc.detail or "; ".join(f"{f}: {', '.join(r)}" for f, r in exc.fields.items()))
    return redirect(f"{reverse('finance:vouchers')}?{urlencode({'q': transaction_no})}")


@finance_page("reconciliation.view_paymentmatch")
def match_list(request):
    pending = PaymentMatch.objects.filter(state=PaymentMatch.State.PENDING).select_related("voucher", "order")
    return render(request, "finance/matches.html", {"matches": pending})


@require_POST
@finance_page("reconciliation.change_paymentmatch")
def decide_match(request, pk, decision):
    try:
        paid_check.decide_match(pk, decision == "confirm", request.user)
        messages.success(request, _("Confirmed.") if decision == "confirm" else _("Rejected."))
    except DomainError as exc:
        messages.error(request, exc.detail)
    return redirect("finance:matches")


@finance_page()
def monthly_report(request):
    month = _month(request.GET.get("month"))
    fmt = request.GET.get("format")
    name = f"reconciliation-{month:%Y-%m}"
    if fmt == "csv":
        response = HttpResponse(reports.report_csv(month), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response
    if fmt == "xlsx":
        response = HttpResponse(
            reports.report_xlsx(month),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        response["Content-Disposition"] = f'attachment; filename="{name}.xlsx"'
        return response
    return render(request, "finance/monthly.html", {"month": month, "rows": reports.monthly_by_channel(month)})
