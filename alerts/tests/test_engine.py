"""Built-in rules fire, deduplicate, escalate and resolve by themselves; notifications are
delivered with retries and a failing notifier never blocks the scan or the other targets."""

import json
import threading
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.management import call_command
from django.utils import timezone

from alerts.delivery import deliver_due
from alerts.engine import check_alerts
from alerts.models import Alert, AlertRule, Notification, NotificationTarget
from alerts.services import acknowledge, resolve
from channels.models import SchemaDrift
from inventory.models import StockLevel
from oms.errors import Conflict
from oms.tests.factories import UserFactory
from orders.models import OrderEvent
from orders.tests.factories import ChannelFactory, advance, make_order
from reconciliation.models import Discrepancy
from reconciliation.tests.factories import pay

pytestmark = pytest.mark.django_db


def later(minutes):
    return timezone.now() + timedelta(minutes=minutes)


def active(code):
    return Alert.objects.filter(rule__code=code, status__in=["open", "acknowledged"])


def test_builtin_rules_exist_after_migrate():
    codes = set(AlertRule.objects.values_list("code", flat=True))
    assert {"paid-not-reviewed", "ship-no-outbound-4h", "ship-no-outbound-24h", "outbound-no-tracking-48h",
            "pending-payment-paid", "open-order-unchanged-24h", "stock-at-safety", "channel-pull-lag",
            "cache-mismatch", "channel-api-drift", "reconciliation-difference", "approval-pending-8h",
            "exception-case-overdue"} <= codes


def test_paid_not_reviewed_fires_once_escalates_and_resolves_itself():
    order = make_order(status="paid")
    assert check_alerts(later(29)).rules["paid-not-reviewed"].opened == 0
    assert check_alerts(later(31)).rules["paid-not-reviewed"].opened == 1
    assert check_alerts(later(32)).rules["paid-not-reviewed"].opened == 0  # deduplicated
    alert = active("paid-not-reviewed").get()
    assert alert.order == order and order.order_no in alert.title
    assert check_alerts(later(31 + 61)).rules["paid-not-reviewed"].escalated == 1
    alert.refresh_from_db()
    assert alert.escalated_at is not None and alert.severity == "critical"
    advance(order, "approved")
    result = check_alerts(later(100))
    assert result.rules["paid-not-reviewed"].resolved == 1
    alert.refresh_from_db()
    assert alert.status == "resolved" and "condition cleared" in alert.resolve_note
    summaries = list(OrderEvent.objects.filter(order=order, kind="alert").values_list("summary", flat=True))
    assert any("opened" in s for s in summaries) and any("escalated" in s for s in summaries)
    assert any("resolved" in s for s in summaries)


def test_an_acknowledged_alert_does_not_escalate():
    make_order(status="paid")
    check_alerts(later(31))
    acknowledge(active("paid-not-reviewed").get().pk, UserFactory(role="ops"))
    assert check_alerts(later(200)).rules["paid-not-reviewed"].escalated == 0


def test_ship_requested_without_outbound_warns_at_4h_and_is_critical_at_24h():
    order = advance(make_order(status="paid"), "ship_requested")
    scan = check_alerts(later(4 * 60 + 1))
    assert scan.rules["ship-no-outbound-4h"].opened == 1 and scan.rules["ship-no-outbound-24h"].opened == 0
    scan = check_alerts(later(24 * 60 + 1))
    assert scan.rules["ship-no-outbound-24h"].opened == 1
    assert active("ship-no-outbound-24h").get().severity == "critical"
    advance(order, "outbound")
    assert check_alerts(later(24 * 60 + 2)).rules["ship-no-outbound-24h"].resolved == 1


def test_money_without_a_paid_order_alerts_in_two_minutes():
    pay("NO-SUCH-ORDER", "12.00")
    assert check_alerts(later(1)).rules["pending-payment-paid"].opened == 0
    assert check_alerts(later(3)).rules["pending-payment-paid"].opened == 1
    held = make_order(status="pending_payment", payable=Decimal("50.00"))
    pay(held.order_no, "49.00")
    assert check_alerts(later(3)).rules["pending-payment-paid"].opened == 1
    assert active("pending-payment-paid").filter(order=held).exists()


def test_stock_at_safety_and_channel_drift_and_reconciliation_differences():
    order = make_order(status="paid")
    level = StockLevel.objects.get(sku=order.lines.get().sku, reserved__gt=0)
    StockLevel.objects.filter(pk=level.pk).update(safety_stock=level.on_hand)
    channel = ChannelFactory()
    SchemaDrift.objects.create(channel=channel, kind="new", path="order_id_suffix", new_type="str")
    Discrepancy.objects.create(fingerprint="x", kind="missing_in_system", business_date=timezone.localdate(),
                               transaction_no="TX-1", actual=Decimal("150.00"), difference=Decimal("150.00"))
    Discrepancy.objects.create(fingerprint="y", kind="fee_deduction", business_date=timezone.localdate(),
                               transaction_no="TX-2", difference=Decimal("-0.30"))
    scan = check_alerts(later(1))
    assert scan.rules["stock-at-safety"].opened == 1
    assert scan.rules["channel-api-drift"].opened == 1
    assert scan.rules["reconciliation-difference"].opened == 1
    SchemaDrift.objects.update(acknowledged_at=timezone.now())
    assert check_alerts(later(2)).rules["channel-api-drift"].resolved == 1


def test_channel_pull_lag_alerts_until_the_cursor_moves():
    channel = ChannelFactory(api_base_url="http://127.0.0.1:9/", sync_cursor=timezone.now() - timedelta(minutes=11))
    assert check_alerts().rules["channel-pull-lag"].opened == 1
    channel.sync_cursor = timezone.now()
    channel.save()
    assert check_alerts().rules["channel-pull-lag"].resolved == 1


def test_a_broken_rule_does_not_stop_the_others():
    AlertRule.objects.create(code="broken", name="broken", condition="no_such_condition", threshold=1)
    AlertRule.objects.filter(code="paid-not-reviewed").update(threshold=Decimal("-1"))
    make_order(status="paid")
    scan = check_alerts(later(1))
    assert scan.rules["broken"].error and scan.rules["paid-not-reviewed"].opened == 1


def test_resolving_by_hand_and_state_errors():
    make_order(status="paid")
    check_alerts(later(31))
    alert = active("paid-not-reviewed").get()
    user = UserFactory(role="ops")
    resolve(alert.pk, user, "called the buyer")
    with pytest.raises(Conflict):
        resolve(alert.pk, user)
    with pytest.raises(Conflict):
        acknowledge(alert.pk, user)
    # Still paid and unreviewed: the next scan opens a new alert, the old one stays resolved.
    assert check_alerts(later(33)).rules["paid-not-reviewed"].opened == 1


class Recorder(BaseHTTPRequestHandler):
    replies: list = []
    bodies: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length", 0))
        Recorder.bodies.append(json.loads(self.rfile.read(length)))
        status, body = Recorder.replies.pop(0) if Recorder.replies else (200, {"errcode": 0, "errmsg": "ok"})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def robot():
    server = HTTPServer(("127.0.0.1", 0), Recorder)
    Recorder.replies, Recorder.bodies = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/robot/send"
    server.shutdown()


def test_notifications_retry_with_backoff_and_failures_stay_isolated(robot, mailoutbox):
    wecom = NotificationTarget.objects.create(name="ops group", kind="wecom", target=robot)
    broken = NotificationTarget.objects.create(name="dead webhook", kind="webhook", target="http://127.0.0.1:9/x")
    mail = NotificationTarget.objects.create(name="ops mail", kind="email", target="ops@example.com")
    rule = AlertRule.objects.get(code="paid-not-reviewed")
    rule.recipients.set([wecom, broken, mail])
    make_order(status="paid")
    Recorder.replies = [(200, {"errcode": 93000, "errmsg": "invalid webhook url"})]
    check_alerts(later(31))
    outcome = deliver_due()
    assert outcome == {"sent": 1, "failed": 0, "retrying": 2, "suppressed": 0}
    assert len(mailoutbox) == 1 and "Paid but not reviewed" in mailoutbox[0].subject
    retry = Notification.objects.get(target=wecom)
    assert retry.state == "pending" and "93000" in retry.last_error and retry.attempts == 1
    Notification.objects.update(next_attempt_at=timezone.now())
    assert deliver_due()["sent"] == 1  # WeCom now answers errcode 0
    assert Recorder.bodies[-1]["msgtype"] == "markdown"
    for _ in range(5):
        Notification.objects.filter(state="pending").update(next_attempt_at=timezone.now())
        deliver_due()
    assert Notification.objects.get(target=broken).state == "failed"


def test_per_recipient_rate_limit(robot):
    target = NotificationTarget.objects.create(name="quiet", kind="dingtalk", target=robot, max_per_hour=2)
    AlertRule.objects.get(code="paid-not-reviewed").recipients.set([target])
    for _ in range(4):
        make_order(status="paid")
    check_alerts(later(31))
    assert deliver_due() == {"sent": 2, "failed": 0, "retrying": 0, "suppressed": 2}


def test_alerts_api(client_for):
    order = make_order(status="paid")
    check_alerts(later(31))
    ops = client_for("ops")
    listed = ops.get(f"/api/v1/alerts/?status=open&rule=paid-not-reviewed&order_no={order.order_no}").json()
    [item] = listed["results"]
    assert item["rule"] == "paid-not-reviewed" and item["severity"] == "warning" and item["status"] == "open"
    assert ops.post(f"/api/v1/alerts/{item['id']}/acknowledge/").json()["status"] == "acknowledged"
    assert ops.post(f"/api/v1/alerts/{item['id']}/acknowledge/").status_code == 409
    done = ops.post(f"/api/v1/alerts/{item['id']}/resolve/", {"note": "approved by phone"}, format="json")
    assert done.json()["status"] == "resolved" and done.json()["resolve_note"] == "approved by phone"
    assert ops.post("/api/v1/alerts/999999/resolve/").status_code == 404
    assert client_for("finance").post(f"/api/v1/alerts/{item['id']}/acknowledge/").status_code == 403
    assert client_for("customer_service").get("/api/v1/alerts/").status_code == 200


def test_check_alerts_command_and_pages(client, capsys):
    make_order(status="paid")
    call_command("check_alerts", "--no-send")
    assert "paid-not-reviewed" in capsys.readouterr().out
    client.force_login(UserFactory(role="ops"))
    assert client.get("/ops/alerts/").status_code == 200


def test_approval_pending_for_8h_and_not_as_unreviewed():
    from orders.models import ApprovalLevel, ApprovalPolicy

    policy = ApprovalPolicy.objects.create(name="big orders", min_amount=Decimal("0"))
    ApprovalLevel.objects.create(policy=policy, position=1, approver_group="ops", due_hours=24)
    order = make_order(status="paid")
    assert order.approval_tasks.filter(status="pending").exists()
    scan = check_alerts(later(8 * 60 + 1))
    assert scan.rules["approval-pending-8h"].opened == 1
    assert scan.rules["paid-not-reviewed"].opened == 0
    assert active("approval-pending-8h").get().order == order


def test_an_exception_case_past_its_sop_limit_alerts():
    from orders.cases import open_case
    from orders.events import SYSTEM

    order = make_order(status="pending_payment")
    case, _created = open_case(order, "payment_timeout", "unpaid for 31 min", actor=SYSTEM)
    minutes = (case.due_at - timezone.now()).total_seconds() / 60
    assert check_alerts(later(minutes - 1)).rules["exception-case-overdue"].opened == 0
    assert check_alerts(later(minutes + 1)).rules["exception-case-overdue"].opened == 1


def test_outbound_without_a_carrier_event_for_48h():
    from channels.tracking import check_stale

    order = advance(make_order(status="paid"), "outbound")
    check_stale(timezone.now())  # adopts the shipment: a tracking row, no carrier event yet
    assert check_alerts(later(47 * 60)).rules["outbound-no-tracking-48h"].opened == 0
    assert check_alerts(later(48 * 60 + 1)).rules["outbound-no-tracking-48h"].opened == 1
    assert active("outbound-no-tracking-48h").get().order == order


def test_open_order_unchanged_for_24h():
    order = advance(make_order(status="paid"), "approved")
    assert check_alerts(later(23 * 60)).rules["open-order-unchanged-24h"].opened == 0
    assert check_alerts(later(24 * 60 + 1)).rules["open-order-unchanged-24h"].opened == 1
    assert active("open-order-unchanged-24h").get().order == order


def test_availability_cache_mismatch_alerts_until_a_clean_check():
    from inventory.models import CacheCheck

    CacheCheck.objects.create(sampled=100, holes=3, wrong=2, repaired=5, mismatch_ratio=0.05, alerting=True)
    assert check_alerts().rules["cache-mismatch"].opened == 1
    CacheCheck.objects.create(sampled=100, holes=0, wrong=0, repaired=0, mismatch_ratio=0, alerting=False)
    assert check_alerts().rules["cache-mismatch"].resolved == 1
