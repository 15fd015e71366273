"""Unified order numbers: channel prefix + local date + daily sequence, e.g. TB2026010900123.

By default each number is claimed by one upsert inside the caller's transaction: numbers are
contiguous, but the day's counter row stays locked until that transaction commits, so
concurrent order creation of one prefix takes turns. With OMS_ORDER_NUMBER_BLOCK > 1 (on
PostgreSQL) a process claims that many numbers at a time on a connection of its own, committed
at once: the counter is locked for one statement per block, and a rolled-back order never hands
its number out again. Numbers then stay unique but interleave between processes, with gaps
where a process stopped before using its whole block.
"""

import os
import threading
from datetime import date, datetime

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.utils import timezone

from .models import OrderNumberSequence

_TABLE = OrderNumberSequence._meta.db_table

# One statement claims the next `count` numbers and returns the last of them: concurrent
# ingestion never hands out the same one. (PostgreSQL and SQLite >= 3.35 share this syntax.)
_CLAIM_SQL = (
    f"INSERT INTO {_TABLE} (prefix, day, last) VALUES (%s, %s, %s) "  # noqa: S608 - table name is ours
    f"ON CONFLICT (prefix, day) DO UPDATE SET last = {_TABLE}.last + %s RETURNING last"
)

_blocks: dict[tuple[str, date], list[int]] = {}  # (prefix, day) → [next number, last of block]
_blocks_lock = threading.Lock()
_local = threading.local()


def next_order_no(prefix: str, at: datetime | None = None) -> str:
    day = timezone.localdate(at or timezone.now())
    block = getattr(settings, "OMS_ORDER_NUMBER_BLOCK", 1)
    if block > 1 and connection.vendor == "postgresql":
        number = _from_block(prefix, day, block)
    else:
        number = _claim(connection, prefix, day, 1)
    return f"{prefix}{day:%Y%m%d}{number:05d}"


def next_order_nos(prefix: str, placed: list[datetime]) -> list[str]:
    """`next_order_no` for each of many orders (placed at these times): one claim per day
    they fall on, unless numbers come from blocks."""
    days = [timezone.localdate(at) for at in placed]
    block = getattr(settings, "OMS_ORDER_NUMBER_BLOCK", 1)
    if block > 1 and connection.vendor == "postgresql":
        numbers = [_from_block(prefix, day, block) for day in days]
    else:
        counts: dict[date, int] = {}
        for day in days:
            counts[day] = counts.get(day, 0) + 1
        # Days in order: two pages spanning the same days never wait for each other in a circle.
        following = {day: _claim(connection, prefix, day, counts[day]) - counts[day] + 1 for day in sorted(counts)}
        numbers = []
        for day in days:
            numbers.append(following[day])
            following[day] += 1
    return [f"{prefix}{day:%Y%m%d}{number:05d}" for day, number in zip(days, numbers, strict=True)]


def _claim(on, prefix: str, day: date, count: int) -> int:
    with on.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [prefix, day, count, count])
        (last,) = cursor.fetchone()
    return last


def _from_block(prefix: str, day: date, size: int) -> int:
    with _blocks_lock:
        block = _blocks.get((prefix, day))
        if block is None or block[0] > block[1]:
            last = _claim_committed(prefix, day, size)
            if len(_blocks) > 1000:  # yesterday's blocks are of no use any more
                _blocks.clear()
            block = _blocks[(prefix, day)] = [last - size + 1, last]
        number = block[0]
        block[0] += 1
    return number


def _claim_committed(prefix: str, day: date, size: int) -> int:
    """Claim on this thread's own autocommit connection, outside the caller's transaction."""
    own = getattr(_local, "connection", None)
    if own is None:
        own = _local.connection = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        return _claim(own, prefix, day, size)
    except DatabaseError:
        own.close()  # broken (the database restarted?): the next claim reconnects
        _local.connection = None
        raise


def forget_blocks() -> None:
    """Drop the numbers this process holds (tests, and a child after fork: two processes must
    never hand out the same block)."""
    global _blocks_lock, _local
    _blocks_lock, _local = threading.Lock(), threading.local()
    _blocks.clear()


os.register_at_fork(after_in_child=forget_blocks)
