"""Exception cases: detection per kind, idempotency, SOPs, closing with a root cause, the
72-hour closure rate, the API and the admin."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone, translation

from channels.intake import ingest_raw
from channels.models import Channel
from inventory.services import receive_stock
from oms.errors import Conflict, Forbidden, Invalid
from oms.tests.factories import DEFAULT_PASSWORD, UserFactory
from oms.tests.threads import run_together
from orders import cases, services
from orders.events import SYSTEM
from orders.models import (
    CaseStatus,
    EventKind,
    ExceptionCase,
    ExceptionSop,
    Order,
    OrderEvent,
    Status,
)
from orders.tasks import detect_exception_cases
from orders.tests.factories import SKUFactory, WarehouseFactory, make_order

pytestmark = pytest.mark.django_db

@pytest.fixture(autouse=True)
def in_english(settings):
    """These tests read the SOP and admin texts in English; the default language is zh-hans."""
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


NOTHING = {"placeholder_address": 0, "intake_held": 0, "amount_mismatch": 0, "stock_shortage": 0,
           "payment_timeout": 0}


@pytest.fixture
def mini():
    channel = Channel.objects.create(code="MINI", name="Mini-program", kind="generic")
    sku = SKUFactory(code="SKU-001", barcode="6901234567890")
    receive_stock(WarehouseFactory(code="WH-SH", provinces=["上海"]).code, sku.code, 100)
    return channel


def intake(channel, n: int, **overrides) -> Order:
    """An order through channel intake (archive, validation, hold), as the webhook runs it."""
    raw = {
        "external_order_id": f"MP-{n}", "status": "paid", "currency": "CNY",
        "buyer": {"name": "张三", "phone": "13800001234"},
        "receiver": {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
                     "district": "浦东新区", "address": "世纪大道100号"},
        "lines": [{"sku": "SKU-001", "quantity": 2, "unit_price": "99.00", "discount": "0.00"}],
        "shipping_fee": "0.00", "discount_total": "0.00", "payable": "198.00",
    }
    raw.update(overrides)
    result = ingest_raw(channel, raw, "webhook")
    return Order.objects.get(order_no=result.order_no)


def receiver(**fields) -> dict:
    return {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
            "district": "浦东新区", "address": "世纪大道100号", **fields}


def open_cases(order) -> dict[str, ExceptionCase]:
    return {c.kind: c for c in ExceptionCase.objects.filter(order=order, status=CaseStatus.OPEN)}


# --- detection ------------------------------------------------------------------------------


def test_an_intake_hold_for_a_placeholder_address_opens_that_case(mini):
    order = intake(mini, 1, receiver=receiver(address="临时地址"))
    assert order.status == Status.ON_HOLD and order.hold_reason.startswith("intake:")

    found = cases.detect_cases()

    assert found == {**NOTHING, "placeholder_address": 1}
    case = open_cases(order)["placeholder_address"]
    assert (case.stage, case.severity, case.responsibility, case.owner_role) == \
        ("in_sale", "medium", "customer", "customer_service")
    assert case.due_at - case.opened_at == timedelta(hours=4)
    assert "placeholder" in case.detail
    alert = OrderEvent.objects.get(order=order, kind=EventKind.ALERT)
    assert alert.summary.startswith(f"exception case #{case.pk} opened (placeholder address")


def test_an_intake_hold_for_missing_data_and_wrong_amounts_opens_one_case_per_kind(mini):
    order = intake(mini, 2, receiver=receiver(name=""), payable="190.00")

    found = cases.detect_cases()

    assert found == {**NOTHING, "intake_held": 1, "amount_mismatch": 1}
    opened = open_cases(order)
    assert set(opened) == {"intake_held", "amount_mismatch"}
    assert opened["amount_mismatch"].owner_role == "finance"
    assert "receiver.name is missing" in opened["intake_held"].detail


def test_a_stock_shortage_hold_opens_a_stock_case():
    order = make_order(lines=[(SKUFactory(code="RARE-1"), 3, Decimal("10.00"))], stock=False)
    assert order.status == Status.ON_HOLD

    found = cases.detect_cases()

    assert found == {**NOTHING, "stock_shortage": 1}
    case = open_cases(order)["stock_shortage"]
    assert case.severity == "high" and case.owner_role == "ops" and "RARE-1" in case.detail


def test_an_order_unpaid_for_30_minutes_opens_a_payment_timeout_case():
    now = timezone.now()
    late = make_order(status="pending_payment", placed_at=now - timedelta(minutes=31))
    make_order(status="pending_payment", placed_at=now - timedelta(minutes=10))  # not yet
    make_order(status="pending_payment", placed_at=now - timedelta(days=8))  # past the look-back

    found = cases.detect_cases(now)

    assert found == {**NOTHING, "payment_timeout": 1}
    case = ExceptionCase.objects.get()
    assert (case.order_id, case.kind, case.stage, case.responsibility) == \
        (late.pk, "payment_timeout", "pre_sale", "customer")
    assert case.detail.startswith("unpaid for 31 min")


def test_a_second_detection_opens_nothing_new(mini):
    intake(mini, 3, receiver=receiver(address="test street 1"))
    make_order(lines=[(SKUFactory(), 1, Decimal("10.00"))], stock=False)
    make_order(status="pending_payment", placed_at=timezone.now() - timedelta(hours=1))
    first = cases.detect_cases()
    assert sum(first.values()) == 3

    again = detect_exception_cases.delay().get()  # the Celery task, eager in tests

    assert again == NOTHING
    assert ExceptionCase.objects.count() == 3
    assert OrderEvent.objects.filter(kind=EventKind.ALERT).count() == 3


def test_a_case_closed_during_a_hold_is_not_reopened_but_a_new_hold_opens_a_new_one(mini, ops):
    order = intake(mini, 4, receiver=receiver(address="临时地址"))
    cases.detect_cases()
    case = open_cases(order)["placeholder_address"]
    cases.close_case(case.pk, UserFactory(role="ops"), "buyer gave the real address by phone")

    assert cases.detect_cases() == NOTHING

    services.release_hold(order.order_no, ops)
    services.hold_order(order.order_no, "intake: receiver.address looks like a placeholder: '临时地址'", ops)
    assert cases.detect_cases() == {**NOTHING, "placeholder_address": 1}


def test_a_hold_ops_put_for_another_reason_is_not_an_exception_case(ops):
    order = make_order()
    services.hold_order(order.order_no, "buyer asked to wait until Monday", ops)

    assert cases.detect_cases() == NOTHING


# --- open, close, SOP -----------------------------------------------------------------------


def test_open_case_is_idempotent_per_order_and_kind():
    order = make_order()

    first, created = cases.open_case(order, "carrier_anomaly", "no scan for 3 days", actor=SYSTEM,
                                     sub_reason="no_update")
    again, created_again = cases.open_case(order, "carrier_anomaly", "still nothing", actor=SYSTEM)
    other, _ = cases.open_case(order, "amount_mismatch", "paid 10, payable 12", actor=SYSTEM,
                               severity="critical")

    assert created and not created_again and again.pk == first.pk
    assert other.pk != first.pk and other.severity == "critical"
    assert OrderEvent.objects.filter(order=order, kind=EventKind.ALERT).count() == 2
    assert "ask the carrier where the parcel is" in cases.sop_for("carrier_anomaly", "no_update")["recommended_action"]
    with pytest.raises(Invalid):
        cases.open_case(order, "made_up", "", actor=SYSTEM)
    with pytest.raises(Invalid):
        cases.open_case(order, "carrier_anomaly", "", actor=SYSTEM, sub_reason="teleported")


def test_an_sop_override_in_the_admin_table_applies_to_new_cases():
    ExceptionSop.objects.create(kind="stock_shortage", time_limit_hours=2, owner_role="purchasing",
                                recommended_action="Call the supplier first.")
    order = make_order()

    case, _ = cases.open_case(order, "stock_shortage", "short by 3", actor=SYSTEM)

    assert case.due_at - case.opened_at == timedelta(hours=2) and case.owner_role == "purchasing"
    sop = cases.sop_for("stock_shortage")
    assert sop["recommended_action"] == "Call the supplier first." and sop["severity"] == "high"


def test_close_needs_a_root_cause_the_permission_and_an_open_case():
    order = make_order()
    case, _ = cases.open_case(order, "intake_held", "receiver.name is missing", actor=SYSTEM)
    ops_user = UserFactory(role="ops")

    with pytest.raises(Invalid) as refused:
        cases.close_case(case.pk, ops_user, "   ")
    assert list(refused.value.fields) == ["root_cause"]
    with pytest.raises(Forbidden):
        cases.close_case(case.pk, UserFactory(role="customer_service"), "fixed")

    closed = cases.close_case(case.pk, ops_user, "channel feed dropped the name; fixed by the channel")

    assert (closed.status, closed.closed_by, closed.root_cause) == \
        ("closed", ops_user, "channel feed dropped the name; fixed by the channel")
    assert OrderEvent.objects.filter(order=order, summary__contains="closed: channel feed").exists()
    with pytest.raises(Conflict):
        cases.close_case(case.pk, ops_user, "again")
    reopened, created = cases.open_case(order, "intake_held", "again", actor=SYSTEM)
    assert created and reopened.pk != case.pk  # one OPEN case per kind, closed ones stay


def test_closure_rate_counts_cases_closed_within_72_hours_of_opening():
    start = timezone.now() - timedelta(days=10)
    ops_user = UserFactory(role="ops")
    made = []
    for hours_to_close in (1, 71, 73, None):
        case, _ = cases.open_case(make_order(), "intake_held", "x", actor=SYSTEM, at=start)
        if hours_to_close is not None:
            cases.close_case(case.pk, ops_user, "fixed")
            ExceptionCase.objects.filter(pk=case.pk).update(closed_at=start + timedelta(hours=hours_to_close))
        made.append(case)
    cases.open_case(make_order(), "intake_held", "outside the window", actor=SYSTEM)

    rate = cases.closure_rate_72h(start - timedelta(hours=1), start + timedelta(hours=1))

    assert rate == {"opened": 4, "closed_within_72h": 2, "rate": 0.5}
    assert cases.closure_rate_72h(start - timedelta(days=30), start - timedelta(days=20)) == \
        {"opened": 0, "closed_within_72h": 0, "rate": None}


def test_closure_rate_is_reported_by_the_api(client_for):
    case, _ = cases.open_case(make_order(), "intake_held", "x", actor=SYSTEM)
    cases.close_case(case.pk, UserFactory(role="ops"), "fixed the address")
    ops = client_for("ops")
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    body = ops.get("/api/v1/exceptions/closure-rate/", {"until": tomorrow}).json()
    assert (body["opened"], body["closed_within_72h"], body["rate"]) == (1, 1, 1.0)
    assert ops.get("/api/v1/exceptions/closure-rate/", {"since": "soon"}).status_code == 400


# --- API ------------------------------------------------------------------------------------


def test_api_lists_cases_with_their_sop_and_filters_by_status_and_category(client_for, mini):
    held = intake(mini, 5, receiver=receiver(address="临时地址"))
    make_order(status="pending_payment", placed_at=timezone.now() - timedelta(hours=1))
    cases.detect_cases()
    cs = client_for("customer_service")

    everything = cs.get("/api/v1/exceptions/")
    by_kind = cs.get("/api/v1/exceptions/", {"category": "placeholder_address", "status": "open"})
    by_stage = cs.get("/api/v1/exceptions/", {"category": "pre_sale"})

    assert everything.status_code == 200 and everything.json()["count"] == 2
    item = by_kind.json()["results"][0]
    assert by_kind.json()["count"] == 1 and item["order_no"] == held.order_no
    assert item["sop"]["owner_role"] == "customer_service" and item["sop"]["time_limit_hours"] == 4
    assert "real delivery address" in item["sop"]["recommended_action"]
    assert [i["kind"] for i in by_stage.json()["results"]] == ["payment_timeout"]
    assert cs.get("/api/v1/exceptions/", {"category": "nonsense"}).status_code == 400
    assert client_for("warehouse_device").get("/api/v1/exceptions/").status_code == 403


def test_api_close_status_codes(client_for):
    case, _ = cases.open_case(make_order(), "stock_shortage", "short", actor=SYSTEM)
    url = f"/api/v1/exceptions/{case.pk}/close/"
    ops_client = client_for("ops")

    assert client_for("customer_service").post(url, {"root_cause": "x"}, format="json").status_code == 403
    missing = ops_client.post(url, {}, format="json")
    assert missing.status_code == 400 and "root_cause" in missing.json()["fields"]
    assert ops_client.post("/api/v1/exceptions/999999/close/", {"root_cause": "x"},
                           format="json").status_code == 404

    ok = ops_client.post(url, {"root_cause": "supplier late; reordered"}, format="json")

    assert ok.status_code == 200 and ok.json()["status"] == "closed"
    assert ok.json()["closed_by"] == ops_client.user.username
    assert ops_client.post(url, {"root_cause": "again"}, format="json").status_code == 409


# --- admin ----------------------------------------------------------------------------------


def admin_client(role="ops") -> Client:
    user = UserFactory(role=role, is_staff=True)
    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    return client


def test_admin_close_action_asks_for_the_root_cause_then_calls_the_service():
    case, _ = cases.open_case(make_order(), "intake_held", "receiver.name is missing", actor=SYSTEM)
    client = admin_client()
    selected = {"action": "close_selected", "_selected_action": [case.pk]}

    form = client.post("/admin/orders/exceptioncase/", selected)
    assert form.status_code == 200 and "Root cause" in form.content.decode()
    blank = client.post("/admin/orders/exceptioncase/", {**selected, "apply": "1", "text": ""})
    assert blank.status_code == 200
    case.refresh_from_db()
    assert case.status == "open"

    client.post("/admin/orders/exceptioncase/", {**selected, "apply": "1", "text": "name added by buyer"})

    case.refresh_from_db()
    assert case.status == "closed" and case.root_cause == "name added by buyer"


def test_admin_case_page_shows_the_sop_and_the_sop_and_policy_pages_answer():
    case, _ = cases.open_case(make_order(), "carrier_anomaly", "back twice", actor=SYSTEM,
                              sub_reason="repeated_returns")
    client = admin_client()

    page = client.get(f"/admin/orders/exceptioncase/{case.pk}/change/").content.decode()

    assert "call the buyer to confirm the address" in page
    for url in ("/admin/orders/exceptioncase/?status__exact=open", "/admin/orders/exceptionsop/",
                "/admin/orders/exceptionsop/add/", "/admin/orders/approvalpolicy/",
                "/admin/orders/approvalpolicy/add/", "/admin/orders/approvaltask/",
                "/admin/orders/customeridentity/"):
        assert client.get(url).status_code == 200, url


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_detection_running_twice_at_once_opens_each_case_once():
    make_order(lines=[(SKUFactory(), 1, Decimal("10.00"))], stock=False)
    make_order(status="pending_payment", placed_at=timezone.now() - timedelta(hours=1))

    results = run_together([cases.detect_cases for _ in range(3)])

    assert all(kind == "ok" for kind, _value in results)
    assert sum(sum(value.values()) for _kind, value in results) == 2
    assert ExceptionCase.objects.count() == 2
