"""What an uploaded statement may cost to open (issue 15): the bombs are built here, and each is
refused with a StatementFormatError before the work it would have caused."""

import gzip
import io
import struct
import tracemalloc
import zipfile
import zlib

import pytest

from reconciliation.statements import StatementFormatError, open_statement

from . import statement_files as files

MB = 1 << 20
MAIN = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
SHARED_STRINGS_TYPE = (b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                       b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>')


def refused(data: bytes, filename: str = "") -> str:
    with pytest.raises(StatementFormatError) as caught:
        list(open_statement(data, filename=filename).rows())
    return str(caught.value)


def generic_bill(rows: int = 3) -> bytes:
    return files.generic_csv(files.many_generic(rows))


def zeros_gzip(megabytes: int) -> bytes:
    """gzip of that many megabytes of zeros: one megabyte deflated, flushed so it stands alone,
    and repeated (300 MB → about 300 KB, in a tenth of a second)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(bytes(MB)) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(megabytes):
        crc = zlib.crc32(bytes(MB), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    final = b"\x03\x00"  # an empty last block
    return header + block * megabytes + final + struct.pack("<II", crc, megabytes * MB % (1 << 32))


def rezip(data: bytes, parts: dict) -> bytes:
    """The archive with some members replaced or added: bytes, or a callable writing to the
    member a chunk at a time (for members too big to build in memory)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        names = [info.filename for info in source.infolist()]
        for name in names + [name for name in parts if name not in names]:
            content = parts[name] if name in parts else source.read(name)
            if name == "[Content_Types].xml" and "xl/sharedStrings.xml" in parts:
                content = content.replace(b"</Types>", SHARED_STRINGS_TYPE + b"</Types>")
            if callable(content):
                with archive.open(name, "w", force_zip64=True) as member:
                    content(member)
            else:
                archive.writestr(name, content)
    return out.getvalue()


def workbook(**parts) -> bytes:
    """A generic statement as .xlsx, with parts replaced: sheet=, strings=, styles=, book=."""
    names = {"sheet": "xl/worksheets/sheet1.xml", "strings": "xl/sharedStrings.xml",
             "styles": "xl/styles.xml", "book": "xl/workbook.xml"}
    base = files.xlsx([files.GENERIC_HEADER, *files.many_generic(2)])
    return rezip(base, {names[key]: value for key, value in parts.items()})


def sheet(rows: bytes, head: bytes = b"") -> bytes:
    return b'<?xml version="1.0"?><worksheet ' + MAIN + b">" + head + b"<sheetData>" + rows + b"</sheetData></worksheet>"


HEADER_ROW = (b'<row r="1"><c r="A1" t="inlineStr"><is><t>transaction_no</t></is></c>'
              b'<c r="B1" t="inlineStr"><is><t>order_no</t></is></c><c r="C1" t="inlineStr"><is><t>amount</t></is></c>'
              b'<c r="D1" t="inlineStr"><is><t>occurred_at</t></is></c></row>')


def test_the_workbook_helpers_build_a_readable_statement():
    reader = open_statement(workbook(sheet=sheet(HEADER_ROW + b'<row r="2"><c r="A2" t="inlineStr"><is><t>T1</t>'
                                                 b'</is></c><c r="B2" t="s"><v>0</v></c><c r="C2"><v>1.5</v></c>'
                                                 b'<c r="D2" t="inlineStr"><is><t>2025-03-01 10:00:00</t></is></c></row>'),
                                     strings=b'<sst ' + MAIN + b'><si><t>MP1</t></si></sst>'))
    rows = list(reader.rows())
    assert (reader.encoding, [(row.transaction_no, row.order_ref, str(row.amount)) for row in rows]) == (
        "xlsx", [("T1", "MP1", "1.50")])


# --- the upload itself -----------------------------------------------------------------------


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read():
    data = generic_bill() + b"#" * (50 * MB)
    assert refused(data) == "file too large: more than 50 MB"


def test_the_upload_limit_is_a_setting(settings):
    settings.OMS_STATEMENT_MAX_BYTES = 1024
    assert refused(generic_bill(30)) == "file too large: more than 1 KB"
    settings.OMS_STATEMENT_MAX_BYTES = 64 * 1024
    assert len(list(open_statement(generic_bill(30)).rows())) == 30


# --- gzip ------------------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_without_holding_what_it_unpacks_to():
    bomb = zeros_gzip(300)
    assert len(bomb) < MB
    tracemalloc.start()
    try:
        reason = refused(bomb, "bill.csv.gz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reason == "file too large once unpacked: more than 200 MB"
    assert peak < 16 * MB  # counted a chunk at a time, never held


def test_the_unpacked_limit_is_a_setting(settings):
    data = gzip.compress(generic_bill(30))
    settings.OMS_STATEMENT_MAX_UNPACKED_BYTES = 1024
    assert refused(data, "bill.csv.gz") == "file too large once unpacked: more than 1 KB"
    settings.OMS_STATEMENT_MAX_UNPACKED_BYTES = 64 * 1024
    assert len(list(open_statement(data, filename="bill.csv.gz").rows())) == 30


def test_a_gzip_cut_short_is_damaged_not_a_shorter_statement():
    data = gzip.compress(generic_bill(2000))
    assert refused(data[: len(data) // 2], "bill.csv.gz") == "damaged gzip file"


def test_gzip_members_one_after_another_are_one_file():
    bill = generic_bill(10)
    cut = bill.index(b"\r\n", len(bill) // 2) + 2
    reader = open_statement(gzip.compress(bill[:cut]) + gzip.compress(bill[cut:]), filename="bill.csv.gz")
    assert len(list(reader.rows())) == 10


# --- zip -------------------------------------------------------------------------------------


def zip_of(name: str, content) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        if callable(content):
            with archive.open(name, "w", force_zip64=True) as member:
                content(member)
        else:
            archive.writestr(name, content)
    return out.getvalue()


def zeros(size: int):
    def write(member):
        block = bytes(MB)
        for _ in range(size // MB):
            member.write(block)

    return write


def test_a_zip_member_bigger_than_the_unpacked_limit_is_refused_by_its_declared_size():
    bomb = zip_of("bill.csv", zeros(300 * MB))
    assert len(bomb) < 2 * MB
    assert refused(bomb, "bill.zip") == "file too large once unpacked: more than 200 MB"


def test_a_zip_member_is_read_no_further_than_its_declared_size():
    data = zip_of("bill.csv", generic_bill(2000))
    info = zipfile.ZipFile(io.BytesIO(data)).infolist()[0]
    real, declared = info.file_size.to_bytes(4, "little"), (1000).to_bytes(4, "little")
    # The size sits in the local header (offset 22) and in the central directory entry.
    lied = data[:22] + declared + data[26:]
    central = lied.rindex(b"PK\x01\x02")
    assert lied[central + 24:central + 28] == real
    lied = lied[:central + 24] + declared + lied[central + 28:]
    assert zipfile.ZipFile(io.BytesIO(lied)).infolist()[0].file_size == 1000
    assert refused(lied, "bill.zip") == "damaged zip/xlsx file"


# --- nesting ---------------------------------------------------------------------------------


def test_one_archive_inside_another_is_read():
    bill = generic_bill(3)
    for data in (
        gzip.compress(zip_of("bill.csv", bill)),
        zip_of("bill.csv", gzip.compress(bill)),
        gzip.compress(gzip.compress(bill)),
        gzip.compress(files.xlsx([files.GENERIC_HEADER, *files.many_generic(3)])),
    ):
        assert len(list(open_statement(data).rows())) == 3


@pytest.mark.parametrize("layers", ["gzip-zip-gzip", "gzip-gzip-gzip", "zip-gzip-gzip", "gzip-gzip-xlsx"])
def test_an_archive_in_an_archive_in_an_archive_is_refused(layers):
    data = files.xlsx([files.GENERIC_HEADER, *files.many_generic(3)]) if layers.endswith("xlsx") else generic_bill()
    for layer in reversed(layers.split("-")):
        if layer == "gzip":
            data = gzip.compress(data)
        elif layer == "zip":
            data = zip_of("bill.csv", data)
    assert refused(data) == "archive nested too deeply: at most one archive inside another"


# --- xlsx ------------------------------------------------------------------------------------


def test_workbook_parts_bigger_than_the_unpacked_limit_in_all_are_refused_before_openpyxl():
    def padded(member):
        member.write(b'<?xml version="1.0"?><worksheet ' + MAIN + b"><sheetData>")
        block = b" " * MB
        for _ in range(300):
            member.write(block)
        member.write(b"</sheetData></worksheet>")

    bomb = workbook(sheet=padded)
    assert len(bomb) < 2 * MB
    assert refused(bomb, "bill.xlsx") == "file too large once unpacked: more than 200 MB"


def test_a_sheet_declaring_a_huge_dimension_is_refused():
    data = workbook(sheet=sheet(HEADER_ROW, head=b'<dimension ref="A1:XFD1048576"/>'))
    assert refused(data, "bill.xlsx") == (
        "sheet too large: its dimension declares 1,048,576 rows × 16,384 columns, more than 20,000,000 cells")


def test_the_cell_limit_is_a_setting(settings):
    data = files.xlsx([files.GENERIC_HEADER, *files.many_generic(30)])
    settings.OMS_STATEMENT_MAX_CELLS = 100
    assert refused(data, "bill.xlsx") == "sheet too large: more than 100 cells"
    settings.OMS_STATEMENT_MAX_CELLS = 31 * 9
    assert len(list(open_statement(data).rows())) == 30


def test_a_million_shared_strings_are_refused_before_openpyxl_reads_them():
    # openpyxl reads a shared string at some 25 µs: this 110 KB upload would cost it 25 s.
    bomb = workbook(strings=b'<sst ' + MAIN + b">" + b"<si><t>x</t></si>" * 1_000_000 + b"</sst>")
    assert len(bomb) < 200_000
    assert refused(bomb, "bill.xlsx") == "not a readable .xlsx workbook (more shared strings than the sheets use)"


def test_one_huge_shared_string_is_refused_by_size():
    def huge(member):
        member.write(b"<sst " + MAIN + b"><si><t>")
        for _ in range(300):
            member.write(b"x" * MB)
        member.write(b"</t></si></sst>")

    assert refused(workbook(strings=huge), "bill.xlsx") == "file too large once unpacked: more than 200 MB"


def test_a_row_of_a_million_cells_is_refused_before_openpyxl_holds_it():
    # openpyxl builds a row's whole tree before reading it: 300 MB for this one.
    bomb = workbook(sheet=sheet(HEADER_ROW + b'<row r="2">' + b"<c/>" * 1_000_000 + b"</row>"))
    assert refused(bomb, "bill.xlsx") == "not a readable .xlsx workbook (more than 131,072 XML elements in one row)"


def test_rows_as_wide_as_excel_allows_are_counted_before_reading():
    # Each row one cell in column XFD: openpyxl yields 16,384 values for it.
    rows = b"".join(b'<row r="%d"><c r="XFD%d"/></row>' % (n, n) for n in range(2, 1300))
    assert refused(workbook(sheet=sheet(HEADER_ROW + rows)), "bill.xlsx") == (
        "sheet too large: more than 20,000,000 cells")


def test_row_numbers_beyond_excel_are_refused():
    # openpyxl would yield an empty row for every number skipped.
    data = workbook(sheet=sheet(HEADER_ROW + b'<row r="999999999999"><c r="A999999999999"><v>1</v></c></row>'))
    assert refused(data, "bill.xlsx") == "not a readable .xlsx workbook (row number 999999999999 beyond Excel's 1,048,576)"


def test_cells_are_counted_while_reading_too(settings):
    # A row inside a row: openpyxl reads the inner one as row 900,000, after 899,998 empty ones.
    settings.OMS_STATEMENT_MAX_CELLS = 10_000
    data = workbook(sheet=sheet(HEADER_ROW + b'<row r="2"><row r="900000"/><c r="A2"><v>1</v></c></row>'))
    # The header's 4 cells, then one per empty row: the 10,001st is on line 9,998.
    assert refused(data, "bill.xlsx") == "sheet too large: more than 10,000 cells (line 9998)"


def test_a_dtd_is_refused_so_entities_cannot_expand():
    laughs = (b'<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY a "xxxxxxxxxx">'
              + b"".join(b'<!ENTITY %c "%s">' % (ord("b") + n, b"&%c;" % (ord("a") + n) * 10) for n in range(8))
              + b"]><sst " + MAIN + b"><si><t>&i;</t></si></sst>")
    assert refused(workbook(strings=laughs), "bill.xlsx") == (
        "not a readable .xlsx workbook (DTD in xl/sharedStrings.xml)")


def test_styles_with_hundreds_of_thousands_of_elements_are_refused():
    base = zipfile.ZipFile(io.BytesIO(files.xlsx([files.GENERIC_HEADER]))).read("xl/styles.xml")
    styles = base.replace(b'<fonts count="1">', b'<fonts count="1">' + b'<font><sz val="11"/></font>' * 150_000)
    assert refused(workbook(styles=styles), "bill.xlsx") == (
        "not a readable .xlsx workbook (more than 250,000 XML elements besides the sheets)")


def test_a_big_formula_chain_openpyxl_does_not_read_is_no_reason_to_refuse():
    chain = b"<calcChain " + MAIN + b">" + b'<c r="E2" i="1"/>' * 300_000 + b"</calcChain>"
    data = rezip(files.xlsx([files.GENERIC_HEADER, *files.many_generic(3)]), {"xl/calcChain.xml": chain})
    assert len(list(open_statement(data, filename="bill.xlsx").rows())) == 3


def test_a_part_openpyxl_reads_by_its_path_is_limited_whatever_its_root():
    # openpyxl parses xl/styles.xml whole whatever its root: the root of a part it does not
    # read buys it no exemption.
    styles = b"<calcChain " + MAIN + b">" + b"<c/>" * 300_000 + b"</calcChain>"
    assert refused(workbook(styles=styles), "bill.xlsx") == (
        "not a readable .xlsx workbook (more than 250,000 XML elements besides the sheets)")


def test_parts_openpyxl_does_not_read_have_a_budget_too():
    chain = b"<calcChain " + MAIN + b">" + b"<c/>" * 2_100_000 + b"</calcChain>"
    data = rezip(files.xlsx([files.GENERIC_HEADER, *files.many_generic(3)]), {"xl/calcChain.xml": chain})
    assert refused(data, "bill.xlsx") == (
        "not a readable .xlsx workbook (more than 2,000,000 XML elements in formula chains, pivot caches "
        "and comments)")


def rows_of_cells(rows: int, cells: int) -> bytes:
    return b"".join(b"<row>" + b"<c/>" * cells + b"</row>" for _ in range(rows))


def test_a_part_openpyxl_parses_whole_is_limited_even_when_it_looks_like_a_sheet():
    # styles.xml is parsed whole (one tree in memory), whatever its root says.
    assert refused(workbook(styles=sheet(rows_of_cells(30, 10_000))), "bill.xlsx") == (
        "not a readable .xlsx workbook (more than 250,000 XML elements besides the sheets)")


def test_a_chartsheet_is_limited_as_a_part_parsed_whole():
    # openpyxl parses a chartsheet whole, even read-only: found by the relationship's type.
    base = files.xlsx([files.GENERIC_HEADER, *files.many_generic(2)])
    archive = zipfile.ZipFile(io.BytesIO(base))
    book = archive.read("xl/workbook.xml")
    book = book.replace(b"</sheets>", b'<sheet name="C" sheetId="9" state="visible" r:id="rIdC"/></sheets>')
    rels = archive.read("xl/_rels/workbook.xml.rels").replace(
        b"</Relationships>", b'<Relationship Id="rIdC" Target="chartsheets/sheet9.xml" Type="http://schemas.'
        b'openxmlformats.org/officeDocument/2006/relationships/chartsheet"/></Relationships>')
    data = rezip(base, {"xl/workbook.xml": book, "xl/_rels/workbook.xml.rels": rels,
                        "xl/chartsheets/sheet9.xml": sheet(rows_of_cells(30, 10_000))})
    assert refused(data, "bill.xlsx") == (
        "not a readable .xlsx workbook (more than 250,000 XML elements besides the sheets)")


def test_sheet_entries_sharing_one_sheet_part_are_refused():
    book = zipfile.ZipFile(io.BytesIO(files.xlsx([files.GENERIC_HEADER]))).read("xl/workbook.xml")
    entry = book[book.index(b"<sheet "):book.index(b"/>", book.index(b"<sheet ")) + 2]
    copies = b"".join(entry.replace(b'name="Sheet"', b'name="S%d"' % n) for n in range(2000))
    assert refused(workbook(book=book.replace(entry, copies)), "bill.xlsx") == (
        "not a readable .xlsx workbook (more sheets than sheet parts)")


def test_unreadable_cells_in_the_sheet_are_a_format_error_with_the_line():
    # A shared-string index past the table: openpyxl raises IndexError while reading the row.
    data = workbook(sheet=sheet(HEADER_ROW + b'<row r="2"><c r="A2" t="s"><v>7</v></c></row>'),
                    strings=b"<sst " + MAIN + b"><si><t>x</t></si></sst>")
    assert refused(data, "bill.xlsx") == "not a readable .xlsx workbook (IndexError) (line 2)"
