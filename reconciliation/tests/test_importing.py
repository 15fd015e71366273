"""Statement import end to end: API, page and command; all or nothing; never twice; the run it
starts by itself; what it means for reconciliation."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from orders.tests.factories import ChannelFactory
from reconciliation.models import ReconciliationRun, Statement, StatementLine
from reconciliation.tests import statement_files as files

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance(client_for):
    return client_for("finance")


def upload(client, content: bytes, name="bill.csv", **form):
    return client.post("/api/v1/reconciliation/statements/",
                       {"file": SimpleUploadedFile(name, content), "account": "wx-mch-1900000001", **form},
                       format="multipart")


def test_a_wechat_bill_is_imported_and_starts_its_reconciliation(finance, django_capture_on_commit_callbacks):
    bill = files.wechat_bill([files.wechat_payment(1), files.wechat_payment(2, amount="59.00"),
                              files.wechat_refund(3)])
    with django_capture_on_commit_callbacks(execute=True):
        reply = upload(finance, bill)
    assert reply.status_code == 201, reply.json()
    body = reply.json()
    assert (body["profile"], body["lines"], body["period_start"], body["period_end"]) == (
        "wechatpay_trade", 3, "2025-03-01", "2025-03-01")
    statement = Statement.objects.get()
    assert statement.provider == "wechatpay" and statement.encoding == "utf-8-sig"
    refund = StatementLine.objects.get(kind="refund")
    assert refund.amount == Decimal("-59.00") and refund.match_key == "50300000012025030100000003"
    assert refund.transaction_no != refund.match_key
    run = ReconciliationRun.objects.get()  # started by the import: the day is over
    assert (run.trigger, run.period_start, run.counts["missing_in_system"]) == ("import", date(2025, 3, 1), 2)
    assert run.counts["unmatched_refund"] == 1


def test_the_same_file_twice_is_refused(finance):
    bill = files.wechat_bill([files.wechat_payment(1)])
    assert upload(finance, bill).status_code == 201
    again = upload(finance, bill)
    assert again.status_code == 409 and "already imported" in again.json()["detail"]
    assert Statement.objects.count() == 1


def test_one_bad_row_rejects_the_file_and_lists_every_bad_row(finance):
    content = files.generic_csv([
        ["T1", "MP1", "10.00", "2025-03-01 10:00:00", "0", "", "", "", "CNY"],
        ["T2", "MP2", "12,3x", "2025-03-01 10:00:00", "0", "", "", "", "CNY"],
        ["T3", "MP3", "5.00", "yesterday", "0", "", "", "", "CNY"],
    ])
    reply = upload(finance, content)
    assert reply.status_code == 400
    rows = reply.json()["rows"]
    assert [(r["row"], r["column"]) for r in rows] == [(3, "amount"), (4, "occurred_at")]
    assert all(r["reason"] for r in rows) and rows[0]["value"] == "12,3x"
    assert Statement.objects.count() == 0 and StatementLine.objects.count() == 0


def test_bad_encoding_and_missing_column_are_refused(finance):
    assert upload(finance, b"\xff\xfe\x00garbage\x81\x82" * 10).status_code == 400
    missing = upload(finance, b"transaction_no,order_no,occurred_at\r\nT1,MP1,2025-03-01 10:00:00\r\n",
                     profile="generic_csv")
    assert missing.status_code == 400 and "amount" in missing.json()["detail"]
    assert Statement.objects.count() == 0


def test_alipay_gbk_statement(finance):
    log = files.alipay_account_log([files.alipay_entry(1, "交易", income="59.00"),
                                    files.alipay_entry(2, "服务费", expense="0.35")])
    reply = upload(finance, log, name="alipay.csv")
    assert reply.status_code == 201, reply.json()
    assert reply.json()["profile"] == "alipay_account"
    assert Statement.objects.get().encoding in ("gbk", "gb18030")


def test_settlement_files_belong_to_a_channel(finance):
    content = "订单号,结算时间,结算金额,佣金\r\nDY-1,2025-11-16 02:00:00,190.00,10.00\r\n".encode()
    assert upload(finance, content, profile="channel_settlement").status_code == 400  # no such channel
    ChannelFactory(code="DY-SHOP", settlement_lag_days=1)
    reply = finance.post("/api/v1/reconciliation/statements/", {
        "file": SimpleUploadedFile("dy.csv", content), "account": "DY-SHOP", "profile": "channel_settlement"},
        format="multipart")
    assert reply.status_code == 201, reply.json()
    line = StatementLine.objects.get()
    assert line.business_date == date(2025, 11, 15)  # T+1: settled on the 16th for the 15th


def test_only_finance_imports(client_for):
    bill = files.wechat_bill([files.wechat_payment(1)])
    assert upload(client_for("ops"), bill).status_code == 403
    assert upload(client_for("customer_service"), bill).status_code == 403


def test_import_statement_command(tmp_path, capsys):
    path = tmp_path / "bill.csv"
    path.write_bytes(files.wechat_bill([files.wechat_payment(1)]))
    call_command("import_statement", str(path), "--account", "wx-1")
    assert "1 lines" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already imported"):
        call_command("import_statement", str(path), "--account", "wx-1")
    with pytest.raises(CommandError, match="no file"):
        call_command("import_statement", str(tmp_path / "nope.csv"), "--account", "wx-1")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"transaction_no,order_no,amount,occurred_at\r\nT,M,x,2025-03-01\r\n")
    with pytest.raises(CommandError, match="nothing imported"):
        call_command("import_statement", str(bad), "--account", "wx-1")


def test_reconcile_command(capsys):
    call_command("reconcile", "--date", "2025-03-01")
    assert "run " in capsys.readouterr().out
    with pytest.raises(CommandError, match="not a date"):
        call_command("reconcile", "--date", "yesterday")
    with pytest.raises(CommandError):
        call_command("reconcile")


def test_a_file_that_breaks_down_past_its_header_is_a_400_naming_the_line(finance):
    content = b"transaction_no,order_no,amount,occurred_at\r\n" + b"T-1,M-1,1.00,2025-03-01 10:00:00\r\n" * 100
    content += b'T-2,"M-2' + b"x" * 200_000 + b"\r\n"  # an unclosed quote swallowing the rest: malformed CSV
    reply = upload(finance, content, name="broken.csv", account="acct-broken")
    assert reply.status_code == 400, reply.content
    assert reply.json()["rows"][0]["row"] >= 100
    assert not Statement.objects.filter(account="acct-broken").exists()
