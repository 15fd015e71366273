"""Header rows: naming columns by their header text, and the period printed above the table."""

import re
from collections.abc import Iterable
from datetime import date, timedelta

from .model import StatementFormatError
from .values import clean


def norm(name: str) -> str:
    """Header text as compared: 收入金额（+元） == 收入金额(+元) == 收入金额, Order No == order_no."""
    text = clean(name).strip("\"'").replace("（", "(").replace("）", ")")
    cut = text.find("(")
    if cut > 0 and text.endswith(")"):
        text = text[:cut]
    return text.replace(" ", "").replace("_", "").replace("-", "").lower()


class Layout:
    """The header row of a table: which column index carries which field.

    Fields the file lacks get a padding column past the last real one: rows are padded to
    `size`, so reading an absent field yields "" without a per-cell check, and an error about
    it still names the column.
    """

    def __init__(self, row: int, cells: list[str]):
        self.row = row
        self.names = [clean(cell) for cell in cells]
        self.width = len(self.names)
        self._index: dict[str, int] = {}
        for index, name in enumerate(self.names):
            key = norm(name)
            if key and key not in self._index:
                self._index[key] = index

    @property
    def size(self) -> int:
        return len(self.names)

    def find(self, aliases: Iterable[str]) -> int | None:
        """The first alias present wins, so aliases are listed most specific first."""
        for alias in aliases:
            index = self._index.get(norm(alias))
            if index is not None:
                return index
        return None

    def require(self, aliases: tuple[str, ...]) -> int:
        index = self.find(aliases)
        if index is None:
            raise StatementFormatError("required column missing", column=aliases[0], row=self.row)
        return index

    def column(self, aliases: tuple[str, ...]) -> int:
        """The field's column, or a padding column named after its first alias."""
        index = self.find(aliases)
        if index is None:
            self.names.append(aliases[0])
            index = len(self.names) - 1
        return index

    def has(self, *aliases: str) -> bool:
        return self.find(aliases) is not None

    def known(self, alias_groups: Iterable[tuple[str, ...]]) -> int:
        return sum(1 for aliases in alias_groups if self.find(aliases) is not None)

    def repeats_header(self, cells: list[str]) -> bool:
        """Multi-page bank exports print the header again on every page."""
        return [clean(cell) for cell in cells[: self.width]] == self.names[: self.width]


# First cells of the totals and notes lines that bank and channel exports print under the table.
# Only rows that fail to parse are compared, and only against explicit totals words: a 借贷 flag
# cell of 借方 on a bad data row must still be reported.
_SUMMARY_PREFIXES = (
    "合计", "总计", "小计", "累计", "汇总", "本页", "本期合计", "借方合计", "贷方合计", "借方发生额合计",
    "贷方发生额合计", "借方笔数", "贷方笔数", "总笔数", "交易笔数", "笔数", "以下空白", "打印", "导出",
    "制表", "注：", "注:", "说明", "total",
)


def is_summary(cells: list[str]) -> bool:
    for cell in cells:
        text = clean(cell)
        if text:
            return text.lower().startswith(_SUMMARY_PREFIXES)
    return False


_PERIOD_WORDS = ("起始", "开始", "起止", "终止", "结束", "截止", "期间", "日期范围", "查询日期", "账单日期")
_DATE_IN_TEXT = re.compile(
    r"(?<!\d)(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:\s*(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
    r"|(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)",
    re.ASCII,
)


def header_period(preamble: list[list[str]]) -> tuple[date, date] | None:
    """The statement period printed above the table (Alipay 起始日期/终止日期, bank 起止日期).

    Returned inclusive: Alipay's 终止日期 [2025年03月02日 00:00:00] is an exclusive bound, so
    that file covers 2025-03-01 only.
    """
    found: list[tuple[date, bool]] = []
    for cells in preamble:
        text = " ".join(cell.strip() for cell in cells if cell.strip())
        if not any(word in text for word in _PERIOD_WORDS):
            continue
        for match in _DATE_IN_TEXT.finditer(text):
            parsed = _period_date(match)
            if parsed is not None:
                found.append(parsed)
        if len(found) >= 2:
            break
    if len(found) < 2:
        return None
    (start, _), (end, end_at_midnight) = found[0], found[1]
    if end_at_midnight and end > start:
        end -= timedelta(days=1)
    return (start, end) if start <= end else None


def _period_date(match: re.Match) -> tuple[date, bool] | None:
    year, month, day, hour, minute, second, cyear, cmonth, cday = match.groups()
    try:
        if year is None:
            return date(int(cyear), int(cmonth), int(cday)), False
        moment = date(int(year), int(month), int(day))
    except ValueError:
        return None
    at_midnight = hour is not None and int(hour) == int(minute) == int(second or 0) == 0
    return moment, at_midnight
