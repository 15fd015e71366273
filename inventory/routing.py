"""Which warehouse ships an order (ARCHITECTURE.md: routing).

One warehouse that can ship every line, preferring those that serve the receiver's province,
then lower priority number, then more stock; otherwise, where the channel allows it, each line
from the best warehouse that has it (a split); otherwise nothing, with the shortages.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from .models import StockLevel, Warehouse


@dataclass
class Plan:
    """Line id → warehouse id, or the shortages that prevent any plan."""

    assignments: dict[int, int] = field(default_factory=dict)
    shortages: list[dict] = field(default_factory=list)

    @property
    def warehouses(self) -> list[int]:
        return sorted(set(self.assignments.values()))

    @property
    def split(self) -> bool:
        return len(self.warehouses) > 1


def _ranked(warehouses, province: str, availability: dict[int, dict[int, int]]) -> list:
    def key(warehouse):
        serves = province in (warehouse.provinces or [])
        total = sum(availability.get(warehouse.pk, {}).values())
        return (not serves, warehouse.priority, -total, warehouse.code)

    return sorted(warehouses, key=key)


def plan_for(lines: list[tuple[int, int, int]], province: str, allow_split: bool,
             exclude: set[int] = frozenset(), only: int | None = None) -> Plan:
    """`lines` are (line id, sku id, quantity). `only` forces one warehouse (a manual route)."""
    warehouses, availability = load_stock({sku_id for _, sku_id, _ in lines}, exclude, only)
    return plan_from(lines, province, allow_split, warehouses, availability, only)


def load_stock(sku_ids, exclude: set[int] = frozenset(), only: int | None = None
               ) -> tuple[list[Warehouse], dict[int, dict[int, int]]]:
    """The active warehouses (less `exclude`, or just `only`) and what each has available of
    these SKUs: warehouse id → SKU id → units."""
    warehouses = list(Warehouse.objects.filter(active=True).exclude(pk__in=exclude))
    if only is not None:
        warehouses = [w for w in warehouses if w.pk == only]
    availability: dict[int, dict[int, int]] = defaultdict(dict)
    for warehouse_id, sku_id, on_hand, reserved in StockLevel.objects.filter(
        sku_id__in=set(sku_ids), warehouse__in=warehouses
    ).values_list("warehouse_id", "sku_id", "on_hand", "reserved"):
        availability[warehouse_id][sku_id] = on_hand - reserved
    return warehouses, availability


def plan_from(lines: list[tuple[int, int, int]], province: str, allow_split: bool,
              warehouses: list[Warehouse], availability: dict[int, dict[int, int]],
              only: int | None = None) -> Plan:
    """The plan for `lines` given what `load_stock` found (which may cover more SKUs: a page of
    orders planned together)."""
    sku_ids = {sku_id for _, sku_id, _ in lines}
    if any(set(stock) - sku_ids for stock in availability.values()):
        availability = {w: {s: q for s, q in stock.items() if s in sku_ids} for w, stock in availability.items()}
    needed: dict[int, int] = defaultdict(int)
    for _, sku_id, quantity in lines:
        needed[sku_id] += quantity
    ranked = _ranked(warehouses, province, availability)
    for warehouse in ranked:
        stock = availability.get(warehouse.pk, {})
        if all(stock.get(sku_id, 0) >= qty for sku_id, qty in needed.items()):
            return Plan({line_id: warehouse.pk for line_id, _, _ in lines})
    if allow_split and only is None:
        plan = Plan()
        left = {w.pk: dict(availability.get(w.pk, {})) for w in ranked}
        for line_id, sku_id, quantity in lines:
            chosen = next((w for w in ranked if left[w.pk].get(sku_id, 0) >= quantity), None)
            if chosen is None:
                break
            left[chosen.pk][sku_id] -= quantity
            plan.assignments[line_id] = chosen.pk
        else:
            return plan
    best = {sku_id: max((availability.get(w.pk, {}).get(sku_id, 0) for w in warehouses), default=0)
            for sku_id in needed}
    return Plan(shortages=[
        {"sku_id": sku_id, "needed": qty, "best_available": best[sku_id]}
        for sku_id, qty in needed.items() if best[sku_id] < qty
    ] or [{"sku_id": sku_id, "needed": qty, "best_available": best[sku_id]}
          for sku_id, qty in needed.items()])
