"""The built-in alert conditions. Each is one index-backed query whose cost grows with its
matches, not with the number of orders: they read (status, status_changed_at) ranges, partial
indexes and small tables only.

A condition returns Match rows; the engine turns new ones into alerts and resolves alerts whose
subject no longer matches.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from orders.models import Fulfilment, Order, Status

# A runaway condition must not exhaust memory; what is left shows up on the next scan.
MAX_MATCHES = 50_000


@dataclass(frozen=True)
class Match:
    subject: str
    order_id: int | None
    title: str


@dataclass(frozen=True)
class Condition:
    code: str
    label: str
    unit: str  # "minutes" | "yuan" | "count"
    find: Callable[[Decimal, datetime], list[Match]]


def _minutes(threshold: Decimal) -> timedelta:
    return timedelta(minutes=float(threshold))


def _orders_in(status: str, threshold: Decimal, now: datetime, title: str, **extra) -> list[Match]:
    rows = (Order.objects.filter(status=status, status_changed_at__lt=now - _minutes(threshold), **extra)
            .values_list("id", "order_no")[:MAX_MATCHES])
    return [Match(f"order:{order_no}", pk, f"{order_no}: {title}") for pk, order_no in rows]


def paid_not_reviewed(threshold, now):
    """Waiting for ops to approve; an order waiting in the approval workflow has its own rule."""
    stale = [m for m in _orders_in(Status.PAID, threshold, now, f"paid, not reviewed for {threshold:.0f} min")]
    if not stale:
        return stale
    from orders.models import ApprovalTask

    in_workflow = set(ApprovalTask.objects.filter(status="pending", order_id__in=[m.order_id for m in stale])
                      .values_list("order_id", flat=True))
    return [m for m in stale if m.order_id not in in_workflow]


def approval_pending(threshold, now):
    from orders.models import ApprovalTask

    rows = (ApprovalTask.objects.filter(status="pending", created_at__lt=now - _minutes(threshold))
            .values_list("order_id", "order__order_no", "assignee_group", "assignee_user__username")[:MAX_MATCHES])
    return [Match(f"order:{no}", pk, f"{no}: approval pending with {user or group} for over {threshold:.0f} min")
            for pk, no, group, user in rows]


def exception_case_overdue(threshold, now):
    from orders.models import ExceptionCase

    rows = (ExceptionCase.objects.filter(status="open", due_at__lt=now - _minutes(threshold))
            .values_list("id", "order_id", "order__order_no", "kind", "owner_role")[:MAX_MATCHES])
    return [Match(f"case:{pk}", order_id, f"{no or ''} {kind} case past its SOP time limit ({role})".strip())
            for pk, order_id, no, kind, role in rows]


def parcel_out_on_cancelled_order(threshold, now):
    """An order cancelled or refunded after a parcel left: the parcel must be intercepted."""
    from orders.models import CaseKind, ExceptionCase

    rows = (ExceptionCase.objects.filter(status="open", kind=CaseKind.INTERCEPT_RETURN,
                                         opened_at__lte=now - _minutes(threshold))
            .values_list("id", "order_id", "order__order_no")[:MAX_MATCHES])
    return [Match(f"case:{pk}", order_id, f"{no}: cancelled or refunded with a parcel out: intercept it")
            for pk, order_id, no in rows]


def refund_problem(threshold, now):
    """Money to give back or refunded beyond what was paid: open differences finance must clear."""
    from reconciliation.models import Discrepancy, DiscrepancyKind, DiscrepancyStatus

    rows = (Discrepancy.objects.filter(status=DiscrepancyStatus.OPEN, created_at__lte=now - _minutes(threshold),
                                       kind__in=[DiscrepancyKind.REFUND_OWED, DiscrepancyKind.REFUND_EXCEEDS_PAYMENT])
            .values_list("id", "kind", "order_no", "difference")[:MAX_MATCHES])
    return [Match(f"discrepancy:{pk}", None, f"{no}: {kind} {difference}") for pk, kind, no, difference in rows]


def ship_requested_no_outbound(threshold, now):
    return _orders_in(Status.SHIP_REQUESTED, threshold, now,
                      f"ship requested, no outbound scan for {threshold:.0f} min")


def open_order_unchanged(threshold, now):
    matches = []
    for status in (Status.PAID, Status.APPROVED, Status.SHIP_REQUESTED, Status.ON_HOLD):
        matches += _orders_in(status, threshold, now, f"{status}, unchanged for {threshold:.0f} min")
    return matches[:MAX_MATCHES]


def outbound_without_tracking(threshold, now):
    from channels.models import ShipmentTracking

    rows = (ShipmentTracking.objects.filter(state="", last_event_at__isnull=True,
                                            outbound_at__lt=now - _minutes(threshold))
            .exclude(shipment__order__fulfilment__in=[Fulfilment.DELIVERED, Fulfilment.RETURNED])
            .values_list("shipment__order_id", "shipment__order__order_no", "shipment__tracking_no")[:MAX_MATCHES])
    return [Match(f"order:{no}", pk, f"{no}: outbound, no carrier event for {tracking}") for pk, no, tracking in rows]


def pending_payment_with_money(threshold, now):
    """Money that reached us but no paid order shows it: unlinked payments, payments held for an
    amount check on an order that still waits for payment."""
    from reconciliation.models import FundVoucher, VoucherKind, VoucherStatus

    cutoff = now - _minutes(threshold)
    unlinked = (FundVoucher.objects.filter(order__isnull=True, status=VoucherStatus.CONFIRMED,
                                           kind=VoucherKind.PAYMENT, received_at__lt=cutoff)
                .values_list("transaction_no", "order_no", "amount")[:MAX_MATCHES])
    held = (FundVoucher.objects.filter(status=VoucherStatus.PENDING_CHECK, order__status=Status.PENDING_PAYMENT,
                                       received_at__lt=cutoff)
            .values_list("order_id", "order__order_no", "amount")[:MAX_MATCHES])
    return ([Match(f"voucher:{tx}", None, f"payment {tx} of {amount} for {no or '?'} matches no unpaid order")
             for tx, no, amount in unlinked]
            + [Match(f"order:{no}", pk, f"{no}: pending payment although {amount} was paid (amount check)")
               for pk, no, amount in held])


def stock_at_safety(threshold, now):
    from inventory.models import StockLevel

    rows = (StockLevel.objects.filter(safety_stock__gt=0)
            .filter(on_hand__lte=F("reserved") + F("safety_stock"))
            .values_list("warehouse__code", "sku__code", "on_hand", "reserved", "safety_stock")[:MAX_MATCHES])
    return [Match(f"stock:{wh}/{sku}", None, f"{sku} at {wh}: {on_hand - reserved} available, safety {safety}")
            for wh, sku, on_hand, reserved, safety in rows]


def channel_pull_lagging(threshold, now):
    from channels.models import Channel, SyncRun

    cutoff = now - _minutes(threshold)
    matches = []
    for channel in Channel.objects.filter(active=True).exclude(api_base_url=""):
        last = channel.sync_runs.order_by("-started_at").first()
        if channel.sync_cursor is None or channel.sync_cursor < cutoff:
            since = channel.sync_cursor.isoformat(timespec="minutes") if channel.sync_cursor else "never"
            matches.append(Match(f"channel:{channel.code}", None,
                                 f"{channel.code}: orders pulled up to {since}"))
        elif last is not None and last.status == SyncRun.State.FAILED:
            matches.append(Match(f"channel:{channel.code}", None,
                                 f"{channel.code}: last pull failed: {last.error[:120]}"))
    return matches


def cache_mismatch(threshold, now):
    from inventory.models import CacheCheck

    last = CacheCheck.objects.order_by("-at").first()
    if last is None or not (last.alerting or not last.cache_up):
        return []
    return [Match("cache:availability", None,
                  f"availability cache: {last.wrong} wrong, {last.holes} missing of {last.sampled} sampled")]


def channel_api_drift(threshold, now):
    from channels.models import SchemaDrift

    rows = (SchemaDrift.objects.filter(acknowledged_at__isnull=True)
            .values_list("channel__code", "kind", "path").order_by("channel__code"))
    by_channel: dict[str, list[str]] = {}
    for code, kind, path in rows[:MAX_MATCHES]:
        by_channel.setdefault(code, []).append(f"{kind} {path}")
    return [Match(f"channel:{code}", None, f"{code} API changed: {', '.join(changes[:5])}")
            for code, changes in by_channel.items()]


def reconciliation_difference(threshold, now):
    from reconciliation.models import Discrepancy, DiscrepancyStatus

    rows = (Discrepancy.objects.filter(status=DiscrepancyStatus.OPEN)
            .filter(Q(difference__gte=threshold) | Q(difference__lte=-threshold))
            .values_list("id", "kind", "transaction_no", "order_no", "difference")[:MAX_MATCHES])
    return [Match(f"discrepancy:{pk}", None, f"{kind} {tx or no}: {difference}")
            for pk, kind, tx, no, difference in rows]


CONDITIONS: dict[str, Condition] = {c.code: c for c in [
    Condition("paid_not_reviewed", _("Paid but not reviewed"), "minutes", paid_not_reviewed),
    Condition("approval_pending", _("Approval pending"), "minutes", approval_pending),
    Condition("exception_case_overdue", _("Exception case past its SOP time limit"), "minutes",
              exception_case_overdue),
    Condition("parcel_out_on_cancelled_order", _("Parcel out on a cancelled or refunded order"), "minutes",
              parcel_out_on_cancelled_order),
    Condition("refund_problem", _("Refund owed or refunds beyond payments"), "minutes", refund_problem),
    Condition("ship_requested_no_outbound", _("Ship requested without an outbound scan"), "minutes",
              ship_requested_no_outbound),
    Condition("outbound_without_tracking", _("Outbound without a carrier tracking event"), "minutes",
              outbound_without_tracking),
    Condition("pending_payment_with_money", _("Pending payment although a payment exists"), "minutes",
              pending_payment_with_money),
    Condition("open_order_unchanged", _("Open order unchanged"), "minutes", open_order_unchanged),
    Condition("stock_at_safety", _("Stock at or below safety stock"), "count", stock_at_safety),
    Condition("channel_pull_lagging", _("Channel pulls failing or lagging"), "minutes", channel_pull_lagging),
    Condition("cache_mismatch", _("Availability cache mismatches"), "count", cache_mismatch),
    Condition("channel_api_drift", _("Channel API changed"), "count", channel_api_drift),
    Condition("reconciliation_difference", _("Reconciliation difference above threshold"), "yuan",
              reconciliation_difference),
]}


@dataclass(frozen=True)
class BuiltinRule:
    code: str
    condition: str
    threshold: str
    severity: str
    name: str
    escalate_after_minutes: int | None = 60


BUILTIN_RULES = [
    BuiltinRule("paid-not-reviewed", "paid_not_reviewed", "30", "warning", "Paid but not reviewed in 30 min"),
    BuiltinRule("approval-pending-8h", "approval_pending", "480", "warning", "Approval pending for 8 h", 60),
    BuiltinRule("exception-case-overdue", "exception_case_overdue", "0", "warning",
                "Exception case past its SOP time limit", 120),
    BuiltinRule("parcel-out-cancelled", "parcel_out_on_cancelled_order", "0", "critical",
                "Parcel out on a cancelled or refunded order", 30),
    BuiltinRule("refund-problem", "refund_problem", "0", "critical",
                "Refund owed for a cancelled order, or refunds beyond payments", 60),
    BuiltinRule("ship-no-outbound-4h", "ship_requested_no_outbound", "240", "warning",
                "Ship requested, no outbound scan in 4 h"),
    BuiltinRule("ship-no-outbound-24h", "ship_requested_no_outbound", "1440", "critical",
                "Ship requested, no outbound scan in 24 h", 30),
    BuiltinRule("outbound-no-tracking-48h", "outbound_without_tracking", "2880", "warning",
                "Outbound without a carrier tracking event in 48 h"),
    BuiltinRule("pending-payment-paid", "pending_payment_with_money", "2", "critical",
                "Pending payment although a confirmed payment exists (2 min)", 30),
    BuiltinRule("open-order-unchanged-24h", "open_order_unchanged", "1440", "warning",
                "Open order unchanged for 24 h", None),
    BuiltinRule("stock-at-safety", "stock_at_safety", "0", "warning", "Stock at or below safety stock", None),
    BuiltinRule("channel-pull-lag", "channel_pull_lagging", "10", "critical",
                "Channel pulls failing or lagging 10 min", 30),
    BuiltinRule("cache-mismatch", "cache_mismatch", "0", "warning", "Availability cache mismatches"),
    BuiltinRule("channel-api-drift", "channel_api_drift", "0", "warning", "Channel API changed", None),
    BuiltinRule("reconciliation-difference", "reconciliation_difference", "100", "warning",
                "Reconciliation difference of 100 yuan or more", 240),
]
