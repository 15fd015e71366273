"""Test data for reconciliation: notices, vouchers and statement lines made the real way."""

import hashlib
import itertools
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from reconciliation.models import FundVoucher, Statement, StatementLine
from reconciliation.providers import PaymentNotice
from reconciliation.vouchers import record_notice

_serial = itertools.count(1)


def notice(order_no: str, amount, *, transaction_no: str | None = None, provider="wechatpay",
           kind="payment", at: datetime | None = None, succeeded=True) -> PaymentNotice:
    return PaymentNotice(
        provider=provider,
        transaction_no=transaction_no or f"42000{next(_serial):013d}",
        order_no=order_no,
        amount=Decimal(str(amount)),
        currency="CNY",
        occurred_at=at or timezone.now(),
        kind=kind,
        succeeded=succeeded,
        raw={"out_trade_no": order_no},
    )


def pay(order_no: str, amount, *, delay_seconds: int = 5, **kwargs):
    """A payment booked through the service, its callback `delay_seconds` after the payment
    (the service measures the delay against now; tests book past days)."""
    voucher, _outcome = record_notice(notice(order_no, amount, **kwargs))
    FundVoucher.objects.filter(pk=voucher.pk).update(callback_delay_seconds=delay_seconds)
    voucher.refresh_from_db()
    return voucher


def statement(lines, *, account="wx-mch-1", profile="wechatpay_trade", provider="wechatpay",
              channel=None, start=None, end=None) -> Statement:
    """A statement with `lines` = [(transaction_no, amount, fee, occurred_at, kind, order_ref)],
    written directly: the parsers have their own tests, these are about matching."""
    lag = timedelta(days=channel.settlement_lag_days if channel else 0)
    days = [timezone.localdate(line[3]) - lag for line in lines]
    start = start or min(days)
    end = end or max(days)
    checksum = hashlib.sha256(repr((account, lines, next(_serial))).encode()).hexdigest()
    st = Statement.objects.create(
        account=account, profile=profile, provider=provider, channel=channel, checksum=checksum,
        lines=len(lines), period_start=start, period_end=end,
    )
    StatementLine.objects.bulk_create(
        StatementLine(
            statement=st, row=i + 2, transaction_no=tx, match_key=tx, order_ref=order_ref,
            occurred_at=at, business_date=timezone.localdate(at) - lag,
            amount=Decimal(str(amount)), fee=Decimal(str(fee)), kind=kind,
        )
        for i, (tx, amount, fee, at, kind, order_ref) in enumerate(lines)
    )
    return st
