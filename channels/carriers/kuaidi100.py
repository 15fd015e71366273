"""Kuaidi100 (快递100): subscribe + signed push, and real-time poll.

Wire formats follow kuaidi100-api/java-demo and the subscribe document (see
shared/reference/channel-payment-bank-formats.md §5.1):

* subscribe  POST {base}/poll            form schema=json, param={company, number, key, parameters}
* poll       POST {base}/poll/query.do   form customer, param, sign=MD5(param + key + customer)
* push       POST to our callbackurl     form param, sign=MD5(param + salt); full, newest first

Every MD5 is upper-case hex over the UTF-8 bytes. The push's `param.status` ("polling",
"shutdown" when signed, "abort" when Kuaidi100 gave up and a re-subscribe is due) stays in
TrackingUpdate.raw for the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import requests

from .base import (
    CarrierError,
    TrackingCheckpoint,
    TrackingSignatureError,
    TrackingState,
    TrackingUpdate,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://poll.kuaidi100.com"
SHANGHAI = ZoneInfo("Asia/Shanghai")
S = TrackingState

# state codes: 0–8 and 10–14 (the push docs list only 0–7; all are accepted).
STATE_CODES: dict[str, tuple[str, TrackingState]] = {
    "0": ("在途", S.IN_TRANSIT), "1": ("揽收", S.COLLECTED), "2": ("疑难", S.PROBLEM),
    "3": ("签收", S.SIGNED), "4": ("退签", S.RETURNED), "5": ("派件", S.DELIVERING),
    "6": ("退回", S.RETURNED), "7": ("转投", S.IN_TRANSIT), "8": ("清关", S.IN_TRANSIT),
    "10": ("待清关", S.IN_TRANSIT), "11": ("清关中", S.IN_TRANSIT), "12": ("已清关", S.IN_TRANSIT),
    "13": ("清关异常", S.PROBLEM), "14": ("拒签", S.REJECTED),
}
# resultv2=4 sub-states: the parent code followed by a two-digit index (101 → 1, 1401 → 14).
SUB_STATES: dict[str, str] = {
    "101": "已下单", "102": "待揽收", "103": "已揽收",
    "1001": "到达派件城市", "1002": "干线", "1003": "转递",
    "501": "投柜或驿站",
    "301": "本人签收", "302": "派件异常后签收", "303": "代签", "304": "投柜或站签收",
    "401": "已销单",
    "201": "超时未签收", "202": "超时未更新", "203": "拒收", "204": "派件异常",
    "205": "柜或驿站超时未取", "206": "无法联系", "207": "超区", "208": "滞留", "209": "破损",
    "210": "销单",
}
_OVERRIDES = {
    # 1001–1003 are sub-states of 0 (在途); their leading "10" would read as 待清关.
    "1001": S.IN_TRANSIT, "1002": S.IN_TRANSIT, "1003": S.IN_TRANSIT,
    # Filed under 2 (疑难), but the receiver refusing the parcel is exactly what REJECTED means,
    # and the repeated-returns anomaly has to count it.
    "203": S.REJECTED,
}

COMPANY_CODES = {
    "SF": "shunfeng", "ZTO": "zhongtong", "YTO": "yuantong", "STO": "shentong", "YD": "yunda",
    "JD": "jd", "EMS": "ems", "JT": "jtexpress", "JTSD": "jtexpress", "YZPY": "youzhengguonei",
}
# Reversed so that the first short code listed for a company is the one given back.
_SHORT_CODES = {company: short for short, company in reversed(COMPANY_CODES.items())}


def kuaidi100_state(code: object) -> TrackingState:
    code = str(code).strip()
    if code in _OVERRIDES:
        return _OVERRIDES[code]
    if code in STATE_CODES:
        return STATE_CODES[code][1]
    if code.isdigit() and code[:-2] in STATE_CODES:
        return STATE_CODES[code[:-2]][1]
    # Kuaidi100 adds sub-states over time and every terminal one is known, so an unknown code
    # is an intermediate step; calling it a problem would page people for nothing.
    return S.IN_TRANSIT


_NAMES: dict[str, TrackingState] = {name: state for name, state in STATE_CODES.values()}
_NAMES.update({name: kuaidi100_state(code) for code, name in SUB_STATES.items()})
_NAMES["柜/驿站超时未取"] = S.PROBLEM


def state_for_name(name: str) -> TrackingState | None:
    return _NAMES.get(name.strip())


def kuaidi100_company(carrier: str) -> str:
    """Our short carrier code (SF, ZTO…) or an already-Kuaidi100 code → Kuaidi100's company code."""
    carrier = carrier.strip()
    if not carrier:
        raise CarrierError("no carrier code", code="no_carrier", retryable=False)
    return COMPANY_CODES.get(carrier.upper(), carrier.lower())


def carrier_from_company(company: str) -> str:
    """Kuaidi100's company code → our short code when we have one, so it matches Shipment.carrier."""
    return _SHORT_CODES.get(company, company)


def md5_sign(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


# --- payload → TrackingUpdate ------------------------------------------------------------------

def parse_result(result: Mapping, *, raw: dict, tracking_no: str = "") -> TrackingUpdate:
    """A query reply or a push's lastResult ({state, ischeck, com, nu, data[…]}) → TrackingUpdate."""
    state = kuaidi100_state(result.get("state") or "0")
    checkpoints = []
    for index, item in enumerate(result.get("data") or []):
        # An item without any status inherits the parcel's state if it is the newest one.
        checkpoint = _checkpoint(item, state if index == 0 else S.IN_TRANSIT)
        if checkpoint is not None:
            checkpoints.append(checkpoint)
    checkpoints.sort(key=lambda c: c.at, reverse=True)  # stable: equal times keep carrier order
    signed_at = None
    if state is S.SIGNED and checkpoints:
        signed_at = next((c.at for c in checkpoints if c.state is S.SIGNED), checkpoints[0].at)
    return TrackingUpdate(
        carrier=carrier_from_company(str(result.get("com") or "")),
        tracking_no=str(result.get("nu") or tracking_no), state=state,
        checkpoints=tuple(checkpoints), raw=raw, signed_at=signed_at,
    )


def _checkpoint(item: Mapping, fallback: TrackingState) -> TrackingCheckpoint | None:
    at = parse_time(item.get("ftime") or item.get("time") or "")
    if at is None:
        logger.warning("kuaidi100 checkpoint with unreadable time skipped: %r", item)
        return None
    context = str(item.get("context") or "")
    if item.get("statusCode"):
        state = kuaidi100_state(item["statusCode"])
    else:
        state = state_for_name(str(item.get("status") or "")) or fallback
    area_name = str(item.get("areaName") or "")
    return TrackingCheckpoint(
        at=at, state=state, description=context,
        location=str(item.get("location") or "") or _place(area_name) or _bracketed(context),
        area_code=str(item.get("areaCode") or ""),
        province=area_name.split(",")[0].strip(),
    )


def parse_time(value: str) -> datetime | None:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=SHANGHAI)
        except ValueError:
            continue
    return None


def _place(area_name: str) -> str:
    # "北京,北京市,朝阳区" → "北京市朝阳区": drop a part the next one merely extends.
    parts = [p.strip() for p in area_name.split(",") if p.strip()]
    return "".join(p for i, p in enumerate(parts)
                   if i + 1 == len(parts) or not parts[i + 1].startswith(p))


def _bracketed(context: str) -> str:
    match = re.match(r"\s*【([^】]+)】", context)
    return match.group(1) if match else ""


def parse_signed_push(body: Mapping[str, str], salt: str) -> TrackingUpdate:
    param, sign = body.get("param") or "", body.get("sign") or ""
    if not param or not sign:
        raise TrackingSignatureError("push without param or sign")
    # Bytes: compare_digest refuses a str with non-ASCII characters.
    if not hmac.compare_digest(md5_sign(param + salt).encode(), sign.strip().upper().encode("utf-8", "replace")):
        raise TrackingSignatureError("push signature does not match")
    try:
        payload = json.loads(param)
    except (ValueError, RecursionError):
        raise ValueError("push param is not JSON (or nested too deep)") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("lastResult"), dict):
        raise ValueError("push param has no lastResult")
    update = parse_result(payload["lastResult"], raw=payload)
    corrected = str(payload.get("comNew") or "").strip()
    if corrected:  # Kuaidi100 corrected the carrier (the parcel was handed on, e.g. to EMS)
        update = replace(update, carrier=carrier_from_company(corrected))
    return update


def push_reply(accepted: bool = True) -> dict:
    """The JSON our callback answers with; Kuaidi100 pushes again when result is false."""
    if accepted:
        return {"result": True, "returnCode": "200", "message": "成功"}
    return {"result": False, "returnCode": "500", "message": "失败"}


# --- the adapter -------------------------------------------------------------------------------

# Subscribe: 500 is Kuaidi100's own hiccup; 600/601 key, 700/701/702 data or carrier refused.
_SUBSCRIBE_RETRYABLE = {"500"}
# Query: 500 "查询无结果，请隔段时间再查" (often not collected yet), 501 server error, 502 busy.
_QUERY_RETRYABLE = {"500", "501", "502"}


class Kuaidi100Adapter:
    code = "kuaidi100"

    def __init__(self, customer: str, key: str, salt: str, base_url: str = DEFAULT_BASE_URL,
                 session: requests.Session | None = None, *, timeout: float = 10.0):
        if not salt:
            # Without a salt pushes arrive unsigned, and anyone who finds the public callback
            # could mark parcels delivered.
            raise ValueError("Kuaidi100Adapter needs a salt to verify pushes")
        self._customer, self._key, self._salt = customer, key, salt
        self._base_url = base_url.rstrip("/")
        self._session = session or requests.Session()
        self._timeout = timeout

    def subscribe(self, carrier: str, tracking_no: str, *, callback_url: str,
                  phone: str = "") -> None:
        company = _company_with_phone(carrier, phone)
        param = _dumps({"company": company, "number": tracking_no, "key": self._key,
                        "parameters": {"callbackurl": callback_url, "salt": self._salt,
                                       "resultv2": "4", "phone": phone}})
        reply = self._post("/poll", {"schema": "json", "param": param})
        code = str(reply.get("returnCode") or "")
        # 501 means "already subscribed and still tracking": the subscription we wanted exists.
        if reply.get("result") is True or code in ("200", "501"):
            return
        raise CarrierError(f"kuaidi100 subscribe {tracking_no}: {code} {reply.get('message', '')}",
                           code=code, retryable=code in _SUBSCRIBE_RETRYABLE)

    def poll(self, carrier: str, tracking_no: str, *, phone: str = "") -> TrackingUpdate:
        company = _company_with_phone(carrier, phone)
        param = _dumps({"com": company, "num": tracking_no, "phone": phone, "resultv2": "4"})
        reply = self._post("/poll/query.do", {
            "customer": self._customer, "sign": md5_sign(param + self._key + self._customer),
            "param": param,
        })
        if str(reply.get("status")) != "200" or not isinstance(reply.get("data"), list):
            code = str(reply.get("returnCode") or reply.get("status") or "")
            raise CarrierError(f"kuaidi100 query {tracking_no}: {code} {reply.get('message', '')}",
                               code=code, retryable=code in _QUERY_RETRYABLE)
        return parse_result(reply, raw=reply, tracking_no=tracking_no)

    def parse_push(self, body: Mapping[str, str]) -> TrackingUpdate:
        return parse_signed_push(body, self._salt)

    def _post(self, path: str, form: dict[str, str]) -> dict:
        url = self._base_url + path
        try:
            response = self._session.post(url, data=form, timeout=self._timeout)
        except requests.Timeout as exc:
            raise CarrierError(f"kuaidi100 {path}: timeout after {self._timeout:g}s") from exc
        except requests.RequestException as exc:
            raise CarrierError(f"kuaidi100 {path}: {exc.__class__.__name__}") from exc
        if response.status_code != 200:
            raise CarrierError(f"kuaidi100 {path}: HTTP {response.status_code}",
                               code=str(response.status_code),
                               retryable=response.status_code >= 500 or response.status_code == 429)
        try:
            reply = response.json()
        except ValueError:
            raise CarrierError(f"kuaidi100 {path}: reply is not JSON") from None
        if not isinstance(reply, dict):
            raise CarrierError(f"kuaidi100 {path}: reply is not a JSON object")
        return reply


def _company_with_phone(carrier: str, phone: str) -> str:
    company = kuaidi100_company(carrier)
    # SF only answers when given the sender's or receiver's phone (the last four digits do);
    # without it the subscription is accepted and then never yields a route.
    if company.startswith("shunfeng") and not phone.strip():
        raise CarrierError("kuaidi100: SF tracking needs a phone number", code="phone_required",
                           retryable=False)
    return company


def _dumps(value: dict) -> str:
    # The signature covers these exact characters, so the serialisation is pinned.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
