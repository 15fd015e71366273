"""The scheduled availability-cache health check.

The field case: a nightly full refresh half-failed and left holes, and every stock check went
to the database. This samples the hottest SKUs (most reservations in the last hour) plus a
random few, compares the cache with PostgreSQL, repairs holes and wrong values, records hit
rate and mismatches, and marks the check as alerting above the threshold.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from . import cache
from .models import SKU, CacheCheck, MovementKind, StockMovement
from .selectors_availability import levels_from_database

logger = logging.getLogger(__name__)

HOT_SAMPLE = 200
RANDOM_SAMPLE = 50


def sample_skus(hot: int = HOT_SAMPLE, random: int = RANDOM_SAMPLE) -> list[int]:
    since = timezone.now() - timedelta(hours=1)
    hot_ids = list(
        StockMovement.objects.filter(kind=MovementKind.RESERVE, created_at__gte=since)
        .values("sku_id").annotate(n=Count("id")).order_by("-n").values_list("sku_id", flat=True)[:hot]
    )
    others = list(SKU.objects.exclude(pk__in=hot_ids).order_by("?").values_list("pk", flat=True)[:random])
    return hot_ids + others


def compare(cached: dict[int, dict] | None, truth: dict[int, dict]) -> tuple[int, int]:
    """(holes, wrong) for one SKU. A cached value with a newer version than the database read
    is a write that committed after our read, not an error."""
    if cached is None:
        return (1 if truth else 0), 0
    holes = sum(1 for warehouse_id in truth if warehouse_id not in cached)
    wrong = 0
    for warehouse_id, numbers in truth.items():
        seen = cached.get(warehouse_id)
        if seen is None or seen["version"] > numbers["version"]:
            continue
        if (seen["on_hand"], seen["reserved"], seen["safety_stock"]) != (
            numbers["on_hand"], numbers["reserved"], numbers["safety_stock"]
        ):
            wrong += 1
    wrong += sum(1 for warehouse_id in cached if warehouse_id not in truth)
    return holes, wrong


def run_check(sku_ids: list[int] | None = None) -> CacheCheck:
    threshold = getattr(settings, "OMS_CACHE_MISMATCH_ALERT_RATIO", 0.01)
    sku_ids = sample_skus() if sku_ids is None else sku_ids
    up = cache.answering()
    holes = wrong = repaired = 0
    if up:
        for sku_id in sku_ids:
            truth = levels_from_database(sku_id)
            sku_holes, sku_wrong = compare(cache.read_levels(sku_id), truth)
            if sku_holes or sku_wrong:
                holes += sku_holes
                wrong += sku_wrong
                repaired += int(cache.replace_levels(sku_id, truth))
    hits, misses = cache.take_counts()
    ratio = (holes + wrong) / len(sku_ids) if sku_ids else 0.0
    check = CacheCheck.objects.create(
        sampled=len(sku_ids), holes=holes, wrong=wrong, repaired=repaired, hits=hits,
        misses=misses, mismatch_ratio=ratio, alerting=(not up) or ratio > threshold, cache_up=up,
    )
    if check.alerting:
        logger.error("availability cache unhealthy: %s holes, %s wrong of %s sampled, cache up: %s",
                     holes, wrong, len(sku_ids), up)
    return check
