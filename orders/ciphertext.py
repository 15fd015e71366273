"""Receiver data the platforms send encrypted (their decrypt APIs are per call and audited).

Such a value is kept as the platform sent it — it is what the decrypt call needs later — but it
is never shown, routed on or hashed as if it were a name, phone or address: intake holds the
order with the reason until a decrypted value is available.

Forms recognised:
* JD: `AAS…` (base64 after the `AAS` marker);
* Douyin shop and Pinduoduo: a base64 body between repeated delimiters — `#…#…#` (name),
  `$…$…$` (phone), `~…~…~` (address; Pinduoduo's `~AgAAAA…~0~` too).
Taobao/Tmall send masked values with an `oaid` instead: those are masks, not ciphertext, and are
read as masked (a masked phone still identifies a buyer together with name and address).
"""

import re

_BASE64 = re.compile(r"^[A-Za-z0-9+/=_\-*]+$")
_JD = re.compile(r"^AAS[A-Za-z0-9+/=]{16,}$")


def platform_ciphertext(value) -> str:
    """The platform whose ciphertext `value` is ("jd", "douyin/pdd"), or ""."""
    text = str(value or "").strip()
    if len(text) < 16:
        return ""
    if _JD.match(text):
        return "jd"
    first = text[0]
    # A masked search index may stand in the first part (#张*#…): one part must be the cipher.
    if first in "#$~" and text.count(first) >= 3 and any(
            len(part) >= 16 and _BASE64.match(part) for part in text.split(first)):
        return "douyin/pdd"
    return ""


def encrypted_fields(receiver: dict) -> list[str]:
    return [name for name, value in receiver.items() if isinstance(value, str) and platform_ciphertext(value)]
