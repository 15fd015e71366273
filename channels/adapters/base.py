"""The interface every channel adapter implements.

An adapter knows one platform's order API: how to page through a time window of orders, how to
turn one raw order into the unified order input, and how to push a shipment back. It does no
database work: the intake service (channels.intake) archives the raw payload, applies the
channel's cleansing rules, validates and creates or updates the order.

The unified order input is the body of the generic channel webhook (CONTRACTS.md), with amounts
as decimal strings and line `sku` as the seller's SKU code:

    {"external_order_id", "status": "pending_payment|paid|cancelled|refunded",
     "placed_at": ISO-8601, "paid_at": ISO-8601 | None, "currency": "CNY",
     "buyer": {"name", "phone"}, "receiver": {"name", "phone", "province", "city",
     "district", "address"}, "lines": [{"sku", "quantity", "unit_price", "discount",
     "external_line_id"}], "shipping_fee", "discount_total", "payable"}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class Transport(Protocol):
    """One HTTP call: returns (status code, parsed JSON body). Raises TransportError on
    network failure or timeout."""

    def __call__(self, method: str, url: str, *, params: dict | None = None,
                 json: dict | None = None, headers: dict | None = None,
                 timeout: float = 10.0) -> tuple[int, dict]: ...


class TransportError(Exception):
    """Network failure, timeout or a 5xx: worth retrying with backoff."""


class ChannelAPIError(Exception):
    """The platform answered with an error that retrying will not fix (bad credentials...)."""


@dataclass(frozen=True)
class Window:
    start: datetime  # inclusive, aware
    end: datetime  # exclusive, aware


class ChannelAdapter(ABC):
    kind: str  # channels.models.ChannelKind value
    # Platform status → unified status (pending_payment | paid | cancelled | refunded), or
    # None for a status that carries no news for the order (e.g. already shipped on platform).
    status_map: dict[str, str | None]
    # Longest window the platform accepts in one query, in seconds.
    max_window_seconds: int = 24 * 3600

    def __init__(self, channel, transport: Transport | None = None):
        self.channel = channel  # channels.models.Channel (credentials, base_url, ...)
        self.transport = transport

    @abstractmethod
    def fetch(self, window: Window) -> Iterator[dict]:
        """Every raw order updated in the window, page by page, as the platform sends it."""

    @abstractmethod
    def external_id(self, raw: dict) -> str:
        """The platform's order id (Taobao `tid`, JD `orderId`, ...)."""

    @abstractmethod
    def normalise(self, raw: dict) -> dict:
        """The unified order input for one raw order. Raises NormaliseError naming the field
        when the raw order cannot be read at all (missing id, unreadable amount)."""

    def push_shipment(self, external_order_id: str, carrier: str, tracking_no: str) -> dict:
        """Tell the platform the order shipped; returns the platform's reply. Raises
        TransportError (retry) or ChannelAPIError (give up and alert)."""
        raise ChannelAPIError(f"{self.kind} adapter cannot push shipments yet")


class NormaliseError(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
