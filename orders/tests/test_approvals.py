"""Approval workflow: policy routing, who may decide, reject, overdue hand-over, override, API."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone, translation

from oms.errors import Conflict, Forbidden, Invalid, NotFound
from oms.tests.factories import DEFAULT_PASSWORD, UserFactory
from oms.tests.threads import run_together
from orders import approvals, services
from orders.events import SYSTEM, Actor
from orders.models import (
    ApprovalLevel,
    ApprovalPolicy,
    ApprovalStatus,
    ApprovalTask,
    CustomerIdentity,
    EventKind,
    Order,
    OrderEvent,
    Status,
)
from orders.tasks import transfer_overdue_approvals
from orders.tests.factories import SKUFactory, WarehouseFactory, make_order, stock_order

pytestmark = pytest.mark.django_db

@pytest.fixture(autouse=True)
def in_english(settings):
    """These tests read the SOP and admin texts in English; the default language is zh-hans."""
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield



def make_policy(name="big orders", min_amount="1000.00", levels=({"approver_group": "ops"},), **fields):
    policy = ApprovalPolicy.objects.create(name=name, min_amount=Decimal(min_amount), **fields)
    for position, level in enumerate(levels, start=1):
        ApprovalLevel.objects.create(policy=policy, position=position, **level)
    return policy


def order_of(amount, *, category="general", **kwargs) -> Order:
    return make_order(lines=[(SKUFactory(category=category), 1, Decimal(amount))], **kwargs)


def events(order, **filters) -> list[str]:
    return list(OrderEvent.objects.filter(order=order, **filters).order_by("id").values_list("summary", flat=True))


def pending(order) -> ApprovalTask:
    return ApprovalTask.objects.get(order=order, status=ApprovalStatus.PENDING)


# --- routing --------------------------------------------------------------------------------


def test_without_any_active_policy_a_paid_order_waits_for_ops_as_before():
    ApprovalPolicy.objects.create(name="switched off", min_amount=Decimal("0"), active=False)

    order = order_of("5000.00")

    assert order.status == Status.PAID
    assert not ApprovalTask.objects.exists()
    assert not any("auto-approved" in s for s in events(order))


def test_an_order_below_every_active_policy_is_approved_by_the_system():
    make_policy(min_amount="1000.00")

    order = order_of("999.99")

    assert order.status == Status.APPROVED and order.fulfilment == "allocated"
    approval = OrderEvent.objects.get(order=order, to_state=Status.APPROVED)
    assert approval.summary == "auto-approved: below policy thresholds" and approval.actor == "system"
    assert not ApprovalTask.objects.exists()


def test_an_order_at_the_threshold_waits_for_one_level_then_is_approved():
    make_policy(min_amount="1000.00", levels=[{"approver_group": "ops", "due_hours": 4}])
    approver = UserFactory(role="ops")

    order = order_of("1000.00")

    task = pending(order)
    assert order.status == Status.PAID
    assert (task.level, task.assignee_group, task.policy.name) == (1, "ops", "big orders")
    assert timedelta(hours=3, minutes=59) < task.due_at - timezone.now() <= timedelta(hours=4)
    assert any(s.startswith("approval requested (big orders, level 1 of 1)") for s in events(order))

    approvals.decide(task.pk, approver, True, "checked with the buyer")

    order.refresh_from_db()
    task.refresh_from_db()
    assert order.status == Status.APPROVED and order.fulfilment == "allocated"
    assert (task.status, task.decided_by, task.note) == (ApprovalStatus.APPROVED, approver, "checked with the buyer")
    approved = OrderEvent.objects.get(order=order, to_state=Status.APPROVED)
    assert approved.user == approver and "last approval level 1" in approved.summary


def test_two_levels_are_decided_in_order():
    manager = UserFactory()
    make_policy(min_amount="1000.00", levels=[{"approver_group": "ops"}, {"approver_user": manager}])
    ops_user = UserFactory(role="ops")
    order = order_of("20000.00")

    approvals.decide(pending(order).pk, ops_user, True, "")

    second = pending(order)
    order.refresh_from_db()
    assert order.status == Status.PAID
    assert (second.level, second.assignee_user, second.assignee_group) == (2, manager, "")
    with pytest.raises(Forbidden):
        approvals.decide(second.pk, ops_user, True, "")  # level 2 is the manager's alone

    approvals.decide(second.pk, manager, True, "ok")

    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert list(ApprovalTask.objects.filter(order=order).order_by("level").values_list("status", flat=True)) \
        == [ApprovalStatus.APPROVED, ApprovalStatus.APPROVED]


def test_a_vip_policy_applies_to_vip_buyers_only():
    make_policy(name="vip", min_amount="0", customer_levels=["vip"])
    make_policy(name="big", min_amount="100000.00")
    vip_phone, normal_phone = "13900001111", "13900002222"
    first = order_of("50.00", phone=vip_phone, status="pending_payment")
    CustomerIdentity.objects.filter(pk=first.customer_id).update(level=CustomerIdentity.Level.VIP)

    vip_order = order_of("50.00", phone=vip_phone)
    normal_order = order_of("50.00", phone=normal_phone)

    assert pending(vip_order).policy.name == "vip"
    assert normal_order.status == Status.APPROVED


def test_a_category_policy_matches_when_any_line_is_in_the_category():
    make_policy(name="luxury", min_amount="0", sku_categories=["luxury"])
    mixed = make_order(lines=[(SKUFactory(category="general"), 1, Decimal("10.00")),
                              (SKUFactory(category="luxury"), 1, Decimal("10.00"))])
    plain = order_of("10.00", category="general")

    assert pending(mixed).policy.name == "luxury"
    assert plain.status == Status.APPROVED


def test_the_lowest_priority_matching_policy_routes_the_order():
    make_policy(name="second", min_amount="100.00", priority=20, levels=[{"approver_group": "finance"}])
    make_policy(name="first", min_amount="100.00", priority=10, levels=[{"approver_group": "ops"}])

    task = pending(order_of("500.00"))

    assert (task.policy.name, task.assignee_group) == ("first", "ops")


def test_an_order_in_another_currency_cannot_be_compared_and_needs_approval():
    make_policy(min_amount="1000.00", currency="CNY")

    order = order_of("10.00", currency="USD")

    assert pending(order).policy.name == "big orders"


def test_a_confirmed_payment_starts_the_approval_too(ops):
    make_policy(min_amount="1000.00")
    order = order_of("2000.00", status="pending_payment")

    with transaction.atomic():
        locked = services.lock_order(order.order_no)
        services.mark_paid(locked, Actor("provider:generic"), at=timezone.now(), summary="paid",
                           payload={})

    order.refresh_from_db()
    assert order.status == Status.PAID and pending(order).level == 1


# --- who decides, reject --------------------------------------------------------------------


def test_only_the_role_the_approver_or_the_backup_may_decide():
    approver, backup = UserFactory(), UserFactory()
    make_policy(levels=[{"approver_group": "finance", "approver_user": approver, "backup_user": backup}])
    order = order_of("3000.00")
    task = pending(order)

    for outsider in (UserFactory(role="customer_service"), UserFactory(role="ops"), UserFactory()):
        with pytest.raises(Forbidden):
            approvals.decide(task.pk, outsider, True, "")
    assert approvals.may_decide(task, approver) and approvals.may_decide(task, backup)
    assert approvals.may_decide(task, UserFactory(role="finance"))
    task.refresh_from_db()
    assert task.status == ApprovalStatus.PENDING

    approvals.decide(task.pk, backup, True, "")
    assert Order.objects.get(pk=order.pk).status == Status.APPROVED


def test_reject_needs_a_note_and_puts_the_order_on_hold_with_it():
    make_policy()
    approver = UserFactory(role="ops")
    order = order_of("3000.00")
    task = pending(order)

    with pytest.raises(Invalid) as refused:
        approvals.decide(task.pk, approver, False, "  ")
    assert "note" in refused.value.fields

    approvals.decide(task.pk, approver, False, "buyer on the fraud list")

    order.refresh_from_db()
    task.refresh_from_db()
    assert task.status == ApprovalStatus.REJECTED
    assert order.status == Status.ON_HOLD and "buyer on the fraud list" in order.hold_reason
    hold = OrderEvent.objects.get(order=order, to_state=Status.ON_HOLD)
    assert hold.user == approver


def test_a_decided_task_cannot_be_decided_again_and_unknown_is_not_found():
    make_policy()
    approver = UserFactory(role="ops")
    task = pending(order_of("3000.00"))
    approvals.decide(task.pk, approver, True, "")

    with pytest.raises(Conflict):
        approvals.decide(task.pk, approver, False, "changed my mind")
    with pytest.raises(NotFound):
        approvals.decide(999999, approver, True, "")


def test_ops_plain_approve_is_refused_while_an_approval_task_waits(ops):
    make_policy()
    order = order_of("3000.00")

    with pytest.raises(Conflict) as refused:
        services.approve_order(order.order_no, ops)

    assert refused.value.extra["approval_task"] == pending(order).pk
    assert Order.objects.get(pk=order.pk).status == Status.PAID


def test_cancelling_the_order_withdraws_its_pending_task(ops):
    make_policy()
    order = order_of("3000.00")
    task = pending(order)

    services.cancel_order(order.order_no, "buyer cancelled", ops)

    task.refresh_from_db()
    assert task.status == ApprovalStatus.WITHDRAWN and task.decided_at is not None
    assert approvals.transfer_overdue(timezone.now() + timedelta(days=2)) == []


def test_an_order_held_for_stock_is_approved_when_its_hold_is_released(ops):
    make_policy(min_amount="100.00")
    approver = UserFactory(role="ops")
    order = make_order(lines=[(SKUFactory(), 1, Decimal("500.00"))], stock=False)
    assert order.status == Status.ON_HOLD  # out of stock at payment
    task = pending(order)

    approvals.decide(task.pk, approver, True, "")

    order.refresh_from_db()
    assert order.status == Status.ON_HOLD
    assert "approved when the hold is released" in events(order)[-1]

    stock_order(WarehouseFactory(), order)
    services.release_hold(order.order_no, ops)

    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert "approval was granted while the order was on hold" in \
        OrderEvent.objects.get(order=order, to_state=Status.APPROVED).summary


def test_a_below_threshold_order_held_for_stock_is_approved_on_release(ops):
    make_policy(min_amount="1000.00")
    order = make_order(lines=[(SKUFactory(), 1, Decimal("50.00"))], stock=False)
    assert order.status == Status.ON_HOLD and not ApprovalTask.objects.exists()

    stock_order(WarehouseFactory(), order)
    services.release_hold(order.order_no, ops)

    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert OrderEvent.objects.get(order=order, to_state=Status.APPROVED).summary == approvals.AUTO_APPROVED


# --- overdue --------------------------------------------------------------------------------


def test_an_overdue_task_passes_to_the_backup_with_a_new_due_time():
    backup, superior = UserFactory(username="backup-bo"), UserFactory(username="boss")
    make_policy(levels=[{"approver_group": "ops", "backup_user": backup, "superior_user": superior,
                         "due_hours": 8}])
    order = order_of("3000.00")
    first = pending(order)
    later = first.due_at + timedelta(minutes=1)

    assert approvals.transfer_overdue(first.due_at - timedelta(minutes=1)) == []
    notices = approvals.transfer_overdue(later)

    first.refresh_from_db()
    second = pending(order)
    assert first.status == ApprovalStatus.TRANSFERRED and first.escalated_at == later
    assert second.assignee_user == backup and second.transferred_from == first
    assert second.due_at == later + timedelta(hours=8)
    assert notices == [{
        "order_no": order.order_no, "overdue_task": first.pk, "task": second.pk,
        "due_at": first.due_at, "superior_id": superior.pk, "superior": "boss",
        "backup_id": backup.pk, "backup": "backup-bo", "action": "transferred",
        "new_due_at": second.due_at,
    }]
    alert = OrderEvent.objects.filter(order=order, kind=EventKind.ALERT).get()
    assert "passed from role ops to backup backup-bo" in alert.summary and "boss told" in alert.summary
    # Once per task: the next run finds nothing, and only the backup decides now.
    assert approvals.transfer_overdue(later + timedelta(minutes=5)) == []
    with pytest.raises(Forbidden):
        approvals.decide(second.pk, UserFactory(role="ops"), True, "")
    approvals.decide(second.pk, backup, True, "")
    assert Order.objects.get(pk=order.pk).status == Status.APPROVED


def test_an_overdue_task_without_backup_tells_the_superior_once():
    superior = UserFactory(username="chief")
    make_policy(levels=[{"approver_group": "ops", "superior_user": superior, "due_hours": 2}])
    order = order_of("3000.00")
    task = pending(order)
    later = task.due_at + timedelta(seconds=1)

    notices = transfer_overdue_approvals.delay().get()  # the Celery task, eager in tests
    assert notices == []
    notices = approvals.transfer_overdue(later)

    task.refresh_from_db()
    assert task.status == ApprovalStatus.PENDING and task.escalated_at == later
    assert [(n["action"], n["superior"], n["backup"]) for n in notices] == [("escalated", "chief", None)]
    assert approvals.transfer_overdue(later + timedelta(hours=1)) == []
    assert OrderEvent.objects.filter(order=order, kind=EventKind.ALERT).count() == 1


def test_the_scheduled_transfer_emails_the_backup_and_the_superior(mailoutbox):
    backup = UserFactory(username="backup-mail", email="backup@example.com")
    superior = UserFactory(username="boss-mail", email="boss@example.com")
    make_policy(levels=[{"approver_group": "ops", "backup_user": backup, "superior_user": superior,
                         "due_hours": 1}])
    order = order_of("3000.00")
    ApprovalTask.objects.filter(pk=pending(order).pk).update(due_at=timezone.now() - timedelta(minutes=1))

    notices = transfer_overdue_approvals.delay().get()

    assert [n["action"] for n in notices] == ["transferred"]
    [mail] = mailoutbox
    assert sorted(mail.to) == ["backup@example.com", "boss@example.com"]
    assert order.order_no in mail.subject


# --- override -------------------------------------------------------------------------------


def test_override_needs_the_permission_and_a_reason_and_is_audited():
    make_policy(levels=[{"approver_group": "finance"}, {"approver_group": "finance"}])
    order = order_of("3000.00")
    task = pending(order)
    ops_user = UserFactory(role="ops")

    with pytest.raises(Forbidden):
        approvals.override(order.order_no, UserFactory(role="customer_service"), "urgent")
    with pytest.raises(Invalid) as refused:
        approvals.override(order.order_no, ops_user, " ")
    assert "reason" in refused.value.fields
    assert Order.objects.get(pk=order.pk).status == Status.PAID

    approvals.override(order.order_no, ops_user, "CEO's customer, ships today")

    order.refresh_from_db()
    task.refresh_from_db()
    assert order.status == Status.APPROVED
    assert (task.status, task.decided_by, task.note) == \
        (ApprovalStatus.OVERRIDDEN, ops_user, "CEO's customer, ships today")
    audit = OrderEvent.objects.get(order=order, to_state=Status.APPROVED)
    assert audit.user == ops_user and audit.summary == "approved by emergency override: CEO's customer, ships today"
    assert audit.payload["override"] is True and audit.payload["approval_tasks_closed"] == [task.pk]

    with pytest.raises(Conflict):
        approvals.override(order.order_no, ops_user, "again")


def test_auto_approval_runs_as_the_system_even_after_a_user_marks_paid():
    make_policy(min_amount="1000.00")
    order = order_of("10.00", status="pending_payment")
    finance = UserFactory(role="finance")

    with transaction.atomic():
        services.mark_paid(services.lock_order(order.order_no), Actor.for_user(finance),
                           at=timezone.now(), summary="payment accepted", payload={})

    approved = OrderEvent.objects.get(order=order, to_state=Status.APPROVED)
    assert approved.actor == SYSTEM.label and approved.user is None


# --- API ------------------------------------------------------------------------------------


def test_api_lists_tasks_for_ops_and_only_their_own_for_an_approver(client_for):
    manager = UserFactory()
    make_policy(levels=[{"approver_user": manager}])
    order = order_of("3000.00")
    order_of("4000.00")
    ops_client = client_for("ops")

    everything = ops_client.get("/api/v1/approvals/?status=pending")
    one = ops_client.get(f"/api/v1/approvals/?order_no={order.order_no}")

    assert everything.status_code == 200 and everything.json()["count"] == 2
    item = one.json()["results"][0]
    assert item["order_no"] == order.order_no and item["status"] == "pending"
    assert item["assignee_user"] == manager.username and item["policy"] == "big orders"
    assert ops_client.get("/api/v1/approvals/?status=nonsense").status_code == 400
    # Nobody else reads approvals: scanners, integrations, finance and users with no part in them.
    for role in (None, "warehouse_device", "integration", "finance"):
        assert client_for(role).get("/api/v1/approvals/").status_code == 403, role
    from rest_framework.test import APIClient

    approver = APIClient()
    approver.force_authenticate(manager)
    assert approver.get("/api/v1/approvals/").json()["count"] == 2


def test_api_approve_reject_status_codes(client_for):
    make_policy(levels=[{"approver_group": "ops"}])
    order = order_of("3000.00")
    task = pending(order)
    ops_client = client_for("ops")

    assert client_for("customer_service").post(f"/api/v1/approvals/{task.pk}/approve/").status_code == 403
    assert ops_client.post("/api/v1/approvals/999999/approve/").status_code == 404
    no_note = ops_client.post(f"/api/v1/approvals/{task.pk}/reject/", {"note": ""}, format="json")
    assert no_note.status_code == 400 and "note" in no_note.json()["fields"]

    ok = ops_client.post(f"/api/v1/approvals/{task.pk}/approve/", {"note": "fine"}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "approved" and ok.json()["order_status"] == "approved"

    again = ops_client.post(f"/api/v1/approvals/{task.pk}/reject/", {"note": "no"}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "conflict"


def test_api_reject_puts_the_order_on_hold(client_for):
    make_policy(levels=[{"approver_group": "ops"}])
    order = order_of("3000.00")

    reply = client_for("ops").post(f"/api/v1/approvals/{pending(order).pk}/reject/",
                                   {"note": "address is a parcel locker abroad"}, format="json")

    assert reply.status_code == 200 and reply.json()["status"] == "rejected"
    assert reply.json()["order_status"] == "on_hold"


def test_api_override_status_codes(client_for):
    make_policy(levels=[{"approver_group": "finance"}])
    order = order_of("3000.00")
    url = f"/api/v1/orders/{order.order_no}/override-approval/"
    ops_client = client_for("ops")

    assert client_for("customer_service").post(url, {"reason": "x"}, format="json").status_code == 403
    no_reason = ops_client.post(url, {}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["fields"]
    assert ops_client.post("/api/v1/orders/TB000000000/override-approval/", {"reason": "x"},
                           format="json").status_code == 404

    ok = ops_client.post(url, {"reason": "stock runs out tonight"}, format="json")

    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    assert ops_client.post(url, {"reason": "again"}, format="json").status_code == 409


# --- admin ----------------------------------------------------------------------------------


def test_admin_task_actions_call_the_service():
    make_policy(levels=[{"approver_group": "ops"}])
    to_reject, to_approve = order_of("3000.00"), order_of("4000.00")
    user = UserFactory(role="ops", is_staff=True)
    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)

    form = client.post("/admin/orders/approvaltask/",
                       {"action": "reject_selected", "_selected_action": [pending(to_reject).pk]})
    assert form.status_code == 200 and "Why are these orders rejected?" in form.content.decode()
    client.post("/admin/orders/approvaltask/", {"action": "reject_selected", "apply": "1",
                                                "text": "duplicate of a phone order",
                                                "_selected_action": [pending(to_reject).pk]})
    client.post("/admin/orders/approvaltask/",
                {"action": "approve_selected", "_selected_action": [pending(to_approve).pk]})

    to_reject.refresh_from_db()
    to_approve.refresh_from_db()
    assert to_reject.status == Status.ON_HOLD and "duplicate of a phone order" in to_reject.hold_reason
    assert to_approve.status == Status.APPROVED


# --- concurrency (PostgreSQL, real threads) -------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_approvers_deciding_at_once_one_wins_and_overdue_runs_pass_a_task_on_once():
    backup = UserFactory()
    make_policy(levels=[{"approver_group": "ops", "backup_user": backup}])
    first, second = UserFactory(role="ops"), UserFactory(role="ops")
    order = order_of("3000.00")
    task = pending(order)

    results = run_together([
        lambda: approvals.decide(task.pk, first, True, ""),
        lambda: approvals.decide(task.pk, second, False, "no"),
    ])

    outcomes = sorted(kind for kind, _value in results)
    assert outcomes == ["error", "ok"]
    assert isinstance(next(v for k, v in results if k == "error"), Conflict)
    order.refresh_from_db()
    task.refresh_from_db()
    assert (task.status, order.status) in {(ApprovalStatus.APPROVED, Status.APPROVED),
                                           (ApprovalStatus.REJECTED, Status.ON_HOLD)}

    other = order_of("5000.00")
    later = pending(other).due_at + timedelta(minutes=1)
    runs = run_together([lambda: approvals.transfer_overdue(later) for _ in range(3)])
    assert sum(len(value) for _kind, value in runs) == 1
    assert ApprovalTask.objects.filter(order=other, status=ApprovalStatus.TRANSFERRED).count() == 1
    assert pending(other).assignee_user == backup
