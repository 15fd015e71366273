"""Reading platform values into the unified order input: money, times, counts, text.

Money is Decimal from end to end and leaves as a string with two decimals ("12.30"). A JSON
number that the JSON parser already turned into a float is read back through its shortest
round-trip text (repr), which is the decimal the platform wrote for any amount of up to 15
significant digits: no float arithmetic ever happens. Anything that cannot be read exactly
raises NormaliseError naming the field.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Context, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from .base import NormaliseError, printed, shown

SHANGHAI = ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# Dates platforms send for "not yet" (JD: 0001-01-01 00:00:00).
NO_DATE_PREFIXES = ("0001-01-01", "0000-00-00")
# Numbers of more digits are no amount, count or time any platform sends. Bounding them keeps
# every sum and product of them exact enough and quantize() within the decimal context.
MAX_DIGITS = 18
# Money leaves through a context wide enough for any sum of such numbers: an order that does
# not fit our numeric(14, 2) is the order serializer's to refuse, naming the field.
_WIDE = Context(prec=80)


def decimal_of(value, field: str) -> Decimal:
    """The exact decimal a platform sent (string, int, Decimal or JSON-parsed float)."""
    if value is None or value == "":
        raise NormaliseError(field, "missing")
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        text = printed(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise NormaliseError(field, f"not an amount: {shown(value)}")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise NormaliseError(field, f"not an amount: {shown(value)}") from None
    if not number.is_finite():
        raise NormaliseError(field, f"not an amount: {shown(value)}")
    if number and number.adjusted() >= MAX_DIGITS:
        raise NormaliseError(field, f"not an amount: {shown(value)} has more than {MAX_DIGITS} digits")
    return number


def yuan(value, field: str, default: str | None = None) -> Decimal:
    """An amount in yuan (元) with at most two decimals, exactly."""
    if (value is None or value == "") and default is not None:
        value = default
    number = decimal_of(value, field)
    cents = number.quantize(CENT)
    if cents != number:
        raise NormaliseError(field, f"{shown(value)} has more than two decimals")
    return cents + ZERO  # normalises -0.00 to 0.00


def fen(value, field: str, default: int | None = None) -> Decimal:
    """An amount in fen (分, integer cents) as yuan: 12345 → Decimal("123.45"), exactly."""
    if (value is None or value == "") and default is not None:
        value = default
    number = decimal_of(value, field)
    if number != number.to_integral_value():
        raise NormaliseError(field, f"{shown(value)} is not a whole number of fen")
    return (number.scaleb(-2)).quantize(CENT) + ZERO


def money(amount: Decimal) -> str:
    """Decimal → "12.30" (never an exponent, never -0.00)."""
    return format((amount + ZERO).quantize(CENT, context=_WIDE), "f")


def whole(value, field: str, minimum: int = 0) -> int:
    """A whole number (possibly sent as a string) of at least `minimum`."""
    number = decimal_of(value, field)
    if number != number.to_integral_value() or number < minimum:
        raise NormaliseError(field, f"not a whole number ≥ {minimum}: {shown(value)}")
    return int(number)


def count(value, field: str) -> int:
    """A quantity: a positive whole number, possibly sent as a string."""
    return whole(value, field, minimum=1)


def local_time(value, field: str) -> str | None:
    """A platform time as aware ISO-8601 in Asia/Shanghai.

    Naive "yyyy-MM-dd HH:mm:ss" is Beijing time (TOP, JD, Pinduoduo); a time with an offset
    or Z keeps its instant; "not yet" markers and empty values are None.
    """
    if value is None or value == "":
        return None
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return unix_time(value, field)
    if not isinstance(value, str):
        raise NormaliseError(field, f"not a time: {shown(value)}")
    text = value.strip()
    if text.startswith(NO_DATE_PREFIXES):
        return None
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=SHANGHAI)
        # 9999-12-31T23:00-10:00 is a valid text whose Beijing time is past year 9999.
        return moment.astimezone(SHANGHAI).isoformat()
    except (ValueError, OverflowError):
        raise NormaliseError(field, f"not a time: {shown(value)}") from None


def unix_time(value, field: str) -> str | None:
    """Unix seconds (Douyin) as aware ISO-8601 in Asia/Shanghai; 0/empty is None."""
    if value is None or value == "" or value == 0 or value == "0":
        return None
    number = decimal_of(value, field)
    if number != number.to_integral_value() or number < 0:
        raise NormaliseError(field, f"not unix seconds: {shown(value)}")
    try:
        return datetime.fromtimestamp(int(number), SHANGHAI).isoformat()
    except (OverflowError, OSError, ValueError):
        raise NormaliseError(field, f"not unix seconds: {shown(value)}") from None


def beijing(moment: datetime) -> str:
    """An aware datetime as the "yyyy-MM-dd HH:mm:ss" Beijing time the Chinese APIs take."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def text(value) -> str:
    """A string field as given (masked phones such as 138****1234 stay as they are)."""
    if value is None:
        return ""
    return printed(value).strip()


# Ciphertext some platforms put in PII fields (Pinduoduo "~…~", Douyin "#…#", "$…$").
_CIPHERTEXT = re.compile(r"^([~#$]).{8,}\1$", re.DOTALL)


def readable(value, mask=None) -> str:
    """The plain or masked value of a PII field: its `*_mask` companion when the field
    itself holds ciphertext and a companion was sent; otherwise the field as given."""
    plain = text(value)
    if mask not in (None, "") and (not plain or _CIPHERTEXT.match(plain)):
        return text(mask)
    return plain


def identifier(value, field: str) -> str:
    """A platform id (number or string) as a string; NormaliseError when missing."""
    if value is None or isinstance(value, bool | dict | list):
        raise NormaliseError(field, "missing" if value is None else f"not an id: {shown(value)}")
    result = printed(value).strip()
    if not result:
        raise NormaliseError(field, "missing")
    return result


def join_street(street, address) -> str:
    """The street (街道/镇) before the detail address, unless the detail already starts with it."""
    street, address = text(street), text(address)
    if street and not address.startswith(street):
        return f"{street}{address}"
    return address


def without_empty_times(data: dict) -> dict:
    """The order serializer refuses null times, so a time the platform did not send (no
    payment yet) is left out of the normalised order instead of being None."""
    for key in ("placed_at", "paid_at", "updated_at"):
        if key in data and data[key] is None:
            del data[key]
    return data
