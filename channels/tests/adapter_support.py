"""Helpers for the adapter tests: payload fixtures, a fake channel, a recording transport."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from json import loads as _loads
from pathlib import Path
from types import SimpleNamespace

from channels.adapters.base import Window
from channels.adapters.fields import SHANGHAI

FIXTURES = Path(__file__).parent / "fixtures"


def load(platform: str, name: str) -> dict:
    """A fixture as the platform sends it (JSON numbers as Python parses them)."""
    with open(FIXTURES / platform / f"{name}.json", encoding="utf-8") as handle:
        return json.load(handle)


def fake_channel(code: str = "TEST", base_url: str = "https://api.example.test/router", **credentials):
    return SimpleNamespace(code=code, api_base_url=base_url, credentials=credentials)


@dataclass
class Call:
    method: str
    url: str
    params: dict = field(default_factory=dict)
    json: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    timeout: float = 10.0
    data: bytes | None = None  # a body sent byte for byte

    @property
    def args(self) -> dict:
        """What the adapter sent: query parameters and JSON body together."""
        return {**self.params, **self.json}


class FakeTransport:
    """Serves answers from `handler(call)` — (status, body), or an exception to raise — and
    records every call it got."""

    def __init__(self, handler):
        self.handler = handler
        self.calls: list[Call] = []

    def __call__(self, method, url, *, params=None, json=None, headers=None, timeout=10.0, data=None):
        body = json if data is None else _loads(data)  # `json` is the parameter here
        call = Call(method, url, dict(params or {}), dict(body or {}), dict(headers or {}), timeout, data)
        self.calls.append(call)
        answer = self.handler(call)
        if isinstance(answer, Exception):
            raise answer
        return answer


def at(text: str) -> datetime:
    """"2025-03-01 10:00" in Beijing time as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def window(start: str, end: str) -> Window:
    return Window(at(start), at(end))


def adds_up(data: dict) -> bool:
    """lines − line discounts − discount_total + shipping_fee = payable, to the cent."""
    lines = sum((Decimal(line["unit_price"]) * line["quantity"] - Decimal(line.get("discount", "0"))
                 for line in data["lines"]), Decimal("0"))
    return lines - Decimal(data["discount_total"]) + Decimal(data["shipping_fee"]) == Decimal(data["payable"])
