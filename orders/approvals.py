"""Approval of paid orders (issue 7): policies, levels of approvers, overdue hand-over, override.

Routing. When an order becomes paid, `start_approval` takes the first active policy (lowest
priority, then id) that matches it (ApprovalPolicy's docstring says when one matches) and opens
a task for its first level. Each approval opens the next level's task; the last one approves
the order. A rejection puts the order on hold with the approver's reason.

The default, on purpose: with NO active policy the workflow is off and nothing changes for a
paid order: it waits in `paid` for ops to approve it by hand, as before approvals existed.
Only once at least one active policy exists does an order matching none of them get approved
by the system ("auto-approved: below policy thresholds"). A policy without levels is not
active configuration and is ignored.

An order on hold (out of stock at payment, held by intake) still enters the workflow; what was
decided while it was held takes effect when the hold is released (`resume_after_release`).

Every function here works on the order row locked first, and writes the order's timeline.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from oms.errors import Conflict, Forbidden, Invalid, NotFound

from . import services
from .events import SYSTEM, Actor, EventKind, Track, record_event
from .models import ApprovalPolicy, ApprovalStatus, ApprovalTask, CustomerIdentity, Order, Status

# Business states in which an order can wait for an approval decision.
AWAITING = (Status.PAID, Status.ON_HOLD)
AUTO_APPROVED = "auto-approved: below policy thresholds"
OVERRIDE_PERMISSION = "orders.override_approval"


# --- routing --------------------------------------------------------------------------------


def active_policies() -> list[ApprovalPolicy]:
    return list(
        ApprovalPolicy.objects.filter(active=True, levels__isnull=False).distinct().order_by("priority", "id")
    )


def _order_facts(order: Order) -> tuple[str, set[str]]:
    level = (
        CustomerIdentity.objects.filter(pk=order.customer_id).values_list("level", flat=True).first()
        if order.customer_id else None
    ) or CustomerIdentity.Level.NORMAL
    categories = set(order.lines.values_list("sku__category", flat=True))
    return level, categories


def policy_matches(policy: ApprovalPolicy, order: Order, customer_level: str, categories: set[str]) -> bool:
    """Every criterion the policy sets must hold. An amount in another currency cannot be
    compared with the threshold, so it counts as reaching it (approval is the safe side)."""
    if order.currency == policy.currency and order.payable_amount < policy.min_amount:
        return False
    if policy.customer_levels and customer_level not in policy.customer_levels:
        return False
    return not policy.sku_categories or bool(categories & set(policy.sku_categories))


def new_order_facts(order: Order, lines) -> tuple[str, set[str]]:
    """`_order_facts` of an order built in memory with these lines (orders.batch)."""
    level = (order.customer.level if order.customer else None) or CustomerIdentity.Level.NORMAL
    return level, {line.sku.category for line in lines}


def matching_policy(order: Order, policies: list[ApprovalPolicy] | None = None,
                    facts: tuple[str, set[str]] | None = None) -> ApprovalPolicy | None:
    policies = active_policies() if policies is None else policies
    if not policies:
        return None
    level, categories = facts or _order_facts(order)
    return next((p for p in policies if policy_matches(p, order, level, categories)), None)


def pending_task(order: Order) -> ApprovalTask | None:
    return order.approval_tasks.filter(status=ApprovalStatus.PENDING).first()


def _approver_label(task: ApprovalTask) -> str:
    names = []
    if task.assignee_group:
        names.append(f"role {task.assignee_group}")
    if task.assignee_user_id:
        names.append(task.assignee_user.get_username())
    return " or ".join(names) or "nobody"


def start_approval(order: Order, actor: Actor, at: datetime | None = None, *,
                   policies: list[ApprovalPolicy] | None = None, facts: tuple[str, set[str]] | None = None,
                   known=None) -> ApprovalTask | None:
    """On a locked order that just became paid, in the caller's transaction: open the first
    level's task of the matching policy, or approve it when it matches none (only if some
    policy is active at all). Returns the pending task, if any. Safe to call again.

    orders.batch, for a new order built in memory, passes what it knows instead of having it
    read again: the active `policies` (once a page), the order's `facts` (new_order_facts) and
    `known` (stock_flow.KnownStock)."""
    if order.status not in AWAITING:
        return None
    policies = active_policies() if policies is None else policies
    if not policies:
        return None  # no approval policy configured: ops approve by hand, as before
    waiting = None if order._state.adding else pending_task(order)  # a new order has no task yet
    if waiting is not None:
        return waiting
    at = at or timezone.now()
    policy = matching_policy(order, policies, facts)
    if policy is None:
        checked = {"policies_checked": [p.name for p in policies]}
        if order.status == Status.PAID:
            services.approve_locked(order, SYSTEM, at=at, summary=AUTO_APPROVED, payload=checked, known=known)
        else:
            record_event(order, track=Track.SYSTEM, kind=EventKind.NOTE, actor=SYSTEM, at=at,
                         summary="below approval policy thresholds: approved when the hold is released",
                         payload=checked)
        return None
    return _open_task(order, policy, policy.levels.order_by("position").first(), at=at,
                      trigger=actor.label)


def _open_task(order: Order, policy: ApprovalPolicy, level, *, at: datetime, trigger: str = "") -> ApprovalTask:
    task = ApprovalTask.objects.create(
        order=order, policy=policy, level=level.position, assignee_group=level.approver_group,
        assignee_user=level.approver_user, backup_user=level.backup_user,
        superior_user=level.superior_user, due_at=at + timedelta(hours=level.due_hours), created_at=at,
    )
    levels = policy.levels.count()
    record_event(
        order, track=Track.SYSTEM, kind=EventKind.NOTE, actor=SYSTEM, at=at,
        summary=f"approval requested ({policy.name}, level {level.position} of {levels}): "
                f"{_approver_label(task)}, due {timezone.localtime(task.due_at):%Y-%m-%d %H:%M}",
        payload={"approval_task": task.pk, "policy": policy.name, "level": level.position,
                 "trigger": trigger},
    )
    return task


# --- decisions ------------------------------------------------------------------------------


def may_decide(task: ApprovalTask, user) -> bool:
    """The task's approver, its backup, or a member of its approver role."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.pk in (task.assignee_user_id, task.backup_user_id):
        return True
    return bool(task.assignee_group) and user.groups.filter(name=task.assignee_group).exists()


def _lock_task(task_id: int) -> tuple[Order, ApprovalTask]:
    """The order row first, then the task: the order is what every writer serializes on."""
    order_no = ApprovalTask.objects.filter(pk=task_id).values_list("order__order_no", flat=True).first()
    if order_no is None:
        raise NotFound(f"approval task {task_id} does not exist")
    order = services.lock_order(order_no)
    task = ApprovalTask.objects.select_for_update(of=("self",)).select_related("policy").get(pk=task_id)
    return order, task


@transaction.atomic
def decide(task_id: int, user, approve: bool, note: str = "") -> ApprovalTask:
    """An approver's decision. Approve: the next level's task opens, or after the last level
    the order is approved. Reject (a note is required): the order goes on hold with it."""
    note = (note or "").strip()
    order, task = _lock_task(task_id)
    if not may_decide(task, user):
        raise Forbidden(f"user {getattr(user, 'username', '?')} may not decide approval task {task.pk} "
                        f"(for {_approver_label(task)})")
    if task.status != ApprovalStatus.PENDING:
        raise Conflict(f"approval task {task.pk} is already {task.status}",
                       state={"status": task.status}, allowed=[])
    if not approve and not note:
        raise Invalid({"note": [_("Say why the order is rejected.")]})
    if order.status not in AWAITING:  # not reachable while withdraw_pending runs; kept as a guard
        raise Conflict(f"order {order.order_no} is {order.status}: nothing to approve",
                       state={"status": order.status, "fulfilment": order.fulfilment}, allowed=[])
    now = timezone.now()
    task.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    task.decided_by = user
    task.decided_at = now
    task.note = note
    task.save(update_fields=["status", "decided_by", "decided_at", "note"])
    actor = Actor.for_user(user)
    verdict = "approved" if approve else "rejected"
    record_event(
        order, track=Track.SYSTEM, kind=EventKind.NOTE, actor=actor, at=now,
        summary=f"approval level {task.level} ({task.policy.name}) {verdict}" + (f": {note}" if note else ""),
        payload={"approval_task": task.pk, "decision": verdict, "note": note},
    )
    if approve:
        _after_approval(order, task, actor, now)
    else:
        _after_rejection(order, task, actor, now, note)
    return task


def _after_approval(order: Order, task: ApprovalTask, actor: Actor, now: datetime) -> None:
    policy = task.policy
    following = policy.levels.filter(position__gt=task.level).order_by("position").first()
    if following is not None:
        _open_task(order, policy, following, at=now, trigger=actor.label)
        return
    if order.status == Status.PAID:
        services.approve_locked(
            order, actor, at=now, check_permission=False,
            summary=f"approved: {policy.name}, last approval level {task.level}",
            payload={"approval_task": task.pk, "policy": policy.name},
        )
    else:
        record_event(order, track=Track.SYSTEM, kind=EventKind.NOTE, actor=actor, at=now,
                     summary=f"approval complete; the order stays on hold ({order.hold_reason}) "
                             f"and is approved when the hold is released"[:255],
                     payload={"approval_task": task.pk})


def _after_rejection(order: Order, task: ApprovalTask, actor: Actor, now: datetime, note: str) -> None:
    reason = f"approval rejected by {actor.label} ({task.policy.name}, level {task.level}): {note}"
    if order.status == Status.PAID:
        services.transition(order, "hold", actor, at=now, reason=reason[:1000], check_permission=False,
                            summary=f"on hold: {reason}"[:255], payload={"approval_task": task.pk})
    else:
        record_event(order, track=Track.SYSTEM, kind=EventKind.NOTE, actor=actor, at=now,
                     summary=f"{reason}; the order was already on hold"[:255],
                     payload={"approval_task": task.pk})


def refuse_if_pending(order: Order) -> None:
    """ops' plain approve must not jump an open approval: decide the task or override it."""
    task = pending_task(order)
    if task is not None:
        raise Conflict(
            f"order {order.order_no} waits for approval (level {task.level}, {_approver_label(task)}): "
            f"decide approval task {task.pk} or override the approval with a reason",
            state={"status": order.status, "fulfilment": order.fulfilment}, allowed=[],
            approval_task=task.pk,
        )


@transaction.atomic
def override(order_no: str, user, reason: str) -> Order:
    """Emergency override: close the pending tasks as overridden and approve the paid order.
    Needs `orders.override_approval` and a reason, both kept on the timeline."""
    reason = (reason or "").strip()
    if user is None or not user.has_perm(OVERRIDE_PERMISSION):
        raise Forbidden(f"user {getattr(user, 'username', '?')} may not override approvals")
    if not reason:
        raise Invalid({"reason": [_("A reason is required.")]})
    order = services.lock_order(order_no)
    if order.status != Status.PAID:
        raise Conflict(
            f"cannot override the approval of an order that is {order.status}"
            + (": release the hold first" if order.status == Status.ON_HOLD else ""),
            state={"status": order.status, "fulfilment": order.fulfilment},
            allowed=["release_hold"] if order.status == Status.ON_HOLD else [],
        )
    now = timezone.now()
    closed = list(order.approval_tasks.filter(status=ApprovalStatus.PENDING).values_list("pk", flat=True))
    ApprovalTask.objects.filter(pk__in=closed).update(
        status=ApprovalStatus.OVERRIDDEN, decided_by=user, decided_at=now, note=reason[:2000]
    )
    services.approve_locked(
        order, Actor.for_user(user), at=now, check_permission=False,
        summary=f"approved by emergency override: {reason}"[:255],
        payload={"override": True, "reason": reason, "approval_tasks_closed": closed},
    )
    return order


def _granted(task: ApprovalTask) -> bool:
    if task.status == ApprovalStatus.OVERRIDDEN:
        return True
    return (task.status == ApprovalStatus.APPROVED
            and not task.policy.levels.filter(position__gt=task.level).exists())


def resume_after_release(order: Order, actor: Actor, at: datetime | None = None) -> None:
    """On a locked order just released from hold (back to paid): an approval granted while it
    was held approves it now; one never started starts (policies permitting); a pending task
    keeps waiting; a rejection leaves it to ops (they released it on purpose)."""
    if order.status != Status.PAID:
        return
    latest = order.approval_tasks.select_related("policy").order_by("-created_at", "-id").first()
    if latest is None:
        start_approval(order, actor, at=at)
    elif _granted(latest):
        services.approve_locked(order, SYSTEM, at=at, check_permission=False,
                                summary="approved: approval was granted while the order was on hold",
                                payload={"approval_task": latest.pk})


def withdraw_pending(order: Order, at: datetime | None = None) -> int:
    """On a locked order leaving for cancelled / refunding / refunded: nobody needs to decide."""
    at = at or timezone.now()
    withdrawn = order.approval_tasks.filter(status=ApprovalStatus.PENDING).update(
        status=ApprovalStatus.WITHDRAWN, decided_at=at, note=f"order {order.status}"
    )
    if withdrawn:
        record_event(order, track=Track.SYSTEM, kind=EventKind.NOTE, actor=SYSTEM, at=at,
                     summary=f"pending approval withdrawn: the order is {order.status}")
    return withdrawn


# --- overdue tasks --------------------------------------------------------------------------


def transfer_overdue(now: datetime | None = None, limit: int = 500) -> list[dict]:
    """Pending tasks past due: pass each to its backup (the task becomes `transferred` and a
    new pending task with a fresh due time opens for the backup), or, without a backup, just
    flag it. Either way once per task, with an alert event on the order. Returns who must be
    told: one dict per task (`superior_id`/`superior` for the superior, `backup_id`/`backup`
    for the new approver); the alerts app sends the notices. Each task in its own transaction."""
    now = now or timezone.now()
    candidates = list(
        ApprovalTask.objects.filter(status=ApprovalStatus.PENDING, due_at__lte=now, escalated_at__isnull=True)
        .order_by("due_at", "id").values_list("pk", "order__order_no")[:limit]
    )
    notices = []
    for task_id, order_no in candidates:
        with transaction.atomic():
            order = services.lock_order(order_no)
            task = (ApprovalTask.objects.select_for_update(of=("self",))
                    .select_related("policy", "assignee_user", "backup_user", "superior_user").get(pk=task_id))
            if task.status != ApprovalStatus.PENDING or task.escalated_at is not None or task.due_at > now:
                continue  # decided or handled by a concurrent run meanwhile
            notices.append(_pass_on(order, task, now))
    return notices


def _pass_on(order: Order, task: ApprovalTask, now: datetime) -> dict:
    superior = task.superior_user
    backup = task.backup_user if task.backup_user_id not in (None, task.assignee_user_id) else None
    task.escalated_at = now
    notice = {
        "order_no": order.order_no,
        "overdue_task": task.pk,
        "task": task.pk,
        "due_at": task.due_at,
        "superior_id": superior.pk if superior else None,
        "superior": superior.get_username() if superior else None,
        "backup_id": None,
        "backup": None,
        "action": "escalated",
    }
    told = f"; superior {superior.get_username()} told" if superior else "; no superior to tell"
    if backup is None:
        task.save(update_fields=["escalated_at"])
        summary = f"approval overdue since {timezone.localtime(task.due_at):%Y-%m-%d %H:%M}: " \
                  f"{_approver_label(task)} has not decided, no backup{told}"
    else:
        task.status = ApprovalStatus.TRANSFERRED
        task.decided_at = now
        task.note = f"not decided in time: passed to {backup.get_username()}"
        task.save(update_fields=["escalated_at", "status", "decided_at", "note"])
        successor = ApprovalTask.objects.create(
            order=order, policy=task.policy, level=task.level, assignee_user=backup,
            superior_user=superior, due_at=now + (task.due_at - task.created_at), created_at=now,
            transferred_from=task,
        )
        notice.update(task=successor.pk, backup_id=backup.pk, backup=backup.get_username(),
                      action="transferred", new_due_at=successor.due_at)
        summary = f"approval overdue: passed from {_approver_label(task)} to backup " \
                  f"{backup.get_username()}, due {timezone.localtime(successor.due_at):%Y-%m-%d %H:%M}{told}"
    record_event(order, track=Track.SYSTEM, kind=EventKind.ALERT, actor=SYSTEM, at=now,
                 summary=summary[:255],
                 payload={key: value.isoformat() if isinstance(value, datetime) else value
                          for key, value in notice.items()})
    return notice
