"""The generic JSON webhook of CONTRACTS.md: the body already is the unified order input.

Normalising is a light check and a copy (validation-light identity): the order serializer and
the intake validation judge the rest. It has no pull API: fetch yields nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from .base import ChannelAdapter, NormaliseError, Window, shown
from .fields import identifier, without_empty_times

# The unified order input is four levels deep (order, lines, line, value); copying a body
# nested far deeper would overflow the stack.
MAX_DEPTH = 32


class GenericAdapter(ChannelAdapter):
    kind = "generic"
    # The body speaks the unified statuses already.
    status_map = {
        "pending_payment": "pending_payment",
        "paid": "paid",
        "cancelled": "cancelled",
        "refunded": "refunded",
    }

    def fetch(self, window: Window) -> Iterator[dict]:
        return iter(())  # push only: orders arrive through the webhook

    def external_id(self, raw: dict) -> str:
        if not isinstance(raw, dict):
            raise NormaliseError("body", "not a JSON object")
        return identifier(raw.get("external_order_id") or None, "external_order_id")

    def normalise(self, raw: dict) -> dict:
        self.external_id(raw)
        if _deeper_than(raw, MAX_DEPTH):
            raise NormaliseError("body", f"nested more than {MAX_DEPTH} levels deep")
        data = copy.deepcopy(raw)
        data["external_order_id"] = self.external_id(data)
        status = data.get("status", "pending_payment")
        if not isinstance(status, str) or status not in self.status_map:
            raise NormaliseError("status", f"{shown(status)} is not one of {', '.join(self.status_map)}")
        if not isinstance(data.get("lines"), list) or not data["lines"]:
            raise NormaliseError("lines", "at least one line is required")
        return without_empty_times(data)


def _deeper_than(value, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels, found without recursing."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False
