"""Request signatures of the Chinese platform gateways.

None of these is spelled out in ../shared/reference/channel-payment-bank-formats.md; they
follow the platforms' published signing rules (TOP "签名算法", JD 宙斯, Pinduoduo 开放平台,
抖店 open platform) as their public SDKs implement them. Check them against the platform's
own documentation before going live.
"""

from __future__ import annotations

import hashlib
import hmac
import json


def _pairs(params: dict) -> str:
    """k1v1k2v2…, keys sorted by byte order, `sign` and empty values left out."""
    return "".join(
        f"{key}{params[key]}" for key in sorted(params)
        if key != "sign" and params[key] is not None and params[key] != ""
    )


def sign_sorted_params(params: dict, secret: str, method: str = "md5") -> str:
    """TOP / JD / Pinduoduo: md5(secret + k1v1k2v2… + secret) in upper-case hex; TOP also
    takes `hmac` (HMAC-MD5 keyed by the secret over k1v1k2v2…) and `hmac-sha256`."""
    joined = _pairs(params)
    if method == "md5":
        digest = hashlib.md5((secret + joined + secret).encode(), usedforsecurity=False).hexdigest()
    elif method == "hmac":
        digest = hmac.new(secret.encode(), joined.encode(), hashlib.md5).hexdigest()
    elif method == "hmac-sha256":
        digest = hmac.new(secret.encode(), joined.encode(), hashlib.sha256).hexdigest()
    else:
        raise ValueError(f"unknown sign method {method!r}")
    return digest.upper()


def compact_json(data: dict) -> str:
    """JSON with sorted keys and no spaces: the form Douyin signs as param_json."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sign_douyin(app_key: str, secret: str, method: str, param_json: str, timestamp: str,
                version: str = "2", sign_method: str = "hmac-sha256") -> str:
    """抖店: secret + "app_key…method…param_json…timestamp…v…" + secret, hashed by HMAC-SHA256
    keyed by the secret (or md5 of the same string), lower-case hex."""
    pattern = (f"{secret}app_key{app_key}method{method}param_json{param_json}"
               f"timestamp{timestamp}v{version}{secret}")
    if sign_method == "md5":
        return hashlib.md5(pattern.encode(), usedforsecurity=False).hexdigest()
    return hmac.new(secret.encode(), pattern.encode(), hashlib.sha256).hexdigest()
