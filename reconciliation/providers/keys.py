"""Loading the providers' RSA public keys from whatever form their consoles hand them out in."""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey


def load_public_key(pem: bytes | str) -> RSAPublicKey:
    """An RSA public key from a PEM public key (SPKI or PKCS#1), a PEM X.509 certificate
    (WeChat platform certificates) or a bare base64 DER key (how the Alipay console shows
    the 支付宝公钥)."""
    data = (pem.encode("ascii") if isinstance(pem, str) else bytes(pem)).strip()
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        elif data.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(
                base64.b64decode(b"".join(data.split()), validate=True)
            )
    except (ValueError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a public key or certificate: {exc}") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"expected an RSA public key, got {type(key).__name__}")
    return key


def as_public_key(key: RSAPublicKey | bytes | str) -> RSAPublicKey:
    if isinstance(key, RSAPublicKey):
        return key
    if isinstance(key, bytes | str):
        return load_public_key(key)
    raise TypeError(f"expected an RSA public key or its PEM, got {type(key).__name__}")
