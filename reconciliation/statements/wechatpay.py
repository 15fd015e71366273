"""wechatpay_trade: the WeChat Pay trade bill (交易账单), bill types ALL, SUCCESS and REFUND.

Columns are taken by header name because the three bill types, and older merchants' bills,
order and omit them differently. Every cell carries a leading backtick.
"""

from functools import lru_cache

from .header import Layout
from .model import ZERO, StatementRow
from .rowloop import run
from .values import CellError, amount, clean, currency, ident, optional_amount, when

PROFILE = "wechatpay_trade"

TRADE_TIME = ("交易时间",)
TRANSACTION_NO = ("微信支付订单号", "微信订单号")
ORDER_REF = ("商户订单号",)
STATUS = ("交易状态",)
SETTLED = ("应结订单金额", "订单金额")
REFUND_AMOUNT = ("退款金额", "申请退款金额")
REFUND_NO = ("微信退款单号",)
REFUND_STATUS = ("退款状态",)
# REFUND bills add these; ALL bills date the refund row by 交易时间 instead.
REFUND_TIMES = ("退款成功时间", "退款申请时间")
FEE = ("手续费",)
CURRENCY = ("货币种类",)
PAYER = ("用户标识",)
GOODS = ("商品名称",)
_ALL = (TRADE_TIME, TRANSACTION_NO, ORDER_REF, STATUS, SETTLED, REFUND_AMOUNT, REFUND_NO, FEE)

_KINDS = {"SUCCESS": "payment", "REFUND": "refund", "REVOKED": "other"}


def recognise(layout: Layout) -> bool:
    return layout.has(*TRANSACTION_NO) and layout.has(*TRADE_TIME)


def known(layout: Layout) -> int:
    return layout.known(_ALL)


@lru_cache(maxsize=64)
def trade_status(raw: str) -> tuple[str, str]:
    """(kind, status as printed) of a 交易状态 cell."""
    status = clean(raw)
    kind = _KINDS.get(status)
    if kind is None:
        raise CellError("not a known trade status (SUCCESS, REFUND, REVOKED)")
    return kind, status


def is_summary_header(cells: list[str]) -> bool:
    """总交易单数,应结订单总金额,... heads the totals WeChat appends under the detail rows."""
    first = clean(cells[0])
    return first.startswith("总") and first.endswith("数")


def _is_number(text: str) -> bool:
    return text.removeprefix("-").replace(".", "", 1).isdigit()


class _Totals:
    """Recognises the totals section: its header, then the one row of numbers under it."""

    def __init__(self) -> None:
        self.header_seen = False

    def __call__(self, cells: list[str]) -> bool:
        if is_summary_header(cells):
            self.header_seen = True
            return True
        if self.header_seen and all(_is_number(clean(cell)) for cell in cells if clean(cell)):
            self.header_seen = False
            return True
        return False


def parser(layout: Layout):
    trade_time = layout.require(TRADE_TIME)
    txn = layout.require(TRANSACTION_NO)
    order = layout.require(ORDER_REF)
    status_col = layout.require(STATUS)
    settled = layout.require(SETTLED)
    refund_amount, refund_no, refund_status, charged, cur, payer, goods = (
        layout.column(aliases)
        for aliases in (REFUND_AMOUNT, REFUND_NO, REFUND_STATUS, FEE, CURRENCY, PAYER, GOODS)
    )
    refund_times = [index for index in (layout.find((name,)) for name in REFUND_TIMES) if index is not None]

    def refund_time(cells: list[str]) -> int:
        for index in refund_times:
            if clean(cells[index]):
                return index
        return trade_time

    def build(row: int, cells: list[str]) -> StatementRow:
        kind, status = trade_status(cells[status_col])
        fee = abs(optional_amount(cells[charged]))
        if kind == "refund":
            # Refund rows print the fee WeChat gives back as a negative 手续费.
            return StatementRow(
                row, ident(cells[txn]), ident(cells[order]), when(cells[refund_time(cells)]),
                ZERO - abs(amount(cells[refund_amount])), ZERO, kind, clean(cells[payer]), clean(cells[goods]),
                currency(cells[cur]), clean(cells[refund_no]), fee, clean(cells[refund_status]) or status,
            )
        return StatementRow(
            row, ident(cells[txn]), ident(cells[order]), when(cells[trade_time]), amount(cells[settled]), fee,
            kind, clean(cells[payer]), clean(cells[goods]), currency(cells[cur]), "", ZERO, status,
        )

    common = ((txn, ident), (order, ident), (status_col, trade_status), (charged, optional_amount),
              (cur, currency))

    def checks(cells: list[str]):
        if _KINDS.get(clean(cells[status_col])) == "refund":
            return ((refund_time(cells), when), (refund_amount, amount), *common)
        return ((trade_time, when), (settled, amount), *common)

    return lambda lines: run(lines, layout, build, checks, noise=_Totals())
