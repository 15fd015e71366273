"""generic_csv: the OMS's own neutral layout for sources without a dedicated profile.

transaction_no,order_no,amount,occurred_at[,fee,kind,counterparty,memo,currency,refund_ref]
"""

from .header import Layout
from .model import KINDS, ZERO, StatementRow
from .rowloop import run
from .values import CellError, amount, clean, currency, fee, ident, when

PROFILE = "generic_csv"

TRANSACTION_NO = ("transaction_no", "transaction_id", "txn_no", "trade_no", "serial_no")
ORDER_NO = ("order_no", "order_ref", "out_trade_no", "merchant_order_no", "order_id")
AMOUNT = ("amount",)
OCCURRED_AT = ("occurred_at", "transaction_time", "paid_at", "created_at", "datetime", "time", "date")
FEE = ("fee",)
KIND = ("kind", "type")
COUNTERPARTY = ("counterparty", "payer")
MEMO = ("memo", "note", "remark", "description")
CURRENCY = ("currency",)
REFUND_REF = ("refund_ref", "refund_no")
_ALL = (TRANSACTION_NO, ORDER_NO, AMOUNT, OCCURRED_AT, FEE, KIND, COUNTERPARTY, MEMO, CURRENCY, REFUND_REF)

_KIND_WORDS = {kind: kind for kind in KINDS} | {
    "支付": "payment", "收款": "payment", "退款": "refund", "手续费": "fee", "转账": "transfer", "其他": "other",
}


def recognise(layout: Layout) -> bool:
    return layout.has(*TRANSACTION_NO) and layout.has(*AMOUNT)


def known(layout: Layout) -> int:
    return layout.known(_ALL)


def kind_word(raw: str) -> str:
    """The kind column's value, or "" when blank (the amount's sign decides)."""
    text = clean(raw)
    if not text:
        return ""
    kind = _KIND_WORDS.get(text.lower())
    if kind is None:
        raise CellError("not a known kind (payment, refund, fee, transfer, other)")
    return kind


def parser(layout: Layout):
    txn = layout.require(TRANSACTION_NO)
    order = layout.require(ORDER_NO)
    money = layout.require(AMOUNT)
    moment = layout.require(OCCURRED_AT)
    charged, kind_col, party, memo, cur, refund = (
        layout.column(aliases) for aliases in (FEE, KIND, COUNTERPARTY, MEMO, CURRENCY, REFUND_REF)
    )

    def build(row: int, cells: list[str]) -> StatementRow:
        value = amount(cells[money])
        kind = kind_word(cells[kind_col]) or ("payment" if value >= 0 else "refund")
        if kind == "refund" and value > 0:
            # Exports often print refunds unsigned and let the kind column say so.
            value = ZERO - value
        return StatementRow(
            row, ident(cells[txn]), clean(cells[order]), when(cells[moment]), value, fee(cells[charged]),
            kind, clean(cells[party]), clean(cells[memo]), currency(cells[cur]), clean(cells[refund]),
        )

    checks = ((txn, ident), (moment, when), (money, amount), (charged, fee), (kind_col, kind_word),
              (cur, currency))
    return lambda lines: run(lines, layout, build, checks)
