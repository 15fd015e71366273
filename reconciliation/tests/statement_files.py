"""Statement files as providers, banks and channels write them, built in code for the tests.

Headers follow the layouts in shared/reference/channel-payment-bank-formats.md §3.3, §3.4 and §4;
the values are invented.
"""

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator
from decimal import Decimal

BOM = b"\xef\xbb\xbf"


def _columns(header_line: str) -> list[str]:
    # Headers are kept as the one line the reference quotes, so they can be compared by eye.
    return header_line.split(",")


# --- WeChat Pay trade bill ------------------------------------------------------------------

WECHAT_ALL = _columns(
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
    "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,"
    "商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
_WECHAT_REFUND_ONLY = {"微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "申请退款金额"}
WECHAT_SUCCESS = [name for name in WECHAT_ALL if name not in _WECHAT_REFUND_ONLY]
# REFUND bills add the refund times; put them mid-row so position-based parsing would break.
WECHAT_REFUND = WECHAT_ALL[:10] + ["退款申请时间", "退款成功时间"] + WECHAT_ALL[10:]
WECHAT_SUMMARY = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"


def wechat_payment(n: int = 1, amount: str = "118.00", fee: str = "0.71", at: str = "2025-03-01 10:03:39", **extra):
    return {
        "交易时间": at, "公众账号ID": "wx0000000000000001", "商户号": "1900000001", "特约商户号": "0",
        "设备号": "", "微信订单号": f"42000025002025030100{n:08d}", "商户订单号": f"MP2025030100{n:04d}",
        "用户标识": f"oAbc-{n:04d}", "交易类型": "JSAPI", "交易状态": "SUCCESS", "付款银行": "OTHERS",
        "货币种类": "CNY", "应结订单金额": amount, "代金券金额": "0.00", "微信退款单号": "0", "商户退款单号": "0",
        "退款金额": "0.00", "充值券退款金额": "0.00", "退款类型": "", "退款状态": "", "商品名称": "纯棉T恤",
        "商户数据包": "shop=mini", "手续费": fee, "费率": "0.60%", "订单金额": amount, "申请退款金额": "0.00",
        "费率备注": "",
    } | extra


def wechat_refund(n: int = 1, amount: str = "59.00", fee: str = "-0.35", at: str = "2025-03-01 15:20:00", **extra):
    return wechat_payment(n, at=at) | {
        "交易状态": "REFUND", "应结订单金额": "0.00", "订单金额": "0.00", "微信退款单号": f"503000000120250301{n:08d}",
        "商户退款单号": f"RF2025030100{n:04d}", "退款金额": amount, "退款类型": "ORIGINAL", "退款状态": "SUCCESS",
        "手续费": fee, "申请退款金额": amount, "退款申请时间": at, "退款成功时间": at,
    } | extra


def wechat_bill(records: Iterable[dict], columns: list[str] = WECHAT_ALL, bom: bool = True) -> bytes:
    """CRLF, every cell behind a backtick, and the totals section WeChat appends."""
    lines = [",".join(columns)]
    count, settled, refunded, fees = 0, Decimal(0), Decimal(0), Decimal(0)
    for record in records:
        lines.append(",".join("`" + record.get(name, "") for name in columns))
        count += 1
        settled += _money(record.get("应结订单金额"))
        refunded += _money(record.get("退款金额"))
        fees += _money(record.get("手续费"))
    lines.append(WECHAT_SUMMARY)
    lines.append(f"`{count},`{settled:.2f},`{refunded:.2f},`0.00,`{fees:.5f},`{settled:.2f},`{refunded:.2f}")
    return (BOM if bom else b"") + ("\r\n".join(lines) + "\r\n").encode()


def _money(text: str | None) -> Decimal:
    try:
        return Decimal(text or 0)
    except ArithmeticError:  # tests put bad amounts in on purpose; totals ignore them
        return Decimal(0)


def many_wechat(count: int) -> Iterator[dict]:
    """One day of trading in time order; every tenth line refunds part of the payment before it."""
    for n in range(1, count + 1):
        at = _time_of_day(n, count)
        if n % 10 == 0:
            yield wechat_refund(n - 1, amount="10.00", fee="-0.06", at=at)
        else:
            yield wechat_payment(n, amount=f"{n % 500 + 1}.{n % 100:02d}", fee="0.06", at=at)


def _time_of_day(n: int, count: int, day: str = "2025-03-01") -> str:
    second = n * 86_399 // count
    return f"{day} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"


# --- Alipay -------------------------------------------------------------------------------------

ALIPAY_TRADE = _columns(
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,"
    "商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,"
    "商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
)
ALIPAY_ACCOUNT = _columns(
    "账务流水号,业务流水号,商户订单号,商品名称,发生时间,对方账号,收入金额（+元）,支出金额（-元）,账户余额（元）,交易渠道,"
    "业务类型,备注"
)


def alipay_trade(n: int = 1, kind: str = "交易", amount: str = "59.00", fee: str = "-0.35",
                 at: str = "2025-03-01 10:02:20", refund_no: str = "") -> list[str]:
    # Alipay pads id and text cells with a trailing tab so Excel keeps them as text.
    return [
        f"20250301220014000000{n:08d}\t", f"MP2025030100{n:04d}\t", f"{kind}\t", f"订单MP2025030100{n:04d}",
        "2025-03-01 10:02:11", at, "\t", "\t", "\t", "\t", "*三(138****0000)\t", amount, amount, "0.00", "0.00",
        "0.00", "0.00", "0.00", "", "0.00\t", "0.00", f"{refund_no}\t", fee, "0.00", "",
    ]


def alipay_trade_bill(rows: Iterable[list[str]], encoding: str = "gbk") -> bytes:
    rows = list(rows)
    lines = [
        "#支付宝业务明细查询",
        "#账号：[20880000000000010156]",
        "#起始日期：[2025年03月01日 00:00:00]   终止日期：[2025年03月02日 00:00:00]",
        "#-----------------------------------------业务明细列表----------------------------------------",
        ",".join(ALIPAY_TRADE),
        *(",".join(row) for row in rows),
        "#-----------------------------------------业务明细列表结束------------------------------------",
        f"#交易合计：{len(rows)}笔，商家实收共59.00元，商家优惠共0.00元",
        "#导出时间：[2025年03月02日 09:10:11]",
    ]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def alipay_entry(n: int, kind: str, income: str = "", expense: str = "", at: str = "2025-03-01 10:02:20",
                 trade: int | None = None) -> list[str]:
    trade = n if trade is None else trade
    return [
        f"3125030100{n:010d}\t", f"20250301220014000000{trade:08d}\t", f"MP2025030100{trade:04d}\t",
        f"订单MP2025030100{trade:04d}", at, "buyer***@163.com\t", income, expense, "1000.00", "支付宝", kind, "",
    ]


def alipay_account_log(rows: Iterable[list[str]], ascii_parens: bool = False, encoding: str = "gbk") -> bytes:
    header = ",".join(ALIPAY_ACCOUNT)
    if ascii_parens:
        header = header.replace("（", "(").replace("）", ")")
    lines = [
        "#支付宝账务明细查询",
        "#账号：[20880000000000010156]",
        "#起始日期：[2025年03月01日 00:00:00]   终止日期：[2025年04月01日 00:00:00]",
        "#-----------------------------------------账务明细列表----------------------------------------",
        header,
        *(",".join(row) for row in rows),
        "#-----------------------------------------账务明细列表结束------------------------------------",
        "#支出合计：1笔，共0.35元",
        "#收入合计：1笔，共59.00元",
        "#导出时间：[2025年04月01日 09:10:11]",
    ]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def alipay_zip(detail: bytes) -> bytes:
    """The download: a zip of the detail CSV and a "(汇总)" summary, names in GBK without the UTF-8 flag."""
    stem = "20880000000000010156_20250301_业务明细"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        # zipfile would write non-ASCII names as flagged UTF-8; same-length placeholders are swapped below
        out.writestr(_placeholder(stem) + ".csv", detail)
        out.writestr(_placeholder(stem + "(汇总)") + ".csv", "#支付宝业务明细查询(汇总)\r\n".encode("gbk"))
    data = archive.getvalue()
    for name in (stem + "(汇总)", stem):
        data = data.replace(_placeholder(name).encode(), name.encode("gbk"))
    return data


def _placeholder(name: str) -> str:
    return "".join(char if char.isascii() else "x" for char in name.encode("gbk").decode("latin-1"))


# --- Banks --------------------------------------------------------------------------------------

CMB_HEADER = ["交易日", "交易时间", "借方金额", "贷方金额", "余额", "摘要", "流水号", "收/付方名称", "收/付方帐号", "用途"]
CMB_ROWS = [
    ["20250302", "090512", "", "1,876,320.00", "2,076,320.00", "代发其他", "K1234500001A", "财付通支付科技有限公司",
     "1000000000000001", "微信支付结算"],
    ["20250302", "143000", "2,000.00", "", "2,074,320.00", "转账", "K1234500002B", "杭州某某物流有限公司",
     "1000000000000002", "2月运费"],
    ["20250303", "080000", "12.50", "", "2,074,307.50", "手续费", "K1234500003C", "", "", ""],
]


def cmb_statement(rows: Iterable[list[str]] = CMB_ROWS, encoding: str = "gbk", totals: bool = True,
                  delimiter: str = ",") -> bytes:
    """CMB enterprise export: title block, quoted amounts with thousands separators, totals line."""
    lines = [
        ["公司名称", "杭州某某商贸有限公司"],
        ["银行帐号", "571900000000001"],
        ["查询开始日期", "20250301"],
        ["查询结束日期", "20250331"],
        [],
        CMB_HEADER,
        *rows,
    ]
    if totals:
        lines.append(["合计", "", "2,012.50", "1,876,320.00", "", "", "", "", "", ""])
    return _csv(lines, delimiter).encode(encoding)


CCB_HEADER = [
    "账号", "账户名称", "交易时间", "借方发生额（支取）", "贷方发生额（收入）", "余额", "币种", "对方户名", "对方账号",
    "对方开户机构", "记账日期", "摘要", "备注", "账户明细编号-交易流水号",
]


def ccb_row(n: int, debit: str = "", credit: str = "", at: str = "20250302 17:07:09", party: str = "支付宝（中国）网络技术有限公司",
            memo: str = "批量代付") -> list[str]:
    return ["33050100000000000001", "杭州某某商贸有限公司", at, debit, credit, "100,000.00", "人民币", party,
            "1000000000000009", "中国建设银行杭州分行", at[:8], memo, f"结算批次{n}", f"33050100000000000001-{n:06d}"]


def ccb_statement(rows: Iterable[list[str]], encoding: str = "utf-8") -> bytes:
    lines = [["中国建设银行账户明细"], ["起止日期：2025-03-01 至 2025-03-31"], CCB_HEADER, *rows]
    return _csv(lines).encode(encoding)


def _csv(rows: Iterable[list], delimiter: str = ",") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


# --- Ours and the channels' --------------------------------------------------------------------

GENERIC_HEADER = ["transaction_no", "order_no", "amount", "occurred_at", "fee", "kind", "counterparty", "memo",
                  "currency"]


def generic_csv(rows: Iterable[list], header: list[str] = GENERIC_HEADER) -> bytes:
    return _csv([header, *rows]).encode()


def many_generic(count: int) -> Iterator[list[str]]:
    """Every twentieth line a refund (negative amount, kind left to the sign)."""
    for n in range(1, count + 1):
        sign = "-" if n % 20 == 0 else ""
        yield [f"T{n:012d}", f"MP{n:010d}", f"{sign}{n % 9999}.{n % 100:02d}", _time_of_day(n, count),
               f"0.{n % 100:02d}", "", "张三", "纯棉T恤", "CNY"]


def big_generic_csv(count: int) -> bytes:
    """many_generic as one CSV, written without building a list per row."""
    head = ",".join(GENERIC_HEADER) + "\r\n"
    body = "".join(
        f"T{n:012d},MP{n:010d},{'-' if n % 20 == 0 else ''}{n % 9999}.{n % 100:02d},{_time_of_day(n, count)},"
        f"0.{n % 100:02d},,张三,纯棉T恤,CNY\r\n"
        for n in range(1, count + 1)
    )
    return (head + body).encode()


SETTLEMENT_HEADER = ["结算流水号", "订单号", "结算时间", "订单金额", "佣金", "平台服务费", "结算金额", "备注"]


def settlement_csv(rows: Iterable[list[str]], total: str = "") -> bytes:
    lines = [SETTLEMENT_HEADER, *rows]
    if total:
        lines.append(["合计", "", "", "", "", "", total, ""])
    return ("\ufeff" + _csv(lines)).encode()


def xlsx(rows: Iterable[list]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
