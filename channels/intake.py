"""Intake of one raw channel order: archive it, normalise it with the channel's adapter, apply
the channel's cleansing rules, validate it, then create or update the unified order.

Nothing is dropped: the raw body is archived first (even when it is not JSON); an order that
fails validation is still created and put on hold with its reasons when it can be (bad
address, amounts that do not add up), and a payload whose lines cannot be mapped to our SKUs
stays archived as "held" with its reasons until a mapping exists and it is replayed.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from inventory.models import SKU
from orders import services as order_services
from orders.events import Actor, EventKind, Track, record_event
from orders.models import Status

from . import drift
from .adapters import ADAPTERS
from .adapters.base import NormaliseError
from .cleansing import apply_rules
from .models import Channel, ChannelSkuMapping, RawPayload

PLACEHOLDER_ADDRESS = re.compile(r"临时|测试|test|asdf|待定|xxx", re.IGNORECASE)
REQUIRED_RECEIVER = ("name", "phone", "province", "address")


@dataclass
class IngestResult:
    result: str  # created | updated | unchanged | merged | held | invalid
    order_no: str | None = None
    payload_id: int | None = None
    reasons: list[str] = field(default_factory=list)


def digest(body: bytes | str) -> str:
    return hashlib.sha256(body if isinstance(body, bytes) else body.encode()).hexdigest()


def archive(channel: Channel, body: bytes | str, source: str, external_id: str = "", sync_run=None) -> RawPayload:
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return RawPayload.objects.create(
        channel=channel, source=source, body=text, sha256=digest(text),
        external_order_id=external_id[:100], sync_run=sync_run,
    )


def ingest_raw(channel: Channel, raw: dict, source: str, sync_run=None, body: str | None = None) -> IngestResult:
    """Archive, then process. `body` is the exact text received (webhook), else raw dumped."""
    adapter = ADAPTERS[channel.kind](channel)
    try:
        external_id = adapter.external_id(raw)
    except (KeyError, TypeError, NormaliseError):
        external_id = ""
    text = body if body is not None else json.dumps(raw, ensure_ascii=False, sort_keys=True)
    payload = archive(channel, text, source, str(external_id), sync_run)
    drift.observe_safely(channel, raw, payload)  # schema drift: logs its own failures, never raises
    return process(payload, raw)


def process(payload: RawPayload, raw: dict | None = None) -> IngestResult:
    """Normalise, cleanse, validate and upsert one archived payload (also used by replay)."""
    channel = payload.channel
    if raw is None:
        raw = json.loads(payload.body)
    adapter = ADAPTERS[channel.kind](channel)
    try:
        data = apply_rules(adapter.normalise(raw), channel.cleansing_rules.filter(active=True))
    except NormaliseError as exc:
        return _finish(payload, RawPayload.Outcome.INVALID, [f"{exc.field}: {exc.reason}"])
    payload.external_order_id = str(data.get("external_order_id", ""))[:100]
    if data.get("status") is None:
        # The platform's status carries no news (e.g. shipped there): keep ours; an order
        # first seen in that state had been paid.
        known = channel.orders.filter(external_order_id=payload.external_order_id).exists()
        data["status"] = None if known else "paid"
    unmapped = map_skus(channel, data)
    if unmapped:
        return _finish(payload, RawPayload.Outcome.HELD,
                       [f"lines[].sku: {code} is not a known SKU (code, barcode or channel mapping)"
                        for code in unmapped])
    from orders.serializers import ChannelOrderSerializer

    serializer = ChannelOrderSerializer(data=data)
    if not serializer.is_valid():
        return _finish(payload, RawPayload.Outcome.HELD, _flatten(serializer.errors))
    order_input = dict(serializer.validated_data)
    problems = order_problems(order_input)
    with transaction.atomic():
        order, result = order_services.create_order(channel, order_input, Actor.for_channel(channel))
        if problems and result == "created":
            _hold_for(order, problems, channel)
    outcome = RawPayload.Outcome.HELD if problems and result == "created" else result
    return _finish(payload, outcome, problems, order)


def _hold_for(order, problems: list[str], channel: Channel) -> None:
    reason = "intake: " + "; ".join(problems)
    locked = order_services.lock_order(order.order_no)
    if locked.status in (Status.PAID, Status.APPROVED):
        order_services.transition(locked, "hold", Actor.for_channel(channel), reason=reason[:1000],
                                  summary=f"on hold: {reason}"[:255], payload={"problems": problems})
    else:
        record_event(locked, track=Track.SYSTEM, kind=EventKind.SYNC, actor=Actor.for_channel(channel),
                     summary=reason[:255], payload={"problems": problems})


def _finish(payload: RawPayload, outcome: str, reasons: list[str], order=None) -> IngestResult:
    payload.outcome = outcome
    payload.errors = reasons
    payload.order = order
    payload.processed_at = timezone.now()
    payload.save(update_fields=["outcome", "errors", "order", "processed_at", "external_order_id"])
    return IngestResult(outcome, order.order_no if order else None, payload.pk, reasons)


def map_skus(channel: Channel, data: dict) -> list[str]:
    """Replace each line's channel SKU by our SKU code; returns the codes nothing matched."""
    codes = {str(line.get("sku", "")) for line in data.get("lines") or []}
    known = {code: code for code in SKU.objects.filter(code__in=codes).values_list("code", flat=True)}
    known.update(SKU.objects.filter(barcode__in=codes - set(known)).values_list("barcode", "code"))
    known.update(ChannelSkuMapping.objects.filter(channel=channel, external_code__in=codes - set(known))
                 .values_list("external_code", "sku__code"))
    for line in data.get("lines") or []:
        line["sku"] = known.get(str(line.get("sku", "")), line.get("sku"))
    return sorted(codes - set(known))


def order_problems(data: dict) -> list[str]:
    """What makes a readable order unfit to ship without a person looking at it."""
    problems = []
    receiver = data.get("receiver") or {}
    for name in REQUIRED_RECEIVER:
        if not str(receiver.get(name, "")).strip():
            problems.append(f"receiver.{name} is missing")
    address = " ".join(str(receiver.get(k, "")) for k in ("province", "city", "district", "address"))
    if PLACEHOLDER_ADDRESS.search(address):
        problems.append(f"receiver.address looks like a placeholder: {receiver.get('address', '')!r}")
    expected = order_services.order_amounts(data)["expected_payable"]
    if expected != data["payable"]:
        problems.append(f"payable {data['payable']} ≠ lines − discounts + shipping = {expected}")
    return problems


def _flatten(errors, prefix: str = "") -> list[str]:
    if isinstance(errors, dict):
        return [m for key, value in errors.items() for m in _flatten(value, f"{prefix}{key}.")]
    if isinstance(errors, list):
        if all(isinstance(e, str) for e in errors):
            return [f"{prefix.rstrip('.')}: {e}" for e in errors]
        return [m for i, value in enumerate(errors) for m in _flatten(value, f"{prefix.rstrip('.')}[{i}].")]
    return [f"{prefix.rstrip('.')}: {errors}"]


def to_decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
