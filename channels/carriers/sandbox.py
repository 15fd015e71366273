"""An in-process carrier for the demo and tests: believable, deterministic routes.

A hash of the tracking number picks one script, so the same parcel always tells the same
story in every process, and `tracking_no_for(script)` finds a number that tells a given one.
The route is rendered as a Kuaidi100 payload and read back through the Kuaidi100 parser, so the
sandbox exercises the production parsing and its pushes are signed exactly like Kuaidi100's.

Scripts (hours after outbound):
  normal          collected 0 → hubs → receiver's city 24 → delivering 30 → signed 34
  stuck           collected 0 → origin hub 3 → departed 5 → nothing more
  off_route       reaches the receiver's province hub 24, then turns up in a third province 31
  returned_twice  delivering 30 → returned to branch 33 → delivering 46 → returned 49 → 退签 70
  rejected        delivering 30 → receiver refuses 32 → back to the sender, 退签 56
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .anomalies import normalize_province
from .base import CarrierError, TrackingUpdate
from .kuaidi100 import SHANGHAI, kuaidi100_company, md5_sign, parse_result, parse_signed_push

SANDBOX_SALT = "oms-sandbox-salt"
SCRIPTS = ("normal", "stuck", "off_route", "returned_twice", "rejected")
# Mostly good news, as in real life, with every trouble common enough to show up in a demo.
_BUCKETS = (("normal", 60), ("stuck", 10), ("off_route", 10), ("returned_twice", 10),
            ("rejected", 10))


@dataclass(frozen=True)
class Place:
    province: str
    city: str
    district: str
    district_code: str  # GB/T 2260

    @property
    def hub(self) -> str:
        return f"{self.city.removesuffix('市')}转运中心"

    @property
    def branch(self) -> str:
        return f"{self.city}{self.district}营业部"


PLACES = {place.province: place for place in (
    Place("广东省", "深圳市", "南山区", "440305"), Place("浙江省", "杭州市", "西湖区", "330106"),
    Place("江苏省", "南京市", "玄武区", "320102"), Place("上海市", "上海市", "浦东新区", "310115"),
    Place("北京市", "北京市", "朝阳区", "110105"), Place("四川省", "成都市", "武侯区", "510107"),
    Place("湖北省", "武汉市", "江汉区", "420103"), Place("河南省", "郑州市", "金水区", "410105"),
    Place("山东省", "济南市", "历下区", "370102"), Place("福建省", "厦门市", "思明区", "350203"),
)}
_BY_NAME = {normalize_province(name): place for name, place in PLACES.items()}
DEFAULT_ORIGIN = "广东省"

# (hours after outbound, Kuaidi100 state, resultv2=4 statusCode, its name, where, context);
# where is origin/dest/third, with "_hub" for a city-level scan at that place's sorting centre.
_Step = tuple[float, str, str, str, str, str]
_COLLECT: list[_Step] = [
    (0, "1", "103", "已揽收", "origin", "【{o.branch}】已揽收，揽投员：王师傅"),
    (3, "0", "1002", "干线", "origin_hub", "快件已到达【{o.hub}】"),
    (5, "0", "1002", "干线", "origin_hub", "快件已从【{o.hub}】发出，准备发往【{d.hub}】"),
]
_ARRIVE: list[_Step] = [
    (24, "0", "1002", "干线", "dest_hub", "快件已到达【{d.hub}】"),
    (27, "0", "1001", "到达派件城市", "dest_hub", "快件已从【{d.hub}】发出，准备发往【{d.branch}】"),
    (30, "5", "5", "派件", "dest", "【{d.branch}】快递员正在派件，联系电话：95000"),
]
_ROUTES: dict[str, list[_Step]] = {
    "normal": [*_COLLECT, *_ARRIVE,
               (34, "3", "301", "本人签收", "dest", "快件已签收，签收人：本人，感谢使用")],
    "stuck": _COLLECT,
    "off_route": [*_COLLECT, *_ARRIVE[:2],
                  (31, "0", "1003", "转递", "third_hub", "快件已到达【{t.hub}】"),
                  (36, "0", "1002", "干线", "third_hub", "快件已从【{t.hub}】发出，准备发往【{d.hub}】")],
    "returned_twice": [
        *_COLLECT, *_ARRIVE,
        (33, "6", "6", "退回", "dest", "收件人电话无法接通，快件退回【{d.branch}】，待再次派送"),
        (46, "5", "5", "派件", "dest", "【{d.branch}】快递员正在第二次派件"),
        (49, "6", "6", "退回", "dest", "再次派送失败，快件退回寄件人"),
        (52, "6", "6", "退回", "dest_hub", "快件已从【{d.hub}】发出，退回【{o.hub}】"),
        (70, "4", "4", "退签", "origin", "退回件已由寄件人签收"),
    ],
    "rejected": [
        *_COLLECT, *_ARRIVE,
        (32, "14", "14", "拒签", "dest", "收件人拒收，原因：不想要了"),
        (34, "6", "6", "退回", "dest", "快件已从【{d.branch}】发出，退回寄件人"),
        (52, "6", "6", "退回", "origin_hub", "快件已到达【{o.hub}】"),
        (56, "4", "4", "退签", "origin", "退回件已由寄件人签收"),
    ],
}


def _hash(tracking_no: str, salt: str = "") -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}{tracking_no}".encode()).digest()[:8], "big")


def script_for(tracking_no: str) -> str:
    bucket = _hash(tracking_no) % 100
    for script, weight in _BUCKETS:
        if bucket < weight:
            return script
        bucket -= weight
    raise AssertionError("bucket weights must add up to 100")


def tracking_no_for(script: str, *, prefix: str = "SB", start: int = 0) -> str:
    """The first tracking number from prefix+start upwards that plays the given script."""
    if script not in SCRIPTS:
        raise ValueError(f"unknown sandbox script {script!r}")
    n = start
    while script_for(number := f"{prefix}{n:010d}") != script:
        n += 1
    return number


def route_payload(carrier: str, tracking_no: str, *, outbound_at: datetime, now: datetime,
                  origin_province: str = DEFAULT_ORIGIN, receiver_province: str = "") -> dict:
    """The Kuaidi100 `lastResult` this parcel would have at `now` (only steps already passed)."""
    origin = _place(origin_province)
    dest = _place(receiver_province) if receiver_province else _pick(tracking_no, exclude={origin})
    third = _pick(tracking_no + "/3", exclude={origin, dest})
    places = {"origin": origin, "dest": dest, "third": third}
    data, state = [], None
    for hours, code, status_code, name, where, text in _ROUTES[script_for(tracking_no)]:
        at = outbound_at + timedelta(hours=hours)
        if at > now:
            break
        place = places[where.removesuffix("_hub")]
        # A hub is a city-level scan; only branches and doorsteps carry the district.
        at_hub = where.endswith("_hub")
        district = "" if at_hub else place.district
        area = place.district_code[:4] + "00" if at_hub else place.district_code
        state = code
        data.append({
            "context": text.format(o=origin, d=dest, t=third),
            "time": at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
            "ftime": at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
            "status": name, "statusCode": status_code,
            "areaCode": f"CN{area}000000" if place.district_code else None,
            "areaName": ",".join(p for p in (place.province, place.city, district) if p),
        })
    data.reverse()  # Kuaidi100 sends newest first
    return {"message": "ok", "status": "200", "condition": "F00", "state": state or "0",
            "ischeck": "1" if state == "3" else "0", "com": kuaidi100_company(carrier),
            "nu": tracking_no, "data": data}


def _place(province: str) -> Place:
    # A province missing from the table still gets a plausible hub rather than an error.
    short = normalize_province(province)
    return _BY_NAME.get(short) or Place(province, f"{short}市", "", "")


def _pick(key: str, *, exclude: set[Place]) -> Place:
    choices = [p for p in PLACES.values() if p not in exclude]
    return choices[_hash(key, "place") % len(choices)]


@dataclass(frozen=True)
class SandboxParcel:
    outbound_at: datetime
    receiver_province: str = ""  # empty: the tracking number picks one
    origin_province: str = DEFAULT_ORIGIN


@dataclass(frozen=True)
class Subscription:
    callback_url: str
    phone: str
    subscribed_at: datetime


class SandboxCarrier:
    """Parcels come from `lookup` (wire it to shipments so every process agrees), then from
    `register`/`subscribe` in this process; subscribing counts as the outbound moment."""

    code = "sandbox"

    def __init__(self, *, salt: str = SANDBOX_SALT,
                 lookup: Callable[[str, str], SandboxParcel | None] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._salt, self._lookup, self._clock = salt, lookup, clock
        self.parcels: dict[tuple[str, str], SandboxParcel] = {}
        self.subscriptions: dict[tuple[str, str], Subscription] = {}

    def register(self, carrier: str, tracking_no: str, parcel: SandboxParcel) -> None:
        self.parcels[(carrier, tracking_no)] = parcel

    def subscribe(self, carrier: str, tracking_no: str, *, callback_url: str,
                  phone: str = "") -> None:
        now = self._clock()
        self.subscriptions[(carrier, tracking_no)] = Subscription(callback_url, phone, now)
        self.parcels.setdefault((carrier, tracking_no), SandboxParcel(outbound_at=now))

    def poll(self, carrier: str, tracking_no: str, *, phone: str = "") -> TrackingUpdate:
        payload = self._payload(carrier, tracking_no)
        return parse_result(payload, raw=payload, tracking_no=tracking_no)

    def push_body(self, carrier: str, tracking_no: str) -> dict[str, str]:
        """The form Kuaidi100 would POST to the callback right now, signed with our salt."""
        last = self._payload(carrier, tracking_no)
        param = json.dumps({
            "status": "shutdown" if last["ischeck"] == "1" else "polling", "billstatus": "",
            "message": "", "autoCheck": "0", "comOld": "", "comNew": "", "lastResult": last,
        }, ensure_ascii=False, separators=(",", ":"))
        return {"param": param, "sign": md5_sign(param + self._salt)}

    def parse_push(self, body: Mapping[str, str]) -> TrackingUpdate:
        return parse_signed_push(body, self._salt)

    def _payload(self, carrier: str, tracking_no: str) -> dict:
        parcel = self.parcels.get((carrier, tracking_no))
        if parcel is None and self._lookup is not None:
            parcel = self._lookup(carrier, tracking_no)
        if parcel is None:
            raise CarrierError(f"sandbox: unknown parcel {carrier} {tracking_no}", code="500")
        payload = route_payload(carrier, tracking_no, outbound_at=parcel.outbound_at,
                                now=self._clock(), origin_province=parcel.origin_province,
                                receiver_province=parcel.receiver_province)
        if not payload["data"]:
            # What Kuaidi100 says before the first scan; retrying later is right.
            raise CarrierError(f"sandbox: no record yet for {tracking_no}", code="500")
        return payload
