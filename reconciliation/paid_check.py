""""Paid but no record": confirmed money whose order still waits for payment.

An exact order number links the voucher at once. A fuzzy match (same amount, the same last four
digits of the order number, within 15 minutes) is only suggested: finance confirms or rejects
it in one click, because a wrong link would mark the wrong order paid.
"""

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from oms.errors import Conflict, NotFound
from orders import services as order_services
from orders.events import SYSTEM, Actor
from orders.models import Order, Status

from .models import FundVoucher, PaymentMatch, VoucherKind, VoucherStatus
from .vouchers import apply_to_order

FUZZY_WINDOW = timedelta(minutes=15)


def unlinked_payments():
    return FundVoucher.objects.filter(
        order__isnull=True, kind=VoucherKind.PAYMENT, status=VoucherStatus.CONFIRMED
    )


def check_paid_without_record(limit: int = 1000) -> dict[str, int]:
    """Link what matches exactly, suggest what matches loosely. Safe to run any time."""
    linked = suggested = 0
    for voucher_id, order_no in unlinked_payments().values_list("id", "order_no")[:limit]:
        if order_no and Order.objects.filter(order_no=order_no).exists():
            linked += link_voucher(voucher_id, order_no, SYSTEM)
        else:
            suggested += _suggest(voucher_id)
    return {"linked": linked, "suggested": suggested}


@transaction.atomic
def link_voucher(voucher_id: int, order_no: str, actor: Actor) -> int:
    order = order_services.lock_order(order_no)
    voucher = FundVoucher.objects.select_for_update().get(pk=voucher_id)
    if voucher.order_id is not None:
        return 0  # linked meanwhile by another run or by finance
    voucher.order = order
    voucher.save(update_fields=["order"])
    apply_to_order(voucher, order, actor)
    return 1


def _suggest(voucher_id: int) -> int:
    voucher = FundVoucher.objects.get(pk=voucher_id)
    fragment = voucher.order_no[-4:]
    if len(fragment) < 4:
        return 0
    candidates = Order.objects.filter(
        status=Status.PENDING_PAYMENT,
        payable_amount=voucher.amount,
        order_no__endswith=fragment,
        placed_at__range=(voucher.occurred_at - FUZZY_WINDOW, voucher.occurred_at + FUZZY_WINDOW),
    )
    made = 0
    for order in candidates[:5]:
        try:
            with transaction.atomic():
                PaymentMatch.objects.create(
                    voucher=voucher, order=order,
                    reason=f"same amount {voucher.amount}, order number ends {fragment}, "
                           f"{abs(int((order.placed_at - voucher.occurred_at).total_seconds()))} s apart",
                )
                made += 1
        except IntegrityError:
            pass  # suggested by an earlier check
    return made


@transaction.atomic
def decide_match(match_id: int, confirm: bool, user) -> PaymentMatch:
    try:
        match = PaymentMatch.objects.select_for_update().select_related("order").get(pk=match_id)
    except PaymentMatch.DoesNotExist:
        raise NotFound(f"payment match {match_id} does not exist") from None
    if match.state != PaymentMatch.State.PENDING:
        raise Conflict(f"payment match {match_id} is already {match.state}")
    match.state = PaymentMatch.State.CONFIRMED if confirm else PaymentMatch.State.REJECTED
    match.decided_by = user
    match.decided_at = timezone.now()
    match.save(update_fields=["state", "decided_by", "decided_at"])
    if confirm:
        if not link_voucher(match.voucher_id, match.order.order_no, Actor.for_user(user)):
            raise Conflict("the voucher was linked to an order meanwhile")
        PaymentMatch.objects.filter(voucher_id=match.voucher_id, state=PaymentMatch.State.PENDING).update(
            state=PaymentMatch.State.REJECTED, decided_by=user, decided_at=match.decided_at
        )
    return match
