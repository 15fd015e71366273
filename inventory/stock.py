"""Conditional updates of StockLevel counters, each paired with its StockMovement.

The only code that changes on_hand or reserved. Each change is one UPDATE whose WHERE clause
carries the invariant (`on_hand - reserved >= q` to reserve), so concurrent writers can never
oversell; the returned row tells whether it applied. On PostgreSQL the ledger row is inserted
by the same statement (a data-modifying CTE): one round trip, and the row lock is held for as
short a time as possible, which is what bounds throughput on a hot SKU. Callers run inside a
transaction and change several rows in one fixed order (SKU id, then warehouse id), which
rules out deadlocks.

Every statement also returns the database's availability-cache generation (a one-row lookup in
the same round trip), so the write-through after commit goes to the namespace of the database
it was committed to, even in a process that has not yet noticed a restore or a reset.
"""

from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from .models import CacheGeneration, MovementKind, StockLevel, StockMovement

_LEVELS = StockLevel._meta.db_table
_MOVEMENTS = StockMovement._meta.db_table
_GENERATION = f"(SELECT token FROM {CacheGeneration._meta.db_table} WHERE id = {CacheGeneration.ONE})"  # noqa: S608
_SET = (
    f"UPDATE {_LEVELS} SET on_hand = on_hand + %s, reserved = reserved + %s, "  # noqa: S608
    "version = version + 1, updated_at = CURRENT_TIMESTAMP "
    "WHERE warehouse_id = %s AND sku_id = %s AND {guard} "
    f"RETURNING on_hand, reserved, safety_stock, version, {_GENERATION} AS generation"
)
_MOVEMENT_COLUMNS = (
    "warehouse_id, sku_id, kind, on_hand_delta, reserved_delta, reason, reference, order_id, "
    "reservation_id, user_id, created_at"
)
_INSERT_MOVEMENT = f"INSERT INTO {_MOVEMENTS} ({_MOVEMENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"  # noqa: S608
# Table and column names are ours; every value is a parameter.
_SET_AND_RECORD = (
    "WITH level AS ({update}), movement AS ("  # noqa: S608
    f"INSERT INTO {_MOVEMENTS} ({_MOVEMENT_COLUMNS}) "
    "SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s FROM level RETURNING 1) "
    "SELECT on_hand, reserved, safety_stock, version, generation FROM level"
)


@dataclass(frozen=True)
class LevelState:
    warehouse_id: int
    sku_id: int
    on_hand: int
    reserved: int
    safety_stock: int
    version: int
    generation: str | None = None  # the database's cache generation when it was written

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class LedgerError(Exception):
    """A counter change the current stock does not allow (a bug or a race lost)."""


def _change(warehouse_id: int, sku_id: int, kind: str, on_hand_delta: int, reserved_delta: int,
            guard: str, guard_params: list, *, reason: str = "", reference: str = "", order=None,
            reservation=None, user=None) -> LevelState | None:
    """Apply the deltas if `guard` holds and write the ledger row; None when refused."""
    update = _SET.format(guard=guard)
    update_params = [on_hand_delta, reserved_delta, warehouse_id, sku_id, *guard_params]
    movement = [
        warehouse_id, sku_id, kind, on_hand_delta, reserved_delta, reason[:255], reference[:100],
        getattr(order, "pk", order), getattr(reservation, "pk", reservation),
        getattr(user, "pk", None), connection.ops.adapt_datetimefield_value(timezone.now()),
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_SET_AND_RECORD.format(update=update), update_params + movement)
            row = cursor.fetchone()
        else:
            cursor.execute(update, update_params)
            row = cursor.fetchone()
            if row is not None:
                cursor.execute(_INSERT_MOVEMENT, movement)
    if row is None:
        return None
    state = LevelState(warehouse_id, sku_id, *row)
    publish_after_commit(state)
    return state


def publish_after_commit(state: LevelState) -> None:
    """Write the new numbers through to the availability cache once the transaction commits
    (nothing for a rollback)."""
    transaction.on_commit(lambda: _publish(state))


def _publish(state: LevelState) -> None:
    from .cache import publish_level

    publish_level(state)


def ensure_level(warehouse_id: int, sku_id: int) -> None:
    StockLevel.objects.get_or_create(warehouse_id=warehouse_id, sku_id=sku_id)


def reserve(warehouse_id: int, sku_id: int, quantity: int, **movement) -> LevelState | None:
    """Reserve `quantity` if that much is available; None (nothing changed) otherwise."""
    return _change(warehouse_id, sku_id, MovementKind.RESERVE, 0, quantity,
                   "on_hand - reserved >= %s", [quantity], **movement)


def release(warehouse_id: int, sku_id: int, quantity: int, **movement) -> LevelState:
    state = _change(warehouse_id, sku_id, MovementKind.RELEASE, 0, -quantity,
                    "reserved >= %s", [quantity], **movement)
    if state is None:
        raise LedgerError(f"cannot release {quantity}: less reserved at {warehouse_id}/{sku_id}")
    return state


def ship(warehouse_id: int, sku_id: int, quantity: int, **movement) -> LevelState:
    """A reserved quantity leaves the warehouse: on hand and reserved both fall."""
    state = _change(warehouse_id, sku_id, MovementKind.SHIP, -quantity, -quantity,
                    "reserved >= %s", [quantity], **movement)
    if state is None:
        raise LedgerError(f"cannot ship {quantity}: less reserved at {warehouse_id}/{sku_id}")
    return state


def add_on_hand(warehouse_id: int, sku_id: int, quantity: int, kind: str, **movement) -> LevelState:
    """Receipts, returns (quantity > 0) and count adjustments (either sign). A decrease may
    not cut into reserved stock: that would break promises already made."""
    ensure_level(warehouse_id, sku_id)
    state = _change(warehouse_id, sku_id, kind, quantity, 0, "on_hand + %s >= reserved", [quantity],
                    **movement)
    if state is None:
        raise LedgerError(
            f"cannot lower on hand by {-quantity} at {warehouse_id}/{sku_id}: it is reserved"
        )
    return state


def reserve_many(movements: list[StockMovement]) -> list[LevelState] | None:
    """Reserve for many orders at once (a page of intake, PostgreSQL): `movements` are their
    unsaved reserve movements, one per reservation. The levels they touch are locked in the
    fixed order, then either every level has what its movements add up to and each is raised
    by that sum in one statement, the movements inserted with it, or nothing changes (None)."""
    from oms.rowsql import copy_instances

    totals: dict[tuple[int, int], int] = {}
    for movement in movements:
        pair = (movement.warehouse_id, movement.sku_id)
        totals[pair] = totals.get(pair, 0) + movement.reserved_delta
    pairs = sorted(totals, key=lambda pair: (pair[1], pair[0]))
    keys = ", ".join(["(%s, %s)"] * len(pairs))
    flat = [value for pair in pairs for value in pair]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT warehouse_id, sku_id, on_hand - reserved FROM {_LEVELS} "  # noqa: S608 - our names
            f"WHERE (warehouse_id, sku_id) IN ({keys}) ORDER BY sku_id, warehouse_id FOR UPDATE", flat)
        available = {(w, s): units for w, s, units in cursor.fetchall()}
        if any(available.get(pair, 0) < total for pair, total in totals.items()):
            return None
        cursor.execute(
            f"UPDATE {_LEVELS} AS level SET reserved = level.reserved + v.quantity, "  # noqa: S608 - our names
            "version = level.version + 1, updated_at = CURRENT_TIMESTAMP "
            f"FROM (VALUES {', '.join(['(%s::bigint, %s::bigint, %s::integer)'] * len(pairs))}) "
            "AS v(warehouse_id, sku_id, quantity) "
            "WHERE level.warehouse_id = v.warehouse_id AND level.sku_id = v.sku_id "
            "AND level.on_hand - level.reserved >= v.quantity "
            "RETURNING level.warehouse_id, level.sku_id, level.on_hand, level.reserved, level.safety_stock, "
            f"level.version, {_GENERATION}", [value for pair in pairs for value in (*pair, totals[pair])])
        states = [LevelState(*row) for row in cursor.fetchall()]
    if len(states) != len(pairs):  # the rows are locked: only a bug gets here
        raise LedgerError(f"reserved {len(states)} of {len(pairs)} levels that had the stock")
    copy_instances(movements)
    for state in states:
        publish_after_commit(state)
    return states
