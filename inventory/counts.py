"""Stock counts: enter or import counted quantities, confirm them into adjustment movements,
report the variances.

A count is a draft until confirmed. Lines come from the API (a JSON list), the admin or a
CSV / XLSX file; every source goes through the same django-import-export resource, so the
same rules hold everywhere and a bad input is refused whole, listing every bad row as
{row, column, value, reason}.

Confirming locks the count and the warehouse's stock rows of its SKUs (in SKU order, the
fixed order of inventory.stock), snapshots the system on hand per line and writes one
ADJUSTMENT movement per non-zero variance through inventory.stock, all in one transaction.
"""

import csv
import io
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import tablib
from django.db import transaction
from django.db.models import IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from import_export import fields, resources, widgets
from import_export.instance_loaders import ModelInstanceLoader

from oms.errors import Conflict, Invalid, NotFound

from . import services, stock
from .models import (
    SKU,
    ChannelListing,
    MovementKind,
    StockCount,
    StockCountLine,
    StockLevel,
    StockMovement,
    Warehouse,
)

FORMATS = ("csv", "xlsx")
MAX_LINES = 50_000
MAX_FILE_BYTES = 20 * 2**20
MAX_COUNTED = 2_147_483_647  # PositiveIntegerField
REASON_MAX = StockCountLine._meta.get_field("reason").max_length
REFERENCE_MAX = StockCount._meta.get_field("reference").max_length

# Header spellings accepted for each column, first match wins (compared lower-cased, with
# spaces and hyphens read as underscores). `sku` holds a code or a barcode.
COLUMNS: dict[str, tuple[str, ...]] = {
    "sku": ("sku", "sku_code", "code", "商品编码", "sku编码", "编码", "barcode", "条码", "条形码"),
    "counted": ("counted", "count", "quantity", "qty", "盘点数量", "实盘数量", "实盘", "数量"),
    "reason": ("reason", "variance_reason", "note", "差异原因", "原因", "备注"),
}
REQUIRED_COLUMNS = ("sku", "counted")
DETAIL_MAX_ROWS = 50  # in the one-line message; `rows` and the API list every one


# --- errors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadRow:
    """One refused cell. `row` is 1-based: for files the spreadsheet row (the header is row 1),
    for a JSON list the position of the line in it."""

    row: int
    column: str
    value: Any
    reason: str

    def __str__(self):
        return f"row {self.row} {self.column}={self.value!r}: {self.reason}"


class CountRejected(Invalid):
    """The lines were refused whole; `rows` lists every bad one. Nothing was stored."""

    def __init__(self, rows: list[BadRow], field: str = "lines"):
        rows = sorted(rows, key=lambda r: (r.row, list(COLUMNS).index(r.column)
                                           if r.column in COLUMNS else len(COLUMNS)))
        super().__init__({field: [asdict(row) for row in rows]})
        self.rows = rows
        noun = "bad line" if len(rows) == 1 else "bad lines"
        shown = "; ".join(map(str, rows[:DETAIL_MAX_ROWS]))
        more = len(rows) - DETAIL_MAX_ROWS
        self.detail = f"{len(rows)} {noun}: {shown}" + (f"; and {more} more" if more > 0 else "")
        self.args = (self.detail,)


def _json_value(value):
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# --- the import-export resource -------------------------------------------------------------


def _text(value) -> str:
    """A cell as text: spreadsheet numbers like 6901234567890.0 become "6901234567890"."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


class SKUWidget(widgets.ForeignKeyWidget):
    """A SKU by code or by barcode (a code wins when one SKU's code is another's barcode).

    `preload` fetches every SKU a dataset names in one query."""

    def __init__(self):
        super().__init__(SKU, field="code")
        self._known: dict[str, SKU] | None = None

    def preload(self, values) -> None:
        keys = {_text(v) for v in values} - {""}
        self._known = {}
        found = list(SKU.objects.filter(Q(code__in=keys) | Q(barcode__in=keys)))
        for sku in found:
            self._known.setdefault(sku.barcode, sku)
        for sku in found:
            self._known[sku.code] = sku

    def clean(self, value, row=None, **kwargs):
        key = _text(value)
        if not key:
            raise ValueError("required")
        if self._known is not None:
            sku = self._known.get(key)
        else:
            sku = SKU.objects.filter(code=key).first() or SKU.objects.filter(barcode=key).first()
        if sku is None:
            raise ValueError("no SKU with this code or barcode")
        return sku

    def render(self, value, obj=None, **kwargs):
        return value.code if value else ""


class CountedWidget(widgets.IntegerWidget):
    """A whole number, zero or more (12 and 12.0 are fine; -1, 2.5 and "a dozen" are not)."""

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError("required")
        try:
            number = Decimal(str(value).strip().replace(",", ""))
        except InvalidOperation:
            raise ValueError("must be a whole number") from None
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError("must be a whole number")
        if number < 0:
            raise ValueError("must not be negative")
        if number > MAX_COUNTED:
            raise ValueError(f"must be at most {MAX_COUNTED}")
        return int(number)


class ReasonWidget(widgets.CharWidget):
    def clean(self, value, row=None, **kwargs):
        text = _text(value)
        if len(text) > REASON_MAX:
            raise ValueError(f"at most {REASON_MAX} characters")
        return text


class _CountLineLoader(ModelInstanceLoader):
    """The count's existing lines by SKU, loaded once: a SKU counted again is updated."""

    def __init__(self, resource, dataset=None):
        super().__init__(resource, dataset)
        self.lines = {line.sku_id: line for line in resource.get_queryset()}

    def get_instance(self, row):
        try:
            sku = self.resource.fields["sku"].clean(row)
        except ValueError:
            return None  # reported against the column by import_instance
        return self.lines.get(sku.pk)


class StockCountLineResource(resources.ModelResource):
    """Rows of sku (code or barcode), counted and an optional reason, for one count."""

    sku = fields.Field(attribute="sku", column_name="sku", widget=SKUWidget())
    counted = fields.Field(attribute="counted", column_name="counted", widget=CountedWidget())
    reason = fields.Field(attribute="reason", column_name="reason", widget=ReasonWidget())

    class Meta:
        model = StockCountLine
        fields = ("sku", "counted", "reason")
        import_id_fields = ("sku",)
        instance_loader_class = _CountLineLoader
        use_transactions = True
        use_bulk = True
        batch_size = 1000
        skip_diff = True
        clean_model_instances = False  # the widgets check every value

    def __init__(self, count: StockCount, **kwargs):
        super().__init__(**kwargs)
        self.count = count
        self._first_row_of: dict[int, int] = {}
        self._row = 0

    def get_queryset(self):
        return StockCountLine.objects.filter(count=self.count)

    def init_instance(self, row=None):
        return StockCountLine(count=self.count)

    def before_import(self, dataset, **kwargs):
        self.fields["sku"].widget.preload(dataset["sku"])
        self._first_row_of = {}

    def before_import_row(self, row, **kwargs):
        self._row = row["row"]

    def before_save_instance(self, instance, row, **kwargs):
        instance.counted_at = timezone.now()  # counted (again) now

    def get_bulk_update_fields(self):
        return [*super().get_bulk_update_fields(), "counted_at"]

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        """Adds "already counted" to the errors of a SKU's second row (its other cells are
        still checked, so every problem of the row is reported at once)."""
        errors = dict(import_validation_errors or {})
        if "sku" not in errors and instance.sku_id is not None:
            first = self._first_row_of.setdefault(instance.sku_id, self._row)
            if first != self._row:
                errors["sku"] = [f"{instance.sku.code} is already counted on row {first}"]
        super().validate_instance(instance, errors, validate_unique)


# --- reading files --------------------------------------------------------------------------


def _canonical(header) -> str:
    return "_".join(_text(header).lower().replace("-", " ").split())


def _read_rows(file, fmt: str) -> list[list]:
    """All rows of the first sheet (CSV: UTF-8, with or without BOM, or GB18030 as saved by
    Chinese Excel), header included."""
    raw = file.read(MAX_FILE_BYTES + 1) if hasattr(file, "read") else file
    if len(raw) > MAX_FILE_BYTES:
        raise Invalid({"file": [f"larger than {MAX_FILE_BYTES // 2**20} MB"]})
    if fmt == "csv":
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                try:
                    raw = raw.decode("gb18030")
                except UnicodeDecodeError:
                    raise Invalid({"file": ["not a UTF-8 or GB18030 text file"]}) from None
        try:
            return [row for row in csv.reader(io.StringIO(raw))]
        except csv.Error as exc:
            raise Invalid({"file": [f"not a readable CSV file: {exc}"]}) from None
    if fmt == "xlsx":
        import openpyxl

        try:
            book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
        except Exception:  # openpyxl raises zipfile, KeyError, InvalidFileException...
            raise Invalid({"file": ["not a readable XLSX workbook"]}) from None
        try:
            return [list(row) for row in book.active.iter_rows(values_only=True)]
        finally:
            book.close()
    raise Invalid({"format": [f"one of {', '.join(FORMATS)}"]})


def format_for(filename: str) -> str:
    """The import format named by a file's extension."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext not in FORMATS:
        raise Invalid({"file": [f"a .csv or .xlsx file, not {filename!r}"]})
    return ext


def _dataset_from_rows(rows: list[list]) -> tablib.Dataset:
    """Header row + data rows → a dataset with the columns row, sku, counted, reason.
    Blank rows are skipped; `row` keeps the spreadsheet row number for error reports."""
    if not rows or all(_text(cell) == "" for cell in rows[0]):
        raise Invalid({"file": ["empty: expected a header row with sku and counted"]})
    headers = [_canonical(h) for h in rows[0]]
    position: dict[str, int] = {}
    for column, aliases in COLUMNS.items():
        for alias in aliases:
            if alias in headers:
                position[column] = headers.index(alias)
                break
    missing = [c for c in REQUIRED_COLUMNS if c not in position]
    if missing:
        raise CountRejected([BadRow(1, c, None, "missing column") for c in missing])
    dataset = tablib.Dataset(headers=["row", "sku", "counted", "reason"])
    for number, cells in enumerate(rows[1:], start=2):
        if all(_text(cell) == "" for cell in cells):
            continue

        def cell(column, cells=cells):
            index = position.get(column)
            return cells[index] if index is not None and index < len(cells) else None

        dataset.append([number, cell("sku"), cell("counted"), cell("reason")])
    return dataset


def _dataset_from_lines(lines) -> tablib.Dataset:
    if not isinstance(lines, list | tuple):
        raise Invalid({"lines": ["a list of {sku, counted, reason}"]})
    dataset = tablib.Dataset(headers=["row", "sku", "counted", "reason"])
    bad = []
    for number, line in enumerate(lines, start=1):
        if not isinstance(line, dict):
            bad.append(BadRow(number, "sku", _json_value(line), "each line is an object {sku, counted, reason}"))
            continue
        dataset.append([number, line.get("sku"), line.get("counted"), line.get("reason")])
    if bad:
        raise CountRejected(bad)
    return dataset


# --- services -------------------------------------------------------------------------------


def _draft_locked(count_id: int) -> StockCount:
    count = (StockCount.objects.select_for_update(of=("self",)).select_related("warehouse")
             .filter(pk=count_id).first())
    if count is None:
        raise NotFound(f"no stock count {count_id}")
    if count.status != StockCount.State.DRAFT:
        raise Conflict(f"stock count {count.reference or count.pk} is already confirmed; "
                       "start a new count to correct it")
    return count


def _import_dataset(count: StockCount, dataset: tablib.Dataset) -> int:
    if len(dataset) == 0:
        raise Invalid({"lines": ["no lines: count at least one SKU"]})
    if len(dataset) > MAX_LINES:
        raise Invalid({"lines": [f"at most {MAX_LINES} lines per count, got {len(dataset)}"]})
    numbers = dataset["row"]
    values = [dict(zip(dataset.headers, r, strict=True)) for r in dataset]
    resource = StockCountLineResource(count)
    result = resource.import_data(dataset, dry_run=False, use_transactions=True,
                                  rollback_on_validation_errors=True)
    bad: list[BadRow] = []
    for invalid in result.invalid_rows:
        row = values[invalid.number - 1]
        for column, reasons in invalid.error_dict.items():
            column = column if column in COLUMNS else "sku"
            for reason in reasons:
                bad.append(BadRow(numbers[invalid.number - 1], column, _json_value(row.get(column)), reason))
    for error_row in result.error_rows:  # unexpected exceptions, still reported per row
        for error in error_row.errors:
            bad.append(BadRow(numbers[error_row.number - 1], "sku",
                              _json_value(values[error_row.number - 1]["sku"]), str(error.error)))
    if result.base_errors:
        raise Invalid({"lines": [str(error.error) for error in result.base_errors]})
    if bad:
        raise CountRejected(bad)
    return len(dataset)


def import_count_lines(count: StockCount, file, format: str) -> int:
    """Add the lines of a CSV / XLSX file (columns sku, counted, optional reason) to a draft
    count; a SKU already on the count is updated. All or nothing: any bad row raises
    CountRejected listing every bad row, and nothing is stored. Returns the rows imported."""
    rows = _read_rows(file, format)
    dataset = _dataset_from_rows(rows)
    with transaction.atomic():
        count = _draft_locked(count.pk)
        return _import_dataset(count, dataset)


def add_count_lines(count: StockCount, lines) -> int:
    """The same as import_count_lines for a list of {sku, counted, reason} (API, tests)."""
    dataset = _dataset_from_lines(lines)
    with transaction.atomic():
        count = _draft_locked(count.pk)
        return _import_dataset(count, dataset)


def start_count(warehouse_code: str, reference: str = "", user=None) -> StockCount:
    errors = {}
    warehouse = Warehouse.objects.filter(code=warehouse_code).first() if warehouse_code else None
    if warehouse is None:
        errors["warehouse"] = [f"no warehouse with code {warehouse_code!r}" if warehouse_code
                               else "required"]
    reference = (reference or "").strip()
    if len(reference) > REFERENCE_MAX:
        errors["reference"] = [f"at most {REFERENCE_MAX} characters"]
    if errors:
        raise Invalid(errors)
    return StockCount.objects.create(warehouse=warehouse, reference=reference, created_by=user)


@transaction.atomic
def create_count(warehouse_code: str, reference: str, lines, user=None) -> StockCount:
    """A draft count with its lines, or nothing at all (Invalid / CountRejected)."""
    count = start_count(warehouse_code, reference, user)
    add_count_lines(count, lines)
    return count


def default_reason(count: StockCount) -> str:
    return f"stock count {count.reference or f'#{count.pk}'}"[:255]


def confirm_count(count_id: int, user=None) -> list["VarianceRow"]:
    """Write the count's variances into the ledger and mark it confirmed; returns the report.

    Conflict (nothing written) when it is already confirmed, has no lines, or a counted
    quantity is below what is reserved in that warehouse (those units are promised to orders:
    release or re-route them first)."""
    with transaction.atomic():
        count = _draft_locked(count_id)
        lines = list(count.lines.select_related("sku").order_by("sku_id"))
        if not lines:
            raise Conflict(f"stock count {count.reference or count.pk} has no lines")
        warehouse_id = count.warehouse_id
        sku_ids = [line.sku_id for line in lines]
        StockLevel.objects.bulk_create(
            [StockLevel(warehouse_id=warehouse_id, sku_id=sku_id) for sku_id in sku_ids],
            ignore_conflicts=True,
        )
        # Locked in SKU order (inventory.stock's fixed order): the snapshot cannot move under us.
        levels = {
            level.sku_id: level
            for level in StockLevel.objects.select_for_update()
            .filter(warehouse_id=warehouse_id, sku_id__in=sku_ids).order_by("sku_id")
        }
        # The count saw the shelf when each line was counted: what moved since (shipped,
        # received) is not in it, so the variance is against on hand at that moment.
        moved = _moved_since_counted(warehouse_id, lines)
        for line in lines:
            line.system_on_hand = levels[line.sku_id].on_hand - moved[line.pk]
        short = [
            {"sku": line.sku.code, "counted": line.counted + moved[line.pk],
             "reserved": levels[line.sku_id].reserved}
            for line in lines if line.counted + moved[line.pk] < levels[line.sku_id].reserved
        ]
        if short:
            raise Conflict(
                "counted below reserved stock: " + ", ".join(
                    f"{s['sku']} counted {s['counted']}, {s['reserved']} reserved" for s in short)
                + "; release or re-route those reservations first",
                skus=short,
            )
        reference = (count.reference or f"count {count.pk}")[:100]
        changed = []
        for line in lines:
            variance = line.counted - line.system_on_hand
            if variance:
                try:
                    stock.add_on_hand(warehouse_id, line.sku_id, variance, MovementKind.ADJUSTMENT,
                                      reason=(line.reason or default_reason(count))[:255],
                                      reference=reference, user=user)
                except stock.LedgerError as exc:  # the locks make this unreachable
                    raise Conflict(f"{line.sku.code}: {exc}") from exc
                changed.append(line.sku_id)
        StockCountLine.objects.bulk_update(lines, ["system_on_hand"], batch_size=1000)
        # Only SKUs with listings can open or close one: skip the rest (no-op reviews).
        listed = set(ChannelListing.objects.filter(sku_id__in=changed)
                     .values_list("sku_id", flat=True).distinct())
        for sku_id in changed:
            if sku_id in listed:
                services.review_listings(sku_id)
        count.status = StockCount.State.CONFIRMED
        count.confirmed_at = timezone.now()
        count.confirmed_by = user
        count.save(update_fields=["status", "confirmed_at", "confirmed_by"])
        return variance_report(count)


def _moved_since_counted(warehouse_id: int, lines) -> dict[int, int]:
    """Per count line: the on-hand change of its SKU in the warehouse since it was counted."""
    moved = dict.fromkeys((line.pk for line in lines), 0)
    earliest = min(line.counted_at for line in lines)
    by_sku = {}
    for line in lines:
        by_sku.setdefault(line.sku_id, []).append(line)
    since = (StockMovement.objects.filter(warehouse_id=warehouse_id, sku_id__in=list(by_sku),
                                          created_at__gt=earliest).exclude(on_hand_delta=0)
             .values_list("sku_id", "on_hand_delta", "created_at"))
    for sku_id, delta, at in since:
        for line in by_sku[sku_id]:
            if at > line.counted_at:
                moved[line.pk] += delta
    return moved


# --- the variance report --------------------------------------------------------------------


@dataclass(frozen=True)
class VarianceRow:
    sku: str
    name: str
    system: int
    counted: int
    variance: int
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


REPORT_COLUMNS = ("sku", "name", "system", "counted", "variance", "reason")


def variance_report(count: StockCount) -> list[VarianceRow]:
    """One row per line, by SKU code. A confirmed count reports the on hand it snapshotted;
    a draft previews against the on hand when each line was counted (current, less what moved
    since)."""
    lines = count.lines.select_related("sku").order_by("sku__code")
    draft = count.status == StockCount.State.DRAFT
    if draft:
        lines = list(lines.annotate(system=Coalesce(Subquery(
            StockLevel.objects.filter(warehouse_id=count.warehouse_id, sku_id=OuterRef("sku_id"))
            .values("on_hand")[:1]), Value(0), output_field=IntegerField())))
        moved = _moved_since_counted(count.warehouse_id, lines) if lines else {}
    fallback = default_reason(count)
    rows = []
    for line in lines:
        system = line.system - moved[line.pk] if draft else (line.system_on_hand or 0)
        variance = line.counted - system
        rows.append(VarianceRow(sku=line.sku.code, name=line.sku.name, system=system,
                                counted=line.counted, variance=variance,
                                reason=line.reason or (fallback if variance else "")))
    return rows


def variance_summary(rows: list[VarianceRow]) -> dict:
    return {
        "lines": len(rows),
        "lines_with_variance": sum(1 for r in rows if r.variance),
        "units_over": sum(r.variance for r in rows if r.variance > 0),
        "units_short": -sum(r.variance for r in rows if r.variance < 0),
        "net": sum(r.variance for r in rows),
    }


def _spreadsheet_safe(value):
    """Text that a spreadsheet would run as a formula (a reason typed as "=HYPERLINK(...)")
    is written with a leading apostrophe; numbers are left alone."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def variance_dataset(rows: list[VarianceRow]) -> tablib.Dataset:
    """The report as a tablib dataset (CSV / XLSX downloads)."""
    dataset = tablib.Dataset(headers=list(REPORT_COLUMNS))
    for row in rows:
        dataset.append([_spreadsheet_safe(getattr(row, column)) for column in REPORT_COLUMNS])
    return dataset


def count_file_name(count: StockCount, suffix: str, ext: str) -> str:
    stamp = timezone.localtime(count.confirmed_at or count.created_at or timezone.now())
    label = count.reference or f"count-{count.pk}"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in label)[:60]
    return f"{safe}-{suffix}-{stamp:%Y%m%d}.{ext}"

