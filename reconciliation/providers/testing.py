"""Signing helpers that play the provider's side: for tests, the demo and benchmarks.

They produce requests byte-for-byte the way the providers build them, so the parsers are
exercised with real RSA signatures and real AES-GCM, never with verification switched off.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
import uuid
from datetime import datetime
from decimal import Decimal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from oms import signing

from . import alipay, wechatpay
from ._fields import SHANGHAI

_NONCE_ALPHABET = string.ascii_letters + string.digits
_SUMMARIES = {"TRANSACTION.SUCCESS": "支付成功", "REFUND.SUCCESS": "退款成功"}


def generate_rsa_keypair(bits: int = 2048) -> tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey]:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return private_key, private_key.public_key()


def public_key_pem(public_key: rsa.RSAPublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def random_nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def sign_wechatpay(
    body: bytes,
    *,
    platform_private_key: rsa.RSAPrivateKey,
    serial: str,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The Wechatpay-* headers for `body`, as WeChat's servers send them."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    nonce = nonce or random_nonce()
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    signature = platform_private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return {
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature": base64.b64encode(signature).decode("ascii"),
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature-Type": wechatpay.SIGNATURE_TYPE,
        "Content-Type": "application/json",
    }


def encrypt_wechatpay_resource(
    plain: dict, *, api_v3_key: bytes | str, original_type: str
) -> dict[str, str]:
    key = api_v3_key.encode("utf-8") if isinstance(api_v3_key, str) else api_v3_key
    nonce = random_nonce(12)
    plaintext = json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    ciphertext = AESGCM(key).encrypt(nonce.encode(), plaintext, original_type.encode())
    return {
        "original_type": original_type,
        "algorithm": wechatpay.ALGORITHM,
        "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
        "associated_data": original_type,
        "nonce": nonce,
    }


def wechatpay_notification(
    transaction: dict,
    *,
    platform_private_key: rsa.RSAPrivateKey,
    serial: str,
    api_v3_key: bytes | str,
    event_type: str = "TRANSACTION.SUCCESS",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a notification carrying `transaction` (or a refund object, with a
    REFUND.* event_type) encrypted under the APIv3 key and signed by the platform key."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    original_type = "refund" if event_type.startswith("REFUND.") else "transaction"
    envelope = {
        "id": str(uuid.uuid4()),
        "create_time": datetime.fromtimestamp(timestamp, SHANGHAI).isoformat(timespec="seconds"),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": _SUMMARIES.get(event_type, event_type),
        "resource": encrypt_wechatpay_resource(
            transaction, api_v3_key=api_v3_key, original_type=original_type
        ),
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = sign_wechatpay(
        body,
        platform_private_key=platform_private_key,
        serial=serial,
        timestamp=timestamp,
        nonce=nonce,
    )
    return headers, body


def alipay_notification(params: dict, *, private_key: rsa.RSAPrivateKey) -> dict[str, str]:
    """`params` plus sign_type=RSA2 and its sign, as the decoded form Alipay POSTs."""
    form = {key: str(value) for key, value in params.items()}
    form["sign_type"] = "RSA2"
    form.pop("sign", None)
    charset = form.get("charset") or "utf-8"
    content = alipay.signing_content(form).encode(charset)
    signature = private_key.sign(content, padding.PKCS1v15(), hashes.SHA256())
    form["sign"] = base64.b64encode(signature).decode("ascii")
    return form


def generic_notification(body: dict, *, secret: bytes | str) -> tuple[dict[str, str], bytes]:
    raw = json.dumps(body, default=_decimal_text, ensure_ascii=False).encode("utf-8")
    return {**signing.sign(secret, raw), "Content-Type": "application/json"}, raw


def _decimal_text(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
