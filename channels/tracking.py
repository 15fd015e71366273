"""Carrier tracking, end to end: subscribe each new shipment, apply what the carrier pushes or
what a poll finds, move the order's tracks, and open an exception case for trouble.

* `subscribe_shipment` — after the outbound scan (queued on commit by orders.scanning): the
  ShipmentTracking row, and a Kuaidi100 subscription so updates are pushed to us.
* `apply_update` — one update (push or poll), under the order's row lock. Idempotent: the
  carrier sends the full route every time, and only checkpoints not stored yet are recorded
  (as physical-track scan events by `carrier:<code>`) and acted on, oldest first:
  on the way → fulfilment outbound → in_transit; signed → delivered on the physical track and
  then on the business track (for a split order, once every parcel is signed);
  returned / rejected → returned. Only through `orders.services.transition`.
  Anomalies (channels/carriers/anomalies.py) are recomputed each time; each code that is new
  for the parcel opens a `carrier_anomaly` exception case.
* `poll_due` — the hourly sweep: parcels still on their way whose last push, poll (or, never
  heard of, outbound scan) is older than OMS_TRACKING_POLL_HOURS. One failing poll is
  recorded on its row and the sweep goes on.
* `check_stale` — every 30 minutes: parcels with no carrier news OMS_TRACKING_STALE_HOURS
  (48) after the outbound scan, or since their newest checkpoint, get `no_update` and a case;
  shipments that have no tracking row (their task was lost) get one here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed

from orders import fulfilment
from orders.events import SYSTEM, Actor, EventKind, Track, record_event
from orders.models import Fulfilment, FulfilmentOrder, Order, Shipment
from orders.services import lock_order, transition

from .carriers import (
    CarrierError,
    TrackingCheckpoint,
    TrackingSignatureError,
    TrackingState,
    TrackingUpdate,
)
from .carriers.anomalies import (
    NO_UPDATE,
    OFF_ROUTE,
    REPEATED_RETURNS,
    detect_anomalies,
    return_episodes,
)
from .carriers.kuaidi100 import COMPANY_CODES, Kuaidi100Adapter, kuaidi100_company
from .carriers.sandbox import DEFAULT_ORIGIN, SandboxCarrier, SandboxParcel
from .models_tracking import IN_FLIGHT, NO_RECORD, ShipmentTracking, heard_at

logger = logging.getLogger(__name__)

S = TrackingState
MAX_CHECKPOINTS = 100
RETURNING = {S.RETURNED, S.REJECTED}
CASE_KIND = "carrier_anomaly"
# Parcels are polled for at most this long after the outbound scan; Kuaidi100 itself gives
# up on a number after 60 days without change.
POLL_FOR = timedelta(days=30)
SOURCES = ("push", "poll")


def poll_interval() -> timedelta:
    return timedelta(hours=getattr(settings, "OMS_TRACKING_POLL_HOURS", 6))


def stale_after() -> timedelta:
    return timedelta(hours=getattr(settings, "OMS_TRACKING_STALE_HOURS", 48))


# --- adapters ----------------------------------------------------------------------------------

def build_adapter(code: str | None = None, *, clock=None):
    """The configured carrier adapter, new for each use (the sandbox remembers subscriptions
    in memory; a fresh one always reads the shipment's real outbound time)."""
    code = code or settings.OMS_CARRIER_ADAPTER
    if code == "kuaidi100":
        try:
            return Kuaidi100Adapter(
                settings.OMS_KUAIDI100_CUSTOMER, settings.OMS_KUAIDI100_KEY,
                settings.OMS_KUAIDI100_SALT, base_url=settings.OMS_KUAIDI100_BASE_URL,
            )
        except ValueError as exc:
            raise CarrierError(f"kuaidi100 is not configured: {exc}", code="not_configured",
                               retryable=False) from None
    if code == "sandbox":
        return SandboxCarrier(lookup=sandbox_lookup, **({"clock": clock} if clock else {}))
    raise CarrierError(f"OMS_CARRIER_ADAPTER={code!r}: expected kuaidi100 or sandbox",
                       code="not_configured", retryable=False)


def sandbox_lookup(carrier: str, tracking_no: str) -> SandboxParcel | None:
    """The sandbox's parcels are our shipments: outbound at the scan, from the warehouse's
    first province to the receiver's, so every process tells the same story."""
    shipment = _find_shipment(carrier, tracking_no)
    if shipment is None:
        return None
    provinces = shipment.warehouse.provinces or []
    return SandboxParcel(
        outbound_at=shipment.outbound_at,
        receiver_province=shipment.order.receiver_province,
        origin_province=provinces[0] if provinces else DEFAULT_ORIGIN,
    )


def parse_push(body) -> TrackingUpdate:
    """A pushed form, verified with the configured adapter. Raises TrackingSignatureError when
    it is not from the carrier (or pushes cannot be verified here), ValueError when signed
    but not a tracking update."""
    if settings.OMS_CARRIER_ADAPTER == "sandbox" and settings.PRODUCTION:
        # The sandbox's salt is in the source code: anyone could sign with it.
        raise TrackingSignatureError("tracking pushes are not configured (sandbox in production)")
    try:
        adapter = build_adapter()
    except CarrierError as exc:
        raise TrackingSignatureError(str(exc)) from None
    return adapter.parse_push(body)


def _carrier_variants(carrier: str) -> set[str]:
    """The ways a shipment may spell the carrier a Kuaidi100 update names (SF, sf, shunfeng)."""
    carrier = carrier.strip()
    if not carrier:
        return set()
    company = kuaidi100_company(carrier)
    shorts = {short for short, name in COMPANY_CODES.items() if name == company}
    return {carrier, carrier.upper(), carrier.lower(), company, *shorts,
            *(s.lower() for s in shorts)}


def _find_shipment(carrier: str, tracking_no: str) -> Shipment | None:
    queryset = Shipment.objects.select_related("order", "warehouse")
    variants = _carrier_variants(carrier)
    if variants:  # index-backed: (carrier, tracking_no) is unique
        found = list(queryset.filter(carrier__in=variants, tracking_no=tracking_no)[:2])
        if len(found) == 1:
            return found[0]
    found = list(queryset.filter(tracking_no=tracking_no)[:2])
    return found[0] if len(found) == 1 else None


def _phone(order: Order) -> str:
    # SF answers only with a phone; its last four digits do, and masked phones keep them.
    digits = re.sub(r"\D", "", order.receiver_phone or "")
    return digits[-4:] if len(digits) >= 4 else ""


def carrier_actor(shipment: Shipment) -> Actor:
    return Actor(f"carrier:{shipment.carrier}")


# --- subscribe ---------------------------------------------------------------------------------

def ensure_tracking(shipment: Shipment, adapter_code: str | None = None) -> ShipmentTracking:
    row, _created = ShipmentTracking.objects.get_or_create(
        shipment=shipment,
        defaults={"adapter": adapter_code or settings.OMS_CARRIER_ADAPTER,
                  "outbound_at": shipment.outbound_at},
    )
    return row


def subscribe_shipment(shipment_id: int, *, attempt_is_last: bool = True, adapter=None) -> str:
    """Create the parcel's tracking row and subscribe it with the carrier adapter.
    Returns "subscribed" or "failed"; raises a retryable CarrierError unless this is the last
    attempt. Already subscribed: nothing to do."""
    shipment = Shipment.objects.select_related("order", "warehouse").get(pk=shipment_id)
    row = ensure_tracking(shipment, getattr(adapter, "code", None))
    if row.subscribed_at is not None:
        return "subscribed"
    try:
        adapter = adapter or build_adapter()
        adapter.subscribe(shipment.carrier, shipment.tracking_no,
                          callback_url=settings.OMS_TRACKING_CALLBACK_URL, phone=_phone(shipment.order))
    except CarrierError as exc:
        ShipmentTracking.objects.filter(pk=row.pk).update(subscribe_error=str(exc)[:2000])
        if exc.retryable and not attempt_is_last:
            raise
        record_event(shipment.order, track=Track.SYSTEM, kind=EventKind.API_CALL,
                     actor=carrier_actor(shipment),
                     summary=f"tracking subscription for {shipment.carrier} {shipment.tracking_no} "
                             f"failed: {exc}",
                     payload={"error": str(exc), "code": exc.code})
        return "failed"
    ShipmentTracking.objects.filter(pk=row.pk).update(subscribed_at=timezone.now(), subscribe_error="")
    return "subscribed"


# --- apply one update --------------------------------------------------------------------------

@dataclass
class Applied:
    shipment_id: int | None
    new_checkpoints: int = 0
    transitions: list[str] = field(default_factory=list)
    new_anomalies: list[str] = field(default_factory=list)


def _as_json(checkpoint: TrackingCheckpoint) -> dict:
    return {"at": checkpoint.at.isoformat(), "state": str(checkpoint.state),
            "location": checkpoint.location, "description": checkpoint.description,
            "area_code": checkpoint.area_code, "province": checkpoint.province}


def _from_json(item: dict) -> TrackingCheckpoint:
    return TrackingCheckpoint(
        at=datetime.fromisoformat(item["at"]), state=TrackingState(item["state"]),
        location=item.get("location", ""), description=item.get("description", ""),
        area_code=item.get("area_code", ""), province=item.get("province", ""),
    )


def _key(checkpoint: TrackingCheckpoint) -> tuple[float, str]:
    # A checkpoint is its time and text: the carrier re-sends the whole route every time.
    return checkpoint.at.timestamp(), checkpoint.description.strip()


def stored_update(row: ShipmentTracking, shipment: Shipment) -> TrackingUpdate:
    """The route kept on the row, as a TrackingUpdate (for anomalies measured at any time)."""
    return TrackingUpdate(
        carrier=shipment.carrier, tracking_no=shipment.tracking_no,
        # No record yet counts as on the way, so "no_update" measures from the outbound scan.
        state=TrackingState(row.state) if row.state else S.IN_TRANSIT,
        checkpoints=tuple(_from_json(item) for item in row.checkpoints), raw={}, signed_at=None,
    )


def apply_update(update: TrackingUpdate, source: str, *, now: datetime | None = None,
                 shipment_id: int | None = None) -> Applied:
    """Apply a pushed or polled update to its shipment (found by carrier + tracking number,
    or given). Same checkpoints again change nothing but the push/poll time."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    now = now or timezone.now()
    if shipment_id is not None:
        shipment = Shipment.objects.select_related("order").get(pk=shipment_id)
    else:
        shipment = _find_shipment(update.carrier, update.tracking_no)
    if shipment is None:
        logger.warning("tracking update for an unknown parcel %s %s", update.carrier, update.tracking_no)
        return Applied(None)
    result = Applied(shipment.pk)
    actor = carrier_actor(shipment)
    with transaction.atomic():
        order = lock_order(shipment.order.order_no)
        shipment.order = order
        row = ensure_tracking(shipment)
        stored = [_from_json(item) for item in row.checkpoints]
        known = {_key(c) for c in stored}
        floor = stored[-1].at if len(stored) >= MAX_CHECKPOINTS else None
        new: list[TrackingCheckpoint] = []
        for checkpoint in update.checkpoints:
            key = _key(checkpoint)
            # Beyond the cap, what is not newer than the oldest kept was seen and dropped already.
            if key in known or (floor is not None and checkpoint.at <= floor):
                continue
            known.add(key)
            new.append(checkpoint)
        merged = sorted([*stored, *new], key=lambda c: c.at, reverse=True)[:MAX_CHECKPOINTS]
        newest = merged[0].at if merged else None
        latest = update.latest
        if latest is not None and (row.last_event_at is None or latest.at >= row.last_event_at):
            row.state = update.state  # the carrier's own verdict, unless this update is older
        row.checkpoints = [_as_json(c) for c in merged]
        row.last_event_at = newest
        if source == "push":
            row.last_push_at = now
            status = str((update.raw or {}).get("status") or "")
            if status == "abort":
                # Kuaidi100 stopped tracking (no record in 3 days, or no change in 60): pushes
                # end here; the poll sweep keeps asking, and a re-subscription is due.
                row.subscribed_at = None
                row.subscribe_error = f"kuaidi100 stopped pushing (abort): {update.raw.get('message', '')}"
        else:
            row.last_polled_at = now
            row.poll_error = ""

        for checkpoint in sorted(new, key=lambda c: c.at):
            _record_checkpoint(order, shipment, checkpoint, actor, source, row.adapter)
            result.transitions += _follow(order, shipment, checkpoint, actor)
        result.new_checkpoints = len(new)

        route = stored_update(row, shipment)
        row.returns_count = return_episodes(route)
        result.new_anomalies = _refresh_anomalies(order, shipment, row, route, now, actor)
        row.save()
    return result


def _record_checkpoint(order, shipment, checkpoint, actor, source, adapter_code) -> None:
    where = f" [{checkpoint.location}]" if checkpoint.location else ""
    record_event(
        order, track=Track.PHYSICAL, kind=EventKind.SCAN, actor=actor, at=checkpoint.at,
        summary=f"{shipment.carrier} {checkpoint.state}{where}: {checkpoint.description}",
        payload={"carrier": shipment.carrier, "tracking_no": shipment.tracking_no,
                 "state": str(checkpoint.state), "location": checkpoint.location,
                 "province": checkpoint.province, "area_code": checkpoint.area_code,
                 "source": source, "via": adapter_code},
    )


def _follow(order: Order, shipment: Shipment, checkpoint: TrackingCheckpoint, actor: Actor) -> list[str]:
    """Move the parcel's fulfilment order for one new checkpoint, as far as its state machine
    allows; the order's physical track follows its shares, and the order is delivered when
    every live share is."""
    if shipment.fulfilment_order_id is None:
        return []
    share = FulfilmentOrder.objects.select_for_update().get(pk=shipment.fulfilment_order_id)
    share.order = order
    # Never before the outbound scan, even when the courier's clock says so.
    at = max(checkpoint.at, share.outbound_at or checkpoint.at)
    parcel = f"{shipment.carrier} {shipment.tracking_no}"
    payload = {"carrier": shipment.carrier, "tracking_no": shipment.tracking_no,
               "state": str(checkpoint.state)}
    if checkpoint.state in RETURNING:
        name, summary = "mark_returned", f"{parcel} {checkpoint.state}: {checkpoint.description}"
    elif checkpoint.state == S.SIGNED:
        name, summary = "mark_delivered", f"{parcel} signed for: {checkpoint.description}"
    else:
        name, summary = "mark_in_transit", f"{parcel} with the carrier: {checkpoint.description}"
    moved = []
    if fulfilment.carrier_update(order, share, name, actor, at=at, summary=summary[:255], payload=payload):
        moved.append(name)
    if order.fulfilment == Fulfilment.DELIVERED and can_proceed(order.mark_delivered):
        transition(order, "mark_delivered", actor, at=at, kind=EventKind.SCAN,
                   summary=f"delivered: {parcel} signed for", payload=payload)
        moved.append("order_delivered")
    return moved


def _refresh_anomalies(order, shipment, row, route, now, actor) -> list[str]:
    found = detect_anomalies(route, receiver_province=order.receiver_province, now=now,
                             stale_after=stale_after(), outbound_at=shipment.outbound_at)
    new = [code for code in found if code not in row.anomalies]
    row.anomalies = found
    for code in new:
        _open_case(order, shipment, row, route, code, now, actor)
    return new


def _open_case(order, shipment, row, route, code, now, actor) -> None:
    """One `carrier_anomaly` case per order while open (orders.cases); severity, owner and
    due time come from its SOP. A second anomaly while the case is open goes on the timeline."""
    from orders.cases import open_case  # written alongside; imported late on purpose

    parcel = f"{shipment.carrier} {shipment.tracking_no}"
    latest = route.latest
    if code == NO_UPDATE:
        since = latest.at if latest else shipment.outbound_at
        hours = int((now - since).total_seconds() // 3600)
        detail = (f"{parcel}: no carrier news for {hours} h since "
                  + (f"{latest.state} at {latest.location or '?'}" if latest else "the outbound scan"))
    elif code == OFF_ROUTE:
        where = next((c.province for c in route.checkpoints if c.province), "?")
        detail = (f"{parcel}: left the receiver's province {order.receiver_province} and is now in "
                  f"{where} ({latest.location if latest else '?'})")
    elif code == REPEATED_RETURNS:
        detail = f"{parcel}: returned {row.returns_count} times"
    else:
        detail = f"{parcel}: {code}"
    case, created = open_case(order, CASE_KIND, detail, actor=actor, sub_reason=code, at=now)
    if not created:
        record_event(order, track=Track.SYSTEM, kind=EventKind.ALERT, actor=actor, at=now,
                     summary=f"{code} as well (exception case #{case.pk} is open): {detail}",
                     payload={"exception_case": case.pk, "sub_reason": code})


# --- sweeps ------------------------------------------------------------------------------------

@dataclass
class PollResult:
    due: int = 0
    polled: int = 0
    failed: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # "SF SF1234…" → error


def due_for_poll(now: datetime, limit: int = 500) -> list[int]:
    """Tracking rows to poll now, longest unheard first (the partial expression index
    tracking_poll_due_idx answers this)."""
    return list(
        ShipmentTracking.objects.filter(state__in=IN_FLIGHT, outbound_at__gte=now - POLL_FOR)
        .annotate(heard=heard_at())
        .filter(heard__lt=now - poll_interval())
        .order_by("heard").values_list("pk", flat=True)[:limit]
    )


def poll_due(now: datetime | None = None, limit: int = 500, *, adapter=None) -> PollResult:
    """Poll the parcels due (see `due_for_poll`). Each row is claimed first, so two sweeps
    never poll one parcel twice; a failure is recorded on its row and the others go on."""
    now = now or timezone.now()
    ids = due_for_poll(now, limit)
    cutoff = now - poll_interval()
    claimed = [pk for pk in ids if ShipmentTracking.objects.filter(pk=pk).filter(
        Q(last_polled_at__isnull=True) | Q(last_polled_at__lt=cutoff)).update(last_polled_at=now)]
    result = poll_rows(claimed, now=now, adapter=adapter)
    result.due = len(ids)
    return result


def poll_rows(tracking_ids: Iterable[int], *, now: datetime | None = None, adapter=None) -> PollResult:
    """Poll these parcels now, due or not (the admin's "poll now", the demo)."""
    now = now or timezone.now()
    result = PollResult()
    setup_error = None
    if adapter is None:
        try:
            adapter = build_adapter()
        except CarrierError as exc:
            setup_error = exc
    rows = ShipmentTracking.objects.filter(pk__in=list(tracking_ids)).select_related(
        "shipment__order").order_by("pk")
    for row in rows:
        shipment = row.shipment
        try:
            if setup_error is not None:
                raise setup_error
            update = adapter.poll(shipment.carrier, shipment.tracking_no, phone=_phone(shipment.order))
            apply_update(update, "poll", now=now, shipment_id=shipment.pk)
        except CarrierError as exc:
            _poll_failed(row, result, now, str(exc))
        except Exception as exc:  # noqa: BLE001 - one parcel's bug must not stop the sweep
            logger.exception("tracking poll of %s failed", shipment)
            _poll_failed(row, result, now, f"internal error: {exc.__class__.__name__}: {exc}")
        else:
            result.polled += 1
    return result


def _poll_failed(row, result, now, message) -> None:
    ShipmentTracking.objects.filter(pk=row.pk).update(last_polled_at=now, poll_error=message[:2000])
    result.failed += 1
    result.errors[str(row.shipment)] = message


@dataclass
class StaleResult:
    flagged: int = 0
    adopted: list[int] = field(default_factory=list)  # shipment ids given a tracking row now


def adopt_untracked(now: datetime, limit: int = 500) -> list[int]:
    """Shipments of the last POLL_FOR days without a tracking row (their subscribe task was
    lost): give them one, so the sweeps and the alert rule see them."""
    missing = list(Shipment.objects.filter(tracking__isnull=True, outbound_at__gte=now - POLL_FOR)
                   .order_by("pk").values_list("pk", "outbound_at")[:limit])
    ShipmentTracking.objects.bulk_create(
        [ShipmentTracking(shipment_id=pk, adapter=settings.OMS_CARRIER_ADAPTER, outbound_at=at)
         for pk, at in missing],
        ignore_conflicts=True,
    )
    return [pk for pk, _at in missing]


def stale_candidates(now: datetime, limit: int = 1000) -> list[int]:
    """In-flight parcels quiet for OMS_TRACKING_STALE_HOURS not yet flagged no_update:
    never heard of since the outbound scan, or nothing since the newest checkpoint."""
    cutoff = now - stale_after()
    return list(
        ShipmentTracking.objects.filter(state__in=IN_FLIGHT)
        .filter(Q(state=NO_RECORD, last_event_at__isnull=True, outbound_at__lt=cutoff)
                | Q(last_event_at__lt=cutoff))
        .exclude(anomalies__icontains=f'"{NO_UPDATE}"')  # JSON text: portable to SQLite
        .exclude(shipment__order__fulfilment__in=[Fulfilment.DELIVERED, Fulfilment.RETURNED])
        .order_by("pk").values_list("pk", flat=True)[:limit]
    )


def check_stale(now: datetime | None = None, limit: int = 1000) -> StaleResult:
    """Flag parcels the carrier has gone quiet about: `no_update` on the row and one
    `carrier_anomaly` case per episode (a parcel flagged stays flagged until news arrives)."""
    now = now or timezone.now()
    result = StaleResult(adopted=adopt_untracked(now))
    for pk in stale_candidates(now, limit):
        order_no = ShipmentTracking.objects.filter(pk=pk).values_list(
            "shipment__order__order_no", flat=True).first()
        with transaction.atomic():
            order = lock_order(order_no)
            row = ShipmentTracking.objects.select_related("shipment").get(pk=pk)
            shipment = row.shipment
            shipment.order = order
            new = _refresh_anomalies(order, shipment, row, stored_update(row, shipment), now, SYSTEM)
            row.save(update_fields=["anomalies"])
        result.flagged += NO_UPDATE in new
    return result
