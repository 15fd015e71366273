"""The loop every profile shares: build each row at full speed, explain the ones that fail.

A profile supplies `build(row, cells)`, which returns a StatementRow or raises CellError at the
first bad cell; `checks`, the (column, converter) pairs build relies on; and `rules`, the checks
that span cells (debit and credit both set), which raise CellError naming their column. Only a
failing row pays for running them all, so one pass reports every bad cell of every bad row while
a good row costs one function call.
"""

from collections.abc import Callable, Iterator

from .decoding import Line
from .header import Layout
from .model import RowError, StatementRow
from .values import CellError

Build = Callable[[int, list[str]], StatementRow]
Checks = tuple[tuple[int, Callable[[str], object]], ...]
Rules = tuple[Callable[[list[str]], object], ...]
# Rows of different kinds read different columns (a WeChat refund reads 退款金额, a payment
# 应结订单金额), so checks may be chosen per row.
RowChecks = Checks | Callable[[list[str]], Checks]


def run(
    lines: Iterator[Line],
    layout: Layout,
    build: Build,
    checks: RowChecks,
    rules: Rules = (),
    noise: Callable[[list[str]], bool] | None = None,
) -> Iterator[StatementRow | RowError]:
    """`noise` recognises the format's own non-data lines (totals, comments) among failing rows."""
    width, size = layout.width, layout.size
    padding = [""] * (size - width)
    for row, cells in lines:
        if len(cells) != width:
            fitted = _fit(cells, width, size)
            if fitted is None:  # misaligned: every later cell would be read from the wrong column
                if (noise is not None and noise(cells)) or layout.repeats_header(cells):
                    continue
                yield misaligned(row, cells, width)
                continue
            cells = fitted
        elif padding:
            cells.extend(padding)
        try:
            item = build(row, cells)
        except CellError:
            if (noise is not None and noise(cells)) or layout.repeats_header(cells):
                continue
            yield from explain(row, cells, layout.names, build, checks, rules)
            continue
        yield item


def _fit(cells: list[str], width: int, size: int) -> list[str] | None:
    """The row's cells under the header, or None when it has more or fewer cells than the
    header: an unquoted separator in a cell splits it, and a row read anyway imports its amount
    cut short with every later column shifted. Empty cells past the header (Alipay's trailing
    tabs and commas) are no content and are dropped."""
    if len(cells) < width or any(cell.strip() for cell in cells[width:]):
        return None
    fitted = cells[:width]
    fitted.extend([""] * (size - len(fitted)))
    return fitted


def misaligned(row: int, cells: list[str], width: int) -> RowError:
    """The row's refusal: expected and actual cell count, and the line as it was read."""
    return RowError(row, "", ",".join(cells)[:500],
                    f"{len(cells)} cells where the header has {width}: a cell may hold an unquoted "
                    "separator, or the row is cut short")


def explain(
    row: int, cells: list[str], names: list[str], build: Build, checks: RowChecks, rules: Rules
) -> list[RowError]:
    if callable(checks):
        checks = checks(cells)
    found: dict[int, str] = {}
    for index, check in checks:
        try:
            check(cells[index])
        except CellError as exc:
            found.setdefault(index, exc.reason)
    for rule in rules:
        try:
            rule(cells)
        except CellError as exc:
            # A rule trips over a bad cell too; the checks above have reported that one.
            if exc.column >= 0:
                found.setdefault(exc.column, exc.reason)
    if not found:
        try:
            build(row, cells)
        except CellError as exc:
            return [RowError(row, "", "", exc.reason)]
    # Left to right, as the user reads the line.
    return [RowError(row, names[index], cells[index], found[index]) for index in sorted(found)]
