"""Carrier tracking: Kuaidi100 against a real local HTTP server, the sandbox scripts, anomalies."""

import hashlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest

from channels.carriers import (
    CarrierError,
    TrackingCheckpoint,
    TrackingSignatureError,
    TrackingState,
    TrackingUpdate,
)
from channels.carriers.anomalies import detect_anomalies, normalize_province
from channels.carriers.kuaidi100 import (
    Kuaidi100Adapter,
    carrier_from_company,
    kuaidi100_company,
    kuaidi100_state,
    parse_time,
    push_reply,
    state_for_name,
)
from channels.carriers.sandbox import (
    PLACES,
    SANDBOX_SALT,
    SCRIPTS,
    SandboxCarrier,
    SandboxParcel,
    script_for,
    tracking_no_for,
)

S = TrackingState
SH = ZoneInfo("Asia/Shanghai")
CUSTOMER, KEY, SALT = "CUST0001", "kEy123", "s4lt"


def md5u(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


class FakeKuaidi100:
    """Records each form POST; replies are scripted per path: (status, body) or "slow"."""

    def __init__(self):
        self.requests: list[dict] = []
        self.replies: dict[str, object] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.requests.append({
                    "path": self.path, "headers": dict(self.headers), "raw": raw,
                    "form": {k: v[0] for k, v in
                             parse_qs(raw.decode(), keep_blank_values=True).items()},
                })
                reply = fake.replies.get(self.path, (200, {"result": True, "returnCode": "200",
                                                           "message": "提交成功"}))
                if reply == "slow":
                    time.sleep(1.0)
                    reply = (200, {})
                status, body = reply
                data = body.encode() if isinstance(body, str) else json.dumps(
                    body, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json;charset=UTF-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        host, port = self.httpd.server_address[:2]
        self.base_url = f"http://{host}:{port}"

    @property
    def last(self) -> dict:
        return self.requests[-1]


@pytest.fixture
def kd100():
    fake = FakeKuaidi100()
    thread = threading.Thread(target=fake.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


@pytest.fixture
def adapter(kd100):
    return Kuaidi100Adapter(CUSTOMER, KEY, SALT, base_url=kd100.base_url, timeout=0.5)


# --- subscribe ---------------------------------------------------------------------------------

def test_subscribe_posts_the_documented_form(kd100, adapter):
    adapter.subscribe("ZTO", "78000000000001",
                      callback_url="https://oms.example.com/hooks/kuaidi100/?shipment=7")

    req = kd100.last
    assert req["path"] == "/poll"
    assert req["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    param = ('{"company":"zhongtong","number":"78000000000001","key":"kEy123","parameters":'
             '{"callbackurl":"https://oms.example.com/hooks/kuaidi100/?shipment=7",'
             '"salt":"s4lt","resultv2":"4","phone":""}}')
    assert req["form"] == {"schema": "json", "param": param}


def test_subscribe_sf_sends_the_phone_and_refuses_without_one(kd100, adapter):
    adapter.subscribe("SF", "SF1234567890", callback_url="https://x/cb", phone="1234")
    assert json.loads(kd100.last["form"]["param"])["company"] == "shunfeng"
    assert json.loads(kd100.last["form"]["param"])["parameters"]["phone"] == "1234"

    count = len(kd100.requests)
    with pytest.raises(CarrierError, match="phone") as excinfo:
        adapter.subscribe("SF", "SF1234567890", callback_url="https://x/cb")
    assert excinfo.value.retryable is False
    assert len(kd100.requests) == count  # refused before calling out


def test_subscribe_duplicate_is_success(kd100, adapter):
    kd100.replies["/poll"] = (200, {"result": False, "returnCode": "501", "message": "重复订阅"})
    adapter.subscribe("YTO", "YT1", callback_url="https://x/cb")


@pytest.mark.parametrize(("code", "retryable"), [("500", True), ("600", False), ("700", False),
                                                 ("701", False), ("601", False)])
def test_subscribe_refusals(kd100, adapter, code, retryable):
    kd100.replies["/poll"] = (200, {"result": False, "returnCode": code, "message": "不行"})
    with pytest.raises(CarrierError, match=f"{code} 不行") as excinfo:
        adapter.subscribe("YTO", "YT1", callback_url="https://x/cb")
    assert (excinfo.value.code, excinfo.value.retryable) == (code, retryable)


def test_adapter_needs_a_salt():
    with pytest.raises(ValueError, match="salt"):
        Kuaidi100Adapter(CUSTOMER, KEY, "")


# --- poll --------------------------------------------------------------------------------------

POLL_REPLY = {
    "message": "ok", "nu": "78000000000001", "ischeck": "0", "condition": "F00",
    "com": "zhongtong", "status": "200", "state": "5",
    "data": [
        {"context": "【杭州市】快件已由快递员派送中", "time": "2025-03-03 08:04:25",
         "ftime": "2025-03-03 08:04:25", "status": "派件", "statusCode": "5",
         "areaCode": "CN330106000000", "areaName": "浙江,杭州市,西湖区"},
        {"context": "【杭州市】快件已到达杭州转运中心", "time": "2025-03-02 21:10:00",
         "ftime": "2025-03-02 21:10:00", "status": "在途", "areaCode": None, "areaName": None},
        {"context": "【深圳市】已揽收", "time": "2025-03-01 18:00:00",
         "ftime": "2025-03-01 18:00:00", "status": "已揽收", "statusCode": "103",
         "areaCode": "CN440305000000", "areaName": "广东省,深圳市,南山区"},
    ],
}


def test_poll_signs_the_query_and_parses_the_route(kd100, adapter):
    kd100.replies["/poll/query.do"] = (200, POLL_REPLY)

    update = adapter.poll("ZTO", "78000000000001", phone="5678")

    form = kd100.last["form"]
    param = '{"com":"zhongtong","num":"78000000000001","phone":"5678","resultv2":"4"}'
    assert form == {"customer": CUSTOMER, "param": param, "sign": md5u(param + KEY + CUSTOMER)}
    assert update == TrackingUpdate(
        carrier="ZTO", tracking_no="78000000000001", state=S.DELIVERING, raw={},
        signed_at=None, checkpoints=(
            TrackingCheckpoint(at=datetime(2025, 3, 3, 8, 4, 25, tzinfo=SH), state=S.DELIVERING,
                               location="浙江杭州市西湖区", description="【杭州市】快件已由快递员派送中",
                               area_code="CN330106000000", province="浙江"),
            TrackingCheckpoint(at=datetime(2025, 3, 2, 21, 10, tzinfo=SH), state=S.IN_TRANSIT,
                               location="杭州市", description="【杭州市】快件已到达杭州转运中心"),
            TrackingCheckpoint(at=datetime(2025, 3, 1, 18, 0, tzinfo=SH), state=S.COLLECTED,
                               location="广东省深圳市南山区", description="【深圳市】已揽收",
                               area_code="CN440305000000", province="广东省"),
        ))
    assert update.raw == POLL_REPLY
    assert update.checkpoints[0].at == datetime(2025, 3, 3, 0, 4, 25, tzinfo=UTC)


def test_poll_signed_parcel_and_oldest_first_data(kd100, adapter):
    reply = dict(POLL_REPLY, state="3", ischeck="1", data=[
        *reversed(POLL_REPLY["data"]),
        {"context": "已签收，签收人：门卫", "ftime": "2025-03-03 10:00:00", "status": "代签",
         "statusCode": "303", "areaName": "浙江,杭州市,西湖区"},
    ])
    kd100.replies["/poll/query.do"] = (200, reply)

    update = adapter.poll("zhongtong", "78000000000001")

    assert update.state is S.SIGNED
    assert [c.at for c in update.checkpoints] == sorted((c.at for c in update.checkpoints),
                                                        reverse=True)
    assert update.signed_at == datetime(2025, 3, 3, 10, 0, tzinfo=SH)


@pytest.mark.parametrize(("reply", "code", "retryable"), [
    ((200, {"result": False, "returnCode": "500", "message": "查询无结果，请隔段时间再查"}), "500", True),
    ((200, {"result": False, "returnCode": "400", "message": "找不到对应公司"}), "400", False),
    ((200, {"result": False, "returnCode": "503", "message": "验证签名失败"}), "503", False),
    ((502, "Bad Gateway"), "502", True),
    ((403, "Forbidden"), "403", False),
    ((200, "<html>维护中</html>"), "", True),
])
def test_poll_failures(kd100, adapter, reply, code, retryable):
    kd100.replies["/poll/query.do"] = reply
    with pytest.raises(CarrierError) as excinfo:
        adapter.poll("YTO", "YT1")
    assert (excinfo.value.code, excinfo.value.retryable) == (code, retryable)
    assert KEY not in str(excinfo.value)


def test_poll_timeout_and_connection_refused(kd100):
    kd100.replies["/poll/query.do"] = "slow"
    slow = Kuaidi100Adapter(CUSTOMER, KEY, SALT, base_url=kd100.base_url, timeout=0.2)
    with pytest.raises(CarrierError, match="timeout after 0.2s") as excinfo:
        slow.poll("YTO", "YT1")
    assert excinfo.value.retryable
    down = Kuaidi100Adapter(CUSTOMER, KEY, SALT, base_url="http://127.0.0.1:9", timeout=1)
    with pytest.raises(CarrierError, match="ConnectionError"):
        down.poll("YTO", "YT1")


# --- push --------------------------------------------------------------------------------------

PUSH_PARAM = json.dumps({
    "status": "polling", "billstatus": "", "message": "", "autoCheck": "0", "comOld": "",
    "comNew": "", "lastResult": dict(POLL_REPLY, data=POLL_REPLY["data"][:2]),
}, ensure_ascii=False)


def test_push_with_a_good_signature_is_accepted():
    adapter = Kuaidi100Adapter(CUSTOMER, KEY, SALT)
    update = adapter.parse_push({"param": PUSH_PARAM, "sign": md5u(PUSH_PARAM + SALT)})
    assert (update.carrier, update.tracking_no, update.state) == ("ZTO", "78000000000001",
                                                                  S.DELIVERING)
    assert len(update.checkpoints) == 2
    assert update.raw["status"] == "polling"
    # Lower-case hex is the same signature.
    adapter.parse_push({"param": PUSH_PARAM, "sign": md5u(PUSH_PARAM + SALT).lower()})


def test_push_with_a_corrected_carrier_takes_the_new_one():
    # Kuaidi100 corrects the carrier (comOld → comNew) when a parcel is handed on; lastResult.com
    # still names the old one.
    param = PUSH_PARAM.replace('"autoCheck": "0", "comOld": "", "comNew": ""',
                               '"autoCheck": "1", "comOld": "zhongtong", "comNew": "ems"')
    assert param != PUSH_PARAM
    update = Kuaidi100Adapter(CUSTOMER, KEY, SALT).parse_push({"param": param, "sign": md5u(param + SALT)})
    assert update.carrier == "EMS"


@pytest.mark.parametrize("body", [
    {"param": PUSH_PARAM, "sign": md5u(PUSH_PARAM + "other-salt")},
    {"param": PUSH_PARAM.replace("78000000000001", "78000000000002"),
     "sign": md5u(PUSH_PARAM + SALT)},
    {"param": PUSH_PARAM, "sign": ""},
    {"param": PUSH_PARAM},
    {"sign": md5u(SALT)},
], ids=["wrong-salt", "tampered", "empty-sign", "no-sign", "no-param"])
def test_push_with_a_bad_signature_is_refused(body):
    with pytest.raises(TrackingSignatureError):
        Kuaidi100Adapter(CUSTOMER, KEY, SALT).parse_push(body)


def test_signed_push_that_is_not_tracking_is_a_value_error():
    with pytest.raises(ValueError, match="lastResult"):
        Kuaidi100Adapter(CUSTOMER, KEY, SALT).parse_push({"param": "{}", "sign": md5u("{}" + SALT)})


def test_push_reply():
    assert push_reply() == {"result": True, "returnCode": "200", "message": "成功"}
    assert push_reply(False)["result"] is False


# --- mapping tables ----------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "state"), [
    ("0", S.IN_TRANSIT), ("1", S.COLLECTED), ("2", S.PROBLEM), ("3", S.SIGNED),
    ("4", S.RETURNED), ("5", S.DELIVERING), ("6", S.RETURNED), ("7", S.IN_TRANSIT),
    ("8", S.IN_TRANSIT), ("10", S.IN_TRANSIT), ("11", S.IN_TRANSIT), ("12", S.IN_TRANSIT),
    ("13", S.PROBLEM), ("14", S.REJECTED),
    ("101", S.COLLECTED), ("102", S.COLLECTED), ("103", S.COLLECTED),
    ("1001", S.IN_TRANSIT), ("1002", S.IN_TRANSIT), ("1003", S.IN_TRANSIT),
    ("501", S.DELIVERING), ("301", S.SIGNED), ("302", S.SIGNED), ("303", S.SIGNED),
    ("304", S.SIGNED), ("401", S.RETURNED), ("201", S.PROBLEM), ("202", S.PROBLEM),
    ("203", S.REJECTED), ("204", S.PROBLEM), ("208", S.PROBLEM), ("210", S.PROBLEM),
    ("1401", S.REJECTED), ("1301", S.PROBLEM), ("601", S.RETURNED), (3, S.SIGNED),
    ("99", S.IN_TRANSIT), ("", S.IN_TRANSIT),
])
def test_state_codes(code, state):
    assert kuaidi100_state(code) is state


@pytest.mark.parametrize(("name", "state"), [
    ("在途", S.IN_TRANSIT), ("派件", S.DELIVERING), ("签收", S.SIGNED), ("拒签", S.REJECTED),
    ("干线", S.IN_TRANSIT), ("投柜或驿站", S.DELIVERING), ("代签", S.SIGNED), ("拒收", S.REJECTED),
    ("滞留", S.PROBLEM), ("柜/驿站超时未取", S.PROBLEM), ("不认识", None),
])
def test_status_names(name, state):
    assert state_for_name(name) is state


@pytest.mark.parametrize(("ours", "theirs"), [
    ("SF", "shunfeng"), ("ZTO", "zhongtong"), ("YTO", "yuantong"), ("STO", "shentong"),
    ("YD", "yunda"), ("JD", "jd"), ("EMS", "ems"), ("sf", "shunfeng"),
    ("debangkuaidi", "debangkuaidi"),
])
def test_company_codes(ours, theirs):
    assert kuaidi100_company(ours) == theirs
    if ours.isupper():
        assert carrier_from_company(theirs) == ours


def test_carrier_code_is_required():
    with pytest.raises(CarrierError, match="no carrier"):
        kuaidi100_company(" ")


def test_carrier_times_are_shanghai_wall_clock():
    assert parse_time("2025-03-03 08:04:25") == datetime(2025, 3, 3, 0, 4, 25, tzinfo=UTC)
    assert parse_time("2025-03-03 08:04") == datetime(2025, 3, 3, 8, 4, tzinfo=SH)
    assert parse_time("yesterday") is None


# --- sandbox -----------------------------------------------------------------------------------

OUT = datetime(2026, 1, 9, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def at(self, hours: float) -> "Clock":
        self.now = OUT + timedelta(hours=hours)
        return self


def sandbox_parcel(script: str, receiver: str = "浙江省"):
    clock = Clock(OUT)
    carrier = SandboxCarrier(clock=clock)
    tracking_no = tracking_no_for(script)
    carrier.register("ZTO", tracking_no, SandboxParcel(OUT, receiver_province=receiver))
    return carrier, clock, tracking_no


def provinces(update):
    return {normalize_province(c.province) for c in update.checkpoints}


def test_script_choice_is_deterministic_and_mostly_normal():
    assert script_for("SF1234567890") == script_for("SF1234567890")
    counts = {s: 0 for s in SCRIPTS}
    for n in range(2000):
        counts[script_for(f"YT{n}")] += 1
    assert counts["normal"] > 1000 and all(counts.values())
    for script in SCRIPTS:
        assert script_for(tracking_no_for(script, prefix="ZT", start=500)) == script
    with pytest.raises(ValueError, match="unknown sandbox script"):
        tracking_no_for("lost")


def test_sandbox_normal_delivery_within_two_days():
    carrier, clock, no = sandbox_parcel("normal")
    assert carrier.poll("ZTO", no).state is S.COLLECTED
    clock.at(26)
    mid = carrier.poll("ZTO", no)
    assert mid.state is S.IN_TRANSIT and mid.latest.province == "浙江省"
    assert mid.latest.location == "浙江省杭州市"  # a hub scan is city level
    clock.at(31)
    assert carrier.poll("ZTO", no).state is S.DELIVERING
    clock.at(48)
    done = carrier.poll("ZTO", no)
    assert done.state is S.SIGNED and done.signed_at == OUT + timedelta(hours=34)
    assert done.carrier == "ZTO" and done.tracking_no == no
    assert provinces(done) == {"广东", "浙江"}
    assert done.checkpoints[-1].description == "【深圳市南山区营业部】已揽收，揽投员：王师傅"
    assert done.checkpoints[0].area_code == "CN330106000000"
    assert detect_anomalies(done, receiver_province="浙江省", now=clock.now) == []


def test_sandbox_stuck_parcel_stops_updating():
    carrier, clock, no = sandbox_parcel("stuck")
    clock.at(72)
    update = carrier.poll("ZTO", no)
    assert update.state is S.IN_TRANSIT
    assert update.latest.at == OUT + timedelta(hours=5)
    assert detect_anomalies(update, receiver_province="浙江省", now=clock.now) == ["no_update"]


def test_sandbox_off_route_leaves_the_receivers_province():
    carrier, clock, no = sandbox_parcel("off_route")
    clock.at(40)
    update = carrier.poll("ZTO", no)
    third = normalize_province(update.latest.province)
    assert third not in {"广东", "浙江"}
    assert "浙江" in provinces(update)
    assert detect_anomalies(update, receiver_province="浙江", now=clock.now) == ["off_route"]


def test_sandbox_returned_twice():
    carrier, clock, no = sandbox_parcel("returned_twice")
    clock.at(80)
    update = carrier.poll("ZTO", no)
    assert update.state is S.RETURNED and update.signed_at is None
    states = [c.state for c in reversed(update.checkpoints)]
    assert states.count(S.DELIVERING) == 2
    assert detect_anomalies(update, receiver_province="浙江省", now=clock.now) == [
        "repeated_returns"]


def test_sandbox_rejected():
    carrier, clock, no = sandbox_parcel("rejected")
    clock.at(33)
    assert carrier.poll("ZTO", no).state is S.REJECTED
    clock.at(80)
    update = carrier.poll("ZTO", no)
    assert update.state is S.RETURNED
    assert [c.state for c in update.checkpoints].count(S.REJECTED) == 1
    assert update.latest.province == "广东省"  # back with the sender
    assert detect_anomalies(update, receiver_province="浙江省", now=clock.now) == []


def test_sandbox_picks_a_receiver_province_when_none_is_known():
    clock = Clock(OUT + timedelta(hours=48))
    carrier = SandboxCarrier(clock=clock)
    no = tracking_no_for("normal")
    carrier.register("YTO", no, SandboxParcel(OUT))
    update = carrier.poll("YTO", no)
    assert update.latest.province in PLACES and update.latest.province != "广东省"
    assert carrier.poll("YTO", no) == update  # same story every time


def test_sandbox_subscribe_marks_outbound_and_lookup_finds_parcels():
    clock = Clock(OUT)
    seen = []

    def lookup(carrier, tracking_no):
        seen.append((carrier, tracking_no))
        if tracking_no != "L1":
            return None
        return SandboxParcel(OUT - timedelta(days=1), receiver_province="江苏")

    carrier = SandboxCarrier(clock=clock, lookup=lookup)
    no = tracking_no_for("normal")
    carrier.subscribe("ZTO", no, callback_url="https://x/cb", phone="1234")
    assert carrier.subscriptions[("ZTO", no)].callback_url == "https://x/cb"
    assert carrier.poll("ZTO", no).state is S.COLLECTED  # outbound = subscription time

    assert carrier.poll("ZTO", "L1").checkpoints[-1].at == OUT - timedelta(days=1)
    with pytest.raises(CarrierError, match="unknown parcel"):
        carrier.poll("ZTO", "L2")
    assert seen == [("ZTO", "L1"), ("ZTO", "L2")]

    clock.now = OUT - timedelta(hours=1)
    with pytest.raises(CarrierError, match="no record yet") as excinfo:
        carrier.poll("ZTO", no)
    assert excinfo.value.retryable


def test_sandbox_push_is_signed_like_kuaidi100():
    carrier, clock, no = sandbox_parcel("normal")
    clock.at(48)
    body = carrier.push_body("ZTO", no)
    assert body["sign"] == md5u(body["param"] + SANDBOX_SALT)
    assert json.loads(body["param"])["status"] == "shutdown"

    assert carrier.parse_push(body) == carrier.poll("ZTO", no)
    assert Kuaidi100Adapter(CUSTOMER, KEY, SANDBOX_SALT).parse_push(body) == carrier.poll("ZTO", no)
    with pytest.raises(TrackingSignatureError):
        carrier.parse_push({"param": body["param"].replace("签收", "丢失"), "sign": body["sign"]})
    with pytest.raises(TrackingSignatureError):
        SandboxCarrier(salt="another").parse_push(body)


# --- anomalies on hand-made routes -------------------------------------------------------------

def route(*steps, state=None) -> TrackingUpdate:
    """steps oldest first: (hours after OUT, state, province)."""
    checkpoints = tuple(
        TrackingCheckpoint(at=OUT + timedelta(hours=h), state=s, location="", description="",
                           province=p)
        for h, s, p in reversed(steps))
    return TrackingUpdate(carrier="ZTO", tracking_no="T1", state=state or checkpoints[0].state,
                          checkpoints=checkpoints, raw={}, signed_at=None)


def anomalies(update, hours, **kwargs):
    return detect_anomalies(update, receiver_province="浙江省", now=OUT + timedelta(hours=hours),
                            **kwargs)


NORMAL = [(0, S.COLLECTED, "广东省"), (10, S.IN_TRANSIT, "江西省"), (24, S.IN_TRANSIT, "浙江"),
          (30, S.DELIVERING, "浙江省"), (34, S.SIGNED, "浙江省")]


def test_a_normal_route_has_no_anomaly_at_any_point():
    for n in range(1, len(NORMAL) + 1):
        update = route(*NORMAL[:n])
        assert anomalies(update, NORMAL[n - 1][0] + 1) == []
    assert anomalies(route(*NORMAL), 24 * 30) == []  # signed long ago is not stale


def test_no_update_after_48_hours():
    update = route(*NORMAL[:2])
    assert anomalies(update, 58) == []
    assert anomalies(update, 58.5) == ["no_update"]
    assert anomalies(update, 20, stale_after=timedelta(hours=6)) == ["no_update"]


def test_no_record_at_all_counts_from_outbound():
    empty = TrackingUpdate(carrier="ZTO", tracking_no="T1", state=S.COLLECTED, checkpoints=(),
                           raw={}, signed_at=None)
    assert anomalies(empty, 72) == []  # nothing to measure from
    assert anomalies(empty, 72, outbound_at=OUT) == ["no_update"]


def test_returns_are_not_stale():
    update = route(*NORMAL[:4], (32, S.REJECTED, "浙江省"), (33, S.RETURNED, "浙江省"))
    assert anomalies(update, 24 * 10) == []


def test_off_route_after_reaching_the_receivers_province():
    update = route(*NORMAL[:3], (28, S.IN_TRANSIT, "上海市"))
    assert anomalies(update, 29) == ["off_route"]
    # Corrected since: back in the receiver's province, nothing to act on.
    assert anomalies(route(*NORMAL[:3], (28, S.IN_TRANSIT, "上海市"),
                           (36, S.DELIVERING, "浙江省")), 37) == []
    # Checkpoints without a province do not move the parcel.
    assert anomalies(route(*NORMAL[:3], (28, S.IN_TRANSIT, "")), 29) == []


def test_crossing_third_provinces_before_arrival_is_not_off_route():
    assert anomalies(route((0, S.COLLECTED, "广东省"), (8, S.IN_TRANSIT, "江西省"),
                           (16, S.IN_TRANSIT, "安徽省")), 17) == []


def test_a_return_leaving_the_province_is_not_off_route():
    update = route(*NORMAL[:4], (32, S.REJECTED, "浙江省"), (40, S.RETURNED, "江西省"))
    assert anomalies(update, 41) == []


def test_repeated_returns_counts_episodes_not_checkpoints():
    once = route(*NORMAL[:4], (32, S.REJECTED, "浙江省"), (33, S.RETURNED, "浙江省"),
                 (50, S.RETURNED, "广东省"))
    assert anomalies(once, 51) == []
    twice = route(*NORMAL[:4], (33, S.RETURNED, "浙江省"), (46, S.DELIVERING, "浙江省"),
                  (49, S.REJECTED, "浙江省"))
    assert anomalies(twice, 50) == ["repeated_returns"]


def test_several_anomalies_at_once():
    update = route(*NORMAL[:3], (26, S.RETURNED, "浙江省"), (27, S.DELIVERING, "浙江省"),
                   (28, S.RETURNED, "浙江省"), (29, S.PROBLEM, "浙江省"))
    assert anomalies(update, 100) == ["no_update", "repeated_returns"]


@pytest.mark.parametrize(("name", "short"), [
    ("广东省", "广东"), ("广东", "广东"), ("上海市", "上海"), ("广西壮族自治区", "广西"),
    ("新疆维吾尔自治区", "新疆"), ("内蒙古自治区", "内蒙古"), ("香港特别行政区", "香港"), (" 浙江省 ", "浙江"),
])
def test_province_names_normalise(name, short):
    assert normalize_province(name) == short
