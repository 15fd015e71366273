"""Schema drift detection: which keys (and value types) each channel sends, and when that
changes — a new key, a key that vanished, a key whose value type changed ("12.30" → 12.3).

`observe` runs for every raw order intake archives. A raw order is flattened into
(path, type) pairs — nested objects dotted, list items as `[]`:
`orders.order[].outer_sku_id` / str — capped in depth and width so a hostile payload costs
little. Each pair is recorded once as a SchemaField. The first OMS_SCHEMA_LEARNING_PAYLOADS
payloads of a channel (counted from the first one observed) only learn: their fields are the
channel's known schema. After that:

- a path never seen before → one `new` SchemaDrift;
- a known path with a value type it never had → one `retyped` drift. A null where a value
  was (or a value where there was only null) and int ↔ float are not changes: they are
  learned silently;
- a known path absent from the last OMS_SCHEMA_VANISHED_AFTER payloads → one `vanished`
  drift (checked every VANISHED_CHECK_EVERY payloads, by last_seen against the time of
  the M-th latest payload).

The drifts one payload reveals share a `change_set`, which is what the "channel API changed"
alert is about (one per channel and change set); while a drift is open (unacknowledged) the
same (kind, path, type) is not reported again. Acknowledging a `new` or `retyped` drift makes
the field known; acknowledging a `vanished` one closes it until the field shows up again.

Cost per payload: the flattening, plus no query at all in the steady state. Intake observes a
page of payloads at once (`observe_page`): the same outcome as observing them one by one, with
the checks against the known set and the database work done once for the page. The known set is
cached per channel in this process for CACHE_SECONDS; last_seen/seen_count are written at most
once every LAST_SEEN_EVERY per field (so seen_count is approximate, and may lose the counts of
a process that exits). Every write happens in a savepoint: a failure here never poisons the
transaction of the intake that called it (see `observe_safely`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from .models import Channel, RawPayload, SchemaDrift, SchemaField, SchemaValueType

logger = logging.getLogger(__name__)

LEARNING_PAYLOADS = 20  # default of settings.OMS_SCHEMA_LEARNING_PAYLOADS
VANISHED_AFTER = 200  # default of settings.OMS_SCHEMA_VANISHED_AFTER
VANISHED_CHECK_EVERY = 50  # payloads of a channel (per process) between two vanished checks
CACHE_SECONDS = 60.0
LAST_SEEN_EVERY = timedelta(seconds=60)

# Hostile payloads: how much of one payload is looked at.
MAX_DEPTH = 12  # nesting levels below the root
MAX_KEYS_PER_OBJECT = 200
MAX_ITEMS_PER_ARRAY = 20  # the first items of a list stand for the others
MAX_VISITS = 5_000  # values looked at in one payload
MAX_PAIRS = 1_000  # distinct (path, type) pairs taken from one payload
MAX_PATH = 255  # SchemaField.path
MAX_FIELDS_PER_CHANNEL = 2_000  # beyond this nothing new is recorded for the channel
MAX_DRIFTS_PER_PAYLOAD = 50
EXAMPLE_MAX_BYTES = 20_000

NEW, VANISHED, RETYPED = "new", "vanished", "retyped"  # SchemaDrift.Kind values
NULL = SchemaValueType.NULL.value
NUMBERS = frozenset({SchemaValueType.INT.value, SchemaValueType.FLOAT.value})


# --- flattening --------------------------------------------------------------------------

# What JSON parsing produces, by exact type (flatten calls value_type for every value it visits).
_TYPE_OF = {type(None): NULL, str: SchemaValueType.STR.value, int: SchemaValueType.INT.value,
            float: SchemaValueType.FLOAT.value, bool: SchemaValueType.BOOL.value,
            dict: SchemaValueType.OBJECT.value, list: SchemaValueType.ARRAY.value}


def value_type(value) -> str:
    kind = _TYPE_OF.get(type(value))
    if kind is not None:
        return kind
    if value is None:
        return NULL
    if isinstance(value, bool):
        return SchemaValueType.BOOL.value
    if isinstance(value, int):
        return SchemaValueType.INT.value
    if isinstance(value, float | Decimal):
        return SchemaValueType.FLOAT.value
    if isinstance(value, dict):
        return SchemaValueType.OBJECT.value
    if isinstance(value, list | tuple):
        return SchemaValueType.ARRAY.value
    return SchemaValueType.STR.value


def flatten(raw) -> tuple[set[tuple[str, str]], bool]:
    """The (path, type) pairs of a raw order, and whether a cap cut it short."""
    pairs: set[tuple[str, str]] = set()
    truncated = False
    visits = 0
    stack = [("", raw, 0)]
    while stack:
        prefix, node, depth = stack.pop()
        if isinstance(node, dict):
            if len(node) > MAX_KEYS_PER_OBJECT:
                truncated = True
            children = []
            for index, (key, value) in enumerate(node.items()):
                if index >= MAX_KEYS_PER_OBJECT:
                    break
                children.append((f"{prefix}.{key}" if prefix else str(key), value))
        else:
            if len(node) > MAX_ITEMS_PER_ARRAY:
                truncated = True
            children = [(f"{prefix}[]", value) for value in node[:MAX_ITEMS_PER_ARRAY]]
        for path, value in children:
            visits += 1
            if visits > MAX_VISITS or len(pairs) >= MAX_PAIRS:
                return pairs, True
            if len(path) > MAX_PATH:
                truncated = True
                continue
            kind = value_type(value)
            pairs.add((path, kind))
            if kind in ("object", "array") and value:
                if depth + 1 >= MAX_DEPTH:
                    truncated = True
                else:
                    stack.append((path, value, depth + 1))
    return pairs, truncated


def compatible(new_type: str, known_types: set[str]) -> bool:
    """Whether a path known with `known_types` may take `new_type` without it being a change."""
    if not known_types:
        return False
    return new_type == NULL or known_types == {NULL} or (new_type in NUMBERS and bool(known_types & NUMBERS))


def example(raw) -> object:
    """The payload for a drift's example: as is up to EXAMPLE_MAX_BYTES, else pruned (long
    strings and lists cut, depth and size bounded), else the head of the pruned text."""
    try:
        text = json.dumps(raw, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):
        text = None
    if text is not None and len(text.encode()) <= EXAMPLE_MAX_BYTES:
        return json.loads(text)
    pruned = json.dumps(_prune(raw, 0, [2_000]), ensure_ascii=False, default=str)
    if len(pruned.encode()) <= EXAMPLE_MAX_BYTES:
        return json.loads(pruned)
    size = len(text.encode()) if text is not None else None
    keep = EXAMPLE_MAX_BYTES
    while True:  # quoting the text inside JSON may double its size
        keep = keep * 3 // 4
        cut = {"_truncated": True, "_bytes": size, "head": pruned.encode()[:keep].decode("utf-8", errors="ignore")}
        if len(json.dumps(cut, ensure_ascii=False).encode()) <= EXAMPLE_MAX_BYTES:
            return cut


def _prune(node, depth: int, budget: list[int]):
    """A bounded copy of `node`: at most budget[0] values, MAX_DEPTH levels, 3 items a list."""
    budget[0] -= 1
    if budget[0] < 0 or depth >= MAX_DEPTH:
        return "…"
    if isinstance(node, dict):
        return {str(k): _prune(v, depth + 1, budget)
                for k, v in list(node.items())[:MAX_KEYS_PER_OBJECT] if budget[0] > 0}
    if isinstance(node, list | tuple):
        return [_prune(v, depth + 1, budget) for v in node[:3]]
    if isinstance(node, str) and len(node) > 500:
        return node[:500] + "…"
    return node


# --- the per-channel known set, cached in this process ------------------------------------

@dataclass
class _Field:
    pk: int
    accepted: bool
    last_seen: datetime  # as written to the database, or seen here since
    written: datetime  # the last_seen this process knows the database has
    pending: int = 0  # times seen here and not yet added to seen_count


@dataclass
class _State:
    loaded_at: float
    fields: dict[tuple[str, str], _Field]
    open_drifts: set[tuple[str, str]]  # (kind, path)
    learning_start: datetime | None
    learning_done: bool = False
    observed: int = 0
    full_logged: bool = False
    accepted_types: dict[str, set[str]] = field(default_factory=dict)

    def index(self):
        self.accepted_types = defaultdict(set)
        for (path, kind), f in self.fields.items():
            if f.accepted:
                self.accepted_types[path].add(kind)


_STATES: dict[int, _State] = {}


def reset(channel_id: int | None = None) -> None:
    """Forget the cached known set (of one channel, or of all)."""
    if channel_id is None:
        _STATES.clear()
    else:
        _STATES.pop(channel_id, None)


def _load(channel: Channel, previous: _State | None) -> _State:
    fields = {}
    learning_start = None
    for pk, path, kind, accepted, first_seen, last_seen in SchemaField.objects.filter(channel=channel) \
            .values_list("pk", "path", "value_type", "accepted", "first_seen", "last_seen"):
        fields[(path, kind)] = _Field(pk, accepted, last_seen, last_seen)
        learning_start = first_seen if learning_start is None else min(learning_start, first_seen)
    open_drifts = set(SchemaDrift.objects.filter(channel=channel, acknowledged_at__isnull=True)
                      .values_list("kind", "path"))
    state = _State(time.monotonic(), fields, open_drifts, learning_start)
    if previous is not None:  # what this process saw and has not written yet
        state.learning_done = previous.learning_done
        state.observed = previous.observed
        state.full_logged = previous.full_logged
        for key, old in previous.fields.items():
            new = fields.get(key)
            if new is not None and new.pk == old.pk:
                new.pending = old.pending
                new.last_seen = max(new.last_seen, old.last_seen)
    state.index()
    return state


# --- observing one payload ----------------------------------------------------------------

def observe_safely(channel: Channel, raw, payload: RawPayload | None = None) -> None:
    """`observe`, for intake: whatever goes wrong here is logged, never raised."""
    try:
        observe(channel, raw, payload)
    except Exception:
        logger.exception("schema drift detection failed for channel %s (intake goes on)", channel.code)


class _LazyAtomic(ExitStack):
    """A transaction opened by the first call, not before: most observations touch no row."""

    def __call__(self):
        if not getattr(self, "_entered", False):
            self.enter_context(transaction.atomic())
            self._entered = True


def observe(channel: Channel, raw, payload: RawPayload | None = None, archived_after: int = 0) -> list[SchemaDrift]:
    """Learn the fields of one raw order of `channel`, and record the drifts it reveals.
    `archived_after`: how many payloads of the channel archived after this one are not
    observed yet (the rest of its page)."""
    if not isinstance(raw, dict | list):
        return []
    pairs, truncated = flatten(raw)
    seen_at = payload.received_at if payload is not None else timezone.now()
    with _LazyAtomic() as db:
        state = _STATES.get(channel.pk)
        if state is None or time.monotonic() - state.loaded_at > CACHE_SECONDS:
            db()
            state = _STATES[channel.pk] = _load(channel, state)
        state.observed += 1
        learning = _learning(channel, state, seen_at, db, archived_after)
        fresh = [pair for pair in pairs if pair not in state.fields]
        if fresh:
            db()
            _record(channel, state, fresh, seen_at, learning)
        _touch(state, pairs, fresh, seen_at, db)
        if learning:
            return []
        changes = _changes(state, pairs)
        if changes:  # the cache may be stale (acknowledged elsewhere): decide on fresh data
            db()
            state = _STATES[channel.pk] = _load(channel, state)
            changes = _changes(state, pairs)
        if state.observed % VANISHED_CHECK_EVERY == 0:
            db()
            changes += _vanished(channel, state)
        if not changes:
            return []
        db()
        return _raise(channel, state, changes, raw, payload, truncated)


def observe_page_safely(channel: Channel, raws: list, payloads: list[RawPayload]) -> None:
    """`observe_page`, for intake: whatever goes wrong here is logged, never raised."""
    try:
        observe_page(channel, raws, payloads)
    except Exception:
        logger.exception("schema drift detection failed for channel %s (intake goes on)", channel.code)


def observe_page(channel: Channel, raws: list, payloads: list[RawPayload]) -> list[SchemaDrift]:
    """`observe` for the payloads of one page (raws[i] archived as payloads[i]), in order.

    The outcome is that of observing them one by one; the checks against the known set run
    once on the union of the page's (path, type) pairs, and only when that union holds
    something new does each payload get looked at on its own (so each drift still names the
    payload that revealed it, and shares its change set with that payload's other changes).
    The vanished check runs once a page at most (a page of 100 spans two of its periods).
    While the channel is still learning its schema, payloads are observed one by one."""
    drifts: list[SchemaDrift] = []
    index = 0
    while index < len(raws):  # until the learning phase is known to be over
        state = _STATES.get(channel.pk)
        if state is not None and state.learning_done and len(raws) - index > 1:
            break
        drifts += observe(channel, raws[index], payloads[index], archived_after=len(raws) - 1 - index)
        index += 1
    items = [(raw, payload, *flatten(raw)) for raw, payload in zip(raws[index:], payloads[index:], strict=True)
             if isinstance(raw, dict | list)]
    if items:
        drifts += _observe_many(channel, items)
    return drifts


def _observe_many(channel: Channel, items: list[tuple]) -> list[SchemaDrift]:
    """`observe_page` past the learning phase; items are (raw, payload, pairs, truncated)."""
    with _LazyAtomic() as db:
        state = _STATES.get(channel.pk)
        if state is None or time.monotonic() - state.loaded_at > CACHE_SECONDS:
            db()
            state = _STATES[channel.pk] = _load(channel, state)
        if not state.learning_done:  # a reload elsewhere lost the flag: one by one
            db.close()
            return [d for raw, payload, *_ in items for d in observe(channel, raw, payload)]
        first: dict[tuple[str, str], int] = {}  # pair → index of the first item that has it
        seen: dict[tuple[str, str], list] = {}  # pair → [times seen, latest seen_at]
        checks = set()  # items at which the vanished check falls due
        for position, (_raw, payload, pairs, _truncated) in enumerate(items):
            state.observed += 1
            if state.observed % VANISHED_CHECK_EVERY == 0:
                checks.add(position)
            for pair in pairs:
                entry = seen.get(pair)
                if entry is None:
                    first[pair] = position
                    seen[pair] = [1, payload.received_at]
                else:
                    entry[0] += 1
                    entry[1] = max(entry[1], payload.received_at)
        fresh = [pair for pair in first if pair not in state.fields]
        if fresh:
            db()
            groups = defaultdict(list)
            for pair in fresh:
                groups[first[pair]].append(pair)
            for position in sorted(groups):  # as the payload that revealed them would have
                _record(channel, state, groups[position], items[position][1].received_at, False)
            for pair in fresh:  # the revealing payload's sighting is the field's first_seen
                seen[pair][0] -= 1
        _touch_counts(state, seen, db)
        if len(checks) > 1:  # the vanished check runs once a page at most: at the latest due
            checks = {max(checks)}
        changed = bool(_changes(state, first))
        if changed:  # the cache may be stale (acknowledged elsewhere): decide on fresh data
            db()
            state = _STATES[channel.pk] = _load(channel, state)
        drifts = []
        for position, (raw, payload, pairs, truncated) in enumerate(items):
            if not changed and position not in checks:
                continue
            changes = _changes(state, pairs) if changed else []
            if position in checks:
                db()
                changes += _vanished(channel, state)
            if changes:
                db()
                drifts += _raise(channel, state, changes, raw, payload, truncated)
        return drifts


def _touch_counts(state: _State, seen: dict, db) -> None:
    """`_touch` for a page: each field seen `count` times, latest at `seen_at`."""
    due: dict[tuple[int, datetime], list] = defaultdict(list)
    for pair, (count, seen_at) in seen.items():
        f = state.fields.get(pair)
        if f is None or count <= 0:
            continue
        f.pending += count
        f.last_seen = max(f.last_seen, seen_at)
        if seen_at - f.written >= LAST_SEEN_EVERY:
            due[(f.pending, seen_at)].append(pair)
    if not due:
        return
    db()
    for (count, seen_at), due_pairs in due.items():
        SchemaField.objects.filter(pk__in=[state.fields[p].pk for p in due_pairs]).update(
            last_seen=Greatest(F("last_seen"), Value(seen_at)), seen_count=F("seen_count") + count)
        for pair in due_pairs:
            f = state.fields[pair]
            f.pending, f.written = 0, max(f.written, seen_at)


def _learning(channel: Channel, state: _State, seen_at: datetime, db, archived_after: int = 0) -> bool:
    if state.learning_done:
        return False
    limit = getattr(settings, "OMS_SCHEMA_LEARNING_PAYLOADS", LEARNING_PAYLOADS)
    start = state.learning_start or seen_at
    db()
    # Up to this payload: a page archives its payloads before they are observed, and those
    # after this one are not counted (a filter on them would not stop at the LIMIT).
    count = RawPayload.objects.filter(channel=channel, received_at__gte=start)[
        :limit + 1 + archived_after].count() - archived_after
    if count > limit:
        state.learning_done = True
        return False
    return True


def _record(channel: Channel, state: _State, fresh, seen_at: datetime, learning: bool) -> None:
    room = MAX_FIELDS_PER_CHANNEL - len(state.fields)
    if room < len(fresh) and not state.full_logged:
        state.full_logged = True
        logger.warning("channel %s: more than %d schema fields, new ones are no longer recorded",
                       channel.code, MAX_FIELDS_PER_CHANNEL)
    fresh = sorted(fresh)[:max(room, 0)]
    if not fresh:
        return
    SchemaField.objects.bulk_create(
        [SchemaField(channel=channel, path=path, value_type=kind, first_seen=seen_at, last_seen=seen_at,
                     accepted=learning or compatible(kind, state.accepted_types.get(path, set())))
         for path, kind in fresh],
        ignore_conflicts=True,
    )
    for pk, path, kind, accepted, last_seen in SchemaField.objects \
            .filter(channel=channel, path__in={path for path, _kind in fresh}) \
            .values_list("pk", "path", "value_type", "accepted", "last_seen"):
        if (path, kind) not in state.fields:
            state.fields[(path, kind)] = _Field(pk, accepted, last_seen, last_seen)
    if state.learning_start is None:
        state.learning_start = seen_at
    state.index()


def _touch(state: _State, pairs, fresh, seen_at: datetime, db) -> None:
    """Move last_seen (and seen_count) of the fields due: at most once a LAST_SEEN_EVERY each."""
    fresh = set(fresh)
    due: dict[int, list[int]] = defaultdict(list)
    for pair in pairs:
        f = state.fields.get(pair)
        if f is None or pair in fresh:
            continue
        f.pending += 1
        f.last_seen = max(f.last_seen, seen_at)
        if seen_at - f.written >= LAST_SEEN_EVERY:
            due[f.pending].append(pair)
    if not due:
        return
    db()
    for count, due_pairs in due.items():
        SchemaField.objects.filter(pk__in=[state.fields[p].pk for p in due_pairs]).update(
            last_seen=Greatest(F("last_seen"), Value(seen_at)), seen_count=F("seen_count") + count)
        for pair in due_pairs:
            f = state.fields[pair]
            f.pending, f.written = 0, max(f.written, seen_at)


def _changes(state: _State, pairs) -> list[tuple[str, str, str, str]]:
    """(kind, path, old type, new type) of the pairs that are neither known nor already open:
    one change per path."""
    changes = {}
    for path, kind in sorted(pairs):
        f = state.fields.get((path, kind))
        known = state.accepted_types.get(path, set())
        if f is None or f.accepted or compatible(kind, known) or path in changes:
            continue
        drift_kind = RETYPED if known else NEW
        if (drift_kind, path) in state.open_drifts:
            continue
        changes[path] = (drift_kind, path, ",".join(sorted(known)), kind)
    return list(changes.values())


def _vanished(channel: Channel, state: _State) -> list[tuple[str, str, str, str]]:
    """Known paths not seen in the last OMS_SCHEMA_VANISHED_AFTER payloads of the channel."""
    after = getattr(settings, "OMS_SCHEMA_VANISHED_AFTER", VANISHED_AFTER)
    cutoff = RawPayload.objects.filter(channel=channel).order_by("-received_at") \
        .values_list("received_at", flat=True)[after - 1:after].first()
    if cutoff is None:
        return []
    # last_seen in the database may lag the truth by up to LAST_SEEN_EVERY.
    latest = dict(SchemaField.objects.filter(channel=channel).values("path")
                  .annotate(last=Max("last_seen")).values_list("path", "last"))
    for (path, _kind), f in state.fields.items():
        latest[path] = max(latest.get(path, f.last_seen), f.last_seen)
    candidates = {path for path, types in state.accepted_types.items()
                  if types and path in latest and latest[path] + LAST_SEEN_EVERY < cutoff}
    if not candidates:
        return []
    # Once reported, not again until the field has been seen after that report.
    reported = dict(SchemaDrift.objects.filter(channel=channel, kind=VANISHED,
                                               path__in=candidates)
                    .values("path").annotate(at=Max("detected_at")).values_list("path", "at"))
    return [(VANISHED, path, ",".join(sorted(state.accepted_types[path])), "")
            for path in sorted(candidates)
            if (VANISHED, path) not in state.open_drifts
            and (path not in reported or latest[path] > reported[path])]


def change_set_id(channel: Channel, changes) -> str:
    text = "|".join([str(channel.pk), *(":".join(change) for change in sorted(changes))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _raise(channel: Channel, state: _State, changes, raw, payload, truncated: bool) -> list[SchemaDrift]:
    if len(changes) > MAX_DRIFTS_PER_PAYLOAD:
        logger.warning("channel %s: %d schema changes in one payload, recording the first %d",
                       channel.code, len(changes), MAX_DRIFTS_PER_PAYLOAD)
        changes = changes[:MAX_DRIFTS_PER_PAYLOAD]
    change_set = change_set_id(channel, changes)
    sample = example(raw)
    drifts = [SchemaDrift(channel=channel, kind=kind, path=path, old_type=old_type[:40], new_type=new_type,
                          change_set=change_set, example=sample, payload=payload)
              for kind, path, old_type, new_type in changes]
    # A concurrent worker may have opened the same drift: the partial unique index keeps one.
    SchemaDrift.objects.bulk_create(drifts, ignore_conflicts=True)
    state.open_drifts.update((kind, path) for kind, path, _old, _new in changes)
    logger.warning(
        "channel API changed: channel %s, payload %s: %s%s", channel.code,
        getattr(payload, "pk", None), "; ".join(_describe(c) for c in changes),
        " (payload cut short by the drift caps)" if truncated else "",
        extra={"channel": channel.code, "change_set": change_set, "changes": len(changes)},
    )
    return drifts


def _describe(change) -> str:
    kind, path, old_type, new_type = change
    if kind == RETYPED:
        return f"retyped {path} ({old_type} → {new_type})"
    if kind == NEW:
        return f"new {path} ({new_type})"
    return f"vanished {path} ({old_type})"


# --- acknowledging ------------------------------------------------------------------------

def acknowledge(drifts, user=None) -> int:
    """Close the open drifts among `drifts`: the path of a `new` or `retyped` drift becomes
    known with every type seen so far; a `vanished` one is not reported again until it has
    been seen again. Returns how many were open."""
    now = timezone.now()
    done = 0
    channels = set()
    with transaction.atomic():
        for drift in SchemaDrift.objects.select_for_update().filter(
                pk__in=[d.pk for d in drifts], acknowledged_at__isnull=True):
            if drift.kind in (NEW, RETYPED):
                SchemaField.objects.filter(channel_id=drift.channel_id, path=drift.path).update(accepted=True)
                if drift.new_type:
                    SchemaField.objects.get_or_create(
                        channel_id=drift.channel_id, path=drift.path, value_type=drift.new_type,
                        defaults={"accepted": True, "first_seen": drift.detected_at,
                                  "last_seen": drift.detected_at})
            drift.acknowledged_at = now
            drift.acknowledged_by = user if user is not None and user.is_authenticated else None
            drift.save(update_fields=["acknowledged_at", "acknowledged_by"])
            channels.add(drift.channel_id)
            done += 1
    for channel_id in channels:
        reset(channel_id)
    return done
