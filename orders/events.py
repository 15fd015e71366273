"""Who did something, and the append-only record of it on the order's timeline."""

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from oms.rowsql import insert_instance

from .models import EventKind, Order, OrderEvent, Track


@dataclass(frozen=True)
class Actor:
    label: str  # user:amy, device:WH-SH/pack-B, channel:TB-FLAGSHIP, system
    user: object | None = None  # the Django user whose permissions apply, if any

    @classmethod
    def for_user(cls, user) -> "Actor":
        return cls(f"user:{user.get_username()}", user)

    @classmethod
    def for_device(cls, device) -> "Actor":
        return cls(f"device:{device.name}", device.user)

    @classmethod
    def for_channel(cls, channel) -> "Actor":
        return cls(f"channel:{channel.code}")


SYSTEM = Actor("system")

_collecting = threading.local()


@contextmanager
def collected_events():
    """Inside the block, `record_event` keeps the events it builds in the list this yields
    instead of inserting each one: the caller inserts them together (orders made in bulk)."""
    events: list[OrderEvent] = []
    outer = getattr(_collecting, "events", None)
    _collecting.events = events
    try:
        yield events
    finally:
        _collecting.events = outer


def record_event(
    order: Order,
    *,
    track: str,
    kind: str,
    actor: Actor,
    summary: str,
    at: datetime | None = None,
    from_state: str = "",
    to_state: str = "",
    payload: dict | None = None,
) -> OrderEvent:
    event = OrderEvent(
        order=order,
        track=track,
        kind=kind,
        actor=actor.label,
        user=actor.user if getattr(actor.user, "pk", None) else None,
        at=at or timezone.now(),
        summary=summary[:255],
        from_state=from_state,
        to_state=to_state,
        payload=payload or {},
    )
    collecting = getattr(_collecting, "events", None)
    if collecting is not None:
        collecting.append(event)
    else:
        insert_instance(event)
    return event


__all__ = ["Actor", "SYSTEM", "record_event", "EventKind", "Track"]
