"""Readers for notice fields; every failure names the field so the archive says what broke."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from . import NoticeError

CENT = Decimal("0.01")
# FundVoucher amounts are DecimalField(max_digits=14, decimal_places=2): refuse here what the
# database would refuse later, where the error would no longer name the field.
_AMOUNT_LIMIT = Decimal(10) ** 12
_YUAN_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
# China has observed no daylight saving since 1991, so a fixed offset is exact for any notice and
# needs no tz database.
SHANGHAI = timezone(timedelta(hours=8))


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup: plain dicts, Django's request.headers and test clients differ."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def text(data: Mapping, field: str, label: str | None = None) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value.strip():
        raise NoticeError(f"{label or field}: missing or empty")
    return value


def obj(data: Mapping, field: str) -> Mapping:
    value = data.get(field)
    if not isinstance(value, Mapping):
        raise NoticeError(f"{field}: missing or not an object")
    return value


def yuan(value: object, field: str) -> Decimal:
    """A positive yuan amount from a decimal string, an int or a Decimal, to exactly 2 places."""
    if isinstance(value, str):
        # Decimal() alone would also take "1_000", " 1", "NaN" and "1e3".
        if not _YUAN_TEXT.fullmatch(value):
            raise NoticeError(f"{field}: not a decimal amount: {value!r}")
        value = Decimal(value)
    elif isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise NoticeError(f"{field}: not an amount: {value!r}")
    amount = Decimal(value)
    if not amount.is_finite() or amount <= 0 or amount >= _AMOUNT_LIMIT:
        raise NoticeError(f"{field}: out of range: {value}")
    try:
        rounded = amount.quantize(CENT)
    except InvalidOperation:
        raise NoticeError(f"{field}: not an amount: {value}") from None
    if rounded != amount:
        raise NoticeError(f"{field}: finer than a fen: {value}")
    return rounded


def fen(value: object, field: str) -> Decimal:
    """WeChat amounts are integer fen; converting by scaling keeps 1 fen exactly 0.01."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise NoticeError(f"{field}: not an integer amount in fen: {value!r}")
    return yuan(Decimal(value).scaleb(-2), field)


def aware_iso(value: object, field: str) -> datetime:
    """An ISO 8601 / RFC 3339 time that carries its UTC offset."""
    if not isinstance(value, str):
        raise NoticeError(f"{field}: missing or not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise NoticeError(f"{field}: not an ISO 8601 time: {value!r}") from None
    if moment.utcoffset() is None:
        raise NoticeError(f"{field}: no UTC offset: {value!r}")
    return moment


def shanghai_local(value: object, field: str) -> datetime:
    """Alipay's 'YYYY-MM-DD HH:MM:SS', which is Beijing time."""
    if not isinstance(value, str):
        raise NoticeError(f"{field}: missing or not a string")
    try:
        moment = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise NoticeError(f"{field}: not 'YYYY-MM-DD HH:MM:SS': {value!r}") from None
    return moment.replace(tzinfo=SHANGHAI)


def currency(value: object, field: str, default: str | None = "CNY") -> str:
    if value is None or value == "":
        if default is None:
            raise NoticeError(f"{field}: missing")
        return default
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{3}", value):
        raise NoticeError(f"{field}: not an ISO 4217 code: {value!r}")
    return value.upper()


def json_object(data: bytes, field: str, **options) -> dict:
    """A JSON object, refusing NaN/Infinity so that `raw` stays valid JSON for the archive."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant, **options)
    except (ValueError, RecursionError):
        raise NoticeError(f"{field}: not JSON (or nested too deep)") from None
    if not isinstance(value, dict):
        raise NoticeError(f"{field}: not a JSON object")
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
