"""Statement file parsing: providers' bills, bank exports and channel settlements (no database)."""

import gzip
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciliation.statements import (
    PROFILES,
    RowError,
    StatementFormatError,
    StatementRow,
    open_statement,
)
from reconciliation.statements.values import CellError, amount, when

from . import statement_files as files

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)


def parse(data: bytes, profile: str | None = None, filename: str = ""):
    reader = open_statement(data, profile, filename)
    items = list(reader.rows())
    rows = [item for item in items if isinstance(item, StatementRow)]
    errors = [item for item in items if isinstance(item, RowError)]
    assert len(rows) + len(errors) == len(items)
    return reader, rows, errors


def format_error(data: bytes, profile: str | None = None, filename: str = "") -> StatementFormatError:
    with pytest.raises(StatementFormatError) as caught:
        reader = open_statement(data, profile, filename)
        list(reader.rows())
    return caught.value


# --- cell values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("118.00", "118.00"),
        ("-59.00", "-59.00"),
        ("1,876,320.00", "1876320.00"),
        ("`0.71", "0.71"),
        ("59.00\t", "59.00"),
        ("12", "12.00"),
        ("12.5", "12.50"),
        ("0.36000", "0.36"),  # WeChat fee totals carry five places
        ("+5.00", "5.00"),
        ("¥1,234.50", "1234.50"),
        ('="88.00"', "88.00"),
        ("-0.00", "0.00"),
    ],
)
def test_amount_reads_what_files_print(cell, expected):
    value = amount(cell)
    assert str(value) == expected
    assert value.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("", "missing value"),
        ("  \t", "missing value"),
        ("abc", "not an amount"),
        ("12.345", "more than 2 decimal places"),
        ("0.001", "more than 2 decimal places"),
        ("NaN", "not an amount"),
        ("Infinity", "not an amount"),
        ("1e3", "not an amount"),
        ("1_000.00", "not an amount"),
        ("1,23.00", "not an amount"),
        ("１２.００", "not an amount"),
        ("12.3.4", "not an amount"),
        ("--5.00", "not an amount"),
    ],
)
def test_amount_rejects_what_is_not_money(cell, reason):
    with pytest.raises(CellError) as caught:
        amount(cell)
    assert caught.value.reason == reason


@given(st.integers(min_value=-(10**12), max_value=10**12), st.booleans())
def test_amount_round_trips_any_cent_value(cents, grouped):
    value = Decimal(cents) / 100
    text = f"{value:,.2f}" if grouped else f"{value:.2f}"
    assert amount(text) == value


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2025-03-01 12:00:00", at(2025, 3, 1, 12, 0, 0)),
        ("2025/03/01 12:00:00", at(2025, 3, 1, 12, 0, 0)),
        ("20250301", at(2025, 3, 1)),
        ("2025-03-01", at(2025, 3, 1)),
        ("2025年03月01日 12:00:00", at(2025, 3, 1, 12, 0, 0)),
        ("`2025-03-01 10:03:39", at(2025, 3, 1, 10, 3, 39)),
        ("2025/3/1 9:05", at(2025, 3, 1, 9, 5)),
        ("20250302 090512", at(2025, 3, 2, 9, 5, 12)),
        ("2025-03-01T10:03:39+08:00", at(2025, 3, 1, 10, 3, 39)),
        ("2025-03-01T02:03:39Z", at(2025, 3, 1, 10, 3, 39)),
    ],
)
def test_dates_in_every_shape_files_use(cell, expected):
    moment = when(cell)
    assert moment == expected
    assert moment.utcoffset() is not None


@pytest.mark.parametrize("cell", ["2025-02-30 10:00:00", "2025-03-01 25:00:00", "yesterday", "45717", "1900-01-00", ""])
def test_dates_rejected(cell):
    with pytest.raises(CellError):
        when(cell)


# --- generic_csv ------------------------------------------------------------------------------


def test_generic_csv_rows():
    data = files.generic_csv([
        ["T0001", "MP0001", "118.00", "2025-03-01 10:00:00", "0.71", "", "张三", "纯棉T恤", "CNY"],
        ["T0002", "MP0001", "-59.00", "2025-03-01 15:20:00", "", "", "张三", "", ""],
        ["T0003", "MP0002", "20.00", "2025/03/02 08:00:00", "0.12", "refund", "", "退差价", "cny"],
        [" T0004 ", "", "5.00", "20250303", "", "fee", "", "", ""],
    ])
    reader, rows, errors = parse(data)
    assert (reader.profile, reader.encoding, reader.header_period) == ("generic_csv", "utf-8", None)
    assert reader.estimated_rows == 4
    assert errors == []
    first = rows[0]
    assert (first.row, first.transaction_no, first.order_ref, first.occurred_at) == (
        2, "T0001", "MP0001", at(2025, 3, 1, 10))
    assert (first.amount, first.fee, first.kind, first.counterparty, first.memo, first.currency) == (
        Decimal("118.00"), Decimal("0.71"), "payment", "张三", "纯棉T恤", "CNY")
    assert [(r.kind, r.amount, r.fee) for r in rows[1:]] == [
        ("refund", Decimal("-59.00"), Decimal("0.00")),
        # an unsigned refund takes its sign from the kind column
        ("refund", Decimal("-20.00"), Decimal("0.12")),
        ("fee", Decimal("5.00"), Decimal("0.00")),
    ]
    assert rows[2].currency == "CNY"
    assert rows[3].transaction_no == "T0004"
    assert rows[3].order_ref == ""


def test_generic_csv_accepts_obvious_header_aliases():
    data = b"Transaction ID,out_trade_no,Amount,Paid At,Remark\n4200001,MP1,1.00,2025-03-01 00:00:01,hi\n"
    _, rows, errors = parse(data)
    assert errors == []
    assert (rows[0].transaction_no, rows[0].order_ref, rows[0].memo) == ("4200001", "MP1", "hi")


def test_every_bad_row_is_reported_in_one_pass():
    data = files.generic_csv([
        ["T1", "MP1", "10.00", "2025-03-01 10:00:00", "", "", "", "", ""],
        ["T2", "MP2", "ten", "2025-03-01 10:00:00", "", "", "", "", ""],
        ["T3", "MP3", "10.001", "2025-03-01 10:00:00", "", "", "", "", ""],
        ["T4", "MP4", "10.00", "2025-13-01 10:00:00", "", "", "", "", ""],
        ["", "MP5", "", "not a date", "-1.00", "gift", "", "", "RMBX"],
        ["T6", "MP6", "10.00", "2025-03-01 10:00:00", "", "", "", "", ""],
        ["T7", "MP7"],
        ["T8", "MP8", "1,000.00", "2025-03-01 10:00:00", "", "", "", "", ""],
    ])
    _, rows, errors = parse(data)
    assert [row.transaction_no for row in rows] == ["T1", "T6", "T8"]
    assert [row.row for row in rows] == [2, 7, 9]
    assert errors == [
        RowError(3, "amount", "ten", "not an amount"),
        RowError(4, "amount", "10.001", "more than 2 decimal places"),
        RowError(5, "occurred_at", "2025-13-01 10:00:00", "not a date"),
        RowError(6, "transaction_no", "", "missing value"),
        RowError(6, "amount", "", "missing value"),
        RowError(6, "occurred_at", "not a date", "not a date"),
        RowError(6, "fee", "-1.00", "negative fee"),
        RowError(6, "kind", "gift", "not a known kind (payment, refund, fee, transfer, other)"),
        RowError(6, "currency", "RMBX", "not a currency"),
        RowError(8, "", "T7,MP7", "2 cells where the header has 9: a cell may hold an unquoted "
                                  "separator, or the row is cut short"),
    ]


def test_quoted_cells_may_hold_commas_and_newlines():
    data = files.generic_csv([
        ["T1", "MP1", "1.00", "2025-03-01 10:00:00", "", "", "", "line one,\nline two", ""],
        ["T2", "MP2", "bad", "2025-03-01 10:00:00", "", "", "", "", ""],
    ])
    _, rows, errors = parse(data)
    assert rows[0].memo == "line one,\nline two"
    # the row number is the line the user sees: the memo took two
    assert errors == [RowError(4, "amount", "bad", "not an amount")]


def test_rows_can_be_read_again():
    reader = open_statement(files.generic_csv(files.many_generic(50)))
    assert list(reader.rows()) == list(reader.rows())


def test_missing_required_column_names_it():
    data = b"transaction_no,order_no,amount\nT1,MP1,1.00\n"
    error = format_error(data)
    assert (error.reason, error.column, error.row) == ("required column missing", "occurred_at", 1)


@pytest.mark.parametrize(
    ("data", "header", "renamed", "column"),
    [
        (files.wechat_bill([files.wechat_payment(1)]), "商户订单号", "商户单号", "商户订单号"),
        (files.wechat_bill([files.wechat_payment(1)]), "交易状态", "状态", "交易状态"),
        (files.alipay_trade_bill([files.alipay_trade(1)]), "业务类型", "类型", "业务类型"),
        (files.alipay_account_log([files.alipay_entry(1, "在线支付", income="1.00")]), "发生时间", "时间", "发生时间"),
        (files.cmb_statement(), "流水号", "编号", "交易流水号"),
        (files.settlement_csv([]), "结算时间", "时间", "结算时间"),
    ],
)
def test_each_profile_names_its_missing_required_column(data, header, renamed, column):
    encoding = "utf-8" if data.startswith(files.BOM) or data.isascii() else "gbk"
    broken = data.replace(f",{header},".encode(encoding), f",{renamed},".encode(encoding), 1)
    assert broken != data
    error = format_error(broken)
    assert (error.reason, error.column) == ("required column missing", column)


def test_explicit_profile_that_does_not_fit_names_the_missing_column():
    error = format_error(files.generic_csv(files.many_generic(3)), profile="wechatpay_trade")
    assert (error.reason, error.column) == ("required column missing", "交易时间")


@pytest.mark.parametrize("data", [b"", files.BOM, b"\r\n\r\n  \r\n", b",,,,\n,,,,\n"])
def test_empty_file(data):
    assert format_error(data).reason == "empty file"


def test_header_without_rows_is_an_empty_statement():
    _, rows, errors = parse(files.generic_csv([]))
    assert rows == errors == []


def test_unknown_profile_name():
    error = format_error(files.generic_csv([]), profile="paypal")
    assert (error.reason, error.column) == ("unknown profile", "paypal")
    assert "paypal" not in PROFILES


def test_unknown_header():
    error = format_error("名称,数量\n苹果,3\n".encode())
    assert error.reason.startswith("unknown profile")


def test_undecodable_bytes_in_a_utf8_file_fail_the_file_with_the_line():
    good = files.wechat_bill([files.wechat_payment(n) for n in range(1, 6)])
    lines = good.split(b"\r\n")
    lines[4] = lines[4].replace(b"\xe7\xba\xaf", b"\xe7\xba")  # a truncated 纯
    error = format_error(b"\r\n".join(lines))
    assert error.reason.startswith("undecodable bytes")
    assert error.row == 5


def test_undecodable_bytes_in_a_gbk_file_name_the_damaged_line():
    data = files.cmb_statement().replace("财付通".encode("gbk"), b"\x81\x20\x81")
    error = format_error(data)
    assert error.reason.startswith("undecodable bytes")
    assert error.row == 7


def test_binary_garbage_is_not_a_statement():
    error = format_error(bytes(range(256)) * 4)
    assert error.reason.startswith("undecodable bytes")


@pytest.mark.parametrize(
    ("data", "filename", "reason"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "stmt.xls", "legacy .xls workbook"),
        (b"<html><body><table><tr><td>1</td></tr></table>", "stmt.xls", "web page saved as a spreadsheet"),
        (b"not a workbook", "stmt.xlsx", "not a readable .xlsx workbook"),
        (b"PK\x03\x04 truncated", "", "damaged zip/xlsx file"),
    ],
)
def test_files_that_are_not_tables(data, filename, reason):
    assert format_error(data, filename=filename).reason.startswith(reason)


# --- wechatpay_trade ----------------------------------------------------------------------------


def test_wechat_all_bill():
    data = files.wechat_bill([
        files.wechat_payment(1),
        files.wechat_refund(1),
        # a 10.00 coupon the merchant funds: WeChat settles 应结订单金额, not 订单金额
        files.wechat_payment(2, amount="59.00", fee="0.35000", at="2025-03-01 16:00:00") | {"订单金额": "69.00"},
    ])
    assert data.startswith(files.BOM)
    reader, rows, errors = parse(data)
    assert (reader.profile, reader.encoding) == ("wechatpay_trade", "utf-8-sig")
    assert errors == []
    assert len(rows) == 3  # the totals header and row are not statement rows
    pay, refund, coupon = rows
    assert (coupon.amount, coupon.fee) == (Decimal("59.00"), Decimal("0.35"))
    assert pay == StatementRow(
        row=2, transaction_no="4200002500202503010000000001", order_ref="MP20250301000001",
        occurred_at=at(2025, 3, 1, 10, 3, 39), amount=Decimal("118.00"), fee=Decimal("0.71"), kind="payment",
        counterparty="oAbc-0001", memo="纯棉T恤", status="SUCCESS",
    )
    assert refund == StatementRow(
        row=3, transaction_no="4200002500202503010000000001", order_ref="MP20250301000001",
        occurred_at=at(2025, 3, 1, 15, 20), amount=Decimal("-59.00"), fee=Decimal("0.00"), kind="refund",
        counterparty="oAbc-0001", memo="纯棉T恤", refund_ref="50300000012025030100000001",
        fee_returned=Decimal("0.35"), status="SUCCESS",
    )


def test_wechat_success_bill_has_no_refund_columns():
    data = files.wechat_bill([files.wechat_payment(1), files.wechat_payment(2)], columns=files.WECHAT_SUCCESS,
                             bom=False)
    reader, rows, errors = parse(data)
    assert (reader.profile, reader.encoding, errors) == ("wechatpay_trade", "utf-8", [])
    assert [row.amount for row in rows] == [Decimal("118.00"), Decimal("118.00")]


def test_wechat_refund_bill_is_read_by_header_name_and_dated_by_refund_time():
    data = files.wechat_bill(
        [
            files.wechat_refund(1, amount="30.00", at="2025-03-01 09:00:00") | {"退款成功时间": "2025-03-02 11:00:00"},
            files.wechat_refund(1, amount="20.00") | {"微信退款单号": "50300000012025030199999999",
                                                      "退款成功时间": "", "退款状态": "PROCESSING"},
        ],
        columns=files.WECHAT_REFUND,
    )
    _, rows, errors = parse(data)
    assert errors == []
    assert [(row.amount, row.occurred_at, row.status) for row in rows] == [
        (Decimal("-30.00"), at(2025, 3, 2, 11), "SUCCESS"),
        (Decimal("-20.00"), at(2025, 3, 1, 15, 20), "PROCESSING"),
    ]
    assert rows[1].refund_ref == "50300000012025030199999999"


def test_wechat_bad_rows_name_the_header_of_the_bad_cell():
    data = files.wechat_bill([
        files.wechat_payment(1, amount="abc"),
        files.wechat_payment(2) | {"交易状态": "NOTPAY"},
        files.wechat_refund(3, amount=""),
        files.wechat_payment(4) | {"交易状态": "REVOKED", "应结订单金额": "0.00"},
    ])
    _, rows, errors = parse(data)
    assert errors == [
        RowError(2, "应结订单金额", "`abc", "not an amount"),
        RowError(3, "交易状态", "`NOTPAY", "not a known trade status (SUCCESS, REFUND, REVOKED)"),
        RowError(4, "退款金额", "`", "missing value"),
    ]
    assert [(row.row, row.kind, row.amount) for row in rows] == [(5, "other", Decimal("0.00"))]


def test_wechat_refund_row_in_a_success_bill_names_the_missing_column():
    data = files.wechat_bill([files.wechat_refund(1)], columns=files.WECHAT_SUCCESS)
    _, _, errors = parse(data)
    assert errors == [RowError(2, "退款金额", "", "missing value")]


def test_wechat_only_recognised_totals_are_skipped():
    lines = files.wechat_bill([files.wechat_payment(1)]).split(b"\r\n")
    lines.insert(2, "`小计,`118.00".encode())
    _, rows, errors = parse(b"\r\n".join(lines))
    assert len(rows) == 1
    assert [(error.row, error.value) for error in errors] == [(3, "`小计,`118.00")]


def test_wechat_bill_downloaded_gzipped():
    reader, rows, _ = parse(gzip.compress(files.wechat_bill([files.wechat_payment(1)])), filename="bill.csv.gz")
    assert (reader.profile, len(rows)) == ("wechatpay_trade", 1)


def test_twenty_thousand_wechat_rows():
    records = list(files.many_wechat(20_000))
    _, rows, errors = parse(files.wechat_bill(records))
    assert errors == []
    assert len(rows) == 20_000
    assert rows[-1].row == 20_001
    assert sum(1 for row in rows if row.kind == "refund") == 2_000
    expected = sum(Decimal(r["应结订单金额"]) for r in records) - sum(Decimal(r["退款金额"]) for r in records
                                                                   if r["交易状态"] == "REFUND")
    assert sum(row.amount for row in rows) == expected
    assert rows[0].occurred_at < rows[-1].occurred_at


# --- alipay_account -----------------------------------------------------------------------------


def test_alipay_trade_bill():
    data = files.alipay_trade_bill([
        files.alipay_trade(1),
        files.alipay_trade(2, kind="退款", amount="-59.00", fee="0.35", at="2025-03-01 18:00:00",
                           refund_no="2025030122001400000000000001RF"),
    ])
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    reader, rows, errors = parse(data)
    assert (reader.profile, reader.encoding, errors) == ("alipay_account", "gbk", [])
    assert reader.header_period == (date(2025, 3, 1), date(2025, 3, 1))
    pay, refund = rows
    assert pay.transaction_no == "2025030122001400000000000001"  # trailing tab gone
    assert (pay.order_ref, pay.kind, pay.amount, pay.fee, pay.counterparty) == (
        "MP20250301000001", "payment", Decimal("59.00"), Decimal("0.35"), "*三(138****0000)")
    assert pay.occurred_at == at(2025, 3, 1, 10, 2, 20)
    assert (pay.row, refund.row) == (6, 7)
    assert (refund.kind, refund.amount, refund.fee, refund.fee_returned, refund.refund_ref) == (
        "refund", Decimal("-59.00"), Decimal("0.00"), Decimal("0.35"), "2025030122001400000000000001RF")


def test_alipay_account_log():
    data = files.alipay_account_log(
        [
            files.alipay_entry(1, "在线支付", income="59.00"),
            files.alipay_entry(2, "收费", expense="0.35", trade=1),
            files.alipay_entry(3, "交易退款", expense="-20.00", trade=1),
            files.alipay_entry(4, "提现", expense="1000.00", trade=4),
        ],
        ascii_parens=True,
    )
    reader, rows, errors = parse(data)
    assert (reader.profile, errors) == ("alipay_account", [])
    assert reader.header_period == (date(2025, 3, 1), date(2025, 3, 31))
    assert [(row.kind, row.amount, row.fee) for row in rows] == [
        ("payment", Decimal("59.00"), Decimal("0.00")),
        ("fee", Decimal("-0.35"), Decimal("0.00")),
        ("refund", Decimal("-20.00"), Decimal("0.00")),
        ("transfer", Decimal("-1000.00"), Decimal("0.00")),
    ]
    # payment, fee and refund of one trade share the trade no; the entry no tells them apart
    assert {row.transaction_no for row in rows[:3]} == {"2025030122001400000000000001"}
    assert [row.entry_no for row in rows] == [f"3125030100{n:010d}" for n in range(1, 5)]


def test_alipay_account_log_bad_rows():
    data = files.alipay_account_log([
        files.alipay_entry(1, "在线支付", income="59.00", expense="1.00"),
        files.alipay_entry(2, "在线支付"),
        files.alipay_entry(3, "在线支付", income="5.9.0"),
        files.alipay_entry(4, "在线支付", income="1.00", at="2025-03-01"),
    ])
    _, rows, errors = parse(data)
    assert [(row.row, row.occurred_at) for row in rows] == [(9, at(2025, 3, 1))]
    assert errors == [
        RowError(6, "支出金额（-元）", "1.00", "both income and expense amounts"),
        RowError(7, "收入金额（+元）", "", "missing value"),
        RowError(8, "收入金额（+元）", "5.9.0", "not an amount"),
    ]


def test_alipay_account_log_with_one_amount_and_a_direction_column():
    text = (
        "#支付宝账务明细查询\r\n"
        "账务流水号,业务流水号,商户订单号,发生时间,收支类型,金额,业务类型\r\n"
        "31250301001\t,2025030122001400000000000001\t,MP1\t,2025-03-01 10:02:20,收入,59.00,在线支付\r\n"
        "31250301002\t,2025030122001400000000000001\t,MP1\t,2025-03-01 10:02:20,支出,0.35,交易服务费\r\n"
        "31250301003\t,,,2025-03-01 11:00:00,,-100.00,提现\r\n"
        "31250301004\t,,,2025-03-01 11:00:00,冻结,1.00,保证金\r\n"
    )
    _, rows, errors = parse(text.encode("gbk"))
    assert [(row.entry_no, row.amount, row.kind) for row in rows] == [
        ("31250301001", Decimal("59.00"), "payment"),
        ("31250301002", Decimal("-0.35"), "fee"),
        ("31250301003", Decimal("-100.00"), "transfer"),
    ]
    assert rows[2].transaction_no == "31250301003"  # no trade behind a withdrawal
    assert errors == [RowError(6, "收支类型", "冻结", "not 收入 or 支出")]


def test_alipay_zip_download_with_gbk_member_names():
    data = files.alipay_zip(files.alipay_trade_bill([files.alipay_trade(1)]))
    reader, rows, _ = parse(data, filename="20880000000000010156_20250301.csv.zip")
    assert (reader.profile, reader.encoding, len(rows)) == ("alipay_account", "gbk", 1)


# --- bank_csv -----------------------------------------------------------------------------------


def test_cmb_export_gbk_with_title_lines_totals_and_thousands_separators():
    data = files.cmb_statement()
    reader, rows, errors = parse(data)
    assert (reader.profile, reader.encoding, errors) == ("bank_csv", "gbk", [])
    assert reader.header_period == (date(2025, 3, 1), date(2025, 3, 31))
    assert reader.header_row == 6
    assert [(row.row, row.transaction_no, row.amount, row.kind) for row in rows] == [
        (7, "K1234500001A", Decimal("1876320.00"), "transfer"),
        (8, "K1234500002B", Decimal("-2000.00"), "transfer"),
        (9, "K1234500003C", Decimal("-12.50"), "fee"),
    ]
    settlement = rows[0]
    assert settlement.occurred_at == at(2025, 3, 2, 9, 5, 12)
    assert (settlement.counterparty, settlement.memo, settlement.order_ref) == (
        "财付通支付科技有限公司", "代发其他 / 微信支付结算", "")


def test_ccb_export_with_full_times_and_currency_words():
    data = files.ccb_statement([
        files.ccb_row(1, credit="11,738.42"),
        files.ccb_row(2, debit="-200.00", party="杭州某某物流有限公司", memo="转账支出"),
    ])
    reader, rows, errors = parse(data)
    assert (reader.profile, reader.encoding, errors) == ("bank_csv", "utf-8", [])
    assert reader.header_period == (date(2025, 3, 1), date(2025, 3, 31))
    assert [(row.transaction_no, row.amount, row.currency) for row in rows] == [
        ("33050100000000000001-000001", Decimal("11738.42"), "CNY"),
        ("33050100000000000001-000002", Decimal("-200.00"), "CNY"),
    ]
    assert rows[0].occurred_at == at(2025, 3, 2, 17, 7, 9)
    assert rows[0].memo == "批量代付 / 结算批次1"


def test_bank_signed_amount_with_debit_credit_flag_tab_separated():
    text = (
        "账号\t6222020200112233445\n"
        "交易日期\t交易流水号\t借贷标志\t交易金额\t余额\t对方户名\t摘要\n"
        "2025-03-02\tS001\t贷\t1,000.00\t1,000.00\t财付通支付科技有限公司\t微信支付结算\n"
        "2025-03-02\tS002\t借\t10.00\t990.00\t\t汇划费\n"
        "2025-03-03\tS003\t?\t10.00\t980.00\t\t\n"
        "2025-03-03\tS004\t借方\tx\t980.00\t\t\n"
    )
    _, rows, errors = parse(text.encode("gbk"))
    assert [(row.transaction_no, row.amount, row.kind) for row in rows] == [
        ("S001", Decimal("1000.00"), "transfer"), ("S002", Decimal("-10.00"), "fee")]
    assert rows[0].occurred_at == at(2025, 3, 2)
    assert errors == [
        RowError(5, "借贷标志", "?", "not a debit/credit flag"),
        RowError(6, "交易金额", "x", "not an amount"),
    ]


def test_bank_export_saved_as_excel_unicode_text():
    data = files.cmb_statement(encoding="utf-16", delimiter="\t")
    reader, rows, errors = parse(data)
    assert (reader.profile, reader.encoding, errors) == ("bank_csv", "utf-16", [])
    assert [row.amount for row in rows] == [Decimal("1876320.00"), Decimal("-2000.00"), Decimal("-12.50")]


def test_bank_bad_rows_repeated_header_and_totals():
    rows_in = [
        files.CMB_ROWS[0],
        files.CMB_HEADER,  # page two of the export starts with the header again
        ["20250302", "100000", "5.00", "6.00", "", "错账", "K9", "", "", ""],
        ["20250302", "100000", "", "", "", "", "K10", "", "", ""],
        ["20250302", "1000", "", "1.00", "", "", "K11", "", "", ""],
        ["20250302", "25:00:00", "1.00", "", "", "", "", "", "", ""],
        ["", "090000", "1.00", "", "", "", "K13", "", "", ""],
        ["本页合计", "", "", "", "", "", "", "", "", ""],
    ]
    _, rows, errors = parse(files.cmb_statement(rows_in))
    assert [row.row for row in rows] == [7, 11]
    assert rows[1].occurred_at == at(2025, 3, 2, 0, 10)  # Excel read 001000 as the number 1000
    assert errors == [
        RowError(9, "借方金额", "5.00", "both debit and credit amounts"),
        RowError(10, "贷方金额", "", "missing value"),
        RowError(12, "交易时间", "25:00:00", "not a time"),
        RowError(12, "流水号", "", "missing value"),
        RowError(13, "交易日", "", "missing value"),
    ]


def test_bank_unrecognised_footer_is_reported():
    data = files.cmb_statement(totals=False) + "页脚说明文字不是合计,,,,,,,,,\r\n".encode("gbk")
    _, rows, errors = parse(data)
    assert len(rows) == 3
    assert {error.row for error in errors} == {10}


# --- channel_settlement -------------------------------------------------------------------------


def test_channel_settlement():
    data = files.settlement_csv(
        [
            ["JS0001", "DY2025030100001", "2025-03-02 02:00:00", "100.00", "5.00", "1.00", "94.00", "订单结算"],
            ["", "DY2025030100002", "2025-03-02 02:00:00", "50.00", "", "", "50.00", ""],
            ["JS0003", "DY2025030100003", "2025-03-02 02:00:00", "-30.00", "-1.50", "", "-28.50", "售后退款"],
        ],
        total="115.50",
    )
    reader, rows, errors = parse(data)
    assert (reader.profile, reader.encoding, reader.net_amounts, errors) == (
        "channel_settlement", "utf-8-sig", True, [])
    assert [(r.transaction_no, r.order_ref, r.amount, r.fee, r.fee_returned, r.kind) for r in rows] == [
        ("JS0001", "DY2025030100001", Decimal("94.00"), Decimal("6.00"), Decimal("0.00"), "payment"),
        ("DY2025030100002", "DY2025030100002", Decimal("50.00"), Decimal("0.00"), Decimal("0.00"), "payment"),
        ("JS0003", "DY2025030100003", Decimal("-28.50"), Decimal("0.00"), Decimal("1.50"), "refund"),
    ]
    assert rows[0].occurred_at == at(2025, 3, 2, 2)


def test_channel_settlement_english_header_and_bad_rows():
    data = (b"order_no,settled_at,amount,fee\n"
            b"O1,2025-03-02,10.00,0.10\n"
            b",2025-03-02,10.00,x\n")
    reader, rows, errors = parse(data, profile="channel_settlement")
    assert (reader.profile, [row.transaction_no for row in rows]) == ("channel_settlement", ["O1"])
    assert errors == [RowError(3, "order_no", "", "missing value"), RowError(3, "fee", "x", "not an amount")]


# --- XLSX ---------------------------------------------------------------------------------------


def test_xlsx_bank_statement_with_typed_cells():
    data = files.xlsx([
        ["中国建设银行账户明细"],
        ["起止日期：2025-03-01 至 2025-03-31"],
        [],
        files.CCB_HEADER,
        ["33050100000000000001", "杭州某某商贸有限公司", datetime(2025, 3, 2, 17, 7, 9), None, 11738.42, 100000.5,
         "人民币", "财付通支付科技有限公司", "1000000000000001", "建行", "20250302", "批量代付", "", "3305-000001"],
        # Excel stores 0.1 + 0.2 as 0.30000000000000004 and shows 0.30
        ["33050100000000000001", "杭州某某商贸有限公司", datetime(2025, 3, 2, 18, 0), 0.1 + 0.2, None, 100000.2,
         "人民币", "", "", "", "20250302", "手续费", "", "3305-000002"],
        ["33050100000000000001", "杭州某某商贸有限公司", "garbage", "abc", None, None, "人民币", "", "", "",
         "20250302", "手续费", "", 3305000003],
    ])
    reader, rows, errors = parse(data, filename="建行流水.xlsx")
    assert (reader.profile, reader.encoding) == ("bank_csv", "xlsx")
    assert reader.header_period == (date(2025, 3, 1), date(2025, 3, 31))
    assert reader.estimated_rows == 3
    assert [(row.row, row.transaction_no, row.amount, row.kind) for row in rows] == [
        (5, "3305-000001", Decimal("11738.42"), "transfer"),
        (6, "3305-000002", Decimal("-0.30"), "fee"),
    ]
    assert rows[0].occurred_at == at(2025, 3, 2, 17, 7, 9)
    assert errors == [
        RowError(7, "交易时间", "garbage", "not a date"),
        RowError(7, "借方发生额（支取）", "abc", "not an amount"),
    ]


def test_xlsx_generic_with_explicit_profile():
    data = files.xlsx([files.GENERIC_HEADER, *files.many_generic(3)])
    reader, rows, errors = parse(data, profile="generic_csv")
    assert (reader.encoding, len(rows), errors) == ("xlsx", 3, [])


# --- detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "profile"),
    [
        (files.generic_csv(files.many_generic(2)), "generic_csv"),
        (files.wechat_bill([files.wechat_payment(1)]), "wechatpay_trade"),
        (files.alipay_trade_bill([files.alipay_trade(1)]), "alipay_account"),
        (files.alipay_account_log([files.alipay_entry(1, "在线支付", income="1.00")]), "alipay_account"),
        (files.cmb_statement(), "bank_csv"),
        (files.ccb_statement([files.ccb_row(1, credit="1.00")]), "bank_csv"),
        (files.settlement_csv([]), "channel_settlement"),
    ],
)
def test_profile_is_detected_from_the_header(data, profile):
    assert open_statement(data).profile == profile
    assert open_statement(data, profile=profile).profile == profile


def test_twenty_thousand_generic_rows():
    reader, rows, errors = parse(files.big_generic_csv(20_000))
    assert errors == []
    assert len(rows) == 20_000
    assert sum(1 for row in rows if row.kind == "refund") == 1_000
    assert abs(reader.estimated_rows - 20_000) <= 1


def test_a_row_split_by_an_unquoted_comma_is_refused_not_read_shifted():
    # `66,5x in 应结订单金额 splits the cell: read anyway, the row became 66.00 with every later
    # column (fee, order number) taken from its neighbour.
    data = files.wechat_bill([files.wechat_payment(1), files.wechat_payment(2, amount="66,5x")])
    _, rows, errors = parse(data)
    width = len(files.WECHAT_ALL)
    [error] = errors
    assert (error.row, error.column) == (3, "")
    # 66,5x stands in 应结订单金额 and 订单金额: two cells too many
    assert error.reason.startswith(f"{width + 2} cells where the header has {width}")
    assert "`66,5x" in error.value  # the line as it was read
    assert [row.row for row in rows] == [2]


def test_a_row_cut_short_is_refused_and_empty_trailing_cells_are_not():
    width = len(files.GENERIC_HEADER)
    trailing = files.generic_csv([]) + b"TX-1,ORDER-1,10.00,2025-03-01 10:00:00,0.00,payment,,,CNY,,\n"
    _, rows, errors = parse(trailing)
    assert (len(rows), errors) == (1, [])
    short = files.generic_csv([]) + b"TX-2,ORDER-2\n"
    _, rows, errors = parse(short)
    assert rows == []
    assert [(e.row, e.reason.split(":")[0]) for e in errors] == [(2, f"2 cells where the header has {width}")]
