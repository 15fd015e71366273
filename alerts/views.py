"""The in-app alert list for ops: what is open, acknowledge, resolve."""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from oms.errors import DomainError

from . import services
from .models import Alert, AlertRule, AlertStatus


@login_required
@permission_required("alerts.view_alert", raise_exception=True)
def alert_list(request):
    status = request.GET.get("status", "active")
    alerts = Alert.objects.select_related("rule", "order", "assignee").order_by("-opened_at", "-id")
    if status == "active":
        alerts = alerts.filter(status__in=[AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED])
    elif status in AlertStatus.values:
        alerts = alerts.filter(status=status)
    if request.GET.get("rule"):
        alerts = alerts.filter(rule__code=request.GET["rule"])
    page = Paginator(alerts, 50).get_page(request.GET.get("page"))
    return render(request, "alerts/list.html", {
        "cases": _case_summary(),
        "page": page, "status": status, "statuses": AlertStatus.choices,
        "rules": AlertRule.objects.order_by("code"), "rule": request.GET.get("rule", ""),
    })


def _case_summary() -> dict:
    """Exception cases beside the alerts: what is open, what is late, the 72-hour closure rate
    of the cases opened 30 to 3 days ago (younger ones may still close in time)."""
    from orders import cases
    from orders.models import ExceptionCase

    now = timezone.now()
    open_cases = ExceptionCase.objects.filter(status="open")
    rate = cases.closure_rate_72h(now - timedelta(days=30), now - timedelta(hours=72))
    return {"open": open_cases.count(), "overdue": open_cases.filter(due_at__lt=now).count(),
            "rate": None if rate["rate"] is None else round(rate["rate"] * 100, 1), "opened": rate["opened"]}


@login_required
@permission_required("alerts.view_alert", raise_exception=True)
def alert_detail(request, pk):
    alert = get_object_or_404(Alert.objects.select_related("rule", "order"), pk=pk)
    return render(request, "alerts/detail.html", {"alert": alert, "notifications": alert.notifications.select_related("target")})


@require_POST
@login_required
@permission_required("alerts.change_alert", raise_exception=True)
def alert_action(request, pk, action):
    try:
        if action == "acknowledge":
            services.acknowledge(pk, request.user)
        elif action == "resolve":
            services.resolve(pk, request.user, request.POST.get("note", ""))
        messages.success(request, _("Saved."))
    except DomainError as exc:
        messages.error(request, exc.detail)
    return redirect(request.POST.get("next") if request.POST.get("next", "").startswith("/ops/") else "ops:alerts")
