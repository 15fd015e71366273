"""Generic provider callbacks (CONTRACTS.md): signature version 2 (oms.signing): HMAC-SHA256 of
"<X-OMS-Timestamp>.<raw body>" in X-OMS-Signature.

Body: {"transaction_no", "order_no", "amount", "currency", "paid_at", "provider", "kind"?}.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from oms import signing

from . import NoticeError, PaymentNotice, SignatureError
from ._fields import aware_iso, currency, json_object, text, yuan

SIGNATURE_HEADER = signing.SIGNATURE_HEADER
KINDS = ("payment", "refund")


def verify_signature(headers: Mapping[str, str], body: bytes, *, secret: bytes | str) -> None:
    """Signature version 2 (signed timestamp, 300 s): the only version of this contract."""
    reason = signing.refusal(_secret_bytes(secret), body, headers, version=2)
    if reason:
        raise SignatureError(reason)


def parse_notification(
    headers: Mapping[str, str], body: bytes, *, secret: bytes | str
) -> PaymentNotice:
    verify_signature(headers, body, secret=secret)
    # Numbers become Decimal straight from their text: 0.1 must not pass through a float.
    data = json_object(body, "body", parse_float=Decimal)
    kind = data.get("kind", "payment")
    if kind not in KINDS:
        raise NoticeError(f"kind: not one of {', '.join(KINDS)}: {kind!r}")
    provider = data.get("provider", "generic")
    if not isinstance(provider, str) or not provider.strip():
        raise NoticeError("provider: not a non-empty string")
    return PaymentNotice(
        provider=provider,
        transaction_no=text(data, "transaction_no"),
        order_no=text(data, "order_no"),
        amount=yuan(data.get("amount"), "amount"),
        currency=currency(data.get("currency"), "currency", default=None),
        occurred_at=aware_iso(data.get("paid_at"), "paid_at"),
        kind=kind,
        succeeded=True,
        # Parsed again without Decimal so the archive copy stays plain JSON types.
        raw=json_object(body, "body"),
    )


def _secret_bytes(secret: bytes | str) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        # HMAC under an empty key is a checksum anyone can compute.
        raise ValueError("the generic payment secret is empty; set OMS_PAYMENT_GENERIC_SECRET")
    return key
