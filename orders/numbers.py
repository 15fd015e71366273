"""Unified order numbers: channel prefix + local date + daily sequence, e.g. TB2026010900123."""

from datetime import datetime

from django.db import connection
from django.utils import timezone

from .models import OrderNumberSequence

_TABLE = OrderNumberSequence._meta.db_table

# One statement claims the next number: concurrent ingestion never hands out the same one.
# (PostgreSQL and SQLite >= 3.35 share this syntax.)
_NEXT_SQL = (
    f"INSERT INTO {_TABLE} (prefix, day, last) VALUES (%s, %s, 1) "  # noqa: S608 - table name is ours
    f"ON CONFLICT (prefix, day) DO UPDATE SET last = {_TABLE}.last + 1 RETURNING last"
)


def next_order_no(prefix: str, at: datetime | None = None) -> str:
    day = timezone.localdate(at or timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_SQL, [prefix, day])
        (number,) = cursor.fetchone()
    return f"{prefix}{day:%Y%m%d}{number:05d}"
