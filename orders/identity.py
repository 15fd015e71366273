"""Customer identity by keyed hash of the phone (ARCHITECTURE.md: money, time, identity).

Full phones hash to an exact identity. Masked phones (`138****1234`, `138-****-1234`) keep only
prefix and suffix, so they are weaker: their identity also includes name and address. Every
identity carries the hash of prefix + suffix, which is where full and masked phones meet.
"""

import hashlib
import hmac
import re
from dataclasses import dataclass

from django.conf import settings

from oms import rowsql

from .ciphertext import platform_ciphertext
from .models import CustomerIdentity

_SEPARATORS = re.compile(r"[\s\-()（）.]")
_MASKED = re.compile(r"^(\d{3})\*+(\d{4})$")
# +86 / 0086 / 86 before a mobile number, full (13800001234) or masked (138****1234).
_COUNTRY_PREFIX = re.compile(r"^(?:\+|00)?86(?=1\d{10}$|1\d{2}\*+\d{4}$)")


@dataclass(frozen=True)
class NormalisedPhone:
    digits: str | None  # the full number, or None when masked
    prefix: str
    suffix: str

    @property
    def masked(self) -> str:
        return f"{self.prefix}****{self.suffix}"


def normalise_phone(raw: str) -> NormalisedPhone | None:
    """Digits only, country code stripped; None when nothing usable is left."""
    text = _SEPARATORS.sub("", raw or "")
    text = _COUNTRY_PREFIX.sub("", text)
    masked = _MASKED.match(text)
    if masked:
        return NormalisedPhone(None, masked.group(1), masked.group(2))
    digits = re.sub(r"\D", "", text)
    if len(digits) < 7:
        return None
    return NormalisedPhone(digits, digits[:3], digits[-4:])


def keyed_hash(value: str) -> str:
    return hmac.new(settings.OMS_IDENTITY_KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def _normalise_text(value: str) -> str:
    return re.sub(r"\s+", "", value or "").lower()


def phone_hash(phone: NormalisedPhone) -> str:
    return keyed_hash(f"phone:{phone.digits}") if phone.digits else ""


def masked_hash(phone: NormalisedPhone) -> str:
    return keyed_hash(f"masked:{phone.prefix}{phone.suffix}")


def identity_for(raw_phone: str, name: str = "", address: str = "") -> CustomerIdentity | None:
    identity = new_identity(raw_phone, name, address)
    if identity is None:
        return None
    # Insert first: a new buyer costs one statement and no savepoint; a known one (or a
    # concurrent first order of the same buyer) is then read.
    if rowsql.insert_instance(identity, skip_on_conflict=True):
        return identity
    return CustomerIdentity.objects.get(key=identity.key)


def identities_for(buyers: list[tuple[str, str, str]]) -> list[CustomerIdentity | None]:
    """`identity_for` of many (phone, name, address) at once: two statements in all."""
    wanted = [new_identity(*buyer) for buyer in buyers]
    new = {identity.key: identity for identity in wanted if identity is not None}
    if not new:
        return wanted
    # In key order: two pages with buyers in common wait for each other, never in a circle.
    CustomerIdentity.objects.bulk_create([new[key] for key in sorted(new)], ignore_conflicts=True)
    saved = CustomerIdentity.objects.in_bulk(list(new), field_name="key")
    return [None if identity is None else saved[identity.key] for identity in wanted]


def new_identity(raw_phone: str, name: str = "", address: str = "") -> CustomerIdentity | None:
    """The identity of a buyer, not saved (None when the phone is unusable: also a platform's
    ciphertext, whose digits are no phone)."""
    if platform_ciphertext(raw_phone):
        return None
    phone = normalise_phone(raw_phone)
    if phone is None:
        return None
    if phone.digits:
        key = phone_hash(phone)
        strength = CustomerIdentity.Strength.EXACT
    else:
        key = keyed_hash(f"masked:{phone.prefix}{phone.suffix}|{_normalise_text(name)}|{_normalise_text(address)}")
        strength = CustomerIdentity.Strength.MASKED
    return CustomerIdentity(key=key, strength=strength, phone_hash=phone_hash(phone),
                            masked_hash=masked_hash(phone), masked_phone=phone.masked)


def mask_phone(raw: str) -> str:
    phone = normalise_phone(raw)
    return phone.masked if phone else ""
