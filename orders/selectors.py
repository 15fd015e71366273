"""Read queries for the order API, the timeline and the customer-service pages."""

from datetime import datetime

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from oms.errors import NotFound

from .identity import masked_hash, normalise_phone, phone_hash, previous_key
from .models import EventKind, Order, OrderEvent, Status, Track
from .models_fulfilment import WAITING, FulfilmentOrder, ShareState

# How long an order may sit in a stage before the timeline calls it blocked, and what it is
# waiting for. Overridable with settings.OMS_STAGE_EXPECTED_SECONDS.
STAGE_EXPECTATIONS: dict[str, tuple[int, str]] = {
    Status.PENDING_PAYMENT: (30 * 60, _("payment")),
    Status.PAID: (30 * 60, _("approval")),
    Status.ON_HOLD: (8 * 3600, _("hold decision")),
    Status.APPROVED: (4 * 3600, _("ship request")),
    Status.SHIP_REQUESTED: (4 * 3600, _("outbound scan")),
    Status.SHIPPED: (48 * 3600, _("delivery")),
    Status.REFUNDING: (24 * 3600, _("refund")),
}


def expected_seconds(stage: str) -> int | None:
    overrides = getattr(settings, "OMS_STAGE_EXPECTED_SECONDS", {}) or {}
    if stage in overrides:
        return overrides[stage]
    expectation = STAGE_EXPECTATIONS.get(stage)
    return expectation[0] if expectation else None


def order_list() -> QuerySet[Order]:
    return Order.objects.select_related("channel", "warehouse").prefetch_related(
        "lines__sku", "shipments__warehouse", "shipments__fulfilment_order",
        "fulfilment_orders__warehouse", "fulfilment_orders__lines__order_line__sku",
    )


def get_order(order_no: str) -> Order:
    try:
        return Order.objects.get(order_no=order_no)
    except Order.DoesNotExist:
        raise NotFound(f"order {order_no} does not exist") from None


def order_detail(order_no: str) -> Order:
    return order_list().get(order_no=order_no)


def search_orders(query: str, limit: int = 50) -> tuple[list[Order], bool]:
    """Order number, channel order id or buyer phone (through the keyed hash).

    Returns the orders and whether some matched only weakly (masked phone prefix + suffix)."""
    query = (query or "").strip()
    if not query:
        return [], False
    base = Order.objects.select_related("channel", "warehouse", "customer")
    matches = list(base.filter(Q(order_no=query.upper()) | Q(external_order_id=query))[:limit])
    weak = False
    phone = normalise_phone(query)
    if phone is not None and not matches:
        # During a key rotation identities not yet re-keyed are found under the previous key.
        keys = [None, *([previous_key()] if previous_key() else [])]
        exact = [h for h in (phone_hash(phone, key) for key in keys) if h]
        by_phone = base.filter(customer__phone_hash__in=exact) | base.filter(
            customer__masked_hash__in=[masked_hash(phone, key) for key in keys], customer__phone_hash="")
        matches = list(by_phone.order_by("-placed_at")[:limit])
        weak = any(o.customer and not o.customer.phone_hash for o in matches)
    return matches, weak


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds()))


def timeline(order: Order, now: datetime | None = None) -> dict:
    """The customer track with time per stage, the full system log, and the blocking point."""
    now = now or timezone.now()
    events = list(
        OrderEvent.objects.filter(order=order).order_by("at", "id").values(
            "id", "at", "track", "kind", "actor", "from_state", "to_state", "summary", "payload")
    )
    # The customer track follows the order in which transitions were recorded (the state
    # chain), whatever clocks stamped them.
    stages = [
        (event["to_state"], event["at"])
        for event in sorted(events, key=lambda e: e["id"])
        if event["track"] == Track.BUSINESS and event["to_state"]
    ]
    customer_track = []
    for index, (stage, entered_at) in enumerate(stages):
        left_at = stages[index + 1][1] if index + 1 < len(stages) else None
        customer_track.append({
            "stage": stage,
            "entered_at": entered_at,
            "left_at": left_at,
            "duration_seconds": _seconds(entered_at, left_at or now),
            "current": left_at is None,
        })
    system_log = [
        {
            "at": event["at"],
            "track": event["track"],
            "kind": event["kind"],
            "actor": event["actor"],
            "from_state": event["from_state"],
            "to_state": event["to_state"],
            "summary": event["summary"],
            "data": event["payload"],
        }
        for event in events
    ]
    shares = fulfilment_orders(order)
    blocking = blocking_point(order, customer_track, events, now)
    waiting = [share for share in shares if share["status"] in WAITING]
    if blocking and waiting:  # where a split order waits: its least advanced share still in a warehouse
        blocking["fulfilment_order"] = waiting[0]["code"]
        blocking["warehouse"] = waiting[0]["warehouse"]
        blocking["last_location"] = waiting[0]["last_location"] or blocking["last_location"]
    return {
        "order_no": order.order_no,
        "status": order.status,
        "fulfilment": order.fulfilment,
        "fulfilment_orders": shares,
        "customer_track": customer_track,
        "system_log": system_log,
        "blocking": blocking,
    }


_SHARE_ORDER = {state: rank for rank, state in enumerate(ShareState.values)}


def fulfilment_orders(order: Order) -> list[dict]:
    """Each warehouse's share: where it is, since when, last seen where (least advanced first)."""
    rows = FulfilmentOrder.objects.filter(order=order).select_related("warehouse").order_by("number")
    shares = [{
        "code": f"{order.order_no}-F{share.number}",
        "warehouse": share.warehouse.code,
        "status": share.status,
        "since": share.cancelled_at or share.returned_at or share.delivered_at or share.outbound_at
        or share.packed_at or share.picking_started_at or share.created_at,
        "last_location": share.last_location,
        "last_scan_at": share.last_scan_at,
    } for share in rows]
    return sorted(shares, key=lambda share: _SHARE_ORDER[share["status"]])


def blocking_point(order: Order, customer_track: list[dict], events, now: datetime) -> dict | None:
    if not customer_track:
        return None
    current = customer_track[-1]
    limit = expected_seconds(current["stage"])
    if limit is None or current["duration_seconds"] <= limit:
        return None
    last_scan = next((e for e in reversed(events) if e["kind"] == EventKind.SCAN), None)
    waiting_for = STAGE_EXPECTATIONS.get(current["stage"], (0, ""))[1]
    return {
        "stage": current["stage"],
        "since": current["entered_at"],
        "duration_seconds": current["duration_seconds"],
        "expected_seconds": limit,
        "waiting_for": str(waiting_for),
        "fulfilment": order.fulfilment,
        "last_location": order.last_location or (last_scan["payload"].get("station") if last_scan else None),
        "last_event_at": events[-1]["at"] if events else None,
    }


def as_json(value):
    """Datetimes as local ISO-8601 (Asia/Shanghai by default), recursively: the timeline API
    answers with this instead of a field-by-field serializer (200 events cost 3× less)."""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat()
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_json(item) for item in value]
    return value
