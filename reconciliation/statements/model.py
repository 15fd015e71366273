"""What the statement parsers hand back: rows, row errors and whole-file errors."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

PROFILES = ("generic_csv", "wechatpay_trade", "alipay_account", "bank_csv", "channel_settlement")
KINDS = ("payment", "refund", "fee", "transfer", "other")

ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class StatementRow:
    """One money movement. Cash effect of the row = amount - fee + fee_returned.

    For channel_settlement the amount is already net of the fee (see StatementReader.net_amounts).
    """

    row: int
    transaction_no: str
    order_ref: str
    occurred_at: datetime
    amount: Decimal
    fee: Decimal
    kind: str
    counterparty: str
    memo: str
    currency: str = "CNY"
    refund_ref: str = ""
    # Refund rows get the provider's fee back (WeChat 手续费 < 0 on REFUND rows); fee stays >= 0.
    fee_returned: Decimal = ZERO
    # Provider status as printed: WeChat 交易状态, or 退款状态 on refund rows (PROCESSING/FAIL...).
    status: str = ""
    # The file's own unique line id when transaction_no is shared by several lines
    # (Alipay 账务流水号: payment, fee and refunds of one trade share the trade no).
    entry_no: str = ""


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    column: str
    value: str
    reason: str


class StatementFormatError(Exception):
    """The whole file is unusable; nothing from it should be imported."""

    def __init__(self, reason: str, column: str = "", row: int = 0):
        self.reason = reason
        self.column = column
        self.row = row
        detail = reason
        if column:
            detail += f": {column}"
        if row:
            detail += f" (line {row})"
        super().__init__(detail)
