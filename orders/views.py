"""Customer-service pages: find an order, see what the customer saw beside what happened."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from oms.errors import DomainError

from . import selectors, services
from .events import Actor
from .forms import NoteForm
from .models import Order, ShareState, Status


@login_required
@permission_required("orders.view_order", raise_exception=True)
def order_search(request):
    query = request.GET.get("q", "").strip()
    orders, weak = selectors.search_orders(query) if query else ([], False)
    if len(orders) == 1 and not weak:
        return redirect("cs:order-detail", order_no=orders[0].order_no)
    return render(request, "cs/order_search.html", {"query": query, "orders": orders, "weak": weak})


@login_required
@permission_required("orders.view_order", raise_exception=True)
@require_http_methods(["GET", "POST"])
def order_detail(request, order_no):
    try:
        order = selectors.order_detail(order_no)
    except Order.DoesNotExist:
        raise Http404(_("No order %(order)s.") % {"order": order_no}) from None
    form = NoteForm(request.POST or None)
    if request.method == "POST":
        if not request.user.has_perm("orders.add_order_note"):
            messages.error(request, _("You may not add notes."))
        elif form.is_valid():
            try:
                services.add_note(order_no, form.cleaned_data["text"], Actor.for_user(request.user))
            except DomainError as exc:
                messages.error(request, exc.detail)
            else:
                messages.success(request, _("Note added."))
                return redirect("cs:order-detail", order_no=order_no)
    data = selectors.timeline(order)
    context = {
        "order": order,
        "timeline": data,
        "form": form,
        "status_labels": dict(Status.choices),
        "share_labels": dict(ShareState.choices),
        "can_note": request.user.has_perm("orders.add_order_note"),
    }
    return render(request, "cs/order_detail.html", context)
