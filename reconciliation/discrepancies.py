"""Working the difference list: status, assignee and notes, every change kept in the history."""

from django.contrib.auth import get_user_model
from django.db import transaction

from oms.errors import Invalid, NotFound

from .models import Discrepancy, DiscrepancyEvent, DiscrepancyStatus


@transaction.atomic
def update_discrepancy(
    discrepancy_id: int, user, *, status: str | None = None, note: str = "",
    assignee: str | None = None,
) -> Discrepancy:
    """Change what was asked; `assignee` is a username, "" to unassign. Closing or resolving
    needs a note: the next person must see why the money is considered settled."""
    try:
        discrepancy = Discrepancy.objects.select_for_update().get(pk=discrepancy_id)
    except Discrepancy.DoesNotExist:
        raise NotFound(f"discrepancy {discrepancy_id} does not exist") from None
    errors = {}
    if status is not None and status not in DiscrepancyStatus.values:
        errors["status"] = [f"one of {', '.join(DiscrepancyStatus.values)}"]
    settling = status in (DiscrepancyStatus.RESOLVED, DiscrepancyStatus.CLOSED)
    if settling and status != discrepancy.status and not note.strip():
        errors["note"] = ["say how it was settled"]
    new_assignee = discrepancy.assignee
    if assignee is not None:
        new_assignee = _user(assignee) if assignee else None
        if assignee and new_assignee is None:
            errors["assignee"] = [f"no user {assignee}"]
    if errors:
        raise Invalid(errors)
    before = discrepancy.status
    if status is not None:
        discrepancy.status = status
    discrepancy.assignee = new_assignee
    discrepancy.save(update_fields=["status", "assignee", "updated_at"])
    DiscrepancyEvent.objects.create(
        discrepancy=discrepancy, user=user, from_status=before, to_status=discrepancy.status,
        assignee=new_assignee.get_username() if new_assignee else "", note=note.strip(),
    )
    return discrepancy


def _user(username: str):
    return get_user_model().objects.filter(username=username, is_active=True).first()
