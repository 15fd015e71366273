"""Availability reads: the cache first, the database on a miss or when Redis is down."""

from dataclasses import dataclass

from . import cache
from .models import SKU, StockLevel, Warehouse


@dataclass
class Availability:
    sku: SKU
    levels: list[dict]
    source: str  # "cache" or "database"


def levels_from_database(sku_id: int) -> dict[int, dict]:
    return {
        warehouse_id: {"version": version, "on_hand": on_hand, "reserved": reserved,
                       "safety_stock": safety}
        for warehouse_id, version, on_hand, reserved, safety in StockLevel.objects.filter(
            sku_id=sku_id
        ).values_list("warehouse_id", "version", "on_hand", "reserved", "safety_stock")
    }


def availability(sku: SKU) -> Availability:
    levels = cache.read_levels(sku.pk)
    source = "cache"
    cache.count(hit=levels is not None)
    if levels is None:
        levels = levels_from_database(sku.pk)
        cache.replace_levels(sku.pk, levels)
        source = "database"
    codes = dict(Warehouse.objects.filter(pk__in=levels).values_list("pk", "code"))
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
