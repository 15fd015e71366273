"""Carrier tracking end to end: signed pushes, idempotency, the poll and stale sweeps, anomalies
as exception cases, and what each carrier state does to the order's two tracks."""

import hashlib
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone

from channels import tasks, tracking
from channels.carriers import CarrierError
from channels.carriers.kuaidi100 import Kuaidi100Adapter
from channels.carriers.sandbox import SANDBOX_SALT, SandboxCarrier, tracking_no_for
from channels.models import ShipmentTracking
from oms.schedules import DEFAULT_SCHEDULES
from oms.tests.factories import UserFactory
from orders import fulfilment
from orders import services as order_services
from orders.events import SYSTEM
from orders.models import ExceptionCase, OrderEvent, Shipment
from orders.scanning import OUTBOUND
from orders.tests.factories import (
    advance,
    make_device,
    make_order,
    make_split_order,
    ops_actor,
    scan,
)

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
PUSH_URL = "/api/v1/carriers/kuaidi100/push/"
CUSTOMER, KEY, SALT = "CUST0001", "kEy123", "s4lt"
SHANGHAI = {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
            "district": "浦东新区", "address": "世纪大道100号"}
NOW = timezone.now().replace(microsecond=0)


def md5u(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


@pytest.fixture(autouse=True)
def kuaidi100_settings(settings):
    settings.OMS_CARRIER_ADAPTER = "kuaidi100"
    settings.OMS_KUAIDI100_CUSTOMER, settings.OMS_KUAIDI100_KEY = CUSTOMER, KEY
    settings.OMS_KUAIDI100_SALT = SALT
    settings.OMS_KUAIDI100_BASE_URL = "http://127.0.0.1:1"  # nothing listens: tests say otherwise
    settings.OMS_TRACKING_POLL_HOURS = 6
    settings.OMS_TRACKING_STALE_HOURS = 48
    return settings


def ship(tracking_no: str, *, hours_ago: float = 10, carrier: str = "ZTO", receiver=None,
         order=None):
    """An order through the services to its outbound scan `hours_ago`: (order, shipment)."""
    outbound_at = NOW - timedelta(hours=hours_ago)
    order = order or make_order(receiver=receiver or SHANGHAI)
    order = advance(order, "packed", at=outbound_at - timedelta(minutes=10))
    device, _token = make_device(order.warehouse)
    reply = scan(device, order, OUTBOUND, at=outbound_at, carrier=carrier, tracking_no=tracking_no)
    assert reply.status_code == 201, reply.body
    order.refresh_from_db()
    return order, Shipment.objects.get(order=order, tracking_no=tracking_no)


# --- Kuaidi100 pushes, as Kuaidi100 signs them --------------------------------------------------

def step(hours_after_outbound: float, code: str, context: str, area: str = "", *, shipment):
    at = (shipment.outbound_at + timedelta(hours=hours_after_outbound)).astimezone(SH)
    text = at.strftime("%Y-%m-%d %H:%M:%S")
    return {"context": context, "time": text, "ftime": text, "status": "", "statusCode": code,
            "areaCode": None, "areaName": area}


def push_form(shipment, steps, *, status="polling", salt=SALT, com="zhongtong"):
    """steps oldest first, as written in a test; Kuaidi100 sends them newest first, with the
    newest one's resultv2=4 code as the parcel's state."""
    data = list(reversed(steps))
    state = data[0]["statusCode"] if data else "0"
    param = json.dumps({
        "status": status, "billstatus": "", "message": "", "autoCheck": "0", "comOld": "", "comNew": "",
        "lastResult": {"message": "ok", "state": state, "status": "200", "condition": "F00",
                       "ischeck": "1" if state.startswith("3") else "0", "com": com,
                       "nu": shipment.tracking_no, "data": data},
    }, ensure_ascii=False, separators=(",", ":"))
    return {"param": param, "sign": md5u(param + salt)}


def post_push(client, form):
    """As Kuaidi100 posts it: an urlencoded form."""
    return client.post(PUSH_URL, urlencode(form), content_type="application/x-www-form-urlencoded")


def parsed(form):
    return Kuaidi100Adapter(CUSTOMER, KEY, SALT).parse_push(form)


def carrier_events(order):
    return OrderEvent.objects.filter(order=order, actor="carrier:ZTO")


def tracks(order):
    order.refresh_from_db()
    return order.fulfilment, order.status


def cases(order):
    return ExceptionCase.objects.filter(order=order, kind="carrier_anomaly")


ROUTE = [
    (0.5, "103", "【上海市松江区营业部】已揽收", "上海,上海市,松江区"),
    (3, "1002", "快件已到达【上海转运中心】", "上海,上海市"),
    (20, "5", "【上海市浦东新区营业部】快递员正在派件", "上海,上海市,浦东新区"),
    (22, "301", "快件已签收，签收人：本人", "上海,上海市,浦东新区"),
]


def route(shipment, upto):
    return [step(h, code, text, area, shipment=shipment) for h, code, text, area in ROUTE[:upto]]


def test_signed_pushes_move_the_parcel_in_transit_then_deliver_both_tracks(client):
    order, shipment = ship("ZT0000000001")
    assert tracks(order) == ("outbound", "shipped")

    reply = post_push(client, push_form(shipment, route(shipment, 2)))

    assert reply.status_code == 200
    assert reply.json() == {"result": True, "returnCode": "200", "message": "成功"}
    assert tracks(order) == ("in_transit", "shipped")
    scans = carrier_events(order).filter(track="physical", kind="scan")
    assert [e.to_state for e in scans.exclude(to_state="")] == ["in_transit"]
    assert scans.filter(to_state="").count() == 2  # the two checkpoints, on the timeline
    in_transit = scans.get(to_state="in_transit")
    assert in_transit.at == shipment.outbound_at + timedelta(minutes=30)  # the collection scan

    reply = post_push(client, push_form(shipment, route(shipment, 4)))

    assert reply.status_code == 200
    assert tracks(order) == ("delivered", "delivered")
    signed_at = shipment.outbound_at + timedelta(hours=22)
    delivered = carrier_events(order).filter(to_state="delivered")
    assert {(e.track, e.from_state, e.at) for e in delivered} == {
        ("physical", "in_transit", signed_at), ("business", "shipped", signed_at)}
    order.refresh_from_db()
    assert order.delivered_at == signed_at
    row = ShipmentTracking.objects.get(shipment=shipment)
    assert (row.state, row.last_event_at, row.anomalies) == ("signed", signed_at, [])
    assert row.last_push_at is not None and row.adapter == "kuaidi100"
    assert [c["state"] for c in row.checkpoints] == ["signed", "delivering", "in_transit", "collected"]


@pytest.mark.parametrize("form", [
    "wrong sign", "no sign", "sandbox salt", "tampered param",
])
def test_a_forged_push_is_401_and_changes_nothing(client, form):
    order, shipment = ship("ZT0000000002")
    good = push_form(shipment, route(shipment, 4))
    forged = {
        "wrong sign": {**good, "sign": md5u("something else")},
        "no sign": {"param": good["param"]},
        "sandbox salt": push_form(shipment, route(shipment, 4), salt=SANDBOX_SALT),
        "tampered param": {**good, "param": good["param"].replace("本人", "门卫")},
    }[form]
    events_before = OrderEvent.objects.filter(order=order).count()

    reply = post_push(client, forged)

    assert reply.status_code == 401
    assert reply.json()["error"] == "unauthenticated"
    assert tracks(order) == ("outbound", "shipped")
    assert OrderEvent.objects.filter(order=order).count() == events_before
    assert not ShipmentTracking.objects.filter(shipment=shipment, last_push_at__isnull=False).exists()


def test_pushes_cannot_be_verified_without_a_salt(client, settings):
    order, shipment = ship("ZT0000000003")
    settings.OMS_KUAIDI100_SALT = ""

    reply = post_push(client, push_form(shipment, route(shipment, 4), salt=""))

    assert reply.status_code == 401
    assert tracks(order) == ("outbound", "shipped")


def test_the_sandbox_push_key_is_refused_in_production(client, settings):
    order, shipment = ship("ZT0000000004")
    settings.OMS_CARRIER_ADAPTER, settings.PRODUCTION = "sandbox", True

    reply = post_push(client, push_form(shipment, route(shipment, 4), salt=SANDBOX_SALT))

    assert reply.status_code == 401
    assert tracks(order) == ("outbound", "shipped")


def test_repeated_pushes_are_idempotent(client):
    order, shipment = ship("ZT0000000005")
    form = push_form(shipment, route(shipment, 3))
    assert post_push(client, form).status_code == 200
    events = list(OrderEvent.objects.filter(order=order).values_list("pk", flat=True))
    row = ShipmentTracking.objects.get(shipment=shipment)

    for _ in range(3):
        reply = post_push(client, form)
        assert reply.status_code == 200
        assert reply.json()["result"] is True

    assert list(OrderEvent.objects.filter(order=order).values_list("pk", flat=True)) == events
    again = ShipmentTracking.objects.get(shipment=shipment)
    assert (again.checkpoints, again.state, again.anomalies) == (row.checkpoints, row.state, row.anomalies)

    # A poll that finds the same route changes nothing either; the next push adds one event.
    assert tracking.apply_update(parsed(form), "poll").new_checkpoints == 0
    assert OrderEvent.objects.filter(order=order).count() == len(events)
    post_push(client, push_form(shipment, route(shipment, 4)))
    new = OrderEvent.objects.filter(order=order).exclude(pk__in=events)
    assert sorted(new.values_list("track", "to_state")) == [
        ("business", "delivered"), ("physical", ""), ("physical", "delivered")]


def test_a_push_for_an_unknown_parcel_is_acknowledged_and_ignored(client):
    order, shipment = ship("ZT0000000006")
    form = push_form(shipment, route(shipment, 2))
    form = {"param": form["param"].replace("ZT0000000006", "ZT9999999999")}
    form["sign"] = md5u(form["param"] + SALT)

    reply = post_push(client, form)

    assert reply.status_code == 200
    assert tracks(order) == ("outbound", "shipped")


def test_a_signed_push_that_is_not_tracking_is_400(client):
    param = json.dumps({"status": "polling"})
    reply = post_push(client, {"param": param, "sign": md5u(param + SALT)})
    assert reply.status_code == 400


def test_kuaidi100_giving_up_asks_for_a_new_subscription(client):
    order, shipment = ship("ZT0000000007")
    tracking.ensure_tracking(shipment)
    ShipmentTracking.objects.filter(shipment=shipment).update(subscribed_at=NOW)

    post_push(client, push_form(shipment, route(shipment, 1), status="abort"))

    row = ShipmentTracking.objects.get(shipment=shipment)
    assert row.subscribed_at is None
    assert "abort" in row.subscribe_error
    assert row.state == "collected"


# --- the state mapping, through apply_update ---------------------------------------------------

@pytest.mark.parametrize(("code", "state", "fulfilment", "status"), [
    ("1", "collected", "in_transit", "shipped"),     # 揽收
    ("0", "in_transit", "in_transit", "shipped"),    # 在途
    ("7", "in_transit", "in_transit", "shipped"),    # 转投
    ("5", "delivering", "in_transit", "shipped"),    # 派件
    ("2", "problem", "in_transit", "shipped"),       # 疑难: still with the carrier
    ("3", "signed", "delivered", "delivered"),       # 签收
    ("301", "signed", "delivered", "delivered"),     # 本人签收
    ("4", "returned", "returned", "shipped"),        # 退签
    ("6", "returned", "returned", "shipped"),        # 退回
    ("14", "rejected", "returned", "shipped"),       # 拒签
    ("203", "rejected", "returned", "shipped"),      # 拒收 (filed under 疑难)
])
def test_carrier_states_move_the_order_tracks(code, state, fulfilment, status):
    order, shipment = ship(f"ZT10000000{code:0>3}")
    form = push_form(shipment, [step(2, code, "第一条也是唯一一条轨迹", shipment=shipment)])

    applied = tracking.apply_update(parsed(form), "push", now=NOW)

    assert applied.new_checkpoints == 1
    assert ShipmentTracking.objects.get(shipment=shipment).state == state
    assert tracks(order) == (fulfilment, status)
    moved = OrderEvent.objects.filter(order=order, actor="carrier:ZTO").exclude(to_state="")
    assert all(e.kind == "scan" for e in moved)


def test_states_the_order_cannot_take_are_recorded_without_moving_it():
    """A parcel of an order that is already delivered: checkpoints only."""
    order, shipment = ship("ZT0000000008")
    with transaction.atomic():
        locked = order_services.lock_order(order.order_no)
        (share,) = fulfilment.live(fulfilment.shares_of(locked))
        fulfilment.carrier_update(locked, share, "mark_delivered", SYSTEM, at=NOW, summary="signed", payload={})
        order_services.transition(locked, "mark_delivered", SYSTEM)
    form = push_form(shipment, [step(2, "6", "快件退回", shipment=shipment)])

    applied = tracking.apply_update(parsed(form), "push", now=NOW)

    assert (applied.new_checkpoints, applied.transitions) == (1, [])
    assert tracks(order) == ("delivered", "delivered")


def test_a_split_order_is_delivered_when_its_last_parcel_is_signed():
    order, sh, gz, tea, cup = make_split_order()
    actor = ops_actor()
    order_services.approve_order(order.order_no, actor)
    order_services.request_shipment(order.order_no, actor)
    clock = iter(NOW - timedelta(hours=30) + timedelta(minutes=n) for n in range(10))
    for warehouse, sku, quantity, number in ((gz, cup, 1, "ZT2000000001"), (sh, tea, 2, "ZT2000000002")):
        device, _ = make_device(warehouse)
        assert scan(device, order, "pick_started", at=next(clock)).status_code == 201
        assert scan(device, order, "pack_verified", at=next(clock),
                    items=[{"barcode": sku.barcode, "quantity": quantity}]).status_code == 201
        assert scan(device, order, OUTBOUND, at=next(clock), carrier="ZTO",
                    tracking_no=number).status_code == 201
    first, last = Shipment.objects.filter(order=order).order_by("tracking_no")
    assert tracks(order) == ("outbound", "shipped")

    tracking.apply_update(parsed(push_form(first, route(first, 4))), "push", now=NOW)
    assert tracks(order) == ("outbound", "shipped")  # one parcel of two is signed for, one just left
    assert dict(order.fulfilment_orders.values_list("shipments__tracking_no", "status")) == {
        "ZT2000000001": "delivered", "ZT2000000002": "outbound"}

    tracking.apply_update(parsed(push_form(last, route(last, 4))), "push", now=NOW)
    assert tracks(order) == ("delivered", "delivered")


# --- polling -----------------------------------------------------------------------------------

class FakeKuaidi100:
    """A real HTTP server: subscriptions (/poll) are accepted; queries (/poll/query.do) are
    answered per tracking number from `routes`, an unknown number with Kuaidi100's "no result"
    (500) and a "down" one with HTTP 502."""

    def __init__(self, routes: dict[str, object]):
        self.routes, self.asked, self.subscribed = routes, [], []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                form = {k: v[0] for k, v in parse_qs(
                    self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
                param = json.loads(form.get("param", "{}"))
                status, body = 200, {"result": False, "returnCode": "500", "message": "查询无结果"}
                if self.path == "/poll":
                    fake.subscribed.append(param)
                    answer = {"result": True, "returnCode": "200", "message": "提交成功"}
                else:
                    fake.asked.append(param.get("num", ""))
                    answer = fake.routes.get(param.get("num", ""), "fail")
                if answer == "down":
                    status, body = 502, {}
                elif isinstance(answer, dict):
                    body = answer
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        host, port = self.httpd.server_address[:2]
        self.base_url = f"http://{host}:{port}"


@pytest.fixture
def kuaidi100_server(settings):
    servers = []

    def start(routes):
        fake = FakeKuaidi100(routes)
        threading.Thread(target=fake.httpd.serve_forever, args=(0.05,), daemon=True).start()
        settings.OMS_KUAIDI100_BASE_URL = fake.base_url
        servers.append(fake)
        return fake

    yield start
    for fake in servers:
        fake.httpd.shutdown()
        fake.httpd.server_close()


def query_reply(shipment, steps):
    last = json.loads(push_form(shipment, steps)["param"])["lastResult"]
    return {**last, "status": "200"}


def test_poll_due_selects_only_the_parcels_due():
    due_never_heard = ship("ZT3000000001", hours_ago=7)[1]
    too_new = ship("ZT3000000002", hours_ago=2)[1]
    pushed_lately = ship("ZT3000000003", hours_ago=10)[1]
    polled_long_ago = ship("ZT3000000004", hours_ago=30)[1]
    signed = ship("ZT3000000005", hours_ago=30)[1]
    too_old = ship("ZT3000000006", hours_ago=24 * 31)[1]
    for shipment in (due_never_heard, too_new, pushed_lately, polled_long_ago, signed, too_old):
        tracking.ensure_tracking(shipment)
    rows = ShipmentTracking.objects
    rows.filter(shipment=pushed_lately).update(last_push_at=NOW - timedelta(hours=1),
                                               last_polled_at=NOW - timedelta(hours=9))
    rows.filter(shipment=polled_long_ago).update(last_polled_at=NOW - timedelta(hours=7),
                                                 last_push_at=NOW - timedelta(hours=8))
    rows.filter(shipment=signed).update(state="signed")

    due = rows.filter(pk__in=tracking.due_for_poll(NOW)).values_list("shipment__tracking_no", flat=True)

    assert sorted(due) == ["ZT3000000001", "ZT3000000004"]


def test_one_failing_poll_does_not_stop_the_others(kuaidi100_server):
    shipments = [ship(f"ZT400000000{n}", hours_ago=8)[1] for n in range(4)]
    for shipment in shipments:
        tracking.ensure_tracking(shipment)
    a, fails, down, b = shipments
    fake = kuaidi100_server({a.tracking_no: query_reply(a, route(a, 2)), down.tracking_no: "down",
                             b.tracking_no: query_reply(b, route(b, 4))})

    result = tracking.poll_due(NOW)

    assert sorted(fake.asked) == sorted(s.tracking_no for s in shipments)  # each asked once
    assert (result.due, result.polled, result.failed) == (4, 2, 2)
    rows = {r.shipment_id: r for r in ShipmentTracking.objects.all()}
    assert rows[a.pk].state == "in_transit" and rows[a.pk].poll_error == ""
    assert rows[b.pk].state == "signed"
    assert "500" in rows[fails.pk].poll_error and rows[fails.pk].state == ""
    assert "HTTP 502" in rows[down.pk].poll_error
    assert all(r.last_polled_at == NOW for r in rows.values())
    assert tracks(b.order) == ("delivered", "delivered")
    assert tracks(a.order) == ("in_transit", "shipped")

    # Polled (even the failures): not due again for six hours, so a second sweep asks nobody.
    fake.asked.clear()
    assert tracking.poll_due(NOW + timedelta(hours=1)).due == 0
    assert fake.asked == []


def test_the_sandbox_carrier_tells_each_shipment_its_route(settings):
    """The demo wiring: the sandbox reads the shipment's outbound time and provinces."""
    settings.OMS_CARRIER_ADAPTER = "sandbox"
    order, shipment = ship(tracking_no_for("normal"), hours_ago=40)
    stuck = ship(tracking_no_for("stuck"), hours_ago=8)[1]
    for each in (shipment, stuck):
        tracking.ensure_tracking(each)
    adapter = tracking.build_adapter(clock=lambda: NOW)
    assert isinstance(adapter, SandboxCarrier)

    result = tracking.poll_due(NOW, adapter=adapter)

    assert (result.polled, result.failed) == (2, 0)
    assert tracks(order) == ("delivered", "delivered")
    row = ShipmentTracking.objects.get(shipment=shipment)
    assert row.checkpoints[0]["province"] == "上海市"  # the receiver's
    assert row.checkpoints[-1]["province"] == "上海市"  # factory warehouses serve 上海 first
    assert ShipmentTracking.objects.get(shipment=stuck).state == "in_transit"


def test_the_minute_sweep_subscribes_new_parcels(kuaidi100_server):
    """No broker or carrier call on the scanner's path: the minute sweep adopts new shipments."""
    fake = kuaidi100_server({})
    order, shipment = ship("ZT5000000001", carrier="SF")
    assert not ShipmentTracking.objects.filter(shipment=shipment).exists()
    tasks.check_stale_tracking()

    row = ShipmentTracking.objects.get(shipment=shipment)
    assert (row.adapter, row.subscribe_error, row.state) == ("kuaidi100", "", "")
    assert row.subscribed_at is not None and row.outbound_at == shipment.outbound_at
    [subscription] = fake.subscribed
    assert (subscription["company"], subscription["number"]) == ("shunfeng", "ZT5000000001")
    assert subscription["parameters"]["callbackurl"].endswith(PUSH_URL)
    assert subscription["parameters"]["salt"] == SALT
    assert subscription["parameters"]["phone"] == "1234"  # SF needs it; the last four digits do


def test_a_refused_subscription_is_kept_on_the_row_and_the_timeline(settings):
    settings.OMS_KUAIDI100_BASE_URL = "http://127.0.0.1:1"  # connection refused: retryable
    order, shipment = ship("ZT5000000002")

    with pytest.raises(CarrierError):
        tracking.subscribe_shipment(shipment.pk, attempt_is_last=False)
    assert tracking.subscribe_shipment(shipment.pk) == "failed"

    row = ShipmentTracking.objects.get(shipment=shipment)
    assert row.subscribed_at is None and "ConnectionError" in row.subscribe_error
    assert OrderEvent.objects.filter(order=order, kind="api_call", summary__contains="failed").count() == 1


# --- anomalies → exception cases ---------------------------------------------------------------

def alert_rule_rows(now):
    """The query the alert rule "outbound without a carrier tracking event in 48 h" runs."""
    return ShipmentTracking.objects.filter(state="", last_event_at__isnull=True,
                                           outbound_at__lt=now - timedelta(hours=48))


def test_no_carrier_news_48_hours_after_outbound_opens_one_case():
    quiet, shipment = ship("ZT6000000001", hours_ago=49)
    recent, recent_shipment = ship("ZT6000000002", hours_ago=47)
    tracking.ensure_tracking(shipment)
    tracking.ensure_tracking(recent_shipment)
    # The third one's subscribe task was lost: it has no tracking row at all.
    lost, lost_shipment = ship("ZT6000000003", hours_ago=50)

    result = tracking.check_stale(NOW)

    assert result.adopted == [lost_shipment.pk]
    assert result.flagged == 2
    assert sorted(alert_rule_rows(NOW).values_list("shipment__tracking_no", flat=True)) == [
        "ZT6000000001", "ZT6000000003"]
    for order in (quiet, lost):
        assert ShipmentTracking.objects.get(shipment__order=order).anomalies == ["no_update"]
        case = cases(order).get()
        assert (case.status, case.sub_reason) == ("open", "no_update")
        assert "no carrier news for" in case.detail and "since the outbound scan" in case.detail
    assert not cases(recent).exists()

    # Again, and again later: the same quiet parcel is one case; the recent one's turn comes.
    assert tracking.check_stale(NOW).flagged == 0
    assert tracking.check_stale(NOW + timedelta(hours=5)).flagged == 1
    assert cases(quiet).count() == 1 and cases(recent).count() == 1


def test_a_parcel_that_went_quiet_after_its_last_checkpoint_is_stale_too(client):
    order, shipment = ship("ZT6000000004", hours_ago=80)
    post_push(client, push_form(shipment, route(shipment, 2)))  # last checkpoint 77 h ago
    row = ShipmentTracking.objects.get(shipment=shipment)
    assert row.anomalies == ["no_update"]  # seen as soon as the update came in
    assert cases(order).count() == 1

    assert tracking.check_stale(NOW).flagged == 0
    assert cases(order).count() == 1


def test_a_parcel_that_left_the_receivers_province_opens_a_case(client):
    order, shipment = ship("ZT7000000001", hours_ago=30)
    steps = [step(h, code, text, area, shipment=shipment) for h, code, text, area in [
        (0.5, "103", "【深圳市南山区营业部】已揽收", "广东,深圳市,南山区"),
        (20, "1002", "快件已到达【上海转运中心】", "上海,上海市"),
        (26, "1003", "快件已到达【南京转运中心】", "江苏,南京市"),
    ]]

    post_push(client, push_form(shipment, steps))
    post_push(client, push_form(shipment, steps))

    row = ShipmentTracking.objects.get(shipment=shipment)
    assert row.anomalies == ["off_route"]
    case = cases(order).get()
    assert case.sub_reason == "off_route" and "now in 江苏" in case.detail
    assert tracks(order) == ("in_transit", "shipped")

    # Then it goes quiet too: the open case gets a line on the timeline, not a second case.
    assert tracking.check_stale(NOW + timedelta(hours=60)).flagged == 1
    assert ShipmentTracking.objects.get(shipment=shipment).anomalies == ["no_update", "off_route"]
    assert cases(order).count() == 1
    assert OrderEvent.objects.filter(order=order, kind="alert",
                                     summary__startswith=f"no_update as well (exception case #{case.pk}").exists()


def test_repeated_returns_open_a_case(client):
    order, shipment = ship("ZT7000000002", hours_ago=60)
    steps = [step(h, code, text, "上海,上海市,浦东新区", shipment=shipment) for h, code, text in [
        (0.5, "103", "已揽收"),
        (20, "5", "快递员正在派件"),
        (22, "6", "收件人电话无法接通，快件退回营业部"),
        (40, "5", "快递员第二次派件"),
        (42, "6", "再次派送失败，快件退回寄件人"),
    ]]

    post_push(client, push_form(shipment, steps[:3]))
    assert tracks(order) == ("returned", "shipped")  # the first return already counts
    assert not cases(order).exists()

    post_push(client, push_form(shipment, steps))

    row = ShipmentTracking.objects.get(shipment=shipment)
    assert (row.returns_count, row.anomalies) == (2, ["repeated_returns"])
    case = cases(order).get()
    assert (case.sub_reason, case.detail) == ("repeated_returns", "ZTO ZT7000000002: returned 2 times")


def test_news_after_a_quiet_spell_clears_the_anomaly_and_a_new_silence_is_a_new_episode(client):
    order, shipment = ship("ZT6000000005", hours_ago=60)
    tracking.ensure_tracking(shipment)
    assert tracking.check_stale(NOW).flagged == 1

    post_push(client, push_form(shipment, [step(55, "103", "已揽收（晚了）", shipment=shipment)]))

    assert ShipmentTracking.objects.get(shipment=shipment).anomalies == []
    assert tracking.check_stale(NOW + timedelta(hours=40)).flagged == 0
    assert tracking.check_stale(NOW + timedelta(hours=60)).flagged == 1


# --- wiring ------------------------------------------------------------------------------------

def test_tasks_and_default_schedules():
    from oms.celery import app

    schedules = {d.task: d for d in DEFAULT_SCHEDULES}
    assert schedules["channels.poll_tracking"].every_seconds == 3600
    assert schedules["channels.check_stale_tracking"].every_seconds == 60
    for name in ("channels.subscribe_shipment_tracking", "channels.poll_tracking",
                 "channels.check_stale_tracking"):
        assert name in app.tasks


def test_the_stale_task_subscribes_adopted_shipments(kuaidi100_server):
    from channels.tasks import check_stale_tracking

    fake = kuaidi100_server({})
    order, shipment = ship("ZT8000000001", hours_ago=3)  # its on-commit task never ran

    assert check_stale_tracking.delay().get() == {"flagged": 0, "adopted": 1}

    assert ShipmentTracking.objects.get(shipment=shipment).subscribed_at is not None
    assert [s["number"] for s in fake.subscribed] == ["ZT8000000001"]


def test_admin_shows_the_route_and_polls_now(client, kuaidi100_server):
    order, shipment = ship("ZT8000000002", hours_ago=3)
    row = tracking.ensure_tracking(shipment)
    kuaidi100_server({shipment.tracking_no: query_reply(shipment, route(shipment, 2))})
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    reply = client.post("/admin/channels/shipmenttracking/",
                        {"action": "poll_now", "_selected_action": [row.pk]})

    assert reply.status_code == 302
    row.refresh_from_db()
    assert row.state == "in_transit" and row.last_polled_at is not None
    page = client.get(f"/admin/channels/shipmenttracking/{row.pk}/change/")
    assert page.status_code == 200
    assert "上海转运中心" in page.content.decode()
    assert client.get("/admin/channels/shipmenttracking/").status_code == 200


def test_a_carrier_outage_never_fails_the_outbound_scan():
    # OMS_KUAIDI100_BASE_URL points at a closed port: every subscribe attempt is refused.
    order, shipment = ship("ZT8000000003")
    assert tracks(order) == ("outbound", "shipped")
    assert tracking.check_stale(timezone.now()).adopted == [shipment.pk]
    assert tracking.subscribe_shipment(shipment.pk) == "failed"
    row = ShipmentTracking.objects.get(shipment=shipment)
    assert row.subscribed_at is None and "ConnectionError" in row.subscribe_error


def test_a_long_route_keeps_the_newest_hundred_checkpoints_and_stays_idempotent(client):
    order, shipment = ship("ZT8000000004", hours_ago=30)
    steps = [step(n / 5, "1002", f"第{n}站", shipment=shipment) for n in range(1, 121)]
    before = OrderEvent.objects.filter(order=order, kind="scan", to_state="").count()

    post_push(client, push_form(shipment, steps))
    post_push(client, push_form(shipment, steps))

    row = ShipmentTracking.objects.get(shipment=shipment)
    assert len(row.checkpoints) == 100
    assert (row.checkpoints[0]["description"], row.checkpoints[-1]["description"]) == ("第120站", "第21站")
    assert OrderEvent.objects.filter(order=order, kind="scan", to_state="").count() - before == 120


def test_a_push_with_a_non_ascii_sign_is_refused_not_a_500(client):
    order, shipment = ship("ZT9000000001")
    form = push_form(shipment, route(shipment, 2))
    form["sign"] = "签名"
    assert post_push(client, form).status_code in (400, 401, 403)
