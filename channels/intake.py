"""Intake of raw channel orders: archive them, normalise them with the channel's adapter, apply
the channel's cleansing rules, validate them, then create or update the unified orders.

Nothing is dropped: the raw body is archived first (even when it is not JSON); an order that
fails validation is still created and put on hold with its reasons when it can be (bad
address, amounts that do not add up), and a payload whose lines cannot be mapped to our SKUs
stays archived as "held" with its reasons until a mapping exists and it is replayed.

Intake works a page at a time (`ingest_page`: what a pull fetched in one go; a webhook is a
page of one):

1. every payload of the page is archived in one bulk insert (a COPY on PostgreSQL), in the
   order received;
2. the drift detector observes every payload's key set, its database work once per page;
3. a payload identical to the raw last applied to its order ("unchanged", the pulls' overlap
   and re-sent pages) is recognised by digest alone and archived as such in step 1: one query
   for the whole page finds those orders, nothing is normalised or validated again;
4. every other payload is normalised, cleansed, SKU-mapped and validated (rules and SKUs
   loaded once per page), then applied by `orders.services.create_order` in its own
   transaction, together with its archive row's outcome.

"The raw last applied" is `Order.source_raw_sha256`, written by `create_order` in the
transaction that applies a payload: the sha256 of the raw's canonical JSON text, folded with
the channel's active cleansing rules when it has any, so a fixed rule makes the same raw go
through normalisation again. (Adapter code changes and SKU mappings are not folded in: an
already applied raw is re-read under new code or mappings by a replay.) A raw is remembered
only when reading it again would change nothing and report nothing: one whose order has
problems to list (its outcome repeats them) or that made a first-seen order paid from a
no-news status (next time the order is known) is read in full each time, as before.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from psycopg.errors import DeadlockDetected

from inventory.models import SKU
from oms import rowsql
from orders import batch
from orders import services as order_services
from orders.ciphertext import encrypted_fields
from orders.events import Actor, EventKind, Track, record_event
from orders.models import Order, Status

from . import drift
from .adapters import ADAPTERS
from .adapters.base import NormaliseError
from .cleansing import apply_rules
from .models import Channel, ChannelSkuMapping, RawPayload

logger = logging.getLogger(__name__)

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


def canonical(raw) -> str:
    """The canonical JSON text of a raw order: what a pull archives, and what its digest is of."""
    return json.dumps(raw, ensure_ascii=False, sort_keys=True)


def archive(channel: Channel, body: bytes | str, source: str, external_id: str = "", sync_run=None) -> RawPayload:
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return RawPayload.objects.create(
        channel=channel, source=source, body=text, sha256=digest(text),
        external_order_id=external_id[:100], sync_run=sync_run,
    )


class Page:
    """What the payloads of one page share, loaded once: the channel's adapter, its active
    cleansing rules and our SKUs by the codes the channel uses."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.adapter = ADAPTERS[channel.kind](channel)
        self.rules = list(channel.cleansing_rules.filter(active=True))
        self.rules_fingerprint = json.dumps([[r.action, r.field, r.argument] for r in self.rules],
                                            ensure_ascii=False) if self.rules else ""
        self._skus: dict[str, SKU | None] = {}  # channel code → our SKU (None: unknown)
        self.skus_by_code: dict[str, SKU] = {}  # our code → our SKU, of those looked up
        self.known_orders: set[str] = set()  # external ids of orders known to exist
        self._validator = None

    def applied_key(self, canonical_text: str) -> str:
        """What Order.source_raw_sha256 holds once this raw is applied under these rules."""
        if not self.rules_fingerprint:
            return digest(canonical_text)
        return digest(f"{self.rules_fingerprint}\n{canonical_text}")

    def external_id(self, raw) -> str:
        try:
            return str(self.adapter.external_id(raw))
        except (KeyError, TypeError, AttributeError, NormaliseError):
            return ""

    def cleansed_id(self, external_id: str) -> str:
        """The order id the cleansing rules make of a raw id (a rule on external_order_id)."""
        if not external_id or not self.rules:
            return external_id
        return str(apply_rules({"external_order_id": external_id}, self.rules).get("external_order_id", ""))

    def load_skus(self, codes) -> None:
        """Our SKU for each channel code not looked up yet: by code, else barcode, else the
        channel's mapping (three queries at most for the whole page)."""
        missing = {str(code) for code in codes} - self._skus.keys()
        if not missing:
            return
        found = {sku.code: sku for sku in SKU.objects.filter(code__in=missing)}
        rest = missing - found.keys()
        if rest:
            found.update((sku.barcode, sku) for sku in SKU.objects.filter(barcode__in=rest))
            rest -= found.keys()
        if rest:
            found.update((m.external_code, m.sku) for m in ChannelSkuMapping.objects.filter(
                channel=self.channel, external_code__in=rest).select_related("sku"))
        for code in missing:
            self._skus[code] = found.get(code)
        self.skus_by_code.update((sku.code, sku) for sku in found.values())

    def validate(self, data: dict) -> tuple[dict | None, list[str]]:
        """The order input of a normalised, SKU-mapped order, or the reasons it is not one.
        One serializer for the page: building its fields is most of the cost of validating."""
        from rest_framework.exceptions import ValidationError

        from orders.serializers import ChannelOrderSerializer

        if self._validator is None:
            self._validator = ChannelOrderSerializer(context={"skus": self.skus_by_code})
        try:
            return dict(self._validator.run_validation(data)), []
        except ValidationError as exc:
            return None, _flatten(exc.detail)

    def sku(self, code) -> SKU | None:
        code = str(code)
        if code not in self._skus:
            self.load_skus([code])
        return self._skus[code]


@dataclass
class _Incoming:
    raw: object
    text: str  # as archived
    external_id: str
    key: str  # Page.applied_key of the raw
    known: tuple[int, str, str] | None = None  # (pk, order_no, external id) when unchanged


def ingest_raw(channel: Channel, raw: dict, source: str, sync_run=None, body: str | None = None) -> IngestResult:
    """One raw order (a webhook): a page of one. `body` is the exact text received, else the
    raw's canonical JSON text is archived."""
    return ingest_page(channel, [raw], source, sync_run, bodies=None if body is None else [body])[0]


def ingest_page(channel: Channel, raws: list, source: str, sync_run=None,
                bodies: list[str] | None = None) -> list[IngestResult]:
    """Archive, observe and apply one page of raw orders; one IngestResult per raw, in order.

    Each order is applied in its own transaction (with its payload's outcome); the archive
    rows are committed first, so a payload whose processing fails stays archived as pending.
    Call it outside a transaction: inside one, a failure rolls the whole page back."""
    if not raws:
        return []
    page = Page(channel)
    incoming = []
    for index, raw in enumerate(raws):
        text = canonical(raw)
        body = text if bodies is None or bodies[index] is None else bodies[index]
        incoming.append(_Incoming(raw, body, page.external_id(raw), page.applied_key(text)))
    _find_unchanged(page, incoming)

    rows = []
    for item in incoming:  # received_at: each its own (the default), in the order received
        # Without rules, the key of a raw archived as its canonical text is that text's digest.
        sha256 = item.key if bodies is None and not page.rules_fingerprint else digest(item.text)
        row = RawPayload(channel=channel, source=source, body=item.text, sha256=sha256,
                         external_order_id=item.external_id[:100], sync_run=sync_run)
        if item.known:
            row.outcome, row.order_id, row.processed_at = RawPayload.Outcome.UNCHANGED, item.known[0], row.received_at
            row.external_order_id = item.known[2][:100]
        rows.append(row)
    payloads = insert_payloads(rows)
    drift.observe_page_safely(channel, raws, payloads)  # logs its own failures, never raises
    return _apply_page(page, incoming, payloads)


def apply_archived(channel: Channel, payloads: list[RawPayload]) -> list[IngestResult]:
    """Payloads archived already (webhook deliveries accepted as pending, each a JSON object)
    through the same page path as a pull; one IngestResult per payload, in order."""
    if not payloads:
        return []
    page = Page(channel)
    raws = [json.loads(payload.body) for payload in payloads]
    incoming = [_Incoming(raw, payload.body, page.external_id(raw), page.applied_key(canonical(raw)))
                for raw, payload in zip(raws, payloads, strict=True)]
    _find_unchanged(page, incoming)
    now = timezone.now()
    unchanged = []
    for item, payload in zip(incoming, payloads, strict=True):
        payload.external_order_id = (item.known[2] if item.known else item.external_id)[:100]
        if item.known:
            payload.outcome, payload.order_id, payload.processed_at = RawPayload.Outcome.UNCHANGED, item.known[0], now
            unchanged.append(payload)
    RawPayload.objects.bulk_update(unchanged, ["outcome", "order", "processed_at", "external_order_id"])
    drift.observe_page_safely(channel, raws, payloads)
    return _apply_page(page, incoming, payloads)


def _apply_page(page: Page, incoming: list[_Incoming], payloads: list[RawPayload]) -> list[IngestResult]:
    results: list[IngestResult | None] = [
        IngestResult(RawPayload.Outcome.UNCHANGED, item.known[1], payload.pk) if item.known else None
        for item, payload in zip(incoming, payloads, strict=True)
    ]
    # The others: normalised first (pure Python), so the page's SKUs load in one go.
    prepared = []
    for index, (item, payload) in enumerate(zip(incoming, payloads, strict=True)):
        if results[index] is None:
            try:
                prepared.append((index, payload, item, _normalised(page, item.raw)))
            except Exception as exc:  # noqa: BLE001 - raised in its turn, below
                prepared.append((index, payload, item, exc))
    page.load_skus(str(line.get("sku", "")) for *_, data in prepared if isinstance(data, dict)
                   for line in data.get("lines") or [] if isinstance(line, dict))
    for index, result in _apply_new_together(page, prepared).items():
        results[index] = result
    for index, payload, item, data in prepared:
        if results[index] is not None:
            continue
        if isinstance(data, Exception):
            raise data  # an adapter bug: the payloads before it are done, the rest stay pending
        results[index] = _apply_retrying_deadlocks(page, payload, data, item.key)
    return results


def _apply_retrying_deadlocks(page: Page, payload: RawPayload, data, key: str, attempts: int = 3) -> IngestResult:
    """`_apply` in a transaction of its own; when PostgreSQL breaks a deadlock (with a
    concurrent page) by rolling this one back, it runs again on the data as it was."""
    attempt = 1
    while True:
        try:
            with transaction.atomic():
                return _apply(page, payload, copy.deepcopy(data) if attempt < attempts else data, key)
        except OperationalError as exc:
            if not isinstance(exc.__cause__, DeadlockDetected) or attempt == attempts:
                raise
        logger.info("channel %s: payload %s gave way in a deadlock; again", page.channel.code, payload.pk)
        attempt += 1


def _apply_new_together(page: Page, prepared: list) -> dict[int, IngestResult]:
    """The page's new orders fit to ship (unpaid, paid or closed), created together
    (orders.batch) in one transaction with their payloads' outcomes; by index. Any other, or
    all of them when the page's stock moved meanwhile, goes through `_apply` one at a time."""
    seen = Counter(str(data.get("external_order_id", "")) for *_, data in prepared if isinstance(data, dict))
    repeated = {external_id for external_id, count in seen.items() if count > 1}
    chosen = []
    ahead = []  # what the payloads made one at a time may reserve, in the order received
    for index, payload, item, data in prepared:
        if not isinstance(data, dict):
            continue
        order_input = _batchable(page, data, repeated)
        if order_input is not None:
            chosen.append((index, payload, order_input, item.key))
        elif data.get("status") != Status.PENDING_PAYMENT:  # may become paid and reserve
            ahead.append(batch.Claim(index, _claimed_units(page, data), str((data.get("receiver") or {}).get("province", ""))))
    if not chosen or not batch.can_batch(page.channel, {line["sku"].pk for *_, data, _ in chosen
                                                        for line in data["lines"]}):
        return {}
    taken = {index for index, *_ in chosen}
    # The page's other unpaid orders are made one at a time, after these: their buyers' orders
    # here must wait for them, in case one merges under the other.
    busy = frozenset(key for index, _, _, data in prepared if index not in taken and isinstance(data, dict)
                     and data.get("status") == Status.PENDING_PAYMENT for key in [batch.buyer_key(data)] if key)
    results = {}
    try:
        with transaction.atomic():
            orders = batch.create_orders(page.channel, [(data, key) for *_, data, key in chosen],
                                         Actor.for_channel(page.channel), busy_buyers=busy,
                                         positions=[index for index, *_ in chosen], ahead=ahead)
            done = [(index, payload, order) for (index, payload, _, _), order in zip(chosen, orders, strict=True)
                    if order is not None]
            _finish_created(done)
    except (batch.StockMoved, IntegrityError, OperationalError) as exc:
        # Stock reserved meanwhile, a concurrent delivery of one of them, or a deadlock broken
        # by PostgreSQL: one at a time, then. (A real fault shows there, at its payload.)
        logger.info("channel %s: page made one order at a time (%r)", page.channel.code, exc)
        return {}
    except Exception:
        logger.exception("channel %s: batch creation failed; the page goes one order at a time", page.channel.code)
        return {}
    for index, payload, order in done:
        page.known_orders.add(order.external_order_id)
        results[index] = IngestResult(RawPayload.Outcome.CREATED, order.order_no, payload.pk, [])
    return results


def _claimed_units(page: Page, data: dict) -> list[tuple[int, int]]:
    """(SKU id, quantity) of a normalised order's lines that map to our SKUs."""
    map_skus(page.channel, data, page)
    units = []
    for line in data.get("lines") or []:
        sku = page.sku(line.get("sku", "")) if isinstance(line, dict) else None
        quantity = to_decimal(line.get("quantity")) if sku is not None else None
        if quantity is not None and quantity > 0 and quantity == int(quantity):
            units.append((sku.pk, int(quantity)))
    return units


def _batchable(page: Page, data: dict, repeated: set[str]) -> dict | None:
    """The order input of a new order that orders.batch may make, else None."""
    if data.get("status") not in batch.BATCHABLE:
        return None
    external_id = str(data.get("external_order_id", ""))
    if not external_id or external_id in page.known_orders or external_id in repeated:
        return None
    if map_skus(page.channel, data, page):
        return None
    order_input, _ = page.validate(data)
    if order_input is None or order_problems(order_input):
        return None
    return order_input


def _finish_created(done: list[tuple[int, RawPayload, Order]]) -> None:
    """`_finish` for payloads that created their orders: one statement for all."""
    if not done:
        return
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {RawPayload._meta.db_table} AS payload SET outcome = %s, errors = '[]'::jsonb, "  # noqa: S608
            "processed_at = %s, order_id = v.order_id, external_order_id = v.external_order_id "
            f"FROM (VALUES {', '.join(['(%s::bigint, %s::bigint, %s)'] * len(done))}) "
            "AS v(id, order_id, external_order_id) WHERE payload.id = v.id",
            [RawPayload.Outcome.CREATED, now,
             *(value for _, payload, order in done for value in (payload.pk, order.pk, order.external_order_id[:100]))])
    for _, payload, order in done:
        payload.outcome, payload.errors, payload.order, payload.processed_at = RawPayload.Outcome.CREATED, [], order, now
        payload.external_order_id = order.external_order_id[:100]


def insert_payloads(rows: list[RawPayload]) -> list[RawPayload]:
    """Insert new RawPayload rows in one statement (a COPY on PostgreSQL); they come back
    saved, with their ids."""
    return rowsql.copy_instances(rows)


def _find_unchanged(page: Page, incoming: list[_Incoming]) -> None:
    """Mark the raws identical to the raw last applied to their order: one query per page.

    A raw is unchanged only when no earlier raw of the page for the same order goes through
    the full path: that one may change the order, and the raws after it are judged after it."""
    ids = {item.external_id for item in incoming if item.external_id}
    ids |= {page.cleansed_id(external_id) for external_id in ids}
    ids.discard("")
    if not ids:
        return
    applied = {}
    for pk, order_no, external_id, key in Order.objects.filter(
            channel=page.channel, external_order_id__in=ids).values_list(
            "pk", "order_no", "external_order_id", "source_raw_sha256"):
        page.known_orders.add(external_id)
        if key:
            applied[key] = (pk, order_no, external_id)
    busy: set[str] = set()  # ids of orders an earlier raw of this page goes on to change
    for item in incoming:
        candidates = {item.external_id, page.cleansed_id(item.external_id)} - {""}
        known = applied.get(item.key)
        if known is not None and known[2] in candidates and not candidates & busy:
            item.known = known
        else:
            busy |= candidates


def process(payload: RawPayload, raw: dict | None = None) -> IngestResult:
    """Normalise, cleanse, validate and upsert one archived payload (replay uses it)."""
    page = Page(payload.channel)
    if raw is None:
        raw = json.loads(payload.body)
    data = _normalised(page, raw)
    return _apply(page, payload, data, page.applied_key(canonical(raw)))


def _normalised(page: Page, raw) -> dict | list[str]:
    """The cleansed order input of a raw order, or the reasons it cannot be read at all."""
    try:
        return apply_rules(page.adapter.normalise(raw), page.rules)
    except NormaliseError as exc:
        return [f"{exc.field}: {exc.reason}"]


def _apply(page: Page, payload: RawPayload, data: dict | list[str], key: str) -> IngestResult:
    """Validate one normalised payload and create or update its order (inside a transaction)."""
    channel = page.channel
    if isinstance(data, list):
        return _finish(payload, RawPayload.Outcome.INVALID, data)
    payload.external_order_id = str(data.get("external_order_id", ""))[:100]
    first_seen_without_status = False
    if data.get("status") is None:
        # The platform's status carries no news (e.g. shipped there): keep ours; an order
        # first seen in that state had been paid.
        known = payload.external_order_id in page.known_orders or \
            channel.orders.filter(external_order_id=payload.external_order_id).exists()
        data["status"] = None if known else "paid"
        first_seen_without_status = not known
    if not isinstance(data.get("receiver"), dict):
        # No receiver at all is the same problem as an empty one: the order is made and held
        # with its reasons, never left in the archive only.
        data["receiver"] = {}
    unmapped = map_skus(channel, data, page)
    if unmapped:
        return _finish(payload, RawPayload.Outcome.HELD,
                       [f"lines[].sku: {code} is not a known SKU (code, barcode or channel mapping)"
                        for code in unmapped])
    order_input, errors = page.validate(data)
    if order_input is None:
        return _finish(payload, RawPayload.Outcome.HELD, errors)
    problems = order_problems(order_input)
    # The raw is remembered, to be recognised as unchanged next time, only when reading it
    # again would change nothing and say nothing: not when its outcome lists problems, nor
    # when it gave a first-seen order a status (next time the order is known: no status).
    remember = "" if problems or first_seen_without_status else key
    # Inside ingest_page's transaction for this payload: no savepoint of its own to pay for.
    with transaction.atomic(savepoint=False):
        unpaid_before = problems and channel.orders.filter(
            external_order_id=order_input["external_order_id"], status=Status.PENDING_PAYMENT).exists()
        order, result = order_services.create_order(channel, order_input, Actor.for_channel(channel),
                                                    source_raw_sha256=remember)
        # The checks hold an order on every way into paid: made paid, or an unpaid one paid now.
        held = problems and (result == "created" or (result == "updated" and unpaid_before))
        if held:
            _hold_for(order, problems, channel)
    page.known_orders.add(order.external_order_id)
    outcome = RawPayload.Outcome.HELD if held else result
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


def map_skus(channel: Channel, data: dict, page: Page | None = None) -> list[str]:
    """Replace each line's channel SKU by our SKU code; returns the codes nothing matched."""
    page = page or Page(channel)
    lines = [line for line in data.get("lines") or [] if isinstance(line, dict)]
    codes = {str(line.get("sku", "")) for line in lines}
    page.load_skus(codes)
    for line in lines:
        sku = page.sku(line.get("sku", ""))
        if sku is not None:
            line["sku"] = sku.code
    return sorted(code for code in codes if page.sku(code) is None)


def order_problems(data: dict) -> list[str]:
    """What makes a readable order unfit to ship without a person looking at it."""
    problems = []
    receiver = data.get("receiver") or {}
    for name in REQUIRED_RECEIVER:
        if not str(receiver.get(name, "")).strip():
            problems.append(f"receiver.{name} is missing")
    for name in encrypted_fields(receiver):
        problems.append(f"receiver.{name} is the platform's ciphertext: decrypt it through the "
                        f"platform before the order can ship")
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
