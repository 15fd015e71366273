"""Stock counts: import (CSV / XLSX / JSON), all-or-nothing refusal of bad lines, confirmation
into adjustment movements, the variance report, the API, the admin and the command."""

import contextlib
import io
import re
import threading

import openpyxl
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Sum
from django.test import Client

from inventory import counts, services, stock
from inventory.models import (
    ChannelListing,
    ListingChange,
    MovementKind,
    StockCount,
    StockCountLine,
    StockLevel,
    StockMovement,
)
from oms.errors import Conflict, Invalid
from oms.tests.factories import DEFAULT_PASSWORD, UserFactory
from orders.tests.factories import ChannelFactory, SKUFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def wh():
    return WarehouseFactory(code="WH-SH", name="上海仓")


@pytest.fixture
def skus():
    """Three SKUs: A (10 on hand in WH-SH), B (5), C (3)."""
    return {
        "A": SKUFactory(code="A-100", barcode="6900000000100", name="茶杯"),
        "B": SKUFactory(code="B-200", barcode="6900000000200", name="茶壶"),
        "C": SKUFactory(code="C-300", barcode="6900000000300", name="茶盘"),
    }


@pytest.fixture
def stocked(wh, skus):
    for key, quantity in {"A": 10, "B": 5, "C": 3}.items():
        services.receive_stock(wh.code, skus[key].code, quantity, reference="opening")
    return skus


def on_hand(wh, sku) -> int:
    return StockLevel.objects.get(warehouse=wh, sku=sku).on_hand


def adjustments():
    return StockMovement.objects.filter(kind=MovementKind.ADJUSTMENT)


def assert_ledger_matches_counters():
    for row in StockLevel.objects.all():
        sums = StockMovement.objects.filter(warehouse=row.warehouse, sku=row.sku).aggregate(
            on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta"))
        assert (sums["on_hand"] or 0, sums["reserved"] or 0) == (row.on_hand, row.reserved)


def csv_bytes(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


def xlsx_bytes(rows) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def reserve(wh, sku, quantity):
    assert stock.reserve(wh.pk, sku.pk, quantity, reference="test", reason="test hold") is not None


def draft(wh, reference="CNT-1") -> StockCount:
    return counts.start_count(wh.code, reference)


# --- confirming -----------------------------------------------------------------------------


def test_confirm_writes_one_adjustment_per_variance_with_its_reason(wh, stocked):
    user = UserFactory(role="ops")
    count = counts.create_count(wh.code, "CNT-2026-01", [
        {"sku": "A-100", "counted": 8},                                   # 10 → 8
        {"sku": "6900000000200", "counted": 7, "reason": "found behind shelf"},  # 5 → 7, barcode
        {"sku": "C-300", "counted": 3},                                   # no variance
    ], user=user)

    rows = counts.confirm_count(count.pk, user)

    assert [r.as_dict() for r in rows] == [
        {"sku": "A-100", "name": "茶杯", "system": 10, "counted": 8, "variance": -2,
         "reason": "stock count CNT-2026-01"},
        {"sku": "B-200", "name": "茶壶", "system": 5, "counted": 7, "variance": 2,
         "reason": "found behind shelf"},
        {"sku": "C-300", "name": "茶盘", "system": 3, "counted": 3, "variance": 0, "reason": ""},
    ]
    moves = {m.sku.code: m for m in adjustments().select_related("sku")}
    assert set(moves) == {"A-100", "B-200"}
    assert (moves["A-100"].on_hand_delta, moves["A-100"].reason) == (-2, "stock count CNT-2026-01")
    assert (moves["B-200"].on_hand_delta, moves["B-200"].reason) == (2, "found behind shelf")
    assert all(m.reference == "CNT-2026-01" and m.user == user and m.reserved_delta == 0
               for m in moves.values())
    assert [on_hand(wh, stocked[k]) for k in "ABC"] == [8, 7, 3]
    count.refresh_from_db()
    assert count.status == StockCount.State.CONFIRMED
    assert count.confirmed_by == user and count.confirmed_at is not None
    assert dict(count.lines.values_list("sku__code", "system_on_hand")) == {
        "A-100": 10, "B-200": 5, "C-300": 3}
    assert counts.variance_summary(rows) == {
        "lines": 3, "lines_with_variance": 2, "units_over": 2, "units_short": 2, "net": 0}
    assert_ledger_matches_counters()


def test_a_sku_never_stocked_in_the_warehouse_is_counted_in(wh, skus):
    count = counts.create_count(wh.code, "", [{"sku": "A-100", "counted": 4}])

    rows = counts.confirm_count(count.pk)

    assert (rows[0].system, rows[0].variance) == (0, 4)
    assert rows[0].reason == f"stock count #{count.pk}"
    assert on_hand(wh, skus["A"]) == 4
    assert_ledger_matches_counters()


def test_confirming_twice_is_refused_and_writes_nothing_more(wh, stocked):
    count = counts.create_count(wh.code, "CNT-1", [{"sku": "A-100", "counted": 9}])
    counts.confirm_count(count.pk)

    with pytest.raises(Conflict, match="already confirmed"):
        counts.confirm_count(count.pk)

    assert adjustments().count() == 1
    assert on_hand(wh, stocked["A"]) == 9


def test_a_count_below_reserved_stock_is_refused_whole_naming_the_sku(wh, stocked):
    reserve(wh, stocked["A"], 6)  # 10 on hand, 6 promised to orders
    count = counts.create_count(wh.code, "CNT-1", [
        {"sku": "B-200", "counted": 1},   # fine on its own
        {"sku": "A-100", "counted": 4},   # 4 < 6 reserved
    ])

    with pytest.raises(Conflict) as refused:
        counts.confirm_count(count.pk)

    assert "A-100 counted 4, 6 reserved" in refused.value.detail
    assert refused.value.extra["skus"] == [{"sku": "A-100", "counted": 4, "reserved": 6}]
    assert not adjustments().exists()
    assert [on_hand(wh, stocked[k]) for k in "AB"] == [10, 5]
    count.refresh_from_db()
    assert count.status == StockCount.State.DRAFT
    assert not count.lines.filter(system_on_hand__isnull=False).exists()


def test_counting_exactly_the_reserved_quantity_is_allowed(wh, stocked):
    reserve(wh, stocked["A"], 6)
    count = counts.create_count(wh.code, "CNT-1", [{"sku": "A-100", "counted": 6}])

    counts.confirm_count(count.pk)

    level = StockLevel.objects.get(warehouse=wh, sku=stocked["A"])
    assert (level.on_hand, level.reserved, level.available) == (6, 6, 0)
    assert_ledger_matches_counters()


def test_confirm_closes_and_reopens_listings_at_safety_stock(wh, stocked):
    channel = ChannelFactory()
    listing = ChannelListing.objects.create(channel=channel, sku=stocked["A"])
    services.set_safety_stock(wh.code, "A-100", 3)

    counts.confirm_count(counts.create_count(wh.code, "low", [{"sku": "A-100", "counted": 2}]).pk)
    listing.refresh_from_db()
    assert not listing.is_open and listing.closed_reason.startswith(services.SAFETY_REASON)

    counts.confirm_count(counts.create_count(wh.code, "up", [{"sku": "A-100", "counted": 20}]).pk)
    listing.refresh_from_db()
    assert listing.is_open
    assert list(ListingChange.objects.filter(listing=listing).order_by("at", "pk")
                .values_list("is_open", flat=True)) == [False, True]


def test_an_empty_count_cannot_be_confirmed(wh):
    count = draft(wh)
    with pytest.raises(Conflict, match="no lines"):
        counts.confirm_count(count.pk)


def test_stock_that_moves_after_a_line_is_counted_is_not_counted_in_it(wh, stocked):
    # Counted 7 where the system said 10; then 5 arrive and 2 leave before the confirmation.
    # The count saw the shelf before those moves: they are kept, only the -3 is adjusted.
    count = counts.create_count(wh.code, "CNT-1", [{"sku": "A-100", "counted": 7}])
    assert [(r.system, r.variance) for r in counts.variance_report(count)] == [(10, -3)]

    services.receive_stock(wh.code, "A-100", 5)
    stock.add_on_hand(wh.pk, stocked["A"].pk, -2, MovementKind.ADJUSTMENT, reference="shipped", reason="shipped")

    assert [(r.system, r.variance) for r in counts.variance_report(count)] == [(10, -3)]
    rows = counts.confirm_count(count.pk)
    assert [(r.system, r.counted, r.variance) for r in rows] == [(10, 7, -3)]
    assert on_hand(wh, stocked["A"]) == 10  # 13 now on the shelf, less the 3 the count found missing
    assert_ledger_matches_counters()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_people_confirming_at_once_adjust_once(wh, stocked):
    count = counts.create_count(wh.code, "CNT-1", [{"sku": "A-100", "counted": 4}])
    barrier = threading.Barrier(2)
    outcomes = []

    def confirm():
        try:
            barrier.wait()
            counts.confirm_count(count.pk)
            outcomes.append("confirmed")
        except Conflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["confirmed", "conflict"]
    assert adjustments().count() == 1
    assert on_hand(wh, stocked["A"]) == 4
    assert_ledger_matches_counters()


# --- importing files ------------------------------------------------------------------------


def test_csv_import_takes_codes_or_barcodes_skips_blank_rows_and_reads_a_bom(wh, stocked):
    count = draft(wh)
    data = csv_bytes("\ufeffSKU,Counted,Reason\nA-100,8,broken\n\n6900000000200,5,\n")

    assert counts.import_count_lines(count, io.BytesIO(data), "csv") == 2

    assert sorted(count.lines.values_list("sku__code", "counted", "reason")) == [
        ("A-100", 8, "broken"), ("B-200", 5, "")]


def test_csv_saved_by_chinese_excel_with_chinese_headers(wh, stocked):
    count = draft(wh)
    data = csv_bytes("商品编码,盘点数量,差异原因\nA-100,9,破损\n", "gb18030")

    counts.import_count_lines(count, data, "csv")

    assert list(count.lines.values_list("sku__code", "counted", "reason")) == [("A-100", 9, "破损")]


def test_xlsx_import_reads_numeric_cells(wh, stocked):
    count = draft(wh)
    data = xlsx_bytes([["sku", "counted", "reason"],
                       [6900000000100, 12.0, None],   # barcode typed as a number
                       ["C-300", 0, "all gone"],
                       [None, None, None]])

    assert counts.import_count_lines(count, io.BytesIO(data), "xlsx") == 2

    assert sorted(count.lines.values_list("sku__code", "counted", "reason")) == [
        ("A-100", 12, ""), ("C-300", 0, "all gone")]


def test_a_file_with_bad_rows_is_refused_whole_listing_every_bad_row(wh, stocked):
    count = draft(wh)
    data = csv_bytes(
        "sku,counted,reason\n"
        "A-100,8,\n"          # row 2 fine
        "NOPE-1,3,\n"         # row 3 unknown SKU
        "B-200,-1,\n"         # row 4 negative
        "C-300,2.5,\n"        # row 5 not whole
        "NOPE-2,,\n"          # row 6 unknown SKU and no quantity
        "6900000000100,4,\n"  # row 7 A-100 again, by barcode
        ",5,\n"               # row 8 no SKU
        "B-200,lots,\n"       # row 9 B-200 again, and not a number
    )

    with pytest.raises(counts.CountRejected) as refused:
        counts.import_count_lines(count, data, "csv")

    assert [(r.row, r.column, r.value, r.reason) for r in refused.value.rows] == [
        (3, "sku", "NOPE-1", "no SKU with this code or barcode"),
        (4, "counted", "-1", "must not be negative"),
        (5, "counted", "2.5", "must be a whole number"),
        (6, "sku", "NOPE-2", "no SKU with this code or barcode"),
        (6, "counted", "", "required"),
        (7, "sku", "6900000000100", "A-100 is already counted on row 2"),
        (8, "sku", "", "required"),
        (9, "sku", "B-200", "B-200 is already counted on row 4"),
        (9, "counted", "lots", "must be a whole number"),
    ]
    assert refused.value.fields["lines"][0] == {
        "row": 3, "column": "sku", "value": "NOPE-1", "reason": "no SKU with this code or barcode"}
    assert refused.value.detail.startswith("9 bad lines: row 3 sku='NOPE-1'")
    assert not StockCountLine.objects.exists()


def test_a_bad_reimport_leaves_the_earlier_lines_untouched(wh, stocked):
    count = draft(wh)
    counts.import_count_lines(count, b"sku,counted\nA-100,8\n", "csv")

    with pytest.raises(counts.CountRejected):
        counts.import_count_lines(count, b"sku,counted\nA-100,1\nNOPE,1\n", "csv")

    assert list(count.lines.values_list("sku__code", "counted")) == [("A-100", 8)]


def test_importing_a_sku_again_updates_its_line(wh, stocked):
    count = draft(wh)
    counts.import_count_lines(count, b"sku,counted\nA-100,8\nB-200,5\n", "csv")

    counts.import_count_lines(count, b"sku,counted,reason\nA-100,6,recount\n", "csv")

    assert sorted(count.lines.values_list("sku__code", "counted", "reason")) == [
        ("A-100", 6, "recount"), ("B-200", 5, "")]


def test_missing_columns_are_reported_against_the_header_row(wh, stocked):
    with pytest.raises(counts.CountRejected) as refused:
        counts.import_count_lines(draft(wh), b"code,qty_on_shelf\nA-100,8\n", "csv")

    assert [(r.row, r.column, r.reason) for r in refused.value.rows] == [
        (1, "counted", "missing column")]


@pytest.mark.parametrize(("data", "fmt", "field"), [
    (b"", "csv", "file"),
    (b"sku,counted\n", "csv", "lines"),
    (b"not a zip", "xlsx", "file"),
    (b"sku,counted\nA-100,1\n", "ods", "format"),
])
def test_unreadable_or_empty_files_are_refused(wh, stocked, data, fmt, field):
    with pytest.raises(Invalid) as refused:
        counts.import_count_lines(draft(wh), data, fmt)
    assert field in refused.value.fields
    assert not StockCountLine.objects.exists()


def test_a_confirmed_count_takes_no_more_lines(wh, stocked):
    count = counts.create_count(wh.code, "CNT-1", [{"sku": "A-100", "counted": 9}])
    counts.confirm_count(count.pk)

    with pytest.raises(Conflict):
        counts.import_count_lines(count, b"sku,counted\nB-200,1\n", "csv")


def test_format_follows_the_file_extension():
    assert counts.format_for("Count.XLSX") == "xlsx"
    assert counts.format_for("a.b.csv") == "csv"
    with pytest.raises(Invalid):
        counts.format_for("count.xls")


# --- API ------------------------------------------------------------------------------------

COUNTS_URL = "/api/v1/inventory/counts/"


def test_ops_create_a_count_and_read_its_preview(client_for, wh, stocked):
    ops = client_for("ops")

    response = ops.post(COUNTS_URL, {"warehouse": "WH-SH", "reference": "CNT-7", "lines": [
        {"sku": "A-100", "counted": 8, "reason": "damaged"},
        {"sku": "B-200", "counted": 5},
    ]}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["warehouse"] == "WH-SH" and body["reference"] == "CNT-7"
    assert body["status"] == "draft" and body["final"] is False
    assert body["created_by"] == ops.user.username
    assert body["variance"] == [
        {"sku": "A-100", "name": "茶杯", "system": 10, "counted": 8, "variance": -2, "reason": "damaged"},
        {"sku": "B-200", "name": "茶壶", "system": 5, "counted": 5, "variance": 0, "reason": ""},
    ]
    assert ops.get(f"{COUNTS_URL}{body['id']}/").json() == body
    assert not adjustments().exists()


def test_confirm_over_the_api_returns_the_variance_report(client_for, wh, stocked):
    ops = client_for("ops")
    count_id = ops.post(COUNTS_URL, {"warehouse": "WH-SH", "lines": [
        {"sku": "A-100", "counted": 12}]}, format="json").json()["id"]

    response = ops.post(f"{COUNTS_URL}{count_id}/confirm/")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "confirmed" and body["final"] is True
    assert body["confirmed_by"] == ops.user.username
    assert body["variance"] == [{"sku": "A-100", "name": "茶杯", "system": 10, "counted": 12,
                                 "variance": 2, "reason": f"stock count #{count_id}"}]
    assert body["summary"]["units_over"] == 2
    assert on_hand(wh, stocked["A"]) == 12

    again = ops.post(f"{COUNTS_URL}{count_id}/confirm/")
    assert again.status_code == 409 and again.json()["error"] == "conflict"


def test_api_refuses_a_count_with_bad_lines_whole(client_for, wh, stocked):
    ops = client_for("ops")

    response = ops.post(COUNTS_URL, {"warehouse": "WH-SH", "lines": [
        {"sku": "A-100", "counted": 8},
        {"sku": "GHOST", "counted": 1},
        {"sku": "B-200", "counted": -4},
        {"sku": "PHANTOM", "counted": 2},
    ]}, format="json")

    assert response.status_code == 400
    assert response.json() == {"error": "validation", "fields": {"lines": [
        {"row": 2, "column": "sku", "value": "GHOST", "reason": "no SKU with this code or barcode"},
        {"row": 3, "column": "counted", "value": -4, "reason": "must not be negative"},
        {"row": 4, "column": "sku", "value": "PHANTOM", "reason": "no SKU with this code or barcode"},
    ]}}
    assert not StockCount.objects.exists() and not StockCountLine.objects.exists()


@pytest.mark.parametrize(("body", "field"), [
    ({"warehouse": "WH-NOWHERE", "lines": [{"sku": "A-100", "counted": 1}]}, "warehouse"),
    ({"lines": [{"sku": "A-100", "counted": 1}]}, "warehouse"),
    ({"warehouse": "WH-SH", "lines": []}, "lines"),
    ({"warehouse": "WH-SH"}, "lines"),
    ({"warehouse": "WH-SH", "lines": ["A-100"]}, "lines"),
    ({"warehouse": "WH-SH", "reference": "R" * 101, "lines": [{"sku": "A-100", "counted": 1}]},
     "reference"),
])
def test_api_names_the_bad_field(client_for, wh, stocked, body, field):
    response = client_for("ops").post(COUNTS_URL, body, format="json")

    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not StockCount.objects.exists()


def test_api_confirm_below_reserved_is_a_conflict_naming_the_sku(client_for, wh, stocked):
    reserve(wh, stocked["B"], 4)
    ops = client_for("ops")
    count_id = ops.post(COUNTS_URL, {"warehouse": "WH-SH", "lines": [
        {"sku": "B-200", "counted": 1}]}, format="json").json()["id"]

    response = ops.post(f"{COUNTS_URL}{count_id}/confirm/")

    assert response.status_code == 409
    assert "B-200" in response.json()["detail"]
    assert response.json()["skus"] == [{"sku": "B-200", "counted": 1, "reserved": 4}]
    assert not adjustments().exists()


def test_only_ops_may_count(client_for, api_client, wh, stocked):
    body = {"warehouse": "WH-SH", "lines": [{"sku": "A-100", "counted": 1}]}
    assert api_client.post(COUNTS_URL, body, format="json").status_code == 401
    assert client_for("customer_service").post(COUNTS_URL, body, format="json").status_code == 403
    assert client_for("finance").post(COUNTS_URL, body, format="json").status_code == 403

    count = counts.create_count("WH-SH", "", body["lines"])
    assert client_for("customer_service").post(f"{COUNTS_URL}{count.pk}/confirm/").status_code == 403
    assert client_for("finance").get(f"{COUNTS_URL}{count.pk}/").status_code == 403
    assert not adjustments().exists()


def test_list_counts_by_warehouse_and_status(client_for, wh, stocked):
    other = WarehouseFactory(code="WH-GZ")
    first = counts.create_count("WH-SH", "ONE", [{"sku": "A-100", "counted": 10}])
    counts.create_count("WH-SH", "TWO", [{"sku": "B-200", "counted": 5}])
    counts.create_count(other.code, "THREE", [{"sku": "C-300", "counted": 0}])
    counts.confirm_count(first.pk)
    ops = client_for("ops")

    listed = ops.get(COUNTS_URL, {"warehouse": "WH-SH", "status": "draft"}).json()

    assert [c["reference"] for c in listed["results"]] == ["TWO"]
    assert {c["reference"] for c in ops.get(COUNTS_URL).json()["results"]} == {"ONE", "TWO", "THREE"}


def test_unknown_count_is_404(client_for):
    assert client_for("ops").get(f"{COUNTS_URL}999999/").status_code == 404
    assert client_for("ops").post(f"{COUNTS_URL}999999/confirm/").status_code == 404


# --- management command ---------------------------------------------------------------------


def test_command_imports_and_confirms(tmp_path, wh, stocked):
    path = tmp_path / "count.csv"
    path.write_text("sku,counted,reason\nA-100,7,shrinkage\nB-200,5,\n", encoding="utf-8")
    out = io.StringIO()

    call_command("import_stock_count", str(path), "--warehouse", "WH-SH", "--reference", "CNT-9",
                 "--confirm", stdout=out)

    assert "2 lines imported" in out.getvalue()
    assert "confirmed: 1 of 2 lines differed" in out.getvalue()
    assert on_hand(wh, stocked["A"]) == 7
    assert adjustments().get().reason == "shrinkage"


def test_command_without_confirm_leaves_a_draft(tmp_path, wh, stocked):
    path = tmp_path / "count.xlsx"
    path.write_bytes(xlsx_bytes([["sku", "counted"], ["A-100", 1]]))

    call_command("import_stock_count", str(path), "--warehouse", "WH-SH", stdout=io.StringIO())

    assert StockCount.objects.get().status == StockCount.State.DRAFT
    assert not adjustments().exists()


@pytest.mark.parametrize(("content", "name", "args", "message"), [
    ("sku,counted\nA-100,1\nNOPE,2\nB-200,-3\n", "count.csv", [],
     "refused: 2 bad lines: row 3 sku='NOPE': no SKU with this code or barcode; "
     "row 4 counted='-3': must not be negative"),
    ("sku,counted\nA-100,1\n", "count.csv", ["--warehouse", "WH-NONE"],
     "refused: warehouse: no warehouse with code 'WH-NONE'"),
    ("sku,counted\nA-100,1\n", "count.txt", [], "refused: file: a .csv or .xlsx file"),
])
def test_command_exits_non_zero_with_one_line_reason_and_stores_nothing(
        tmp_path, wh, stocked, content, name, args, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")

    with pytest.raises(CommandError) as failed:
        call_command("import_stock_count", str(path), *(args or ["--warehouse", "WH-SH"]))

    assert str(failed.value).startswith(message)
    assert "\n" not in str(failed.value)
    assert not StockCount.objects.exists() and not StockCountLine.objects.exists()


def test_command_confirm_refused_below_reserved_keeps_nothing(tmp_path, wh, stocked):
    reserve(wh, stocked["A"], 5)
    path = tmp_path / "count.csv"
    path.write_text("sku,counted\nA-100,2\n", encoding="utf-8")

    with pytest.raises(CommandError, match="A-100 counted 2, 5 reserved"):
        call_command("import_stock_count", str(path), "--warehouse", "WH-SH", "--confirm")

    assert not StockCount.objects.exists() and not adjustments().exists()


def test_command_exits_non_zero_for_a_missing_file(wh):
    with pytest.raises(CommandError, match="no file"):
        call_command("import_stock_count", "/nonexistent/count.csv", "--warehouse", "WH-SH")


def test_manage_py_exit_status(tmp_path, wh, stocked):
    """Through the real entry point: non-zero exit and the reason on one stderr line."""
    from django.core.management import execute_from_command_line

    path = tmp_path / "count.csv"
    path.write_text("sku,counted\nNOPE,1\n", encoding="utf-8")
    err = io.StringIO()

    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", "import_stock_count", str(path),
                                   "--warehouse", "WH-SH"])

    assert exited.value.code != 0
    assert err.getvalue().strip().splitlines() == [
        "CommandError: refused: 1 bad line: row 2 sku='NOPE': no SKU with this code or barcode"]


# --- admin ----------------------------------------------------------------------------------


def admin_client(role="ops") -> Client:
    user = UserFactory(role=role, is_staff=True)
    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    client.post("/i18n/setlang/", {"language": "en"})
    client.user = user
    return client


def upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def test_admin_imports_a_new_count_from_a_file(wh, stocked):
    client = admin_client()

    response = client.post("/admin/inventory/stockcount/import/", {
        "warehouse": wh.pk, "reference": "CNT-ADM",
        "file": upload("count.xlsx", xlsx_bytes([["sku", "counted"], ["A-100", 9], ["B-200", 5]])),
    })

    count = StockCount.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/inventory/stockcount/{count.pk}/change/"
    assert (count.reference, count.created_by) == ("CNT-ADM", client.user)
    assert count.lines.count() == 2
    change = client.get(response["Location"]).content.decode()
    assert "Import lines" in change and "Preview and confirm" in change


def test_admin_import_lists_every_bad_row_and_stores_nothing(wh, stocked):
    client = admin_client()

    response = client.post("/admin/inventory/stockcount/import/", {
        "warehouse": wh.pk,
        "file": upload("count.csv", b"sku,counted\nA-100,1\nNOPE,1\nB-200,-2\n"),
    })

    assert response.status_code == 200
    table = re.sub(r"\s+", " ", response.content.decode())
    table = table[table.index('id="bad-rows"'):]
    assert "<td>3</td><td>sku</td><td>NOPE</td><td>no SKU with this code or barcode</td>" in table
    assert "<td>4</td><td>counted</td><td>-2</td><td>must not be negative</td>" in table
    assert "Nothing was imported" in response.content.decode()
    assert not StockCount.objects.exists()


def test_admin_enters_a_count_by_hand(wh, stocked):
    client = admin_client()
    assert client.get("/admin/inventory/stockcount/add/").status_code == 200

    response = client.post("/admin/inventory/stockcount/add/", {
        "warehouse": wh.pk, "reference": "HAND-1",
        "lines-TOTAL_FORMS": "2", "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0", "lines-MAX_NUM_FORMS": "1000",
        "lines-0-sku": stocked["A"].pk, "lines-0-counted": "9", "lines-0-reason": "",
        "lines-1-sku": stocked["B"].pk, "lines-1-counted": "-1", "lines-1-reason": "",
    })
    assert response.status_code == 200  # the negative quantity is refused on the form
    assert not StockCount.objects.exists()

    response = client.post("/admin/inventory/stockcount/add/", {
        "warehouse": wh.pk, "reference": "HAND-1",
        "lines-TOTAL_FORMS": "1", "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0", "lines-MAX_NUM_FORMS": "1000",
        "lines-0-sku": stocked["A"].pk, "lines-0-counted": "9", "lines-0-reason": "",
    })
    assert response.status_code == 302
    count = StockCount.objects.get()
    assert (count.created_by, count.status) == (client.user, "draft")
    assert list(count.lines.values_list("sku__code", "counted")) == [("A-100", 9)]


def test_admin_imports_lines_into_a_draft(wh, stocked):
    client = admin_client()
    count = draft(wh)

    response = client.post(f"/admin/inventory/stockcount/{count.pk}/import/", {
        "file": upload("count.csv", b"sku,counted\nC-300,2\n")})

    assert response.status_code == 302
    assert list(count.lines.values_list("sku__code", "counted")) == [("C-300", 2)]


def test_admin_action_confirms_and_reports(wh, stocked):
    client = admin_client()
    good = counts.create_count(wh.code, "GOOD", [{"sku": "A-100", "counted": 7}])
    reserve(wh, stocked["B"], 5)
    bad = counts.create_count(wh.code, "BAD", [{"sku": "B-200", "counted": 0}])

    response = client.post("/admin/inventory/stockcount/", {
        "action": "confirm_selected", "_selected_action": [good.pk, bad.pk]}, follow=True)

    html = response.content.decode()
    assert "GOOD confirmed: 1 of 1 lines differed (+0 / −3 units)." in html
    assert "BAD not confirmed: counted below reserved stock: B-200 counted 0, 5 reserved" in html
    good.refresh_from_db()
    bad.refresh_from_db()
    assert (good.status, bad.status) == ("confirmed", "draft")
    assert on_hand(wh, stocked["A"]) == 7


def test_admin_variance_page_confirms_and_downloads(wh, stocked):
    client = admin_client()
    count = counts.create_count(wh.code, "CNT-V", [
        {"sku": "A-100", "counted": 7, "reason": "broken"}, {"sku": "B-200", "counted": 5}])
    url = f"/admin/inventory/stockcount/{count.pk}/variance/"

    preview = re.sub(r"\s+", " ", client.get(url).content.decode())
    assert "Draft: a preview against the current on hand." in preview
    assert "<td>A-100</td><td>茶杯</td><td>10</td><td>7</td> <td>-3</td><td>broken</td>" in preview
    assert "1 of 2 lines differ" in preview
    only = client.get(url, {"only": "variances"}).content.decode()
    assert "A-100" in only and "B-200" not in only

    confirmed = client.post(f"/admin/inventory/stockcount/{count.pk}/confirm/", follow=True)
    assert "CNT-V confirmed" in confirmed.content.decode()
    assert "Confirmed at" in confirmed.content.decode()
    assert on_hand(wh, stocked["A"]) == 7

    download = client.get(url, {"format": "csv"})
    assert download["Content-Type"].startswith("text/csv")
    assert 'filename="CNT-V-variance-' in download["Content-Disposition"]
    text = download.content.decode("utf-8-sig").splitlines()
    assert text[0] == "sku,name,system,counted,variance,reason"
    assert text[1:] == ["A-100,茶杯,10,7,-3,broken", "B-200,茶壶,5,5,0,"]

    xlsx = client.get(url, {"format": "xlsx"})
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert [c.value for c in sheet[2]] == ["A-100", "茶杯", 10, 7, -3, "broken"]


def test_downloads_do_not_carry_formulas(wh, stocked):
    client = admin_client()
    count = counts.create_count(wh.code, "CNT-F", [
        {"sku": "A-100", "counted": 7, "reason": '=HYPERLINK("http://evil","x")'}])
    url = f"/admin/inventory/stockcount/{count.pk}/variance/"

    text = client.get(url, {"format": "csv"}).content.decode("utf-8-sig")
    assert "'=HYPERLINK" in text
    sheet = openpyxl.load_workbook(io.BytesIO(client.get(url, {"format": "xlsx"}).content)).active
    assert sheet["F2"].value == "'" + '=HYPERLINK("http://evil","x")'
    assert sheet["E2"].value == -3


def test_a_confirmed_count_is_read_only_in_the_admin(wh, stocked):
    client = admin_client()
    count = counts.create_count(wh.code, "CNT-RO", [{"sku": "A-100", "counted": 7}])
    counts.confirm_count(count.pk)

    html = client.get(f"/admin/inventory/stockcount/{count.pk}/change/").content.decode()

    assert 'name="lines-0-counted"' not in html
    assert "Import lines" not in html and "Variance report" in html
    response = client.post(f"/admin/inventory/stockcount/{count.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert StockCount.objects.filter(pk=count.pk).exists()


def test_admin_count_pages_need_inventory_permissions(wh, stocked):
    count = counts.create_count(wh.code, "CNT-P", [{"sku": "A-100", "counted": 7}])
    client = admin_client("customer_service")

    assert client.get(f"/admin/inventory/stockcount/{count.pk}/variance/").status_code == 403
    assert client.post(f"/admin/inventory/stockcount/{count.pk}/confirm/").status_code == 403
    assert client.get("/admin/inventory/stockcount/import/").status_code == 403
    count.refresh_from_db()
    assert count.status == "draft"

