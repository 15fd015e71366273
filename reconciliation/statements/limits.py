"""How much an uploaded statement may cost to open: bytes uploaded, bytes unpacked, cells read.

The limits come from settings (OMS_STATEMENT_MAX_BYTES, OMS_STATEMENT_MAX_UNPACKED_BYTES,
OMS_STATEMENT_MAX_CELLS) when Django is configured, else from the defaults below, so the parsers
stay usable as plain Python. Each is checked before the work it bounds is done: a gzip bomb is
refused after counting, never holding, its output; a workbook by its parts' declared sizes and
a streaming look at its XML before openpyxl reads it.
"""

from dataclasses import dataclass

from .model import StatementFormatError

MB = 1 << 20
DEFAULT_MAX_BYTES = 50 * MB
DEFAULT_MAX_UNPACKED = 200 * MB
DEFAULT_MAX_CELLS = 20_000_000
# Containers one inside another: a .csv.gz, a zip of a CSV or an .xlsx is one; an .xlsx.gz or a
# zip of a .csv.gz two. A third (a gzip in a zip in a gzip) is refused: nobody exports that.
MAX_CONTAINERS = 2


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_unpacked: int = DEFAULT_MAX_UNPACKED
    max_cells: int = DEFAULT_MAX_CELLS

    @classmethod
    def current(cls) -> "Limits":
        from django.conf import settings

        if not settings.configured:
            return cls()
        return cls(
            int(getattr(settings, "OMS_STATEMENT_MAX_BYTES", DEFAULT_MAX_BYTES)),
            int(getattr(settings, "OMS_STATEMENT_MAX_UNPACKED_BYTES", DEFAULT_MAX_UNPACKED)),
            int(getattr(settings, "OMS_STATEMENT_MAX_CELLS", DEFAULT_MAX_CELLS)),
        )


class Unpacking:
    """The unpacked-bytes budget of one upload, shared by every layer of it."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.left = limits.max_unpacked

    def take(self, size: int) -> None:
        if size > self.left:
            raise StatementFormatError(f"file too large once unpacked: more than {size_text(self.limits.max_unpacked)}")
        self.left -= size


def check_upload(data: bytes, limits: Limits) -> None:
    if len(data) > limits.max_bytes:
        raise StatementFormatError(f"file too large: more than {size_text(limits.max_bytes)}")


def check_nesting(depth: int) -> None:
    if depth > MAX_CONTAINERS:
        raise StatementFormatError("archive nested too deeply: at most one archive inside another")


def too_many_cells(limit: int, row: int = 0) -> StatementFormatError:
    return StatementFormatError(f"sheet too large: more than {limit:,} cells", row=row)


def size_text(size: int) -> str:
    if size >= MB and size % MB == 0:
        return f"{size // MB} MB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KB"
    return f"{size:,} bytes"
