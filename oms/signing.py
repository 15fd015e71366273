"""Signatures of our own push contracts (CONTRACTS.md): the channel webhook and the generic
payment notify.

Version 2 (default): `X-OMS-Timestamp: <unix seconds>` and `X-OMS-Signature: sha256=<hex>`,
HMAC-SHA256 with the secret of "<timestamp>.<raw body>"; refused when the timestamp is more
than 300 s from our clock (a replay). Version 1 (HMAC of the body alone) is kept only for
channels created before version 2, which also take version 2 (the way to move over).
"""

import hashlib
import hmac
import re
import time

SIGNATURE_HEADER = "X-OMS-Signature"
TIMESTAMP_HEADER = "X-OMS-Timestamp"
TOLERANCE_SECONDS = 300
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")


def _key(secret: bytes | str) -> bytes:
    return secret if isinstance(secret, bytes) else secret.encode()


def digest(secret: bytes | str, body: bytes, timestamp: int | None = None) -> str:
    """The hex HMAC: of the body (version 1) or of "<timestamp>.<body>" (version 2)."""
    signed = body if timestamp is None else f"{timestamp}.".encode() + bytes(body)
    return hmac.new(_key(secret), signed, hashlib.sha256).hexdigest()


def sign(secret: bytes | str, body: bytes, *, version: int = 2, now: float | None = None) -> dict[str, str]:
    """The headers that sign `body` (for callers, tests and the sandbox)."""
    if version == 1:
        return {SIGNATURE_HEADER: f"sha256={digest(secret, body)}"}
    timestamp = int(now if now is not None else time.time())
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: f"sha256={digest(secret, body, timestamp)}"}


def _header(headers, name: str) -> str:
    wanted = name.lower()
    return next((str(v) for k, v in headers.items() if k.lower() == wanted), "")


def refusal(secret: bytes | str, body: bytes, headers, *, version: int = 2, now: float | None = None) -> str:
    """Why the signature is refused ("" when it is good)."""
    match = _SIGNATURE.fullmatch(_header(headers, SIGNATURE_HEADER).strip())
    if match is None:
        return f"missing or malformed {SIGNATURE_HEADER}"
    timestamp = None
    # A version-1 sender moving to version 2 sends the timestamp: checked as version 2, so the
    # integrator can switch before the channel is set to version 2 (which then refuses version 1).
    if version != 1 or _header(headers, TIMESTAMP_HEADER):
        stamp = _header(headers, TIMESTAMP_HEADER).strip()
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
            return f"missing or malformed {TIMESTAMP_HEADER}"
        timestamp = int(stamp)
        if abs((now if now is not None else time.time()) - timestamp) > TOLERANCE_SECONDS:
            return f"{TIMESTAMP_HEADER} is more than {TOLERANCE_SECONDS} s from the server's clock (a replay?)"
    # Bytes: compare_digest refuses a str with non-ASCII characters.
    if not hmac.compare_digest(digest(secret, body, timestamp).encode(), match.group(1).lower().encode()):
        return f"{SIGNATURE_HEADER} does not match the body"
    return ""
