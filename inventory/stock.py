"""Conditional updates of StockLevel counters, each paired with its StockMovement.

The only code that changes on_hand or reserved. Each change is one UPDATE whose WHERE clause
carries the invariant (`on_hand - reserved >= q` to reserve), so concurrent writers can never
oversell; the row count tells whether it applied. Callers run inside a transaction and change
several rows in one fixed order (SKU id, then warehouse id), which rules out deadlocks.
"""

from dataclasses import dataclass

from django.db import connection, transaction

from .models import MovementKind, StockLevel, StockMovement

_TABLE = StockLevel._meta.db_table


@dataclass(frozen=True)
class LevelState:
    warehouse_id: int
    sku_id: int
    on_hand: int
    reserved: int
    safety_stock: int
    version: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


def _update(warehouse_id: int, sku_id: int, on_hand_delta: int, reserved_delta: int,
            guard: str, guard_params: list) -> LevelState | None:
    sql = (
        f"UPDATE {_TABLE} SET on_hand = on_hand + %s, reserved = reserved + %s, "  # noqa: S608
        "version = version + 1, updated_at = CURRENT_TIMESTAMP "
        f"WHERE warehouse_id = %s AND sku_id = %s AND {guard} "
        "RETURNING on_hand, reserved, safety_stock, version"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [on_hand_delta, reserved_delta, warehouse_id, sku_id, *guard_params])
        row = cursor.fetchone()
    if row is None:
        return None
    state = LevelState(warehouse_id, sku_id, *row)
    _after_commit_publish(state)
    return state


def _after_commit_publish(state: LevelState) -> None:
    from .cache import publish_level

    transaction.on_commit(lambda: publish_level(state))


def ensure_level(warehouse_id: int, sku_id: int) -> None:
    StockLevel.objects.get_or_create(warehouse_id=warehouse_id, sku_id=sku_id)


def reserve(warehouse_id: int, sku_id: int, quantity: int, **movement) -> LevelState | None:
    """Reserve `quantity` if that much is available; None (nothing changed) otherwise."""
    state = _update(warehouse_id, sku_id, 0, quantity, "on_hand - reserved >= %s", [quantity])
    if state is not None:
        _record(warehouse_id, sku_id, MovementKind.RESERVE, 0, quantity, **movement)
    return state


def release(warehouse_id: int, sku_id: int, quantity: int, **movement) -> LevelState:
    state = _update(warehouse_id, sku_id, 0, -quantity, "reserved >= %s", [quantity])
    if state is None:
        raise LedgerError(f"cannot release {quantity}: less reserved at {warehouse_id}/{sku_id}")
    _record(warehouse_id, sku_id, MovementKind.RELEASE, 0, -quantity, **movement)
    return state


def ship(warehouse_id: int, sku_id: int, quantity: int, **movement) -> LevelState:
    """A reserved quantity leaves the warehouse: on hand and reserved both fall."""
    state = _update(warehouse_id, sku_id, -quantity, -quantity, "reserved >= %s", [quantity])
    if state is None:
        raise LedgerError(f"cannot ship {quantity}: less reserved at {warehouse_id}/{sku_id}")
    _record(warehouse_id, sku_id, MovementKind.SHIP, -quantity, -quantity, **movement)
    return state


def add_on_hand(warehouse_id: int, sku_id: int, quantity: int, kind: str, **movement) -> LevelState:
    """Receipts, returns (quantity > 0) and count adjustments (either sign). A decrease may
    not cut into reserved stock: that would break promises already made."""
    ensure_level(warehouse_id, sku_id)
    state = _update(warehouse_id, sku_id, quantity, 0, "on_hand + %s >= reserved", [quantity])
    if state is None:
        raise LedgerError(
            f"cannot lower on hand by {-quantity} at {warehouse_id}/{sku_id}: it is reserved"
        )
    _record(warehouse_id, sku_id, kind, quantity, 0, **movement)
    return state


def _record(warehouse_id, sku_id, kind, on_hand_delta, reserved_delta, **movement) -> None:
    StockMovement.objects.create(
        warehouse_id=warehouse_id, sku_id=sku_id, kind=kind,
        on_hand_delta=on_hand_delta, reserved_delta=reserved_delta, **movement,
    )


class LedgerError(Exception):
    """A counter change the current stock does not allow (a bug or a race lost)."""
