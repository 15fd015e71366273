"""Read queries for the inventory pages, aggregated in the database."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import SKU, ChannelListing, MovementKind, StockLevel, StockMovement, Warehouse

# "Yesterday" is the calendar day before today in this zone, whatever the server's zone.
SALES_TIMEZONE = ZoneInfo("Asia/Shanghai")
# Available at or below this is out of stock.
OUT_OF_STOCK_AT = 0
# Above safety stock, fewer days of cover than this (at yesterday's pace) is "normal";
# this many or more, or no sales yesterday, is "sufficient".
SUFFICIENT_COVER_DAYS = 7


class WarningStatus(models.TextChoices):
    """Most severe first: the order of the choices is the severity order."""

    OUT = "out", _("out of stock")
    WARNING = "warning", _("warning")
    NORMAL = "normal", _("normal")
    SUFFICIENT = "sufficient", _("sufficient")


SEVERITY = {status: rank for rank, status in enumerate(WarningStatus.values)}

# The sort keys the page offers; each ends on the SKU code so pages are stable.
SORTS = {
    "severity": "severity ASC, cover ASC NULLS LAST, code ASC",
    "-severity": "severity DESC, cover DESC NULLS FIRST, code ASC",
    "cover": "cover ASC NULLS LAST, severity ASC, code ASC",
    "sales": "sold DESC, severity ASC, code ASC",
    "code": "code ASC",
}
DEFAULT_SORT = "severity"
COLUMNS = ("sku_id", "code", "name", "category", "on_hand", "reserved", "safety", "available",
           "sold", "cover", "status", "severity")


def sales_day(now: datetime | None = None) -> tuple[date, datetime, datetime]:
    """Yesterday in SALES_TIMEZONE: its date and the [start, end) instants."""
    local_today = timezone.localtime(now or timezone.now(), SALES_TIMEZONE).date()
    end = datetime.combine(local_today, time.min, tzinfo=SALES_TIMEZONE)
    start = datetime.combine(local_today - timedelta(days=1), time.min, tzinfo=SALES_TIMEZONE)
    return local_today - timedelta(days=1), start, end


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


class WarningRows:
    """The rows of stock_warnings(): evaluated in the database on demand, sliceable and
    countable, which is what Django's Paginator needs."""

    def __init__(self, sql: str, params: list, order_by: str, status: str | None):
        self._sql = sql
        self._params = params
        self._order_by = order_by
        self._status = status

    def _where(self) -> tuple[str, list]:
        if self._status:
            return " WHERE status = %s", [self._status]
        return "", []

    def _fetch(self, limit: int | None = None, offset: int = 0) -> list[dict]:
        where, params = self._where()
        sql = f"{self._sql}{where} ORDER BY {self._order_by}"
        if limit is not None:
            sql += " LIMIT %s OFFSET %s"
            params = [*params, limit, offset]
        with connection.cursor() as cursor:
            cursor.execute(sql, self._params + params)
            rows = [dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            row["cover"] = None if row["cover"] is None else float(row["cover"])
        return rows

    def __iter__(self):
        return iter(self._fetch())

    def __getitem__(self, key):
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise ValueError("no step")
            start = key.start or 0
            limit = None if key.stop is None else max(key.stop - start, 0)
            return self._fetch(limit, start)
        rows = self._fetch(1, key)
        if not rows:
            raise IndexError(key)
        return rows[0]

    def count(self) -> int:
        where, params = self._where()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM ({self._sql}{where}) counted",  # noqa: S608
                           self._params + params)
            return cursor.fetchone()[0]

    def status_counts(self) -> dict[str, int]:
        """How many rows have each status, whatever the status filter (one query)."""
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT status, COUNT(*) FROM ({self._sql}) graded GROUP BY status",  # noqa: S608
                           self._params)
            found = dict(cursor.fetchall())
        return {name: found.get(name, 0) for name in WarningStatus.values}


def stock_warnings(*, warehouse: Warehouse | None = None, category: str | None = None,
                   channel=None, status: str | None = None, sort: str = DEFAULT_SORT,
                   now: datetime | None = None) -> WarningRows:
    """One row per SKU stocked in the chosen warehouse (all active warehouses by default):
    sku_id, code, name, category, on_hand, reserved, available, safety, sold (units shipped
    yesterday), cover (days: available / sold, None without sales), status and severity
    (0 = out … 3 = sufficient). `channel` keeps the SKUs listed on that channel.

    One statement: stock summed per SKU, yesterday's shipments summed per SKU (from the
    ledger, through the created_at index), joined, graded and sorted in the database."""
    _day, start, end = sales_day(now)
    adapt = connection.ops.adapt_datetimefield_value
    if warehouse is not None:
        scope, scope_params = "w.id = %s", [warehouse.pk]
    else:
        scope, scope_params = "w.active = %s", [True]
    sku_filters, sku_params = [], []
    if category:
        sku_filters.append("s.category = %s")
        sku_params.append(category)
    if channel is not None:
        sku_filters.append(f"EXISTS (SELECT 1 FROM {_table(ChannelListing)} c "  # noqa: S608
                           "WHERE c.sku_id = s.id AND c.channel_id = %s)")
        sku_params.append(getattr(channel, "pk", channel))
    sku_where = ("WHERE " + " AND ".join(sku_filters)) if sku_filters else ""
    # Constants, not input: written into the statement so that both CASEs read plainly.
    out_at, cover_days = int(OUT_OF_STOCK_AT), int(SUFFICIENT_COVER_DAYS)
    conditions = [f"available <= {out_at}", "available <= safety",
                  f"sold > 0 AND available < sold * {cover_days}"]
    statuses = WarningStatus.values  # out, warning, normal, sufficient

    def case(outcomes) -> str:
        whens = " ".join(f"WHEN {cond} THEN {outcome}"
                         for cond, outcome in zip(conditions, outcomes[:-1], strict=True))
        return f"CASE {whens} ELSE {outcomes[-1]} END"

    grades = case([f"'{name}'" for name in statuses])
    severities = case([str(SEVERITY[name]) for name in statuses])
    sql = f"""
        SELECT * FROM (
            SELECT base.*,
                   CASE WHEN sold > 0 THEN 1.0 * available / sold END AS cover,
                   {grades} AS status,
                   {severities} AS severity
            FROM (
                SELECT s.id AS sku_id, s.code, s.name, s.category,
                       lv.on_hand, lv.reserved, lv.safety,
                       lv.on_hand - lv.reserved AS available,
                       COALESCE(shipped.units, 0) AS sold
                FROM (
                    SELECT l.sku_id, SUM(l.on_hand) AS on_hand, SUM(l.reserved) AS reserved,
                           SUM(l.safety_stock) AS safety
                    FROM {_table(StockLevel)} l JOIN {_table(Warehouse)} w ON w.id = l.warehouse_id
                    WHERE {scope}
                    GROUP BY l.sku_id
                ) lv
                JOIN {_table(SKU)} s ON s.id = lv.sku_id
                LEFT JOIN (
                    SELECT m.sku_id, SUM(-m.on_hand_delta) AS units
                    FROM {_table(StockMovement)} m JOIN {_table(Warehouse)} w ON w.id = m.warehouse_id
                    WHERE m.kind = %s AND m.created_at >= %s AND m.created_at < %s AND {scope}
                    GROUP BY m.sku_id
                ) shipped ON shipped.sku_id = lv.sku_id
                {sku_where}
            ) base
        ) graded"""  # noqa: S608 (table names from the models, every value a parameter)
    params = [
        *scope_params,
        MovementKind.SHIP.value, adapt(start), adapt(end), *scope_params,
        *sku_params,
    ]
    return WarningRows(sql, params, SORTS.get(sort, SORTS[DEFAULT_SORT]), status or None)


def status_counts(rows: WarningRows) -> dict[str, int]:
    """How many rows of a stock_warnings() result have each status (one query)."""
    return rows.status_counts()


def categories() -> list[str]:
    return list(SKU.objects.exclude(category="").order_by("category")
                .values_list("category", flat=True).distinct())
