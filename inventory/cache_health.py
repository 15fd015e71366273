"""The scheduled availability-cache health check (every 10 minutes).

The field case: a nightly full refresh half-failed and left holes, and every stock check went
to the database. Write-throughs can be lost too (Redis unreachable for a moment, a process that
died between commit and publish), and only a SKU that moved can have lost one. So the check
covers every SKU whose stock rows changed since the last check that reached Redis (a margin
before it for transactions still open then), plus a random few others; compares the cache with
PostgreSQL in batches (one Redis round trip and one query per batch); repairs holes and wrong
values; records hit rate and mismatches and marks the check as alerting above the threshold.

The cache is read before the database, so every cached value was committed before the
database read: a cached version newer than the database's cannot come from a commit the read
missed; it means the database went back in time (a restore without
`manage.py rotate_cache_generation`) or the value is corrupt, and it is repaired. A repair is
versioned like a write-through: a commit that lands between the read and the repair wins.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings

from . import cache
from .models import SKU, CacheCheck, CacheGeneration, StockLevel
from .selectors_availability import levels_of_skus

logger = logging.getLogger(__name__)

RANDOM_SAMPLE = 50
BATCH = 500
MARGIN = timedelta(minutes=5)


def skus_to_check(random: int = RANDOM_SAMPLE) -> list[int]:
    """Every SKU whose stock rows changed since the last check that reached Redis (all SKUs
    with stock before the first one), then up to `random` others."""
    last = CacheCheck.objects.filter(cache_up=True).order_by("-at").values_list("at", flat=True).first()
    levels = StockLevel.objects.all() if last is None else StockLevel.objects.filter(updated_at__gte=last - MARGIN)
    moved = sorted(set(levels.values_list("sku_id", flat=True)))
    seen = set(moved)
    others = [pk for pk in SKU.objects.order_by("?").values_list("pk", flat=True)[:2 * random] if pk not in seen]
    return moved + others[:random]


@dataclass
class Finding:
    holes: int = 0
    wrong: int = 0
    ahead: list[int] = field(default_factory=list)  # warehouses cached newer than the database
    # cached values a repair may replace even though their version is newer: {field: value}
    overrule: dict[str, str] = field(default_factory=dict)
    settled: bool = True  # False while every problem may be a write-through on its way

    @property
    def problems(self) -> bool:
        return bool(self.holes or self.wrong)


def compare(fields: dict[str, str], truth: dict[int, dict], *, read_after_database: bool = False) -> Finding:
    """One SKU's cached hash against its database rows. A hash that is missing or not complete
    is one hole (reads miss it) when the SKU has stock rows. Holes and values behind the
    database may be write-throughs still on their way; a newer version or a warehouse the
    database lacks is wrong when the cache was read first, a later commit when it was read
    after the database."""
    cached = cache.complete_levels(fields)
    if cached is None:
        return Finding(holes=1 if truth else 0, settled=not truth)
    finding = Finding()
    settled = False
    for warehouse_id, numbers in truth.items():
        seen = cached.get(warehouse_id)
        if seen is None:
            finding.holes += 1
        elif seen["version"] < numbers["version"]:
            finding.wrong += 1
        elif seen["version"] > numbers["version"]:
            if not read_after_database:
                finding.ahead.append(warehouse_id)
                finding.overrule[str(warehouse_id)] = fields[str(warehouse_id)]
                finding.wrong += 1
                settled = True
        elif seen != numbers:  # the same version with other numbers: corrupt
            finding.wrong += 1
            settled = True
    if not read_after_database:
        for warehouse_id in cached:
            if warehouse_id not in truth:
                finding.overrule[str(warehouse_id)] = fields[str(warehouse_id)]
                finding.wrong += 1
                settled = True
    finding.settled = settled or not finding.problems
    return finding


def run_check(sku_ids: list[int] | None = None) -> CacheCheck:
    threshold = getattr(settings, "OMS_CACHE_MISMATCH_ALERT_RATIO", 0.01)
    sku_ids = skus_to_check() if sku_ids is None else sku_ids
    up = cache.answering()
    holes = wrong = repaired = 0
    ahead: list[tuple[int, int]] = []
    if up:
        generation = CacheGeneration.current()  # not this process's memory of it: a worker may
        cache.note_generation(generation)  # run nothing but checks for days
        try:
            for start in range(0, len(sku_ids), BATCH):
                found, more_ahead = _check_batch(sku_ids[start:start + BATCH], generation)
                holes, wrong, repaired = holes + found[0], wrong + found[1], repaired + found[2]
                ahead += more_ahead
        except Exception:  # noqa: BLE001 - Redis failed in the middle: report it as down
            logger.warning("availability cache check interrupted", exc_info=True)
            up = False
    if ahead:
        logger.error("availability cache held versions newer than the database at %s (SKU, warehouse) "
                     "pairs, e.g. %s: was the database restored? Run manage.py rotate_cache_generation "
                     "after a restore", len(ahead), ahead[:5])
    hits, misses = cache.take_counts()
    ratio = (holes + wrong) / len(sku_ids) if sku_ids else 0.0
    check = CacheCheck.objects.create(
        sampled=len(sku_ids), holes=holes, wrong=wrong, repaired=repaired, hits=hits,
        misses=misses, mismatch_ratio=ratio, alerting=(not up) or ratio > threshold, cache_up=up,
    )
    if check.alerting:
        logger.error("availability cache unhealthy: %s holes, %s wrong of %s checked, cache up: %s",
                     holes, wrong, len(sku_ids), up)
    return check


def _check_batch(sku_ids: list[int], generation: str) -> tuple[tuple[int, int, int], list[tuple[int, int]]]:
    """((holes, wrong, repaired), ahead pairs) for one batch: the cache read first, then the
    database, then the cache again for SKUs whose problems may be write-throughs on their way."""
    hashes = cache.read_hashes(sku_ids, generation=generation)
    truths = levels_of_skus(sku_ids)
    findings = {sku_id: compare(hashes[sku_id], truths.get(sku_id, {})) for sku_id in sku_ids}
    again = [sku_id for sku_id, finding in findings.items() if not finding.settled]
    if again:
        hashes.update(cache.read_hashes(again, generation=generation))
        for sku_id in again:
            findings[sku_id] = compare(hashes[sku_id], truths.get(sku_id, {}), read_after_database=True)
    holes = wrong = 0
    ahead, repairs = [], []
    for sku_id in sku_ids:
        finding = findings[sku_id]
        ahead += [(sku_id, warehouse_id) for warehouse_id in finding.ahead]
        if finding.problems:
            holes += finding.holes
            wrong += finding.wrong
            repairs.append((sku_id, truths.get(sku_id, {}), finding.overrule))
    if repairs:
        cache.fill_levels(repairs, generation=generation)
    return (holes, wrong, len(repairs)), ahead
