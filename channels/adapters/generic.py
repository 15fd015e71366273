"""The generic JSON webhook of CONTRACTS.md: the body already is the unified order input."""

import copy

from .base import ChannelAdapter, NormaliseError, Window


class GenericAdapter(ChannelAdapter):
    kind = "generic"
    status_map = {"pending_payment": "pending_payment", "paid": "paid", "cancelled": "cancelled",
                  "refunded": "refunded"}

    def fetch(self, window: Window):
        return iter(())  # push only

    def external_id(self, raw: dict) -> str:
        value = raw.get("external_order_id")
        if not value:
            raise NormaliseError("external_order_id", "missing")
        return str(value)

    def normalise(self, raw: dict) -> dict:
        data = copy.deepcopy(raw)
        data["external_order_id"] = self.external_id(raw)
        status = raw.get("status", "pending_payment")
        if status not in self.status_map:
            raise NormaliseError("status", f"{status!r} is not one of {', '.join(self.status_map)}")
        if not isinstance(raw.get("lines"), list) or not raw["lines"]:
            raise NormaliseError("lines", "at least one line is required")
        if data.get("paid_at") is None:
            data.pop("paid_at", None)
        return data
