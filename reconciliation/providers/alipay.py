"""Alipay asynchronous notifications (notify_type trade_status_sync), RSA2 only.

Alipay POSTs a form; the signature covers every parameter except `sign` and `sign_type`, empty
values dropped, keys in ASCII order, joined as k=v with &, values as decoded by the form parser.
Anything but the 7 bytes `success` in reply makes Alipay resend (8 times within ~25h).
"""

from __future__ import annotations

import base64
import binascii
import codecs
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from . import NoticeError, PaymentNotice, SignatureError
from ._fields import shanghai_local, text, yuan
from .keys import as_public_key

SUCCESS_REPLY = b"success"
FAILURE_REPLY = b"fail"
PAID_STATES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
UNPAID_STATES = frozenset({"WAIT_BUYER_PAY", "TRADE_CLOSED"})
_UNSIGNED = ("sign", "sign_type")
# Alipay resends for 24 h 22 min; an hour more for a slow queue of ours.
MAX_NOTICE_AGE = timedelta(hours=26)
FUTURE_SKEW = timedelta(minutes=5)


def signing_content(form: Mapping[str, str]) -> str:
    return "&".join(
        f"{key}={form[key]}" for key in sorted(form) if key not in _UNSIGNED and form[key] != ""
    )


def verify_signature(form: Mapping[str, str], alipay_public_key: RSAPublicKey) -> None:
    sign = form.get("sign")
    if not sign:
        raise SignatureError("missing sign")
    if form.get("sign_type") != "RSA2":
        # RSA (SHA1) is deprecated by Alipay; accepting it would let a downgrade through.
        raise SignatureError(f"sign_type {form.get('sign_type')!r}: only RSA2 is accepted")
    charset = form.get("charset") or "utf-8"
    try:
        message = signing_content(form).encode(codecs.lookup(charset).name)
    except (LookupError, UnicodeEncodeError):
        raise SignatureError(f"cannot encode the signed content as {charset!r}") from None
    try:
        # A '+' that went through one URL-decoding too many arrives as a space.
        signature = base64.b64decode(sign.replace(" ", "+"), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("sign is not base64") from None
    try:
        as_public_key(alipay_public_key).verify(
            signature, message, padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise SignatureError("sign does not verify") from None


def check_notify_time(fields: Mapping[str, str], now: datetime, max_age: timedelta) -> None:
    """A replayed notice carries its old `notify_time` (it is signed): refused once older than
    Alipay's own resend schedule (8 notices within about 25 h), or from the future."""
    try:
        sent = shanghai_local(fields.get("notify_time"), "notify_time")
    except NoticeError as exc:
        raise SignatureError(str(exc)) from None
    if sent < now - max_age or sent > now + FUTURE_SKEW:
        raise SignatureError(f"notify_time {fields.get('notify_time')} is outside the accepted window (a replay?)")


def parse_notification(
    form: Mapping[str, str], *, alipay_public_key: RSAPublicKey, app_id: str | None = None,
    now: datetime | None = None, max_age: timedelta = MAX_NOTICE_AGE,
) -> PaymentNotice:
    """Verify and map one notification. A refund notice is recognised by `refund_fee` /
    `gmt_refund`: Alipay sends it with trade_status TRADE_SUCCESS (partial refund) or
    TRADE_CLOSED (fully refunded), and `refund_fee` is the trade's cumulative refunded total,
    not this refund's amount."""
    # form[key] rather than dict(form): a Django QueryDict would copy its lists of values.
    fields = {key: form[key] for key in form}
    verify_signature(fields, alipay_public_key)
    check_notify_time(fields, now or datetime.now(UTC), max_age)
    if app_id is not None and fields.get("app_id") != app_id:
        raise SignatureError(f"app_id {fields.get('app_id')!r} is not this merchant's")
    status = text(fields, "trade_status")
    if status not in PAID_STATES | UNPAID_STATES:
        raise NoticeError(f"trade_status: unknown {status!r}")
    order_no = text(fields, "out_trade_no")
    trade_no = text(fields, "trade_no")
    if _is_refund(fields):
        # Each refund is booked under its own id; its own amount is send_back_fee where Alipay
        # sends it, else only the trade's running refund_fee is known (see vouchers).
        own = fields.get("send_back_fee")
        return PaymentNotice(
            provider="alipay",
            # 退款请求号, also the refund's key in the bill (退款批次号/请求号). Alipay keeps it
            # unique only within one trade, so the OMS must issue globally unique refund numbers.
            transaction_no=text(fields, "out_biz_no"),
            order_no=order_no,
            amount=yuan(own, "send_back_fee") if own else yuan(fields.get("refund_fee"), "refund_fee"),
            currency="CNY",
            occurred_at=shanghai_local(fields.get("gmt_refund"), "gmt_refund"),
            kind="refund",
            succeeded=True,
            raw=fields,
            cumulative=not own,
        )
    succeeded = status in PAID_STATES
    return PaymentNotice(
        provider="alipay",
        transaction_no=trade_no,
        order_no=order_no,
        amount=yuan(fields.get("total_amount"), "total_amount"),
        # Domestic trades are CNY and the notice carries no currency field.
        currency="CNY",
        occurred_at=_payment_time(fields, succeeded),
        kind="payment",
        succeeded=succeeded,
        raw=fields,
    )


def _is_refund(fields: Mapping[str, str]) -> bool:
    if fields.get("gmt_refund"):
        return True
    fee = fields.get("refund_fee")
    if not fee:
        return False
    try:
        # A zero refund_fee moves no money: it must not turn a payment into a refund.
        return Decimal(fee) != 0
    except InvalidOperation:
        return True  # let the refund mapping report the malformed amount


def _payment_time(fields: Mapping[str, str], succeeded: bool) -> datetime:
    if succeeded:
        return shanghai_local(fields.get("gmt_payment"), "gmt_payment")
    for field in ("gmt_close", "gmt_create", "notify_time"):
        if fields.get(field):
            return shanghai_local(fields[field], field)
    raise NoticeError("gmt_create: missing (and no gmt_close or notify_time)")
