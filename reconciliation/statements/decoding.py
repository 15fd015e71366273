"""Bytes to rows of cell strings: the container (text, XLSX, zip, gzip) and the text encoding.

What an upload may cost is bounded by .limits: its size, what every layer of it unpacks to in
all, how deeply archives nest and (in .xlsx) how many cells the workbook holds.
"""

import codecs
import csv
import io
import zipfile
import zlib
from collections.abc import Iterator

from .limits import Limits, Unpacking, check_nesting, check_upload
from .model import StatementFormatError
from .xlsx import ZIP_ERRORS, XlsxTable

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


def open_table(data: bytes, filename: str = "", limits: Limits | None = None):
    """The table in an upload; StatementFormatError when it can't be read or costs too much."""
    limits = limits or Limits.current()
    check_upload(data, limits)
    return _open(data, filename.lower(), Unpacking(limits), 0)


def _open(data: bytes, name: str, unpacking: Unpacking, depth: int):
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return _open_zip(data, unpacking, depth + 1)
    if data[:2] == b"\x1f\x8b":
        check_nesting(depth + 1)
        return _open(_gunzip(data, unpacking), name.removesuffix(".gz"), unpacking, depth + 1)
    if data[:4] == b"\xd0\xcf\x11\xe0":
        raise StatementFormatError("legacy .xls workbook: save it as .xlsx or CSV")
    if name.endswith(".xlsx"):
        raise StatementFormatError("not a readable .xlsx workbook")
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") and (b"<html" in head or b"<table" in head):
        raise StatementFormatError("web page saved as a spreadsheet: save it as .xlsx or CSV")
    return TextTable(data, detect_encoding(data))


def _open_zip(data: bytes, unpacking: Unpacking, depth: int):
    check_nesting(depth)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except ZIP_ERRORS:
        raise StatementFormatError("damaged zip/xlsx file") from None
    if "xl/workbook.xml" in names:
        return XlsxTable(data, archive, unpacking)
    # Alipay bill downloads are a zip of a detail CSV and a "(汇总)" summary CSV with GBK names.
    members = [
        info for info in archive.infolist()
        if info.filename.lower().endswith((".csv", ".txt")) and "汇总" not in _zip_name(info)
    ]
    if len(members) != 1:
        raise StatementFormatError(
            "zip must hold exactly one statement CSV", column=", ".join(_zip_name(m) for m in members)
        )
    # zipfile reads a member no further than its declared size.
    unpacking.take(members[0].file_size)
    try:
        content = archive.read(members[0])
    except ZIP_ERRORS:
        raise StatementFormatError("damaged zip/xlsx file") from None
    return _open(content, _zip_name(members[0]).lower(), unpacking, depth)


def _zip_name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _gunzip(data: bytes, unpacking: Unpacking) -> bytes:
    """Counted first, holding nothing, so a bomb is refused in constant memory; then unpacked."""
    for chunk in _inflate(data):
        unpacking.take(len(chunk))
    return b"".join(_inflate(data))


def _inflate(data: bytes) -> Iterator[bytes]:
    """The gzip members' contents, a chunk at a time; data after the last member is ignored."""
    rest = data
    while rest[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(wbits=31)
        try:
            chunk = inflater.decompress(rest, _CHUNK)
            while chunk:
                yield chunk
                chunk = inflater.decompress(inflater.unconsumed_tail, _CHUNK)
        except zlib.error:
            raise StatementFormatError("damaged gzip file") from None
        if not inflater.eof:  # cut short: what it holds is not the whole statement
            raise StatementFormatError("damaged gzip file")
        rest = inflater.unused_data


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

