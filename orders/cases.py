"""Exception cases (issue 7): order problems a person must resolve, each handled by the SOP of
its kind, opened once per (order, kind) while open and closed only with a root cause.

Detection (`detect_cases`, every minute) reads index-backed ranges only:
* on-hold orders (status, status_changed_at) whose hold came from channel intake validation
  (reason "intake: …", see channels.intake), from a placeholder receiver address, or from the
  stock check at payment (the hold event carries `shortages`, see stock_flow.reserve_or_hold);
* unpaid orders (status, status_changed_at) older than PAYMENT_TIMEOUT, within a look-back
  window so that years of abandoned carts are not rescanned every minute.
An order is examined once per hold (a case opened since it entered the state means it was),
and a case closed by a person is not reopened for the same hold.

Other apps open cases of their own kinds through `open_case` (carrier anomalies from tracking,
amount mismatches from payments).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from oms.errors import Conflict, Forbidden, Invalid, NotFound
from oms.roles import CUSTOMER_SERVICE, FINANCE, OPS

from . import services
from .events import SYSTEM, Actor, EventKind, Track, record_event
from .models import (
    CaseKind,
    CaseSeverity,
    CaseStage,
    CaseStatus,
    ExceptionCase,
    ExceptionSop,
    Order,
    OrderEvent,
    Responsibility,
    Status,
)

PAYMENT_TIMEOUT = timedelta(minutes=30)
# Unpaid orders older than this are not looked at any more (settings.OMS_PAYMENT_TIMEOUT_LOOKBACK_HOURS).
PAYMENT_TIMEOUT_LOOKBACK = timedelta(days=7)
CLOSE_PERMISSION = "orders.change_exceptioncase"

# The SOP of each kind: what the case is and what the person handling it should do.
# Ops override any field per kind in the admin (ExceptionSop); empty fields keep these.
SOPS: dict[str, dict] = {
    CaseKind.PLACEHOLDER_ADDRESS: {
        "stage": CaseStage.IN_SALE,
        "severity": CaseSeverity.MEDIUM,
        "responsibility": Responsibility.CUSTOMER,
        "owner_role": CUSTOMER_SERVICE,
        "time_limit_hours": 4,
        "recommended_action": gettext_lazy(
            "Contact the buyer through the channel's chat (or by phone) and ask for the real "
            "delivery address. Have the address corrected on the channel, check that the order "
            "shows it, then ask ops to release the hold. If the buyer does not answer within the "
            "time limit, cancel the order as the channel's rules allow and note the attempts."
        ),
    },
    CaseKind.PAYMENT_TIMEOUT: {
        "stage": CaseStage.PRE_SALE,
        "severity": CaseSeverity.LOW,
        "responsibility": Responsibility.CUSTOMER,
        "owner_role": CUSTOMER_SERVICE,
        "time_limit_hours": 24,
        "recommended_action": gettext_lazy(
            "The buyer has not paid for 30 minutes. Send one friendly payment reminder through "
            "the channel's chat; do not call. Stock held for the order is released on its own "
            "when the reservation expires. Close the case with what happened (paid after the "
            "reminder, buyer gave up, duplicate order)."
        ),
    },
    CaseKind.STOCK_SHORTAGE: {
        "stage": CaseStage.IN_SALE,
        "severity": CaseSeverity.HIGH,
        "responsibility": Responsibility.INTERNAL,
        "owner_role": OPS,
        "time_limit_hours": 8,
        "recommended_action": gettext_lazy(
            "The order is paid but no warehouse has enough stock for it. Check expected receipts "
            "and transfers between warehouses. If stock arrives within the time limit, release "
            "the hold (stock is reserved then). If not, agree with the buyer on a substitute, a "
            "later date or a refund, do what was agreed, and check why the SKU oversold."
        ),
    },
    CaseKind.CARRIER_ANOMALY: {
        "stage": CaseStage.IN_SALE,
        "severity": CaseSeverity.MEDIUM,
        "responsibility": Responsibility.PLATFORM,
        "owner_role": OPS,
        "time_limit_hours": 24,
        "recommended_action": gettext_lazy(
            "Open a trace with the carrier's customer service with the tracking number, and tell "
            "the buyer that the parcel is being checked. Record the carrier's answer on the order."
        ),
        "sub_reasons": {
            "no_update": gettext_lazy(
                "No carrier scan for too long: ask the carrier where the parcel is (give the "
                "tracking number and the last scan), and tell the buyer a delay is being checked. "
                "If the carrier declares it lost, re-ship or refund and claim from the carrier."
            ),
            "off_route": gettext_lazy(
                "The parcel is moving away from the receiver: ask the carrier to re-route it, and "
                "confirm the address with the buyer at the same time."
            ),
            "repeated_returns": gettext_lazy(
                "Delivery failed again and again: call the buyer to confirm the address and a time "
                "to receive the parcel. If they cannot be reached, stop re-delivery, have the "
                "parcel returned and arrange the refund after it is back."
            ),
        },
    },
    CaseKind.INTAKE_HELD: {
        "stage": CaseStage.IN_SALE,
        "severity": CaseSeverity.MEDIUM,
        "responsibility": Responsibility.PLATFORM,
        "owner_role": OPS,
        "time_limit_hours": 4,
        "recommended_action": gettext_lazy(
            "The channel sent an order that failed our checks (see the hold reason). Compare it "
            "with the order in the channel's back office, get the missing or wrong data corrected "
            "at the source (ask the buyer through customer service if only they know it), then "
            "release the hold. If the channel's data is wrong, report it to the channel's support."
        ),
    },
    CaseKind.AMOUNT_MISMATCH: {
        "stage": CaseStage.IN_SALE,
        "severity": CaseSeverity.HIGH,
        "responsibility": Responsibility.PLATFORM,
        "owner_role": FINANCE,
        "time_limit_hours": 24,
        "recommended_action": gettext_lazy(
            "The amount to pay does not equal lines minus discounts plus shipping. Look for a "
            "coupon or price adjustment on the channel's order page that the feed missed, and ask "
            "finance to confirm what was actually received. Do not ship an under-paid order "
            "without finance's written agreement; note their decision before the hold is released."
        ),
    },
    CaseKind.INTERCEPT_RETURN: {
        "stage": CaseStage.AFTER_SALE,
        "severity": CaseSeverity.HIGH,
        "responsibility": Responsibility.CUSTOMER,
        "owner_role": OPS,
        "time_limit_hours": 4,
        "recommended_action": gettext_lazy(
            "The order was cancelled or refunded after a parcel left the warehouse. Ask the "
            "carrier to intercept the parcel now (give the tracking number); if it was already "
            "delivered, ask the buyer to send it back. Record the carrier's answer, check the "
            "parcel when it is back, and close the case once the refund owed has been paid."
        ),
    },
    CaseKind.REFUND_OWED: {
        "stage": CaseStage.AFTER_SALE,
        "severity": CaseSeverity.HIGH,
        "responsibility": Responsibility.INTERNAL,
        "owner_role": FINANCE,
        "time_limit_hours": 24,
        "recommended_action": gettext_lazy(
            "Money arrived for an order that is cancelled. Check with the buyer (through customer "
            "service) whether they still want the goods; if not, refund the payment through the "
            "provider it came from and note the refund number on the order. Close the case when "
            "the refund is booked and the difference on the finance page is resolved."
        ),
    },
}
SOP_FIELDS = ("stage", "severity", "responsibility", "owner_role", "time_limit_hours", "recommended_action")


def sop_for(kind: str, sub_reason: str = "", overrides: dict | None = None) -> dict:
    """The effective SOP of a kind: the built-in one with ops' overrides on top. The action
    text of a sub-reason (carrier anomaly) replaces the kind's, unless ops overrode it."""
    base = SOPS[kind]
    override = (overrides if overrides is not None else sop_overrides()).get(kind)
    sop = {"kind": kind, "sub_reason": sub_reason}
    for name in SOP_FIELDS:
        value = getattr(override, name, None) if override is not None else None
        sop[name] = value if value not in (None, "") else base[name]
    if sub_reason and (override is None or not override.recommended_action):
        sop["recommended_action"] = base.get("sub_reasons", {}).get(sub_reason, sop["recommended_action"])
    sop["recommended_action"] = str(sop["recommended_action"])
    return sop


def sop_overrides() -> dict[str, ExceptionSop]:
    return {row.kind: row for row in ExceptionSop.objects.all()}


def sops_for(cases) -> dict[int, dict]:
    """Effective SOP per case id, with one query for the overrides."""
    overrides = sop_overrides()
    return {case.pk: sop_for(case.kind, case.sub_reason, overrides) for case in cases}


# --- open and close -------------------------------------------------------------------------


@transaction.atomic
def open_case(order: Order | None, kind: str, detail: str, *, actor: Actor, severity: str | None = None,
              sub_reason: str = "", at: datetime | None = None) -> tuple[ExceptionCase, bool]:
    """Open a case of `kind` for the order, or return the one already open (created=False).
    Stage, responsibility, owner and due time come from the kind's SOP; `severity` overrides
    the SOP's. Writes an alert event on the order's timeline."""
    if kind not in SOPS:
        raise Invalid({"kind": [f"unknown exception kind {kind!r}; one of {', '.join(SOPS)}"]})
    if severity is not None and severity not in CaseSeverity.values:
        raise Invalid({"severity": [f"one of {', '.join(CaseSeverity.values)}"]})
    sub_reasons = SOPS[kind].get("sub_reasons", {})
    if sub_reason and sub_reason not in sub_reasons:
        raise Invalid({"sub_reason": [f"one of {', '.join(sub_reasons) or '(none for this kind)'}"]})
    if order is not None:
        order = services.lock_order(order.order_no)
        existing = ExceptionCase.objects.filter(order=order, kind=kind, status=CaseStatus.OPEN).first()
        if existing is not None:
            return existing, False
    now = at or timezone.now()
    sop = sop_for(kind, sub_reason)
    try:
        with transaction.atomic():  # a savepoint: the partial unique index has the last word
            case = ExceptionCase.objects.create(
                order=order, kind=kind, sub_reason=sub_reason, stage=sop["stage"],
                severity=severity or sop["severity"], responsibility=sop["responsibility"],
                owner_role=sop["owner_role"], detail=detail, opened_at=now,
                due_at=now + timedelta(hours=sop["time_limit_hours"]),
            )
    except IntegrityError:
        if order is None:
            raise
        return ExceptionCase.objects.get(order=order, kind=kind, status=CaseStatus.OPEN), False
    if order is not None:
        label = _stored_label(kind)
        record_event(
            order, track=Track.SYSTEM, kind=EventKind.ALERT, actor=actor, at=now,
            summary=f"exception case #{case.pk} opened ({label}"
                    + (f", {sub_reason}" if sub_reason else "") + f"): {detail}",
            payload={"exception_case": case.pk, "kind": kind, "sub_reason": sub_reason,
                     "severity": case.severity, "owner_role": case.owner_role,
                     "due_at": case.due_at.isoformat()},
        )
    return case, True


def _stored_label(kind: str) -> str:
    """Timeline summaries are stored once, in English like every other event summary, whatever
    language the request that wrote them happened to use."""
    with translation.override("en"):
        return str(CaseKind(kind).label)


@transaction.atomic
def close_case(case_id: int, user, root_cause: str) -> ExceptionCase:
    """Close a case with its root cause (required), recorded on the order's timeline."""
    root_cause = (root_cause or "").strip()
    if not root_cause:
        raise Invalid({"root_cause": [_("A root cause is required to close a case.")]})
    if user is None or not user.has_perm(CLOSE_PERMISSION):
        raise Forbidden(f"user {getattr(user, 'username', '?')} may not close exception cases")
    row = ExceptionCase.objects.filter(pk=case_id).values("order__order_no").first()
    if row is None:
        raise NotFound(f"exception case {case_id} does not exist")
    order = services.lock_order(row["order__order_no"]) if row["order__order_no"] else None
    case = ExceptionCase.objects.select_for_update().get(pk=case_id)
    if case.status == CaseStatus.CLOSED:
        raise Conflict(f"exception case {case_id} is already closed",
                       state={"status": case.status}, allowed=[])
    now = timezone.now()
    case.status = CaseStatus.CLOSED
    case.closed_at = now
    case.closed_by = user
    case.root_cause = root_cause
    case.save(update_fields=["status", "closed_at", "closed_by", "root_cause"])
    if order is not None:
        record_event(order, track=Track.SYSTEM, kind=EventKind.NOTE, actor=Actor.for_user(user), at=now,
                     summary=f"exception case #{case.pk} ({_stored_label(case.kind)}) closed: {root_cause}",
                     payload={"exception_case": case.pk, "root_cause": root_cause})
    return case


# --- detection ------------------------------------------------------------------------------


def _placeholder():
    from channels.intake import PLACEHOLDER_ADDRESS  # intake's own rule, not a copy of it

    return PLACEHOLDER_ADDRESS


def _intake_kinds(hold_reason: str) -> set[str]:
    """The kinds behind an intake hold ("intake: problem; problem", channels.intake._hold_for)."""
    kinds = set()
    for problem in hold_reason.removeprefix("intake:").split("; "):
        problem = problem.strip()
        if not problem:
            continue
        if "placeholder" in problem:
            kinds.add(CaseKind.PLACEHOLDER_ADDRESS)
        elif problem.startswith("payable"):
            kinds.add(CaseKind.AMOUNT_MISMATCH)
        else:
            kinds.add(CaseKind.INTAKE_HELD)
    return kinds


# The kinds a hold can call for: once one of them was opened during a hold, the order was examined.
HOLD_KINDS = (CaseKind.PLACEHOLDER_ADDRESS, CaseKind.INTAKE_HELD, CaseKind.AMOUNT_MISMATCH,
              CaseKind.STOCK_SHORTAGE)


def _examined_since_state_change(kinds) -> Exists:
    return Exists(ExceptionCase.objects.filter(
        order=OuterRef("pk"), kind__in=kinds, opened_at__gte=OuterRef("status_changed_at")
    ))


def detect_cases(now: datetime | None = None, limit: int = 1000) -> dict:
    """Open the cases the order states call for; returns how many were opened per kind.
    Idempotent: a second run opens nothing new. Each order in its own transaction."""
    now = now or timezone.now()
    opened = {kind: 0 for kind in (*HOLD_KINDS, CaseKind.PAYMENT_TIMEOUT)}
    for order_id in _held_candidates(limit):
        for kind in _open_for_hold(order_id, now):
            opened[kind] += 1
    for order_id in _unpaid_candidates(now, limit):
        for kind in _open_for_unpaid(order_id, now):
            opened[kind] += 1
    return {str(kind): count for kind, count in opened.items()}


def _shortage_hold():
    return Exists(OrderEvent.objects.filter(
        order=OuterRef("pk"), to_state=Status.ON_HOLD, at__gte=OuterRef("status_changed_at"),
        payload__has_key="shortages",
    ))


def _held_candidates(limit: int) -> list[int]:
    return list(
        Order.objects.filter(status=Status.ON_HOLD)
        .filter(Q(hold_reason__startswith="intake:")
                | Q(receiver_address__iregex=_placeholder().pattern) | _shortage_hold())
        .filter(~_examined_since_state_change(HOLD_KINDS))
        .order_by("status_changed_at", "pk").values_list("pk", flat=True)[:limit]
    )


def _unpaid_candidates(now: datetime, limit: int) -> list[int]:
    hours = getattr(settings, "OMS_PAYMENT_TIMEOUT_LOOKBACK_HOURS", None)
    lookback = timedelta(hours=hours) if hours else PAYMENT_TIMEOUT_LOOKBACK
    return list(
        Order.objects.filter(status=Status.PENDING_PAYMENT, status_changed_at__lt=now - PAYMENT_TIMEOUT,
                             status_changed_at__gte=now - lookback, merged_into__isnull=True)
        .filter(~_examined_since_state_change([CaseKind.PAYMENT_TIMEOUT]))
        .order_by("status_changed_at", "pk").values_list("pk", flat=True)[:limit]
    )


def _hold_kinds(order: Order) -> dict[str, str]:
    """Kind → detail for a locked order on hold."""
    kinds = {}
    reason = order.hold_reason
    if reason.startswith("intake:"):
        for kind in _intake_kinds(reason):
            kinds[kind] = reason
    if _placeholder().search(order.receiver_address):
        kinds.setdefault(CaseKind.PLACEHOLDER_ADDRESS,
                         f"receiver address looks like a placeholder: {order.receiver_address!r}")
    shortage = (OrderEvent.objects.filter(order=order, to_state=Status.ON_HOLD,
                                          at__gte=order.status_changed_at, payload__has_key="shortages")
                .order_by("-at", "-id").first())
    if shortage is not None:
        kinds[CaseKind.STOCK_SHORTAGE] = reason or shortage.summary
    return kinds


def _open_for_hold(order_id: int, now: datetime) -> list[str]:
    opened = []
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).get(pk=order_id)
        if order.status != Status.ON_HOLD:
            return opened
        for kind, detail in sorted(_hold_kinds(order).items()):
            if ExceptionCase.objects.filter(order=order, kind=kind, opened_at__gte=order.status_changed_at).exists():
                continue  # opened (and maybe closed by a person) during this very hold
            _case, created = open_case(order, kind, detail, actor=SYSTEM, at=now)
            if created:
                opened.append(kind)
    return opened


def _open_for_unpaid(order_id: int, now: datetime) -> list[str]:
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).get(pk=order_id)
        if order.status != Status.PENDING_PAYMENT or order.status_changed_at >= now - PAYMENT_TIMEOUT:
            return []
        minutes = int((now - order.status_changed_at).total_seconds() // 60)
        _case, created = open_case(order, CaseKind.PAYMENT_TIMEOUT,
                                   f"unpaid for {minutes} min (placed {timezone.localtime(order.placed_at):%Y-%m-%d %H:%M})",
                                   actor=SYSTEM, at=now)
        return [CaseKind.PAYMENT_TIMEOUT] if created else []


# --- metrics --------------------------------------------------------------------------------


def closure_rate_72h(since: datetime, until: datetime) -> dict:
    """Of the cases opened in [since, until), how many were closed within 72 hours of opening.
    `rate` is None when none were opened. Cases opened less than 72 h ago may still close in
    time: for a final figure, end the window at least 72 h in the past."""
    cases = ExceptionCase.objects.filter(opened_at__gte=since, opened_at__lt=until)
    opened = cases.count()
    closed = cases.filter(status=CaseStatus.CLOSED,
                          closed_at__lte=F("opened_at") + timedelta(hours=72)).count()
    return {"opened": opened, "closed_within_72h": closed,
            "rate": round(closed / opened, 4) if opened else None}
