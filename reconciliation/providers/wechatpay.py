"""WeChat Pay API v3 notifications: 支付通知 (TRANSACTION.*) and 退款结果通知 (REFUND.*).

WeChat signs "{Wechatpay-Timestamp}\\n{Wechatpay-Nonce}\\n{body}\\n" with SHA256withRSA under the
platform certificate (or 微信支付公钥) named by Wechatpay-Serial, and encrypts the business
object in `resource` with AEAD_AES_256_GCM under the merchant's APIv3 key. It counts HTTP 200/204
as received and retries on 4XX/5XX (15s, 15s, 30s, 3m ... 6h: 24h4m in all), so duplicates are
normal and the caller books by transaction number.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import NoticeError, PaymentNotice, SignatureError
from ._fields import aware_iso, currency, fen, header, json_object, obj, text
from .keys import as_public_key, load_public_key

__all__ = [
    "SIGNATURE_TYPE",
    "decrypt_resource",
    "failure_reply",
    "load_public_key",
    "parse_notification",
    "success_reply",
    "verify_signature",
]

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
ALGORITHM = "AEAD_AES_256_GCM"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def success_reply() -> tuple[int, bytes]:
    """Current v3 docs: 200 or 204, no body needed."""
    return 200, b""


def failure_reply(message: str = "失败", status: int = 500) -> tuple[int, bytes]:
    """Any 4XX/5XX makes WeChat retry; a 200 with code FAIL would not, whatever the body says."""
    if not 400 <= status <= 599:
        raise ValueError(f"a failure reply needs a 4XX or 5XX status, not {status}")
    body = json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False)
    return status, body.encode("utf-8")


def parse_notification(
    headers: Mapping[str, str],
    body: bytes,
    *,
    platform_keys: Mapping[str, RSAPublicKey],
    api_v3_key: bytes,
    now: datetime | None = None,
    max_skew_seconds: int = 300,
) -> PaymentNotice:
    """Verify, decrypt and map one notification. `platform_keys` maps Wechatpay-Serial (platform
    certificate serial, or the PUB_KEY_ID_… of a 微信支付公钥) to its RSA public key."""
    verify_signature(
        headers, body, platform_keys=platform_keys, now=now, max_skew_seconds=max_skew_seconds
    )
    envelope = json_object(body, "body")
    plain = decrypt_resource(envelope.get("resource"), api_v3_key)
    raw = {**envelope, "resource": plain}
    event_type = envelope.get("event_type")
    if not isinstance(event_type, str):
        raise NoticeError("event_type: missing")
    if event_type.startswith("TRANSACTION."):
        return _transaction(plain, envelope, raw)
    if event_type.startswith("REFUND."):
        return _refund(plain, envelope, raw)
    raise NoticeError(f"event_type: not a payment or refund notice: {event_type!r}")


def verify_signature(
    headers: Mapping[str, str],
    body: bytes,
    *,
    platform_keys: Mapping[str, RSAPublicKey],
    now: datetime | None = None,
    max_skew_seconds: int = 300,
) -> None:
    serial = _required_header(headers, "Wechatpay-Serial")
    signature = _required_header(headers, "Wechatpay-Signature")
    timestamp = _required_header(headers, "Wechatpay-Timestamp")
    nonce = _required_header(headers, "Wechatpay-Nonce")
    signature_type = header(headers, "Wechatpay-Signature-Type")
    if signature_type is not None and signature_type != SIGNATURE_TYPE:
        raise SignatureError(f"Wechatpay-Signature-Type {signature_type!r} is not supported")
    key = platform_keys.get(serial)
    if key is None:
        # A new platform certificate appears here first: the caller must load it, not trust it.
        raise SignatureError(f"unknown Wechatpay-Serial {serial!r}")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError(f"Wechatpay-Timestamp is not a unix time: {timestamp!r}")
    now = now or datetime.now(UTC)
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    # The signature never expires by itself: the timestamp window is the replay defence.
    if abs(now.timestamp() - int(timestamp)) > max_skew_seconds:
        raise SignatureError(f"Wechatpay-Timestamp {timestamp} is outside ±{max_skew_seconds}s")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("Wechatpay-Signature is not base64") from None
    # Sign the body bytes exactly as received: re-serialised JSON would not match.
    message = f"{timestamp}\n{nonce}\n".encode() + bytes(body) + b"\n"
    try:
        as_public_key(key).verify(raw_signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise SignatureError("Wechatpay-Signature does not verify") from None


def decrypt_resource(resource: object, api_v3_key: bytes | str) -> dict:
    """The JSON object inside an encrypt-resource (`ciphertext` is base64 of ciphertext + tag;
    `nonce` and `associated_data` are used as plain UTF-8 strings)."""
    key = api_v3_key.encode("utf-8") if isinstance(api_v3_key, str) else bytes(api_v3_key)
    if len(key) != 32:
        raise ValueError("the APIv3 key must be 32 bytes")
    if not isinstance(resource, Mapping):
        raise NoticeError("resource: missing or not an object")
    if resource.get("algorithm") != ALGORITHM:
        raise NoticeError(f"resource.algorithm: unsupported {resource.get('algorithm')!r}")
    ciphertext = text(resource, "ciphertext", "resource.ciphertext")
    nonce = text(resource, "nonce", "resource.nonce")
    associated_data = resource.get("associated_data") or ""
    if not isinstance(associated_data, str):
        raise NoticeError("resource.associated_data: not a string")
    try:
        plaintext = AESGCM(key).decrypt(
            nonce.encode("utf-8"),
            base64.b64decode(ciphertext, validate=True),
            associated_data.encode("utf-8"),
        )
    except (InvalidTag, binascii.Error, ValueError):
        raise SignatureError("resource does not decrypt with the APIv3 key") from None
    return json_object(plaintext, "resource")


def _transaction(plain: dict, envelope: dict, raw: dict) -> PaymentNotice:
    succeeded = text(plain, "trade_state") == "SUCCESS"
    amount = obj(plain, "amount")
    return PaymentNotice(
        provider="wechatpay",
        transaction_no=text(plain, "transaction_id"),
        order_no=text(plain, "out_trade_no"),
        amount=fen(amount.get("total"), "amount.total"),
        currency=currency(amount.get("currency"), "amount.currency"),
        occurred_at=_occurred_at(plain, envelope, succeeded),
        kind="payment",
        succeeded=succeeded,
        raw=raw,
    )


def _refund(plain: dict, envelope: dict, raw: dict) -> PaymentNotice:
    # The decrypted refund_status decides, not event_type: only the resource is encrypted.
    succeeded = text(plain, "refund_status") == "SUCCESS"
    amount = obj(plain, "amount")
    return PaymentNotice(
        provider="wechatpay",
        transaction_no=text(plain, "refund_id"),
        order_no=text(plain, "out_trade_no"),
        amount=fen(amount.get("refund"), "amount.refund"),
        currency=currency(amount.get("currency"), "amount.currency"),
        occurred_at=_occurred_at(plain, envelope, succeeded),
        kind="refund",
        succeeded=succeeded,
        raw=raw,
    )


def _occurred_at(plain: Mapping, envelope: Mapping, succeeded: bool) -> datetime:
    # success_time only exists once money moved; other states are dated by the notification.
    if succeeded or plain.get("success_time"):
        return aware_iso(plain.get("success_time"), "success_time")
    return aware_iso(envelope.get("create_time"), "create_time")


def _required_header(headers: Mapping[str, str], name: str) -> str:
    value = header(headers, name)
    if not value:
        raise SignatureError(f"missing header {name}")
    return value
