"""The generic JSON webhook of CONTRACTS.md: the body already is the unified order input.

Normalising is a light check and a copy (validation-light identity): the order serializer and
the intake validation judge the rest. It has no pull API: fetch yields nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from .base import ChannelAdapter, NormaliseError, Window
from .fields import identifier, without_empty_times


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
        data = copy.deepcopy(raw) if isinstance(raw, dict) else raw
        data["external_order_id"] = self.external_id(data)
        status = data.get("status", "pending_payment")
        if status not in self.status_map:
            raise NormaliseError("status", f"{status!r} is not one of {', '.join(self.status_map)}")
        if not isinstance(data.get("lines"), list) or not data["lines"]:
            raise NormaliseError("lines", "at least one line is required")
        return without_empty_times(data)
