"""Verification and parsing of payment-provider callbacks (WeChat Pay v3, Alipay, generic HMAC).

Pure functions over headers and bytes: no models, no database, no settings. A view verifies and
parses with one of the provider modules, then hands the resulting PaymentNotice to a service.
Every parser raises SignatureError when the request cannot be trusted and NoticeError when it is
authentic but cannot be booked; the caller answers both with the provider's failure reply,
so that a genuine provider retries.

    from reconciliation.providers import alipay, generic, wechatpay
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


class SignatureError(Exception):
    """Not provably from the provider: bad or missing signature, stale timestamp, unknown
    certificate serial, foreign app id, or a resource that does not decrypt."""


class NoticeError(Exception):
    """Authentic, but the body cannot be booked (missing field, bad amount...). The message
    starts with the name of the offending field."""


@dataclass(frozen=True)
class PaymentNotice:
    provider: str  # "wechatpay" | "alipay" | the generic body's "provider"
    transaction_no: str  # provider's payment id; for refunds the refund id (the idempotency key)
    order_no: str  # merchant order number (out_trade_no)
    amount: Decimal  # yuan, exactly 2 places, always positive: `kind` carries the direction
    currency: str
    occurred_at: datetime  # aware
    kind: str  # "payment" | "refund"
    succeeded: bool
    raw: dict  # the verified (decrypted) body, JSON-serialisable, for the archive
    # True when `amount` is the trade's refunded total so far (Alipay's refund_fee without a
    # send_back_fee), not this refund's own amount.
    cumulative: bool = False
