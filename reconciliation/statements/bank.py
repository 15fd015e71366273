"""bank_csv: Chinese bank statement exports (ICBC, CMB, CCB, CMBC and alike).

Banks agree on little beyond the ideas: a few title lines (account, period) above the header,
amounts split into debit/credit columns or signed or flagged, and totals under the table.
"""

from datetime import datetime
from decimal import Decimal

from .header import Layout, is_summary
from .model import ZERO, StatementRow
from .rowloop import run
from .values import (
    MISSING,
    CellError,
    amount,
    clean,
    currency,
    is_time_only,
    optional_amount,
    time_of_day,
    when,
)

PROFILE = "bank_csv"

DATE = ("交易日期", "交易日", "记账日期", "入账日期", "日期", "记账时间")
# A time of day next to a date column (CMB 090512), or the full date-time (CCB, CMBC, ICBC).
TIME = ("交易时间",)
SERIAL = ("交易流水号", "流水号", "账户明细编号-交易流水号", "业务参考号", "交易参考号", "凭证号", "柜员流水号")
DEBIT = ("借方发生额", "借方金额", "支出金额", "转出金额", "付款金额", "出账金额", "借方", "支出")
CREDIT = ("贷方发生额", "贷方金额", "收入金额", "转入金额", "收款金额", "入账金额", "贷方", "收入")
SIGNED = ("交易金额", "收入/支出金额", "发生额", "收支金额", "金额")
FLAG = ("借贷标志", "借贷方向", "借贷", "收支方向", "收/支", "方向")
PARTY = ("对方户名", "对方账户名称", "对方账号名称", "对方单位", "收/付方名称", "对方名称", "对手信息")
CURRENCY = ("币种", "货币")
MEMO = ("摘要", "交易摘要", "用途", "附言", "客户附言", "备注", "业务摘要", "客户摘要", "交易类型")
_ALL = (DATE, TIME, SERIAL, DEBIT, CREDIT, SIGNED, FLAG, PARTY, CURRENCY, MEMO)

_DEBIT_FLAGS = {"借", "借方", "D", "DR", "支", "支出", "出", "-", "付"}
_CREDIT_FLAGS = {"贷", "贷方", "C", "CR", "收", "收入", "入", "+"}
_FEE_WORDS = ("手续费", "汇划费", "工本费", "管理费", "年费", "短信费", "收费")


def recognise(layout: Layout) -> bool:
    if layout.has(*DEBIT) or layout.has(*CREDIT):
        return True
    return layout.has(*SIGNED) and layout.has(*SERIAL) and (layout.has(*DATE) or layout.has(*TIME))


def known(layout: Layout) -> int:
    return layout.known(_ALL)


def flag_sign(raw: str) -> int:
    mark = clean(raw).upper()
    if mark in _DEBIT_FLAGS:
        return -1
    if mark in _CREDIT_FLAGS:
        return 1
    raise CellError("not a debit/credit flag")


def parser(layout: Layout):
    day, clock = layout.find(DATE), layout.find(TIME)
    if day is None:
        day, clock = layout.require(TIME), None
    # ICBC leaves 凭证号 blank on many lines, so any serial column the line fills will do.
    serials = [index for index in (layout.find((name,)) for name in SERIAL) if index is not None]
    if not serials:
        layout.require(SERIAL)
    debit, credit, signed = layout.find(DEBIT), layout.find(CREDIT), layout.find(SIGNED)
    if debit is None and credit is None and signed is None:
        layout.require(("借方发生额/贷方发生额",))
    party, cur = layout.column(PARTY), layout.column(CURRENCY)
    memos = [index for index in (layout.find((name,)) for name in MEMO) if index is not None]

    def serial(cells: list[str]) -> str:
        for index in serials:
            value = clean(cells[index])
            if value:
                return value
        raise CellError(MISSING, serials[0])

    def occurred(cells: list[str]) -> datetime:
        text = clean(cells[clock]) if clock is not None else ""
        if text and not is_time_only(text):
            return _when_in(clock, text)
        moment = _when_in(day, cells[day])
        if not text:
            return moment
        try:
            hour, minute, second = time_of_day(text)
        except CellError as exc:
            raise CellError(exc.reason, clock) from None
        return datetime(moment.year, moment.month, moment.day, hour, minute, second, 0, moment.tzinfo)

    if debit is not None or credit is not None:
        debit, credit = layout.column(DEBIT), layout.column(CREDIT)

        def movement(cells: list[str]) -> Decimal:
            money_out = optional_amount(cells[debit])
            money_in = optional_amount(cells[credit])
            if money_out and money_in:
                raise CellError("both debit and credit amounts", debit)
            if not money_out and not money_in and not clean(cells[debit]) and not clean(cells[credit]):
                raise CellError(MISSING, credit)
            # Most banks print debits unsigned, a few negative; a negative credit is a reversal.
            return money_in - abs(money_out)

        amount_checks = ((debit, optional_amount), (credit, optional_amount))
    else:
        flag = layout.find(FLAG)

        def movement(cells: list[str]) -> Decimal:
            value = amount(cells[signed])
            if flag is None:
                return value
            return abs(value) if flag_sign(cells[flag]) > 0 else ZERO - abs(value)

        amount_checks = ((signed, amount),) if flag is None else ((signed, amount), (flag, flag_sign))

    def build(row: int, cells: list[str]) -> StatementRow:
        counterparty = clean(cells[party])
        memo = _memo(cells, memos)
        return StatementRow(
            row, serial(cells), "", occurred(cells), movement(cells), ZERO, _kind(memo, counterparty),
            counterparty, memo, currency(cells[cur]),
        )

    date_checks = ((day, when),) if clock is None else ((day, _date_or_blank), (clock, _time_or_datetime))
    checks = (*date_checks, *amount_checks, (cur, currency))
    return lambda lines: run(lines, layout, build, checks, (occurred, serial, movement), noise=is_summary)


def _when_in(index: int, raw: str) -> datetime:
    try:
        return when(raw)
    except CellError as exc:
        raise CellError(exc.reason, index) from None


def _date_or_blank(raw: str) -> None:
    # With a full date-time in 交易时间, the date column may be empty; build decides.
    if clean(raw):
        when(raw)


def _time_or_datetime(raw: str) -> None:
    text = clean(raw)
    if text and is_time_only(text):
        time_of_day(text)
    elif text:
        when(text)


def _memo(cells: list[str], memos: list[int]) -> str:
    parts: list[str] = []
    for index in memos:
        text = clean(cells[index])
        if text and text not in parts:
            parts.append(text)
    return " / ".join(parts)


def _kind(memo: str, counterparty: str) -> str:
    # A bank's own charges have no counterparty; 技术服务费 paid to a vendor is a transfer.
    if not counterparty and any(word in memo for word in _FEE_WORDS):
        return "fee"
    return "transfer"
