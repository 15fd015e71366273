"""XLSX workbooks: the first sheet as rows of cell strings, once the workbook is known to be safe.

openpyxl trusts the workbook. It holds a <row>'s whole XML tree in memory before reading the
row, keeps every element of the shared-string table and of the parts it parses whole (styles,
workbook, relationships) and reads each shared string at some 25 µs: a 46 KB upload holding a
million one-letter strings costs it 50 s, and one row of a million <c/> 300 MB. So before openpyxl
sees a workbook, its parts' declared sizes are charged to the unpacked budget (zipfile never
reads a member past its declared size) and every XML part is streamed once through expat,
holding nothing, against the limits below.
"""

import io
import posixpath
import zipfile
import zlib
from collections.abc import Iterator
from datetime import date, datetime, time
from xml.parsers import expat

from .limits import Unpacking, too_many_cells
from .model import StatementFormatError

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_ROW = f"{MAIN_NS} row"
_SHEET = f"{MAIN_NS} sheet"
# Excel's own limit; openpyxl yields an empty row for every row number skipped.
EXCEL_ROWS = 1_048_576
# XML elements under one <row>: Excel's 16,384 cells with a value each and room for rich text.
ROW_ELEMENTS = 1 << 17
# Elements of the parts openpyxl parses whole, all of them together: a real workbook's styles,
# properties and relationships hold a few thousand; openpyxl reads some 60,000 a second.
PART_ELEMENTS = 250_000
# Parts openpyxl does not parse in read-only mode: formula chains, pivot caches and comments of
# big workbooks may hold millions of elements. They have a budget of their own, not none:
# openpyxl reads whatever a <sheet> entry points at as a worksheet, whatever its root, and keeps
# every element outside its rows.
UNREAD_ELEMENTS = 2_000_000
_UNREAD = frozenset({
    "calcChain", "pivotCacheDefinition", "pivotCacheRecords", "pivotTableDefinition", "comments",
    "threadedComments", "queryTable", "table", "connections", "externalLink", "metadata",
    "volTypes", "personList", "xml",
})
_SHEET_ROOTS = frozenset({"worksheet", "chartsheet", "dialogsheet", "macrosheet"})
# Parts openpyxl parses whole, found by fixed path, by content type, or by the type of the
# relationship that points at them (chartsheets and their drawings are read even read-only).
_READ_WHOLE = ("[Content_Types].xml", "xl/styles.xml", "docProps/core.xml", "docProps/custom.xml")
_SPREADSHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_WORKBOOK_TYPES = frozenset({
    f"{_SPREADSHEET_TYPE}.sheet.main+xml", f"{_SPREADSHEET_TYPE}.template.main+xml",
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml", "application/vnd.ms-excel.template.macroEnabled.main+xml",
})
_SHARED_STRINGS_TYPE = f"{_SPREADSHEET_TYPE}.sharedStrings+xml"
_RELATIONSHIP_ROLES = {
    "officeDocument": "whole", "chartsheet": "whole", "drawing": "whole", "chart": "whole", "styles": "whole",
    "core-properties": "whole", "custom-properties": "whole", "sharedStrings": "strings",
}
# zipfile's reading errors: bad CRC, truncated or unsupported compression, encryption.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError,
              ValueError)
_CHUNK = 1 << 16

Line = tuple[int, list[str]]


class XlsxTable:
    """The first sheet of a workbook; sheet row numbers are what the user sees in Excel."""

    encoding = "xlsx"

    def __init__(self, data: bytes, archive: zipfile.ZipFile, unpacking: Unpacking):
        self.max_cells = unpacking.limits.max_cells
        unpacking.take(sum(info.file_size for info in archive.infolist()))
        _Inspection(archive, self.max_cells).run()
        # One load serves every pass: shared strings are read once, iter_rows re-reads the sheet.
        self._book = _load_workbook(data)
        sheet = self._book.worksheets[0]
        rows, columns = _declared_size(sheet)
        if rows * columns > self.max_cells:
            raise StatementFormatError(
                f"sheet too large: its dimension declares {rows:,} rows × {columns:,} columns, "
                f"more than {self.max_cells:,} cells"
            )
        self.estimated_rows = sheet.max_row or 0
        # Exporters often write a wrong <dimension>; trusting it would drop rows.
        sheet.reset_dimensions()
        self._sheet = sheet

    def lines(self) -> Iterator[Line]:
        rows = self._sheet.iter_rows(values_only=True)
        number = cells = 0
        while True:
            try:
                values = next(rows, None)
            except Exception as exc:  # openpyxl raises anything from IndexError to XML errors
                raise StatementFormatError(
                    f"not a readable .xlsx workbook ({type(exc).__name__})", row=number + 1
                ) from None
            if values is None:
                return
            number += 1
            # A row as wide as its last cell costs its width, an empty one costs one.
            cells += len(values) or 1
            if cells > self.max_cells:
                raise too_many_cells(self.max_cells, row=number)
            texts = [_cell_text(value) for value in values]
            if any(texts):
                yield number, texts


def _load_workbook(data: bytes):
    import openpyxl

    try:
        # keep_links=False: external links' cached values are not read.
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception as exc:  # openpyxl raises anything from KeyError to XML errors on bad files
        raise StatementFormatError(f"not a readable .xlsx workbook ({type(exc).__name__})") from None
    if not book.worksheets:
        raise StatementFormatError("empty file")
    return book


def _declared_size(sheet) -> tuple[int, int]:
    """(rows, columns) of the sheet's <dimension>, (0, 0) without one."""
    if not (sheet.max_row and sheet.max_column):
        return 0, 0
    return abs(sheet.max_row - sheet.min_row) + 1, abs(sheet.max_column - sheet.min_column) + 1


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _float_text(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    # Excel stores 0.1+0.2 as 0.30000000000000004 and shows 0.30; keep what it shows, but let
    # a real third decimal (1.005) through to be rejected.
    rounded = f"{value:.2f}"
    return rounded if abs(float(rounded) - value) < 1e-9 else repr(value)


# --- the look before openpyxl ---------------------------------------------------------------


def _unreadable(why: str) -> StatementFormatError:
    return StatementFormatError(f"not a readable .xlsx workbook ({why})")


class _Skip(Exception):
    """Stops streaming the shared strings: they are looked at once the sheets have been."""


class _Inspection:
    """Every XML part of the workbook streamed once, against the limits, keeping nothing.

    A part's budget follows what openpyxl will do with it, which depends on how openpyxl finds
    it (by fixed path, content type or relationship) as much as on its root element; the
    manifest and the relationships are read first to know, and the strictest reading wins.

    Parts openpyxl parses whole (manifest, relationships, workbook, styles, properties,
    chartsheets and their drawings): PART_ELEMENTS elements in all. Worksheets: at most
    max_cells cells in all, counted as openpyxl will yield them (rows as wide as their last
    cell, skipped rows as empty ones); ROW_ELEMENTS elements under one row; row numbers within
    Excel's; PART_ELEMENTS elements outside rows (openpyxl keeps those). The shared-string
    table: no more strings than twice the sheets' string cells (plus some slack for sloppy
    writers), as a real table holds each distinct string once. Parts openpyxl does not read:
    UNREAD_ELEMENTS. No part may have a DTD (Excel never writes one; entities are how XML
    bombs expand).
    """

    def __init__(self, archive: zipfile.ZipFile, max_cells: int):
        self.archive = archive
        self.max_cells = max_cells
        self.cells = 0
        self.string_cells = 0
        self.other_elements = 0
        self.unread_elements = 0
        self.sheet_entries = 0
        self.sheet_parts = 0
        self.overrides: list[tuple[str, str]] = []  # (part name, content type)
        self.relationships: list[tuple[str, str, str, str]] = []  # (.rels part, type, target, mode)

    def run(self) -> None:
        infos = [info for info in self.archive.infolist() if not info.is_dir()]
        declarations = [info for info in infos if _declares(info.filename)]
        for info in declarations:
            self._stream(info, lambda name, attrs, part=info.filename: self._declarations(part))
        roles = self._roles()
        tables = []
        for info in infos:
            if info in declarations:
                continue
            role = roles.get(info.filename, "")
            root = self._stream(info, lambda name, attrs, role=role: self._classify(role, name))
            if role == "strings" or (root == "sst" and not role):
                tables.append(info)
        if self.sheet_entries > self.sheet_parts:
            # Sheet entries sharing one part make openpyxl read that part once per entry.
            raise _unreadable("more sheets than sheet parts")
        allowed = 2 * self.string_cells + 1000
        for info in tables:
            self._stream(info, lambda name, attrs: self._strings(allowed))

    def _roles(self) -> dict[str, str]:
        """Part name → "whole" (openpyxl parses it whole) or "strings" (its shared strings),
        found as openpyxl finds them."""
        roles = dict.fromkeys(_READ_WHOLE, "whole")
        workbook = next((part for part, kind in self.overrides if kind in _WORKBOOK_TYPES), "/xl/workbook.xml")
        roles[workbook.lstrip("/")] = "whole"
        for part, kind in self.overrides:
            if kind == _SHARED_STRINGS_TYPE:
                roles.setdefault(part.lstrip("/"), "strings")
        for rels, kind, target, mode in self.relationships:
            if mode == "External" or not target:
                continue
            role = _RELATIONSHIP_ROLES.get(kind.rpartition("/")[2], "")
            path = _resolve(rels, target)
            if role == "whole" or (role and path not in roles):
                roles[path] = role
        return roles

    def _stream(self, info: zipfile.ZipInfo, root_handler) -> str:
        """Feed one member to expat; returns the local name of its root element ("" if not XML)."""
        parser = expat.ParserCreate(namespace_separator=" ")
        state = {"root": ""}

        def doctype(*_):
            raise _unreadable(f"DTD in {info.filename}")

        def first(name, attrs):
            state["root"] = name.rpartition(" ")[2]
            root_handler(name, attrs)(parser, name, attrs)

        parser.StartDoctypeDeclHandler = doctype
        parser.StartElementHandler = first
        try:
            with self.archive.open(info) as member:
                while chunk := member.read(_CHUNK):
                    parser.Parse(chunk, False)
                parser.Parse(b"", True)
        except (_Skip, expat.ExpatError):
            # Not XML, or broken XML: openpyxl stops at the same place (if it reads the part).
            pass
        except ZIP_ERRORS:
            raise StatementFormatError("damaged zip/xlsx file") from None
        return state["root"]

    def _classify(self, role: str, name: str):
        local = name.rpartition(" ")[2]
        if local in _SHEET_ROOTS:
            self.sheet_parts += 1
        if role == "whole":
            return self._other
        if role == "strings" or local == "sst":
            raise _Skip  # looked at once the sheets have been counted
        if local == "worksheet":
            return self._sheet
        if local in _UNREAD:
            return self._unread
        return self._other

    def _declarations(self, part: str):
        """The manifest and the relationships: parsed whole by openpyxl, and what says which
        part openpyxl will read how."""

        def install(parser, name, attrs):
            def start(name, attrs):
                self.other_elements += 1
                if self.other_elements > PART_ELEMENTS:
                    raise _unreadable(f"more than {PART_ELEMENTS:,} XML elements besides the sheets")
                local = name.rpartition(" ")[2]
                if local == "Override":
                    self.overrides.append((attrs.get("PartName", ""), attrs.get("ContentType", "")))
                elif local == "Relationship":
                    self.relationships.append(
                        (part, attrs.get("Type", ""), attrs.get("Target", ""), attrs.get("TargetMode", "")))

            parser.StartElementHandler = start
            start(name, attrs)

        return install

    def _other(self, parser, name, attrs) -> None:
        def start(name, attrs):
            self.other_elements += 1
            if self.other_elements > PART_ELEMENTS:
                raise _unreadable(f"more than {PART_ELEMENTS:,} XML elements besides the sheets")
            if name == _SHEET:
                self.sheet_entries += 1

        parser.StartElementHandler = start
        start(name, attrs)

    def _unread(self, parser, name, attrs) -> None:
        def start(name, attrs):
            self.unread_elements += 1
            if self.unread_elements > UNREAD_ELEMENTS:
                raise _unreadable(f"more than {UNREAD_ELEMENTS:,} XML elements in formula chains, pivot "
                                  "caches and comments")

        parser.StartElementHandler = start
        start(name, attrs)

    def _sheet(self, parser, root, root_attrs) -> None:
        """Cells as openpyxl will yield them: a row is as wide as the column of its last cell,
        and every row number skipped is an empty row."""
        depth = 0
        row_depth = 0  # depth of the <row> being read, 0 outside rows
        row_number = 0
        row_elements = outside = since = 0
        last_ref = ""

        def start(name, attrs):
            nonlocal depth, row_depth, row_number, row_elements, outside, since, last_ref
            depth += 1
            if row_depth:
                row_elements += 1
                if row_elements > ROW_ELEMENTS:
                    raise _unreadable(f"more than {ROW_ELEMENTS:,} XML elements in one row")
                if depth == row_depth + 1:  # openpyxl reads every child of a row as a cell
                    ref = attrs.get("r")
                    if ref:
                        last_ref, since = ref, 0
                    else:
                        since += 1
                    if attrs.get("t") == "s":
                        self.string_cells += 1
                if name == _ROW:
                    _row_number(attrs.get("r"))
            elif name == _ROW:
                number = _row_number(attrs.get("r"))
                number = row_number + 1 if number is None else number
                self.count(max(number - row_number - 1, 0))
                row_number = number
                row_depth, row_elements, since, last_ref = depth, 0, 0, ""
            else:
                outside += 1
                if outside > PART_ELEMENTS:
                    raise _unreadable(f"more than {PART_ELEMENTS:,} XML elements outside the rows")

        def end(name):
            nonlocal depth, row_depth
            if depth == row_depth:
                row_depth = 0
                self.count(max(_column(last_ref) + since, 1))
            depth -= 1

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        start(root, root_attrs)

    def count(self, cells: int) -> None:
        self.cells += cells
        if self.cells > self.max_cells:
            raise too_many_cells(self.max_cells)

    def _strings(self, allowed: int):
        def install(parser, name, attrs):
            strings = elements = 0
            element_cap = 16 * allowed + PART_ELEMENTS

            def start(name, attrs):
                nonlocal strings, elements
                elements += 1
                if elements > element_cap:
                    raise _unreadable("shared strings too large")
                if name.endswith(" si"):
                    strings += 1
                    if strings > allowed:
                        raise _unreadable("more shared strings than the sheets use")

            parser.StartElementHandler = start
            start(name, attrs)

        return install


def _declares(name: str) -> bool:
    return name == "[Content_Types].xml" or name.endswith(".rels")


def _resolve(rels: str, target: str) -> str:
    """A relationship's target as openpyxl resolves it: from the folder above the _rels one."""
    if target.startswith("/"):
        return target[1:]
    return posixpath.normpath(posixpath.join(posixpath.split(posixpath.dirname(rels))[0], target))


def _row_number(raw: str | None) -> int | None:
    """A row's r as openpyxl reads it: an int, else a whole float ("1e3"); None when absent or
    unreadable (openpyxl refuses those itself)."""
    if raw is None:
        return None
    try:
        number = int(raw)
    except ValueError:
        try:
            value = float(raw)
        except ValueError:
            return None
        if not value.is_integer():
            return None
        number = int(value)
    if number > EXCEL_ROWS:
        raise _unreadable(f"row number {raw[:20]} beyond Excel's {EXCEL_ROWS:,}")
    return number


def _column(ref: str) -> int:
    """The column of a cell reference (XFD1 → 16384), 0 when it is not one."""
    letters = ref.replace("$", "").rstrip("0123456789")
    if not (1 <= len(letters) <= 3 and letters.isascii() and letters.isalpha()):
        return 0
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return number
