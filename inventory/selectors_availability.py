"""Availability reads: the cache first, the database on a miss or when Redis is down.

A hit costs one Redis round trip and one query, the warehouse codes, which also reads the
database's cache generation: when it is not the one the cache was read under (the database was
reset, restored or rotated since this process last looked), the read is a miss.
"""

from dataclasses import dataclass

from django.db import connection

from . import cache
from .models import SKU, CacheGeneration, StockLevel, Warehouse


@dataclass
class Availability:
    sku: SKU
    levels: list[dict]
    source: str  # "cache" or "database"


def levels_from_database(sku_id: int) -> dict[int, dict]:
    return levels_of_skus([sku_id]).get(sku_id, {})


def levels_of_skus(sku_ids) -> dict[int, dict[int, dict]]:
    """{sku_id: {warehouse_id: numbers}} for many SKUs in one query (SKUs without stock
    rows are left out)."""
    levels: dict[int, dict[int, dict]] = {}
    for sku_id, warehouse_id, version, on_hand, reserved, safety in StockLevel.objects.filter(
        sku_id__in=list(sku_ids)
    ).values_list("sku_id", "warehouse_id", "version", "on_hand", "reserved", "safety_stock"):
        levels.setdefault(sku_id, {})[warehouse_id] = {
            "version": version, "on_hand": on_hand, "reserved": reserved, "safety_stock": safety}
    return levels


# Table names are ours, every value a parameter. Raw SQL: on a hit this is the only query, and
# compiling it through the ORM cost more than running it.
_CODES_AND_GENERATION = (
    f"SELECT g.token, w.id, w.code FROM {CacheGeneration._meta.db_table} g "  # noqa: S608
    f"LEFT JOIN {Warehouse._meta.db_table} w ON {{match}} WHERE g.id = {CacheGeneration.ONE}"
)


def _codes_and_generation(warehouse_ids) -> tuple[dict[int, str], str]:
    """Warehouse codes, and the database's cache generation read by the same query."""
    ids = list(warehouse_ids)
    match = f"w.id IN ({', '.join(['%s'] * len(ids))})" if ids else "1 = 0"
    with connection.cursor() as cursor:
        cursor.execute(_CODES_AND_GENERATION.format(match=match), ids)
        rows = cursor.fetchall()
    if not rows:  # no generation row: a flushed database
        return dict(Warehouse.objects.filter(pk__in=ids).values_list("pk", "code")), CacheGeneration.current()
    return {pk: code for _, pk, code in rows if pk is not None}, rows[0][0]


def availability(sku: SKU) -> Availability:
    generation = cache.known_generation()
    levels = cache.read_levels(sku.pk, generation=generation, count=True)
    source = "cache"
    if levels is not None:
        codes, current = _codes_and_generation(levels)
        if current != generation:  # cached under a database that is gone
            levels = None
    if levels is None:
        levels = levels_from_database(sku.pk)
        codes, current = _codes_and_generation(levels)
        cache.replace_levels(sku.pk, levels, generation=current, miss=True)
        source = "database"
    cache.note_generation(current)
    rows = [
        {
            "warehouse": codes.get(warehouse_id, str(warehouse_id)),
            "on_hand": numbers["on_hand"],
            "reserved": numbers["reserved"],
            "available": numbers["on_hand"] - numbers["reserved"],
            "safety_stock": numbers["safety_stock"],
        }
        for warehouse_id, numbers in sorted(levels.items())
    ]
    return Availability(sku, rows, source)
