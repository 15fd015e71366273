"""Cell values as statement files print them: ids, amounts, dates, times and currencies.

Every function takes the raw cell. They run once per cell of files with a million rows, so the
shapes providers actually print take a str-method fast path; anything else reaches a slower
general path (a regex only for dates nobody machine-writes).
"""

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

from .model import ZERO

SHANGHAI = ZoneInfo("Asia/Shanghai")

MISSING = "missing value"
NOT_AMOUNT = "not an amount"
NOT_DATE = "not a date"
NOT_TIME = "not a time"
# Money columns are numeric(14, 2): twelve digits before the point.
TOO_LARGE = "more than 12 digits before the decimal point"
AMOUNT_DIGITS = 12

# Backticks (WeChat), trailing tabs (Alipay), NBSP/ideographic spaces (Excel, Chinese banks).
_STRIP = " \t\r\n\x0b\x0c\xa0\u3000\ufeff`"
_CURRENCY_SIGNS = ("¥", "￥")
# Outside these years a date is a typo or an Excel artefact (1900-01-00), not a statement line.
_YEARS = range(1990, 2101)

_fromisoformat = datetime.fromisoformat
# Bills are sorted by time and a busy day has many rows per second, so the date-time cell just
# seen comes back; datetimes are immutable, so sharing them is safe.
_RECENT_TIMES = 4096

_LOOSE_DATETIME = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:\s*T?\s*(\d{1,2})\s*[:：时]\s*(\d{1,2})(?:\s*[:：分]\s*(\d{1,2})(?:\.\d{1,6})?\s*秒?)?)?",
    re.ASCII,
)
_COMPACT_DATETIME = re.compile(r"(\d{4})(\d{2})(\d{2})(?:[ T]?(\d{2}):?(\d{2})(?::?(\d{2}))?)?", re.ASCII)
# _LOOSE_DATETIME takes any run of whitespace wherever it takes one, so runs are shortened to one
# space first: three \s* in a row make a long run cost cubic time to fail (58 s for 2,000 spaces).
_WHITESPACE_RUN = re.compile(r"\s{2,}", re.ASCII)

_CURRENCIES = {
    "CNY": "CNY", "RMB": "CNY", "人民币": "CNY", "156": "CNY", "¥": "CNY", "￥": "CNY",
    "美元": "USD", "港币": "HKD", "港元": "HKD", "欧元": "EUR", "日元": "JPY", "英镑": "GBP",
}


class CellError(ValueError):
    """A cell that can't be read. `column` is set by checks that span cells (debit and credit)."""

    def __init__(self, reason: str, column: int = -1):
        super().__init__(reason)
        self.reason = reason
        self.column = column


def clean(raw: str) -> str:
    text = raw.strip(_STRIP)
    # Excel-safe exports write ids as ="0123" so leading zeros and 19-digit numbers survive.
    if text[:1] == "=" and text[1:2] == '"' and text[-1:] == '"' and len(text) > 2:
        text = text[2:-1].strip(_STRIP)
    return text


def ident(raw: str) -> str:
    """A required id or key."""
    text = raw.strip(_STRIP)
    if text[:1] == "=":
        text = clean(text)
    if not text:
        raise CellError(MISSING)
    return text


def amount(raw: str) -> Decimal:
    """A required amount as a 2-place Decimal."""
    return _decimal(raw.strip(_STRIP))


def optional_amount(raw: str) -> Decimal:
    """An amount where a blank cell means zero (fee and split debit/credit columns)."""
    text = raw.strip(_STRIP)
    return _decimal(text) if text else ZERO


def _decimal(text: str) -> Decimal:
    # Nearly every cell is plain 1234.56: let Decimal parse it once isascii() has ruled out
    # Unicode digits and "_", the separators Decimal would otherwise accept, two digits after
    # the point an exponent (1.e5), and the length more than AMOUNT_DIGITS digits.
    if (text[-3:-2] == "." and text[-2:].isdigit() and len(text) <= AMOUNT_DIGITS + 3 and text.isascii()
            and "_" not in text):
        try:
            value = Decimal(text)
        except InvalidOperation:
            return _amount(clean(text))
        return value if value else ZERO
    return _amount(clean(text))


def fee(raw: str) -> Decimal:
    """A fee column that must not be negative."""
    value = optional_amount(raw)
    if value < 0:
        raise CellError("negative fee")
    return value


def _amount(text: str) -> Decimal:
    if not text:
        raise CellError(MISSING)
    sign = ""
    if text[0] in "+-":
        sign = "-" if text[0] == "-" else ""
        text = text[1:]
    if text.startswith(_CURRENCY_SIGNS):
        text = text[1:]
    if "," in text:
        text = _ungroup(text)
    whole, _, frac = text.partition(".")
    if not (text.isascii() and whole.isdigit() and (frac.isdigit() or not frac)):
        raise CellError(NOT_AMOUNT)
    if len(whole) > AMOUNT_DIGITS and len(whole.lstrip("0")) > AMOUNT_DIGITS:
        raise CellError(TOO_LARGE)
    if len(frac) > 2:
        # WeChat prints fees with 5 places (0.36000); only trailing zeros are harmless.
        if frac[2:].strip("0"):
            raise CellError("more than 2 decimal places")
        frac = frac[:2]
    value = Decimal(f"{sign}{whole}.{frac:0<2}")
    return value if value else ZERO


def _ungroup(text: str) -> str:
    whole, dot, frac = text.partition(".")
    groups = whole.split(",")
    if not 1 <= len(groups[0]) <= 3 or any(len(group) != 3 for group in groups[1:]):
        raise CellError(NOT_AMOUNT)
    return "".join(groups) + dot + frac


@lru_cache(maxsize=_RECENT_TIMES)
def when(raw: str) -> datetime:
    """An aware datetime; cells without a zone are Asia/Shanghai."""
    text = raw.strip(_STRIP)
    if len(text) == 19 and text[10] == " " and text.isascii():
        if text[4] == "/":
            text = text.replace("/", "-")
        try:
            moment = _fromisoformat(text)
        except ValueError:
            moment = _when(clean(raw))
        else:
            # Rebuilding beats .replace(tzinfo=...), which costs five times more per call.
            moment = datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute,
                              moment.second, 0, SHANGHAI)
    else:
        moment = _when(clean(text))
    if moment.year not in _YEARS:
        raise CellError(NOT_DATE)
    return moment


def _when(text: str) -> datetime:
    if not text:
        raise CellError(MISSING)
    if text.isascii():
        try:
            moment = _fromisoformat(text.replace("/", "-"))
        except ValueError:
            moment = _loose(text)
    else:
        moment = _loose(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


def _loose(text: str) -> datetime:
    match = _LOOSE_DATETIME.fullmatch(_WHITESPACE_RUN.sub(" ", text)) or _COMPACT_DATETIME.fullmatch(text)
    if match is None:
        raise CellError(NOT_DATE)
    try:
        return datetime(*(int(part or 0) for part in match.groups()))
    except ValueError:
        raise CellError(NOT_DATE) from None


def is_time_only(text: str) -> bool:
    """True for a bank's separate time cell (090512, 9:05:12), False for a full date-time."""
    digits = text.replace(":", "")
    return len(digits) <= 6 and digits.isdigit() and digits.isascii()


def time_of_day(raw: str) -> tuple[int, int, int]:
    """HHMMSS (090512, or 1000 once Excel has read 001000 as a number), 09:05:12 or 09:05."""
    text = clean(raw)
    if ":" in text:
        parts = text.split(":")
        if len(parts) == 2:
            parts.append("0")
    else:
        digits = text.zfill(6)
        parts = [digits[0:2], digits[2:4], digits[4:6]] if len(digits) == 6 else []
    if len(parts) != 3 or not all(part.isdigit() and part.isascii() for part in parts):
        raise CellError(NOT_TIME)
    hour, minute, second = (int(part) for part in parts)
    if hour > 23 or minute > 59 or second > 59:
        raise CellError(NOT_TIME)
    return hour, minute, second


@lru_cache(maxsize=256)
def currency(raw: str) -> str:
    code = _CURRENCIES.get(raw)
    if code is not None:
        return code
    text = clean(raw)
    if not text:
        return "CNY"
    code = _CURRENCIES.get(text)
    if code is None:
        if len(text) == 3 and text.isascii() and text.isalpha():
            return text.upper()
        raise CellError("not a currency")
    return code
