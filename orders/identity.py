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


def keyed_hash(value: str, key: str | None = None) -> str:
    key = settings.OMS_IDENTITY_KEY if key is None else key
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def _normalise_text(value: str) -> str:
    return re.sub(r"\s+", "", value or "").lower()


def phone_hash(phone: NormalisedPhone, key: str | None = None) -> str:
    return keyed_hash(f"phone:{phone.digits}", key) if phone.digits else ""


def masked_hash(phone: NormalisedPhone, key: str | None = None) -> str:
    return keyed_hash(f"masked:{phone.prefix}{phone.suffix}", key)


def identity_for(raw_phone: str, name: str = "", address: str = "") -> CustomerIdentity | None:
    identity = new_identity(raw_phone, name, address)
    if identity is None:
        return None
    adopt_previous([(raw_phone, name, address)], [identity])
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
    adopt_previous(buyers, wanted)
    # In key order: two pages with buyers in common wait for each other, never in a circle.
    CustomerIdentity.objects.bulk_create([new[key] for key in sorted(new)], ignore_conflicts=True)
    saved = CustomerIdentity.objects.in_bulk(list(new), field_name="key")
    return [None if identity is None else saved[identity.key] for identity in wanted]


def previous_key() -> str:
    """The key being rotated away from (OMS_IDENTITY_PREVIOUS_KEY), "" when none."""
    return getattr(settings, "OMS_IDENTITY_PREVIOUS_KEY", "") or ""


def adopt_previous(buyers, wanted: list[CustomerIdentity | None]) -> int:
    """During a key rotation: a buyer's identity stored under the previous key is re-keyed to
    the current one when the buyer is seen again (phones are never stored: a hash can only be
    made again from a phone in hand). Returns how many were re-keyed."""
    old_key = previous_key()
    if not old_key:
        return 0
    old = {}
    for buyer, identity in zip(buyers, wanted, strict=True):
        previous = new_identity(*buyer, key=old_key) if identity is not None else None
        if previous is not None:
            old[previous.key] = identity
    moved = 0
    for pk, key in CustomerIdentity.objects.filter(key__in=list(old)).values_list("pk", "key"):
        current = old[key]
        if CustomerIdentity.objects.filter(key=current.key).exists():
            continue  # seen under both keys already: the current one stays, the old one is left
        moved += CustomerIdentity.objects.filter(pk=pk, key=key).update(
            key=current.key, phone_hash=current.phone_hash, masked_hash=current.masked_hash)
    return moved


def new_identity(raw_phone: str, name: str = "", address: str = "", *, key: str | None = None
                 ) -> CustomerIdentity | None:
    """The identity of a buyer, not saved (None when the phone is unusable: also a platform's
    ciphertext, whose digits are no phone)."""
    if platform_ciphertext(raw_phone):
        return None
    phone = normalise_phone(raw_phone)
    if phone is None:
        return None
    if phone.digits:
        identity_key = phone_hash(phone, key)
        strength = CustomerIdentity.Strength.EXACT
    else:
        identity_key = keyed_hash(
            f"masked:{phone.prefix}{phone.suffix}|{_normalise_text(name)}|{_normalise_text(address)}", key)
        strength = CustomerIdentity.Strength.MASKED
    return CustomerIdentity(key=identity_key, strength=strength, phone_hash=phone_hash(phone, key),
                            masked_hash=masked_hash(phone, key), masked_phone=phone.masked)


def mask_phone(raw: str) -> str:
    phone = normalise_phone(raw)
    return phone.masked if phone else ""


def rehash_from_orders(progress=None, batch: int = 2000) -> dict[str, int]:
    """During a rotation, re-key the identities of every order's buyer from the receiver phone,
    name and address the order keeps (the phone a buyer identity was made from is not stored;
    an identity made from a different buyer phone is re-keyed when that buyer orders again)."""
    from django.db.models import F

    from .models import Order

    old_key = previous_key()
    if not old_key:
        raise ValueError("OMS_IDENTITY_PREVIOUS_KEY is not set: nothing is being rotated")
    orders = Order.objects.filter(customer__isnull=False)
    total, done = orders.count(), 0
    counts = {"rekeyed": 0, "current": 0, "other": 0}
    last = 0
    while True:
        rows = list(orders.filter(pk__gt=last).order_by("pk").values_list(
            "pk", "customer_id", F("customer__key"), "receiver_phone", "receiver_name", "receiver_address")[:batch])
        if not rows:
            break
        for pk, customer_id, key, phone, name, address in rows:
            last = pk
            current = new_identity(phone, name, address)
            if current is not None and current.key == key:
                counts["current"] += 1
            elif current is not None and (new_identity(phone, name, address, key=old_key) or current).key == key:
                if CustomerIdentity.objects.filter(key=current.key).exists():
                    counts["other"] += 1
                else:
                    CustomerIdentity.objects.filter(pk=customer_id, key=key).update(
                        key=current.key, phone_hash=current.phone_hash, masked_hash=current.masked_hash)
                    counts["rekeyed"] += 1
            else:
                counts["other"] += 1
        done += len(rows)
        if progress:
            progress(done, total)
    return counts
