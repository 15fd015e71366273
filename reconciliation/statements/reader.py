"""open_statement: uploaded bytes to a StatementReader of one profile."""

from collections.abc import Iterator
from datetime import date
from itertools import islice
from types import ModuleType
from typing import NamedTuple

from . import alipay, bank, generic, settlement, wechatpay
from .decoding import Line, TextTable, open_table
from .header import Layout, header_period
from .model import PROFILES, RowError, StatementFormatError, StatementRow

# Detection order: the most distinctive headers first. Settlement files may carry a
# transaction_no column, and bank headers share words like 收入 with Alipay's, so those go later.
_MODULES = {module.PROFILE: module for module in (wechatpay, alipay, settlement, generic, bank)}
# Bank exports put title lines (account, period, [HISTORYDETAIL]) above the header.
SCAN_ROWS = 60


class StatementReader:
    """One uploaded statement. rows() streams it in a single pass and may be called again."""

    def __init__(self, table, module, layout: Layout, period: tuple[date, date] | None):
        self.profile: str = module.PROFILE
        self.encoding: str = table.encoding
        self.estimated_rows: int = max(table.estimated_rows - layout.row, 0)
        self.header_period = period
        self.header: list[str] = layout.names[: layout.width]
        self.header_row: int = layout.row
        # channel_settlement amounts are already net of fee; elsewhere cash = amount - fee + fee_returned.
        self.net_amounts: bool = module is settlement
        self._table = table
        self._parse = module.parser(layout)

    def rows(self) -> Iterator[StatementRow | RowError]:
        lines = self._table.lines()
        for row, _ in lines:
            if row >= self.header_row:
                break
        return self._parse(lines)


def open_statement(data: bytes, profile: str | None = None, filename: str = "") -> StatementReader:
    """Detect the container, encoding and (unless given) profile of an uploaded statement.

    Raises StatementFormatError when the file as a whole can't be read.
    """
    if profile is not None and profile not in PROFILES:
        raise StatementFormatError("unknown profile", column=profile)
    if not data:
        raise StatementFormatError("empty file")
    table = open_table(data, filename)
    wanted = _MODULES[profile] if profile else None
    found = _locate(table, wanted)
    if (found is None or not found.recognised) and isinstance(table, TextTable):
        # Some banks export tab-separated text under a .csv name.
        table.delimiter = "\t"
        tabbed = _locate(table, wanted)
        if tabbed is not None and (tabbed.recognised or (found is not None and tabbed.known > found.known)):
            found = tabbed
        else:
            table.delimiter = ","
    if found is None:
        raise StatementFormatError("empty file")
    if found.module is None:
        raise StatementFormatError(
            f"unknown profile: no known header row in the first {SCAN_ROWS} lines", row=found.layout.row
        )
    return StatementReader(table, found.module, found.layout, header_period(found.preamble))


class _Header(NamedTuple):
    module: ModuleType | None
    layout: Layout
    recognised: bool
    known: int  # how many of the profile's columns the row names
    preamble: list[list[str]]  # the lines above it


def _locate(table, wanted: ModuleType | None) -> _Header | None:
    """The header row among the first lines, or None if they are all blank or comments."""
    scanned = list(islice(table.lines(), SCAN_ROWS))
    candidates = [
        Layout(row, cells) for row, cells in scanned
        if any(cell.strip() for cell in cells) and not cells[0].lstrip().startswith("#")
    ]
    if not candidates:
        return None
    best = None
    for layout in candidates:
        for module in [wanted] if wanted else _MODULES.values():
            if module.recognise(layout):
                return _Header(module, layout, True, module.known(layout), _above(scanned, layout))
        if wanted:
            known = wanted.known(layout)
            if best is None or known > best.known:
                best = _Header(wanted, layout, False, known, _above(scanned, layout))
    # With an explicit profile the best-matching row stands in, so the error names the column
    # that is really missing; without one, nothing matched.
    return best or _Header(None, candidates[0], False, 0, [])


def _above(scanned: list[Line], layout: Layout) -> list[list[str]]:
    return [cells for row, cells in scanned if row < layout.row]
