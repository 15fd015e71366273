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

import math
import reprlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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

    # --- optional helpers shared by the platform adapters (not part of the interface) ------

    # Seconds one HTTP call may take before it counts as a timeout (TransportError).
    timeout: float = 20.0
    # Orders per page asked of the platform.
    page_size: int = 50

    def now(self) -> datetime:
        """The current time (aware); tests replace it to pin the clock."""
        return datetime.now(UTC)

    def clamp_window(self, window: Window) -> Window | None:
        """The part of `window` this platform can safely be asked for now, or None when there
        is none yet. Pinduoduo drops its newest minutes; the others take the window as is.
        A pull should advance its cursor to the end of the clamped window, not of the asked
        one, or the dropped minutes are never fetched."""
        return window

    def windows(self, window: Window) -> list[Window]:
        """`window` clamped, then split into consecutive windows the platform accepts."""
        clamped = self.clamp_window(window)
        return split_window(clamped, self.max_window_seconds) if clamped else []

    def credential(self, name: str, default: str | None = None) -> str:
        """One value of the channel's credentials; ChannelAPIError when a required one is
        missing (retrying will not conjure it)."""
        value = (getattr(self.channel, "credentials", None) or {}).get(name, default)
        if value is None or value == "":
            if default is not None:
                return default
            raise ChannelAPIError(f"{self.kind}: channel credentials lack {name!r}")
        return str(value)

    @property
    def base_url(self) -> str:
        url = getattr(self.channel, "api_base_url", "") or ""
        if not url:
            raise ChannelAPIError(f"{self.kind}: channel has no api_base_url")
        return url

    def call(self, method: str, url: str, *, params: dict | None = None, json: dict | None = None,
             headers: dict | None = None, data: bytes | None = None) -> dict:
        """One HTTP call through the transport (requests when none was given): 5xx and 429
        raise TransportError, any other 4xx ChannelAPIError; returns the JSON body. `data` is
        a body sent exactly as given, instead of `json`."""
        transport = self.transport
        if transport is None:
            from .http import requests_transport

            transport = requests_transport
        extra = {"data": data} if data is not None else {}
        status, body = transport(method, url, params=params, json=json, headers=headers,
                                 timeout=self.timeout, **extra)
        if status >= 500 or status == 429:
            raise TransportError(f"{self.kind}: HTTP {status} from {url}")
        if status >= 400:
            raise ChannelAPIError(f"{self.kind}: HTTP {status} from {url}: {str(body)[:300]}")
        if not isinstance(body, dict):
            raise ChannelAPIError(f"{self.kind}: expected a JSON object from {url}, got {type(body).__name__}")
        return body

    def platform_status(self, value, field: str = "status") -> str | None:
        """The unified status of a platform status through `status_map`; an unknown status
        is unreadable input (NormaliseError), never guessed."""
        if value is None or value == "":
            raise NormaliseError(field, "missing")
        key = printed(value)
        if key not in self.status_map:
            raise NormaliseError(field, f"unknown platform status {shown(value)}")
        return self.status_map[key]


def split_window(window: Window, max_seconds: int) -> list[Window]:
    """Consecutive windows of at most `max_seconds` covering `window` (none when empty)."""
    if window.end <= window.start:
        return []
    parts, start, step = [], window.start, timedelta(seconds=max_seconds)
    while start < window.end:
        end = min(start + step, window.end)
        parts.append(Window(start, end))
        start = end
    return parts


def pages_backwards(fetch_page: Callable[[int], tuple[list, int]], first: int,
                    page_size: int) -> Iterator[list]:
    """Pages of one query, from the last page back to the first.

    `fetch_page(n)` returns (items of page n, total across pages). The first page is asked
    once to learn the total; when everything fits on it, that is all. Otherwise the pages are
    walked from the last one back to the first, as TOP and Pinduoduo require: an order updated
    while we page leaves the window and the orders behind it move one place towards the first
    page, onto a page we have not read yet, instead of onto one we already read.
    """
    items, total = fetch_page(first)
    if total <= len(items) or total <= page_size:
        yield items
        return
    last = first + math.ceil(total / page_size) - 1
    for number in range(last, first - 1, -1):
        page, _ = fetch_page(number)
        yield page


class NormaliseError(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel = 3
_SHOWN.maxstring = _SHOWN.maxother = 80
_SHOWN.maxlong = 40


def shown(value) -> str:
    """A raw value as an error message shows it: repr for a scalar, cut short when long, and
    never recursing through a nested value (repr of a list nested 1,000 deep overflows the
    stack)."""
    try:
        return _SHOWN.repr(value)
    except ValueError:  # an int of more digits than repr() converts
        return f"<{type(value).__name__} too long to show>"


def printed(value) -> str:
    """str() of a scalar; of a list or object (whose str() recurses), or an int too long for
    str(), what shown() makes of it."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return shown(value)
    try:
        return str(value)
    except ValueError:
        return shown(value)
