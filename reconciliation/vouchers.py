"""Fund vouchers: recording payment notices once, reversing, the received amount of an order.

One transaction per call. A notice locks its order first, so any number of concurrent repeats
of one transaction are serialized: the first creates the voucher, the others find it.
"""

import hashlib
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from oms.errors import Conflict, Invalid, NotFound
from orders import services as order_services
from orders.events import Actor, EventKind, Track, record_event
from orders.models import CaseKind, Order, Status

from .models import (
    COUNTED_STATUSES,
    Discrepancy,
    DiscrepancyKind,
    FundVoucher,
    PaymentCallback,
    VoucherKind,
    VoucherStatus,
)

# A notification later than this after the payment itself is a delayed callback.
DELAYED_CALLBACK = timedelta(minutes=30)


def received_amount(order: Order) -> Decimal:
    """Money received for the order, derived from its vouchers (never stored)."""
    total = order.vouchers.filter(status__in=COUNTED_STATUSES).aggregate(total=Sum("amount"))["total"]
    return (total or Decimal("0")).quantize(Decimal("0.01"))  # SQLite sums drop the scale


def refunded_amount(order: Order) -> Decimal:
    """Money refunded for the order: its refunds less the reversals of refunds (a positive sum)."""
    total = order.vouchers.filter(status__in=COUNTED_STATUSES).filter(
        Q(kind=VoucherKind.REFUND) | Q(kind=VoucherKind.REVERSAL, reverses__kind=VoucherKind.REFUND)
    ).aggregate(total=Sum("amount"))["total"]
    return (-(total or Decimal("0"))).quantize(Decimal("0.01"))


def log_callback(provider: str, body: bytes, outcome: str, transaction_no: str = "", detail: str = ""):
    return PaymentCallback.objects.create(
        provider=provider[:32], transaction_no=transaction_no[:64], outcome=outcome,
        detail=detail[:255], body_sha256=hashlib.sha256(body).hexdigest(),
    )


@transaction.atomic
def record_notice(notice, body: bytes = b"") -> tuple[FundVoucher | None, str]:
    """Book a verified provider notice. Returns (voucher, outcome) with outcome one of
    PaymentCallback.Outcome; repeats return the voucher of the first delivery."""
    if not notice.succeeded:
        log_callback(notice.provider, body, PaymentCallback.Outcome.IGNORED,
                     notice.transaction_no, "not a completed payment or refund")
        return None, PaymentCallback.Outcome.IGNORED
    order = _lock_order_if_known(notice.order_no)
    voucher = FundVoucher.objects.filter(transaction_no=notice.transaction_no).first()
    if voucher is None:
        try:
            with transaction.atomic():
                voucher = _create_voucher(notice, order)
        except IntegrityError:
            # Only possible when the order is unknown (no lock serialized us): the other
            # delivery of this transaction committed first.
            voucher = FundVoucher.objects.get(transaction_no=notice.transaction_no)
        else:
            log_callback(notice.provider, body, PaymentCallback.Outcome.CREATED, notice.transaction_no)
            if order is not None:
                apply_to_order(voucher, order, Actor(f"provider:{notice.provider}"))
            return voucher, PaymentCallback.Outcome.CREATED
    log_callback(notice.provider, body, PaymentCallback.Outcome.DUPLICATE, notice.transaction_no)
    return voucher, PaymentCallback.Outcome.DUPLICATE


def _lock_order_if_known(order_no: str) -> Order | None:
    try:
        return order_services.lock_order(order_no)
    except NotFound:
        return None


def _create_voucher(notice, order: Order | None) -> FundVoucher:
    now = timezone.now()
    check = ""
    if notice.kind == VoucherKind.PAYMENT:
        amount = notice.amount
    else:
        _serialize_trade(notice.provider, notice.order_no)
        refund, check = _refund_amount(notice)
        amount = -refund
    voucher = FundVoucher.objects.create(
        transaction_no=notice.transaction_no,
        provider=notice.provider,
        order=order,
        order_no=notice.order_no,
        kind=notice.kind,
        amount=amount,
        currency=notice.currency,
        occurred_at=notice.occurred_at,
        business_date=timezone.localdate(notice.occurred_at),
        callback_delay_seconds=max(0, int((now - notice.occurred_at).total_seconds())),
        raw=notice.raw,
        status=VoucherStatus.PENDING_CHECK if check else VoucherStatus.CONFIRMED,
        check_reason=check[:255],
    )
    if check:
        Discrepancy.objects.get_or_create(
            fingerprint=f"{DiscrepancyKind.AMOUNT_MISMATCH}:refund-order:{voucher.transaction_no}",
            defaults={"kind": DiscrepancyKind.AMOUNT_MISMATCH, "business_date": voucher.business_date,
                      "transaction_no": voucher.transaction_no, "order_no": notice.order_no,
                      "expected": None, "actual": voucher.amount, "difference": Decimal("0"),
                      "voucher": voucher, "detail": check[:255]},
        )
    return voucher


def _refund_amount(notice) -> tuple[Decimal, str]:
    """This refund's own amount, and why it needs finance's check ("" when it does not).

    A notice that gives only the trade's refunded total so far (Alipay's refund_fee) is read
    against the other refunds of the trade by their totals, never by arrival: its amount is
    its total less the highest total below it. A refund whose total is below one already
    booked arrived out of order: the one booked first already holds its amount, so this one
    is kept for a check, not counted (the order's refunded sum stays right) and finance gets
    a difference to settle against the bill."""
    if not getattr(notice, "cumulative", False):
        return abs(notice.amount), ""
    total = abs(notice.amount)
    booked = []
    for transaction_no, raw in FundVoucher.objects.filter(
            provider=notice.provider, kind=VoucherKind.REFUND, order_no=notice.order_no
    ).values_list("transaction_no", "raw"):
        try:
            booked.append((Decimal(str(raw.get("refund_fee"))), transaction_no))
        except (ArithmeticError, ValueError, AttributeError):
            continue
    below = max((t for t, _no in booked if t < total), default=Decimal("0"))
    later = sorted(no for t, no in booked if t > total)
    reason = (f"refund arrived after {', '.join(later)}, whose running total already holds it: "
              f"check the amounts against the bill") if later else ""
    return total - below, reason


def _serialize_trade(provider: str, order_no: str) -> None:
    """Refunds of one trade are booked one at a time, also when no order is known to lock
    (two concurrent refunds must not both read the same earlier totals)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"refunds:{provider}:{order_no}"])


def apply_to_order(voucher: FundVoucher, order: Order, actor: Actor) -> None:
    """What a new (or newly linked) voucher means for its locked order."""
    summary = f"{voucher.kind} {voucher.amount} {voucher.currency} ({voucher.provider} {voucher.transaction_no})"
    payload = {"transaction_no": voucher.transaction_no, "amount": str(voucher.amount)}
    if voucher.kind != VoucherKind.PAYMENT:
        record_event(order, track=Track.SYSTEM, kind=EventKind.PAYMENT, actor=actor,
                     summary=summary, payload=payload)
        _refuse_refunds_beyond_payments(voucher, order, actor)
        order_services.settle_refund(order, refunded_amount(order), actor, at=voucher.occurred_at)
        return
    if order.status == Status.CANCELLED:
        _refund_owed(voucher, order, actor, payload)
        return
    if voucher.amount != order.payable_amount or voucher.currency != order.currency:
        _hold_for_check(voucher, order, actor, payload)
        return
    if order.status == Status.PENDING_PAYMENT:
        order_services.mark_paid(order, actor, at=voucher.occurred_at,
                                 summary=f"paid: {summary}", payload=payload)
    else:
        record_event(order, track=Track.SYSTEM, kind=EventKind.PAYMENT, actor=actor,
                     summary=f"{summary}; the order was already {order.status}", payload=payload)


def payments_received(order: Order, currency: str) -> Decimal:
    """Payments booked for the order in `currency`, less their reversals."""
    total = order.vouchers.filter(status__in=COUNTED_STATUSES, currency=currency).filter(
        Q(kind=VoucherKind.PAYMENT) | Q(kind=VoucherKind.REVERSAL, reverses__kind=VoucherKind.PAYMENT)
    ).aggregate(total=Sum("amount"))["total"]
    return (total or Decimal("0")).quantize(Decimal("0.01"))


def _refuse_refunds_beyond_payments(voucher: FundVoucher, order: Order, actor: Actor) -> None:
    """Refunds never exceed payments per order and currency. A refund beyond them is kept (the
    money really moved) but finance gets a difference and ops an alert (alert rule
    `refund-problem`). Serialized by the order's row lock."""
    paid = payments_received(order, voucher.currency)
    refunded = -(order.vouchers.filter(status__in=COUNTED_STATUSES, currency=voucher.currency).filter(
        Q(kind=VoucherKind.REFUND) | Q(kind=VoucherKind.REVERSAL, reverses__kind=VoucherKind.REFUND)
    ).aggregate(total=Sum("amount"))["total"] or Decimal("0"))
    if refunded <= paid:
        return
    fingerprint = f"{DiscrepancyKind.REFUND_EXCEEDS_PAYMENT}:order:{order.order_no}:{voucher.currency}"
    values = {"kind": DiscrepancyKind.REFUND_EXCEEDS_PAYMENT, "business_date": voucher.business_date,
              "transaction_no": voucher.transaction_no, "order_no": order.order_no,
              "channel_code": order.channel.code, "expected": paid, "actual": refunded,
              "difference": paid - refunded, "voucher": voucher,
              "detail": f"refunds {refunded} {voucher.currency} exceed payments {paid}"}
    Discrepancy.objects.update_or_create(fingerprint=fingerprint, defaults=values)
    record_event(order, track=Track.SYSTEM, kind=EventKind.ALERT, actor=actor,
                 summary=f"refunds {refunded} {voucher.currency} exceed payments {paid}: kept, "
                         f"finance has a difference to clear",
                 payload={"transaction_no": voucher.transaction_no, "paid": str(paid), "refunded": str(refunded)})


def _refund_owed(voucher: FundVoucher, order: Order, actor: Actor, payload: dict) -> None:
    """A payment for a cancelled order: the money is owed back. Finance gets a difference
    (alert rule `refund-problem`) and an exception case says what to do."""
    from orders.cases import open_case

    Discrepancy.objects.get_or_create(
        fingerprint=f"{DiscrepancyKind.REFUND_OWED}:voucher:{voucher.transaction_no}",
        defaults={
            "kind": DiscrepancyKind.REFUND_OWED, "business_date": voucher.business_date,
            "transaction_no": voucher.transaction_no, "order_no": order.order_no,
            "channel_code": order.channel.code, "expected": Decimal("0"), "actual": voucher.amount,
            "difference": voucher.amount, "voucher": voucher,
            "detail": f"paid {voucher.amount} {voucher.currency} for a cancelled order",
        },
    )
    record_event(order, track=Track.SYSTEM, kind=EventKind.PAYMENT, actor=actor,
                 summary=f"payment {voucher.amount} {voucher.currency} for a cancelled order: refund owed",
                 payload=payload)
    open_case(order, CaseKind.REFUND_OWED, f"payment {voucher.transaction_no} of {voucher.amount} "
                                           f"{voucher.currency} after the order was cancelled", actor=actor)


def _hold_for_check(voucher: FundVoucher, order: Order, actor: Actor, payload: dict) -> None:
    """A payment that is not the payable: kept, not counted, the order stays unpaid, and
    finance gets a discrepancy while ops sees an alert on the timeline."""
    reason = (f"paid {voucher.amount} {voucher.currency}, payable is "
              f"{order.payable_amount} {order.currency}")
    voucher.status = VoucherStatus.PENDING_CHECK
    voucher.check_reason = reason
    voucher.save(update_fields=["status", "check_reason"])
    Discrepancy.objects.get_or_create(
        fingerprint=f"{DiscrepancyKind.AMOUNT_MISMATCH}:voucher:{voucher.transaction_no}",
        defaults={
            "kind": DiscrepancyKind.AMOUNT_MISMATCH, "business_date": voucher.business_date,
            "transaction_no": voucher.transaction_no, "order_no": order.order_no,
            "channel_code": order.channel.code, "expected": order.payable_amount,
            "actual": voucher.amount, "difference": voucher.amount - order.payable_amount,
            "voucher": voucher, "detail": reason,
        },
    )
    record_event(order, track=Track.SYSTEM, kind=EventKind.ALERT, actor=actor,
                 summary=f"payment amount mismatch: {reason}; order not marked paid", payload=payload)


@transaction.atomic
def accept_voucher(transaction_no: str, user, note: str) -> FundVoucher:
    """Finance accepts a payment held for a check (e.g. an agreed partial payment)."""
    if not note.strip():
        raise Invalid({"note": ["say why the amount is accepted"]})
    voucher = _lock_voucher(transaction_no)
    if voucher.status != VoucherStatus.PENDING_CHECK:
        raise Conflict(f"voucher {transaction_no} is {voucher.status}, not pending check")
    voucher.status = VoucherStatus.CONFIRMED
    voucher.save(update_fields=["status"])
    if voucher.order_id:
        order = order_services.lock_order(voucher.order.order_no)
        actor = Actor.for_user(user)
        summary = f"payment {voucher.transaction_no} of {voucher.amount} accepted: {note}"
        if order.status == Status.PENDING_PAYMENT:
            order_services.mark_paid(order, actor, at=voucher.occurred_at, summary=summary,
                                     payload={"transaction_no": transaction_no})
        else:
            record_event(order, track=Track.SYSTEM, kind=EventKind.PAYMENT, actor=actor,
                         summary=summary)
    return voucher


@transaction.atomic
def reverse_voucher(transaction_no: str, reason: str, user) -> FundVoucher:
    """Book the negative twin of a voucher. The original is never edited beyond its status."""
    if not reason.strip():
        raise Invalid({"reason": ["a reversal needs a reason"]})
    voucher = _lock_voucher(transaction_no)
    if voucher.kind == VoucherKind.REVERSAL:
        raise Conflict(f"{transaction_no} is itself a reversal; book an adjustment instead")
    if voucher.status == VoucherStatus.REVERSED:
        raise Conflict(f"voucher {transaction_no} is already reversed",
                       reversed_by=voucher.reversed_by.transaction_no)
    reversal = FundVoucher.objects.create(
        transaction_no=f"REV-{transaction_no}"[:64],
        provider=voucher.provider,
        order=voucher.order,
        order_no=voucher.order_no,
        kind=VoucherKind.REVERSAL,
        amount=-voucher.amount,
        currency=voucher.currency,
        occurred_at=timezone.now(),
        business_date=timezone.localdate(),
        reverses=voucher,
        reason=reason[:255],
        created_by=user,
    )
    voucher.status = VoucherStatus.REVERSED
    voucher.save(update_fields=["status"])
    if voucher.order_id:
        order = order_services.lock_order(voucher.order.order_no)
        record_event(
            order, track=Track.SYSTEM, kind=EventKind.PAYMENT, actor=Actor.for_user(user),
            summary=f"voucher {transaction_no} ({voucher.amount}) reversed: {reason}; "
                    f"received now {received_amount(order)}",
            payload={"transaction_no": transaction_no, "reversal": reversal.transaction_no},
        )
        order_services.settle_refund(order, refunded_amount(order), Actor.for_user(user))
    return reversal


def _lock_voucher(transaction_no: str) -> FundVoucher:
    try:
        return FundVoucher.objects.select_for_update().get(transaction_no=transaction_no)
    except FundVoucher.DoesNotExist:
        raise NotFound(f"voucher {transaction_no} does not exist") from None

