"""Bytes to rows of cell strings: the container (text, XLSX, zip, gzip) and the text encoding."""

import codecs
import csv
import io
import zipfile
import zlib
from collections.abc import Iterator
from datetime import date, datetime, time

from .model import StatementFormatError

# Uploads are held in memory whole; an archive may not expand past this.
MAX_UNPACKED = 1 << 30
_CHUNK = 1 << 20
# A UTF-8 file that fails only after this many multi-byte characters is UTF-8 with a damaged
# byte, not GBK: GBK text breaks UTF-8 at its first or second Chinese character.
_UTF8_EVIDENCE = 8

Line = tuple[int, list[str]]  # (line or sheet row number, cells)
_LABELS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8"}


class TextTable:
    """A delimited text file; each pass re-reads the bytes, so rows() can be called again."""

    def __init__(self, data: bytes, encoding: str):
        self.data = data
        self.encoding = encoding
        self.delimiter = ","
        self.estimated_rows = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)

    def lines(self) -> Iterator[Line]:
        text = io.TextIOWrapper(io.BytesIO(self.data), encoding=self.encoding, newline="")
        reader = csv.reader(text, delimiter=self.delimiter)
        done = 0
        try:
            for cells in reader:
                # Blank lines and Excel's ",,,," padding are layout, not rows.
                if any(cells):
                    yield done + 1, cells
                done = reader.line_num
        except csv.Error as exc:
            raise StatementFormatError(f"malformed CSV ({exc})", row=done + 1) from None


class XlsxTable:
    """The first sheet of a workbook; sheet row numbers are what the user sees in Excel."""

    encoding = "xlsx"

    def __init__(self, data: bytes):
        self.data = data
        book = _load_workbook(data)
        try:
            self.estimated_rows = book.worksheets[0].max_row or 0
        finally:
            book.close()

    def lines(self) -> Iterator[Line]:
        book = _load_workbook(self.data)
        try:
            sheet = book.worksheets[0]
            # Exporters often write a wrong <dimension>; trusting it would drop rows.
            sheet.reset_dimensions()
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                cells = [_cell_text(value) for value in values]
                if any(cells):
                    yield number, cells
        finally:
            book.close()


def _load_workbook(data: bytes):
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises anything from KeyError to XML errors on bad files
        raise StatementFormatError(f"not a readable .xlsx workbook ({type(exc).__name__})") from None
    if not book.worksheets:
        raise StatementFormatError("empty file")
    return book


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


def open_table(data: bytes, filename: str = ""):
    name = filename.lower()
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return _open_zip(data)
    if data[:2] == b"\x1f\x8b":
        return open_table(_gunzip(data), name.removesuffix(".gz"))
    if data[:4] == b"\xd0\xcf\x11\xe0":
        raise StatementFormatError("legacy .xls workbook: save it as .xlsx or CSV")
    if name.endswith(".xlsx"):
        raise StatementFormatError("not a readable .xlsx workbook")
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") and (b"<html" in head or b"<table" in head):
        raise StatementFormatError("web page saved as a spreadsheet: save it as .xlsx or CSV")
    return TextTable(data, detect_encoding(data))


def _open_zip(data: bytes):
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, ValueError):
        raise StatementFormatError("damaged zip/xlsx file") from None
    if "xl/workbook.xml" in names:
        return XlsxTable(data)
    # Alipay bill downloads are a zip of a detail CSV and a "(汇总)" summary CSV with GBK names.
    members = [
        info for info in archive.infolist()
        if info.filename.lower().endswith((".csv", ".txt")) and "汇总" not in _zip_name(info)
    ]
    if len(members) != 1:
        raise StatementFormatError(
            "zip must hold exactly one statement CSV", column=", ".join(_zip_name(m) for m in members)
        )
    if members[0].file_size > MAX_UNPACKED:
        raise StatementFormatError("file too large once unpacked")
    return open_table(archive.read(members[0]), _zip_name(members[0]))


def _zip_name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, MAX_UNPACKED)
    except zlib.error:
        raise StatementFormatError("damaged gzip file") from None
    if inflater.unconsumed_tail:
        raise StatementFormatError("file too large once unpacked")
    return out


def detect_encoding(data: bytes) -> str:
    """UTF-8 (BOM or not), then GBK/GB18030, then whatever charset-normalizer proposes.

    Every candidate is checked against the whole file so that a bad byte near the end fails the
    upload up front instead of after half the rows were imported.
    """
    if data[:3] == codecs.BOM_UTF8:
        _require(data, "utf-8-sig", _first_error(data, "utf-8", start=3))
        return "utf-8-sig"
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        try:
            data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise StatementFormatError("undecodable bytes (not valid UTF-16)", row=_line_of(data, exc.start)) from None
        return "utf-16"
    utf8_error = _first_error(data, "utf-8")
    if utf8_error is None:
        return "utf-8"
    prefix = data[:utf8_error]
    if len(prefix) - len(prefix.decode("utf-8")) >= 2 * _UTF8_EVIDENCE:
        _require(data, "utf-8", utf8_error)
    errors = [utf8_error]
    for candidate in ("gbk", "gb18030"):
        error = _first_error(data, candidate)
        if error is None:
            return candidate
        errors.append(error)
    fallback = _charset_normalizer_guess(data)
    if fallback and _first_error(data, fallback) is None:
        return fallback
    # The encoding that got furthest is the file's; its first error is the damaged line.
    raise StatementFormatError("undecodable bytes (neither UTF-8 nor GBK)", row=_line_of(data, max(errors)))


def _require(data: bytes, encoding: str, error: int | None) -> None:
    if error is not None:
        raise StatementFormatError(f"undecodable bytes (not valid {_LABELS[encoding]})", row=_line_of(data, error))


def _first_error(data: bytes, encoding: str, start: int = 0) -> int | None:
    """Byte offset of the first undecodable byte, or None.

    Decodes line-aligned chunks: a newline byte never sits inside a UTF-8 or GBK character,
    so each chunk decodes on its own and memory stays flat.
    """
    if encoding.startswith(("utf-16", "utf-32")):
        try:
            data[start:].decode(encoding)
        except UnicodeDecodeError as exc:
            return start + exc.start
        return None
    view = memoryview(data)
    size = len(data)
    while start < size:
        end = data.find(b"\n", min(start + _CHUNK, size))
        end = size if end < 0 else end + 1
        try:
            codecs.decode(view[start:end], encoding)
        except UnicodeDecodeError as exc:
            return start + exc.start
        start = end
    return None


def _charset_normalizer_guess(data: bytes) -> str | None:
    from charset_normalizer import from_bytes

    sample = data[: 1 << 18]
    cut = sample.rfind(b"\n")
    best = from_bytes(sample[: cut + 1] if cut > 0 else sample).best()
    if best is None:
        return None
    try:
        return codecs.lookup(best.encoding).name
    except LookupError:
        return None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1

