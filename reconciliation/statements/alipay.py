"""alipay_account: Alipay bills, GBK, with `#` comment lines above and below the table.

Two layouts share the profile: 业务明细 (one line per trade or refund, keyed by 支付宝交易号)
and 账务明细 (one line per balance movement, keyed by 账务流水号; fees are their own lines).
"""

from decimal import Decimal

from .header import Layout
from .model import ZERO, StatementRow
from .rowloop import run
from .values import CellError, amount, clean, ident, optional_amount, when

PROFILE = "alipay_account"

# 业务明细
TRADE_NO = ("支付宝交易号",)
FINISHED = ("完成时间",)
CREATED = ("创建时间",)
RECEIVED = ("商家实收", "订单金额")
SERVICE_FEE = ("服务费",)
REFUND_NO = ("退款批次号/请求号", "退款批次号")
# 账务明细
ENTRY_NO = ("账务流水号",)
BUSINESS_NO = ("业务流水号",)
OCCURRED = ("发生时间", "入账时间")
INCOME = ("收入金额", "收入")
EXPENSE = ("支出金额", "支出")
SIGNED = ("金额", "收支金额", "发生金额")
DIRECTION = ("收支类型", "收支方向")
# both
ORDER_REF = ("商户订单号",)
BUSINESS = ("业务类型",)
PARTY = ("对方账户", "对方账号", "对方名称")
GOODS = ("商品名称",)
REMARK = ("备注",)
_ALL = (TRADE_NO, ENTRY_NO, BUSINESS_NO, ORDER_REF, BUSINESS, FINISHED, OCCURRED, RECEIVED, INCOME,
        EXPENSE, SERVICE_FEE)

_FEE_WORDS = ("服务费", "收费", "手续费", "佣金")
_PAYMENT_WORDS = ("交易", "支付", "收款", "付款", "即时到账")
_TRANSFER_WORDS = ("提现", "转账", "充值", "转入", "转出", "分账", "结算")


def recognise(layout: Layout) -> bool:
    return layout.has(*TRADE_NO) or layout.has(*ENTRY_NO)


def known(layout: Layout) -> int:
    return layout.known(_ALL)


def kind_of(business: str) -> str:
    """业务类型 to kind; 交易退款 is a refund and 服务费退回 a fee, so the order of checks matters."""
    if any(word in business for word in _FEE_WORDS):
        return "fee"
    if "退款" in business:
        return "refund"
    if any(word in business for word in _PAYMENT_WORDS):
        return "payment"
    if any(word in business for word in _TRANSFER_WORDS):
        return "transfer"
    return "other"


def is_comment(cells: list[str]) -> bool:
    return cells[0].lstrip()[:1] == "#"


def parser(layout: Layout):
    return _trade_parser(layout) if layout.has(*TRADE_NO) else _account_parser(layout)


def _trade_parser(layout: Layout):
    trade_no = layout.require(TRADE_NO)
    order = layout.require(ORDER_REF)
    business = layout.require(BUSINESS)
    received = layout.require(RECEIVED)
    finished, created = layout.find(FINISHED), layout.find(CREATED)
    if finished is None and created is None:
        layout.require(FINISHED)
    # An unfinished trade has no 完成时间; it happened when it was created.
    times = [index for index in (finished, created) if index is not None]
    charged, refund_no, party, goods, remark = (
        layout.column(aliases) for aliases in (SERVICE_FEE, REFUND_NO, PARTY, GOODS, REMARK)
    )

    def time_column(cells: list[str]) -> int:
        for index in times:
            if clean(cells[index]):
                return index
        return times[0]

    def build(row: int, cells: list[str]) -> StatementRow:
        kind = kind_of(clean(cells[business]))
        value = amount(cells[received])
        fee = abs(optional_amount(cells[charged]))
        returned = ZERO
        if kind == "refund":
            value, fee, returned = ZERO - abs(value), ZERO, fee
        return StatementRow(
            row, ident(cells[trade_no]), clean(cells[order]), when(cells[time_column(cells)]), value, fee,
            kind, clean(cells[party]), _memo(cells[goods], cells[remark]), "CNY", clean(cells[refund_no]),
            returned,
        )

    def checks(cells: list[str]):
        return ((trade_no, ident), (time_column(cells), when), (received, amount), (charged, optional_amount))

    return lambda lines: run(lines, layout, build, checks, noise=is_comment)


def _account_parser(layout: Layout):
    entry = layout.require(ENTRY_NO)
    moment = layout.require(OCCURRED)
    income, expense, signed = layout.find(INCOME), layout.find(EXPENSE), layout.find(SIGNED)
    if income is None and expense is None and signed is None:
        layout.require(INCOME)
    business_no, order, direction, business, party, goods, remark = (
        layout.column(aliases)
        for aliases in (BUSINESS_NO, ORDER_REF, DIRECTION, BUSINESS, PARTY, GOODS, REMARK)
    )

    if signed is None:
        income, expense = layout.column(INCOME), layout.column(EXPENSE)

        def movement(cells: list[str]) -> Decimal:
            money_in = optional_amount(cells[income])
            money_out = optional_amount(cells[expense])
            if money_in and money_out:
                raise CellError("both income and expense amounts", expense)
            if not money_in and not money_out and not clean(cells[income]) and not clean(cells[expense]):
                raise CellError("missing value", income)
            # 支出金额 is printed as 59.00 by some exports and -59.00 by others.
            return money_in - abs(money_out)

        amount_checks = ((income, optional_amount), (expense, optional_amount))
    else:

        def movement(cells: list[str]) -> Decimal:
            value = amount(cells[signed])
            flow = clean(cells[direction])
            if not flow:
                return value
            if "支" in flow:
                return ZERO - abs(value)
            if "收" in flow:
                return abs(value)
            raise CellError("not 收入 or 支出", direction)

        amount_checks = ((signed, amount),)

    def build(row: int, cells: list[str]) -> StatementRow:
        entry_no = ident(cells[entry])
        return StatementRow(
            row, clean(cells[business_no]) or entry_no, clean(cells[order]), when(cells[moment]),
            movement(cells), ZERO, kind_of(clean(cells[business])), clean(cells[party]),
            _memo(cells[goods], cells[remark]), entry_no=entry_no,
        )

    checks = ((entry, ident), (moment, when), *amount_checks)
    return lambda lines: run(lines, layout, build, checks, (movement,), noise=is_comment)


def _memo(goods: str, remark: str) -> str:
    text, note = clean(goods), clean(remark)
    return f"{text} / {note}" if text and note and note != text else text or note
