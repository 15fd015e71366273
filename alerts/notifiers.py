"""Deliver one alert message to one destination: email, signed JSON webhook, WeCom or DingTalk robot.

Pure delivery, no database: the caller (the alert service) decides who gets what and records the
outcome. Every failure is a NotifyError whose message says why (HTTP status, the robot's errcode,
timeout) and never contains the target URL, because robot URLs carry their access key and the
error text ends up in logs and on the alert page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus, urlsplit

import requests

KINDS = ("email", "webhook", "wecom", "dingtalk")
SEVERITIES = ("info", "warning", "critical")

# Robot groups are read by Chinese-speaking ops staff, so labels are Chinese at the source.
_LABELS = {"critical": "严重", "warning": "警告", "info": "提示"}
# WeCom has exactly three colours; it uses green itself as a neutral highlight and grey for
# de-emphasis, so only critical gets the orange-red.
_WECOM_COLOURS = {"critical": "warning", "warning": "info", "info": "comment"}
# DingTalk markdown has no documented colour support; an emoji survives every client.
_DINGTALK_MARKS = {"critical": "🔴", "warning": "🟠", "info": "🔵"}

WECOM_MARKDOWN_LIMIT = 4096  # bytes of UTF-8, documented for markdown.content
DINGTALK_MARKDOWN_LIMIT = 20000  # bytes; the robot rejects larger bodies
_TITLE_CHARS = 200
_TRUNCATED = "…（已截断）"
_USER_AGENT = "oms-notifier/1.0"


class NotifyError(Exception):
    """The message was not delivered; str(error) says why."""


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    severity: str  # "info" | "warning" | "critical"
    url: str = ""  # link to the order / alert page
    subject: str = ""  # what it is about, e.g. the order number

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")


def send(kind: str, target: str, message: Message, *, secret: str = "",
         timeout: float = 5.0) -> None:
    senders: dict[str, Callable[..., None]] = {
        "email": _send_email, "webhook": _send_webhook,
        "wecom": _send_wecom, "dingtalk": _send_dingtalk,
    }
    if kind not in senders:
        raise ValueError(f"unknown notifier kind {kind!r}; expected one of {KINDS}")
    senders[kind](target, message, secret=secret, timeout=timeout)


# --- email -------------------------------------------------------------------------------------

def _send_email(target: str, message: Message, *, secret: str, timeout: float) -> None:
    from django.core.mail import get_connection, send_mail

    recipients = [address.strip() for address in target.split(",") if address.strip()]
    if not recipients:
        raise NotifyError("email: no recipient address")
    # A newline in a header is refused by Django (header injection), so titles are flattened.
    subject = f"[{message.severity}] {_one_line(message.title)}"
    lines = [message.text]
    if message.subject:
        lines.append(f"\n对象：{message.subject}")
    if message.url:
        lines.append(f"链接：{message.url}")
    try:
        send_mail(subject, "\n".join(lines), None, recipients,
                  connection=get_connection(fail_silently=False, timeout=timeout))
    except Exception as exc:  # SMTP, socket and header errors alike mean "not delivered"
        raise NotifyError(f"email: {exc.__class__.__name__}: {exc}") from exc


# --- generic JSON webhook ----------------------------------------------------------------------

def _send_webhook(target: str, message: Message, *, secret: str, timeout: float) -> None:
    body = json.dumps({
        "title": message.title, "text": message.text, "severity": message.severity,
        "url": message.url, "subject": message.subject,
        # Signed together with the rest, so a receiver can refuse replays of old deliveries.
        "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }, ensure_ascii=False).encode()
    headers = {}
    if secret:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-OMS-Signature"] = f"sha256={digest}"
    _post("webhook", target, body, headers, timeout)


# --- WeCom group robot -------------------------------------------------------------------------

def render_wecom(message: Message) -> str:
    colour = _WECOM_COLOURS[message.severity]
    head = (f'**<font color="{colour}">【{_LABELS[message.severity]}】</font>'
            f'{_escape(_one_line(message.title)[:_TITLE_CHARS])}**')
    if message.subject:
        head += f"　`{_code(message.subject)}`"
    link = _link(message.url)
    tail = f"\n[查看详情]({link})" if link else ""
    return _fit(lambda text: f"{head}\n{text}{tail}", _escape(message.text),
                WECOM_MARKDOWN_LIMIT)


def _send_wecom(target: str, message: Message, *, secret: str, timeout: float) -> None:
    payload = {"msgtype": "markdown", "markdown": {"content": render_wecom(message)}}
    _check_errcode("wecom", _post("wecom", target, _json(payload), {}, timeout))


# --- DingTalk custom robot ---------------------------------------------------------------------

def render_dingtalk(message: Message) -> tuple[str, str]:
    """(title, text): the title is what the chat list and the phone notification show."""
    label = _LABELS[message.severity]
    short = _one_line(message.title)[:_TITLE_CHARS]
    head = f"### {_DINGTALK_MARKS[message.severity]} {label}｜{_escape(short)}"
    if message.subject:
        head += f"\n\n`{_code(message.subject)}`"
    link = _link(message.url)
    tail = f"\n\n[查看详情]({link})" if link else ""
    # DingTalk joins single newlines into one paragraph; a trailing double space forces a break.
    text = _escape(message.text).replace("\n", "  \n")
    return (f"【{label}】{short}",
            _fit(lambda body: f"{head}\n\n{body}{tail}", text, DINGTALK_MARKDOWN_LIMIT))


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The robot's 加签: base64(HMAC-SHA256(key=secret, msg="timestamp\\nsecret")), URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(),
                      hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def _send_dingtalk(target: str, message: Message, *, secret: str, timeout: float) -> None:
    title, text = render_dingtalk(message)
    if secret:
        # The robot refuses timestamps more than an hour off, so it is taken at send time.
        timestamp = int(time.time() * 1000)
        separator = "&" if urlsplit(target).query else "?"
        target = f"{target}{separator}timestamp={timestamp}&sign={dingtalk_sign(secret, timestamp)}"
    payload = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    _check_errcode("dingtalk", _post("dingtalk", target, _json(payload), {}, timeout))


# --- shared ------------------------------------------------------------------------------------

def _post(kind: str, target: str, body: bytes, headers: dict, timeout: float) -> requests.Response:
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NotifyError(f"{kind}: target is not an http(s) URL")
    where = f"{kind} {parts.netloc}"
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": _USER_AGENT,
               **headers}
    try:
        response = requests.post(target, data=body, headers=headers, timeout=timeout)
    except requests.Timeout as exc:
        raise NotifyError(f"{where}: timeout after {timeout:g}s") from exc
    except requests.RequestException as exc:
        raise NotifyError(f"{where}: {exc.__class__.__name__}") from exc
    if not 200 <= response.status_code < 300:
        raise NotifyError(f"{where}: HTTP {response.status_code} {response.text[:200]}".rstrip())
    return response


def _check_errcode(kind: str, response: requests.Response) -> None:
    # Both robots answer HTTP 200 even when they refuse the message; the verdict is in the JSON.
    try:
        reply = response.json()
    except ValueError:
        raise NotifyError(f"{kind}: reply is not JSON: {response.text[:200]}") from None
    errcode = reply.get("errcode") if isinstance(reply, dict) else None
    if errcode != 0:
        errmsg = reply.get("errmsg", "") if isinstance(reply, dict) else ""
        raise NotifyError(f"{kind}: errcode {errcode}: {errmsg}")


def _json(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _escape(value: str) -> str:
    """Neutralise what order data could use to forge markup, keeping it readable.

    Both robots render a markdown subset without backslash escapes, so `<`/`>` (WeCom's
    <font> and <@userid> mentions) and `[`/`]` (links that disguise their target) become their
    full-width look-alikes instead.
    """
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value.translate(str.maketrans({"<": "＜", ">": "＞", "[": "［", "]": "］"}))


def _code(value: str) -> str:
    return _escape(_one_line(value)).replace("`", "'")


def _link(url: str) -> str:
    # Only web links, and with the characters that would end the markdown link percent-encoded.
    if urlsplit(url).scheme not in ("http", "https"):
        return ""
    return quote(url, safe=":/?#@!$&'*+,;=%~")


def _fit(render: Callable[[str], str], text: str, limit: int) -> str:
    """render(text), with text cut at a character boundary so the whole is at most limit bytes."""
    full = render(text)
    if len(full.encode()) <= limit:
        return full
    budget = limit - len(render(_TRUNCATED).encode())
    if budget <= 0:
        return render(_TRUNCATED).encode()[:limit].decode(errors="ignore")
    cut = text.encode()[:budget].decode(errors="ignore")
    return render(cut + _TRUNCATED)
