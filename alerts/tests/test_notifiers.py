"""Notifiers against a real HTTP server on 127.0.0.1, and email through Django's locmem backend."""

import base64
import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest

from alerts.notifiers import (
    DINGTALK_MARKDOWN_LIMIT,
    KINDS,
    WECOM_MARKDOWN_LIMIT,
    Message,
    NotifyError,
    dingtalk_sign,
    render_dingtalk,
    render_wecom,
    send,
)

OK = (200, {"errcode": 0, "errmsg": "ok"})


class RobotServer:
    """Records every request; replies are scripted per path: (status, json) or "slow"."""

    def __init__(self):
        self.requests: list[dict] = []
        self.replies: dict[str, object] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = urlsplit(self.path)
                server.requests.append({"path": parts.path, "query": parse_qs(parts.query),
                                        "raw_query": parts.query,
                                        "headers": dict(self.headers), "body": body})
                reply = server.replies.get(parts.path, OK)
                if reply == "slow":
                    time.sleep(1.0)
                    reply = OK
                status, payload = reply
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    @property
    def last(self) -> dict:
        return self.requests[-1]


@pytest.fixture
def robot():
    server = RobotServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


MSG = Message(title="订单超时未发货", text="已付款 26 小时\n仓库：杭州一仓", severity="critical",
              url="https://oms.example.com/orders/42/", subject="TB2026010900123")


def test_kinds_and_validation():
    assert KINDS == ("email", "webhook", "wecom", "dingtalk")
    with pytest.raises(ValueError, match="severity"):
        Message(title="t", text="x", severity="urgent")
    with pytest.raises(ValueError, match="unknown notifier kind"):
        send("sms", "13800000000", MSG)


# --- webhook -----------------------------------------------------------------------------------

def test_webhook_posts_the_message_as_signed_json(robot):
    send("webhook", robot.url("/hook"), MSG, secret="s3cret")

    req = robot.last
    body = json.loads(req["body"])
    sent_at = datetime.fromisoformat(body.pop("sent_at"))
    assert abs(datetime.now(UTC) - sent_at) < timedelta(seconds=5)
    assert body == {"title": "订单超时未发货", "text": "已付款 26 小时\n仓库：杭州一仓",
                    "severity": "critical", "url": "https://oms.example.com/orders/42/",
                    "subject": "TB2026010900123"}
    expected = hmac.new(b"s3cret", req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["X-OMS-Signature"] == f"sha256={expected}"
    assert req["headers"]["Content-Type"] == "application/json; charset=utf-8"


def test_webhook_without_secret_is_unsigned(robot):
    send("webhook", robot.url("/hook"), MSG)
    assert "X-OMS-Signature" not in robot.last["headers"]


def test_webhook_http_error_is_reported_with_status(robot):
    robot.replies["/hook"] = (500, "upstream broke")
    with pytest.raises(NotifyError, match="HTTP 500") as excinfo:
        send("webhook", robot.url("/hook"), MSG)
    assert "127.0.0.1" in str(excinfo.value)


def test_webhook_timeout(robot):
    robot.replies["/hook"] = "slow"
    with pytest.raises(NotifyError, match="timeout after 0.2s"):
        send("webhook", robot.url("/hook"), MSG, timeout=0.2)


def test_connection_refused_and_bad_target():
    with pytest.raises(NotifyError, match="ConnectionError"):
        send("webhook", "http://127.0.0.1:9/hook", MSG, timeout=1)
    with pytest.raises(NotifyError, match="not an http"):
        send("wecom", "ftp://example.com/x", MSG)


# --- WeCom -------------------------------------------------------------------------------------

def test_wecom_sends_markdown_with_severity_colour(robot):
    send("wecom", robot.url("/cgi-bin/webhook/send") + "?key=abc", MSG)

    req = robot.last
    assert req["query"] == {"key": ["abc"]}
    assert json.loads(req["body"]) == {"msgtype": "markdown", "markdown": {"content": (
        '**<font color="warning">【严重】</font>订单超时未发货**　`TB2026010900123`\n'
        "已付款 26 小时\n仓库：杭州一仓\n"
        "[查看详情](https://oms.example.com/orders/42/)"
    )}}


@pytest.mark.parametrize(("severity", "colour", "label"), [
    ("critical", "warning", "严重"), ("warning", "info", "警告"), ("info", "comment", "提示"),
])
def test_wecom_colours(severity, colour, label):
    content = render_wecom(Message(title="t", text="x", severity=severity))
    assert content == f'**<font color="{colour}">【{label}】</font>t**\nx'


def test_wecom_errcode_is_a_failure(robot):
    robot.replies["/send"] = (200, {"errcode": 93000, "errmsg": "invalid webhook url"})
    with pytest.raises(NotifyError, match="errcode 93000: invalid webhook url"):
        send("wecom", robot.url("/send"), MSG)


def test_wecom_non_json_reply_is_a_failure(robot):
    robot.replies["/send"] = (200, "<html>gateway</html>")
    with pytest.raises(NotifyError, match="not JSON"):
        send("wecom", robot.url("/send"), MSG)


def test_markup_from_order_data_is_neutralised():
    message = Message(title="<@all> 地址 [点我](http://evil.example)",
                      text='<font color="info">ok</font>\r\n> quote', severity="warning",
                      url="https://oms.example.com/a b)c", subject="A`B")
    content = render_wecom(message)
    assert "<@all>" not in content and "[点我]" not in content
    assert "＜@all＞ 地址 ［点我］(http://evil.example)" in content
    assert '＜font color="info"＞ok＜/font＞\n＞ quote' in content
    assert "`A'B`" in content
    assert content.endswith("[查看详情](https://oms.example.com/a%20b%29c)")
    assert render_wecom(Message(title="t", text="x", severity="info", url="javascript:alert(1)")
                        ) == '**<font color="comment">【提示】</font>t**\nx'


def test_wecom_content_is_capped_at_4096_bytes():
    content = render_wecom(Message(title="t", text="缺货" * 3000, severity="info",
                                   url="https://oms.example.com/x"))
    assert len(content.encode()) <= WECOM_MARKDOWN_LIMIT
    assert len(content.encode()) > WECOM_MARKDOWN_LIMIT - 10
    assert "…（已截断）\n[查看详情](https://oms.example.com/x)" in content


# --- DingTalk ----------------------------------------------------------------------------------

def test_dingtalk_signed_markdown(robot):
    secret = "SEC0123456789abcdef"
    before = int(time.time() * 1000)
    send("dingtalk", robot.url("/robot/send") + "?access_token=tok", MSG, secret=secret)
    after = int(time.time() * 1000)

    req = robot.last
    assert req["query"]["access_token"] == ["tok"]
    timestamp = int(req["query"]["timestamp"][0])
    assert before <= timestamp <= after
    raw_sign = dict(p.split("=", 1) for p in req["raw_query"].split("&"))["sign"]
    expected = base64.b64encode(hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert unquote_plus(raw_sign) == expected
    assert "+" not in raw_sign and "/" not in raw_sign  # URL-encoded, not raw base64
    assert raw_sign == dingtalk_sign(secret, timestamp)
    assert json.loads(req["body"]) == {"msgtype": "markdown", "markdown": {
        "title": "【严重】订单超时未发货",
        "text": ("### 🔴 严重｜订单超时未发货\n\n`TB2026010900123`\n\n"
                 "已付款 26 小时  \n仓库：杭州一仓\n\n"
                 "[查看详情](https://oms.example.com/orders/42/)"),
    }}


def test_dingtalk_without_secret_and_bare_url(robot):
    send("dingtalk", robot.url("/robot/send"), Message(title="t", text="x", severity="info"))
    assert robot.last["query"] == {}
    send("dingtalk", robot.url("/robot/send"), MSG, secret="k")
    assert set(robot.last["query"]) == {"timestamp", "sign"}


def test_dingtalk_errcode_is_a_failure(robot):
    robot.replies["/robot/send"] = (200, {"errcode": 310000, "errmsg": "sign not match"})
    with pytest.raises(NotifyError, match="dingtalk: errcode 310000: sign not match"):
        send("dingtalk", robot.url("/robot/send"), MSG, secret="k")


def test_dingtalk_timeout_and_http_error(robot):
    robot.replies["/slow"] = "slow"
    with pytest.raises(NotifyError, match="timeout"):
        send("dingtalk", robot.url("/slow"), MSG, timeout=0.2)
    robot.replies["/down"] = (502, "bad gateway")
    with pytest.raises(NotifyError, match="HTTP 502"):
        send("dingtalk", robot.url("/down"), MSG)


def test_dingtalk_text_is_capped():
    _, text = render_dingtalk(Message(title="t", text="异常订单明细 " * 5000, severity="warning"))
    assert len(text.encode()) <= DINGTALK_MARKDOWN_LIMIT
    assert text.endswith("…（已截断）")


# --- email -------------------------------------------------------------------------------------

def test_email_goes_to_every_address(mailoutbox, settings):
    settings.DEFAULT_FROM_EMAIL = "oms@example.com"
    send("email", "ops@example.com, boss@example.com", MSG)

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.subject == "[critical] 订单超时未发货"
    assert mail.to == ["ops@example.com", "boss@example.com"]
    assert mail.from_email == "oms@example.com"
    assert mail.body == ("已付款 26 小时\n仓库：杭州一仓\n\n对象：TB2026010900123\n"
                         "链接：https://oms.example.com/orders/42/")


def test_email_title_newlines_do_not_break_headers(mailoutbox):
    send("email", "ops@example.com", Message(title="a\nBcc: x@evil", text="t", severity="info"))
    assert mailoutbox[0].subject == "[info] a Bcc: x@evil"
    assert mailoutbox[0].bcc == []


def test_email_failure_is_a_notify_error(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9
    with pytest.raises(NotifyError, match="email: ConnectionRefusedError"):
        send("email", "ops@example.com", MSG, timeout=1)
    with pytest.raises(NotifyError, match="no recipient"):
        send("email", " , ", MSG)
