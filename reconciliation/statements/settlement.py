"""channel_settlement: a sales channel's T+1 settlement file, one line per settled order.

The settled amount is what the channel pays out, already net of its commission and fees;
the fee columns are reported for information and must not be subtracted again.
"""

from decimal import Decimal

from .header import Layout, is_summary
from .model import ZERO, StatementRow
from .rowloop import run
from .values import (
    AMOUNT_DIGITS,
    TOO_LARGE,
    CellError,
    amount,
    clean,
    currency,
    ident,
    optional_amount,
    when,
)

PROFILE = "channel_settlement"

ORDER_NO = ("订单号", "order_no", "订单编号", "子订单号", "主订单号", "商户订单号", "order_id")
SETTLED_AT = ("结算时间", "settled_at", "结算日期", "入账时间", "settlement_time")
SETTLED = ("结算金额", "settled_amount", "实际结算金额", "amount")
# Channels charge several fees side by side (佣金, 平台服务费...); every one present is summed.
FEES = ("佣金", "手续费", "平台服务费", "技术服务费", "服务费", "commission", "fee")
SERIAL = ("结算流水号", "结算单号", "settlement_no", "流水号", "transaction_no", "serial_no")
PARTY = ("店铺名称", "店铺", "shop", "channel", "渠道")
MEMO = ("备注", "remark", "memo", "商品名称")
CURRENCY = ("币种", "currency")
_MARKERS = ("结算时间", "settled_at", "结算日期", "结算金额", "settled_amount", "实际结算金额", "结算单号",
            "settlement_no", "结算流水号")
_ALL = (ORDER_NO, SETTLED_AT, SETTLED, FEES, SERIAL, PARTY, MEMO)
FEES_LIMIT = Decimal(10) ** AMOUNT_DIGITS


def recognise(layout: Layout) -> bool:
    return layout.has(*_MARKERS) and layout.has(*ORDER_NO)


def known(layout: Layout) -> int:
    return layout.known(_ALL)


def parser(layout: Layout):
    order = layout.require(ORDER_NO)
    moment = layout.require(SETTLED_AT)
    settled = layout.require(SETTLED)
    fees = [index for index in (layout.find((name,)) for name in FEES) if index is not None]
    serial, party, memo, cur = (layout.column(aliases) for aliases in (SERIAL, PARTY, MEMO, CURRENCY))

    def build(row: int, cells: list[str]) -> StatementRow:
        order_ref = ident(cells[order])
        value = amount(cells[settled])
        fee = sum((abs(optional_amount(cells[index])) for index in fees), ZERO)
        if fee >= FEES_LIMIT:
            raise CellError(f"fees add up to {TOO_LARGE}")
        kind, returned = "payment", ZERO
        if value < 0:
            kind, fee, returned = "refund", ZERO, fee
        return StatementRow(
            row, clean(cells[serial]) or order_ref, order_ref, when(cells[moment]), value, fee, kind,
            clean(cells[party]), clean(cells[memo]), currency(cells[cur]), "", returned,
        )

    checks = ((order, ident), (moment, when), (settled, amount), *((index, optional_amount) for index in fees),
              (cur, currency))
    return lambda lines: run(lines, layout, build, checks, noise=is_summary)
