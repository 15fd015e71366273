"""Sandbox settings, per-shop configuration and fault knobs.

Every setting is read with a default, so settings.py needs no entry; a setting that is absent
from Django settings is read from the environment variable of the same name:

    OMS_SANDBOX_ENABLED           default: true unless OMS_ENV=production
    OMS_SANDBOX_SEED              default "oms-sandbox"
    OMS_SANDBOX_ORDERS_PER_MINUTE default 6 (an order every 10 s per shop)
    OMS_SANDBOX_SKUS              list or comma-separated string; default the demo SKUs
    OMS_SANDBOX_FAULTS            "slow_pages=0.5,error_rate=0.1,duplicate_across_pages=1,
                                   new_field=1,renamed_field=1,retyped_field=1" (or a dict)
    OMS_SANDBOX_SHOPS             {shop_key: {"seed", "orders_per_minute", "skus", "faults"}}
                                  (a dict, or JSON in the environment)

Precedence, lowest first: global setting < the shop's entry in OMS_SANDBOX_SHOPS < the request
(query parameter `sandbox_seed` / `sandbox_faults`, or header `X-Sandbox-Seed` /
`X-Sandbox-Faults`). Request faults are merged knob by knob over the configured ones, so
`sandbox_faults=error_rate=0` switches one global knob off for one request.

Unknown knobs and unreadable values are ignored and named in the X-Sandbox-Faults-Ignored
response header. Fault knobs (all deterministic for a given seed and request):
    slow_pages=S              sleep S seconds (≤ 30) before answering each page
    error_rate=P              answer 503 with a platform error body with probability P; the draw
                              depends on the seed, the request and the current second, so a
                              client retrying after ≥ 1 s gets a fresh draw
    duplicate_across_pages=P  at each page boundary, with probability P, the last order of a
                              page is served again as the first order of the next page (nothing
                              is lost: totals count the extra rows, as a shifting list would)
    new_field=1|name|name:value   add a field to every order (default `sandbox_new_field` /
                              `sandboxNewField`, value "1"); `new_field=order_id_suffix:ERR`
                              reproduces the issue's glued-suffix case
    renamed_field=1|path:new  rename a field of every order (default Taobao
                              receiver_mobile → receiver_phone, Shopify shippingAddress.phone →
                              shippingAddress.phoneNumber); the path is dotted, lists are walked
    retyped_field=1|path      change a field's JSON type (string ↔ number; default Taobao
                              `payment` as a number, Shopify line item `quantity` as a string)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace

from django.conf import settings

DEFAULT_SKUS = ("SKU-TEA-001", "SKU-TEA-002", "SKU-CUP-001", "SKU-POT-001", "SKU-GIFT-01")
DEFAULT_SEED = "oms-sandbox"
DEFAULT_ORDERS_PER_MINUTE = 6
MAX_SLOW_SECONDS = 30.0
FAULT_KNOBS = ("slow_pages", "error_rate", "duplicate_across_pages", "new_field",
               "renamed_field", "retyped_field")
OFF = {"", "0", "false", "no", "off", "none"}


def setting(name: str, default=None):
    """Django setting `name`, else environment variable `name`, else `default`."""
    if hasattr(settings, name):
        return getattr(settings, name)
    return os.environ.get(name, default)


def as_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in OFF


def enabled() -> bool:
    value = setting("OMS_SANDBOX_ENABLED")
    if value is None:
        return setting("OMS_ENV", "development") != "production"
    return as_bool(value)


@dataclass(frozen=True)
class Faults:
    slow_pages: float = 0.0
    error_rate: float = 0.0
    duplicate_across_pages: float = 0.0
    new_field: str = ""
    renamed_field: str = ""
    retyped_field: str = ""
    ignored: tuple[str, ...] = field(default=(), compare=False)

    def merged(self, spec) -> Faults:
        """These faults with the knobs named in `spec` (a string or a dict) replaced."""
        knobs, ignored = parse_faults(spec)
        return replace(self, **knobs, ignored=self.ignored + ignored)

    def active(self) -> list[str]:
        return [name for name in FAULT_KNOBS if getattr(self, name)]


def _fraction(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"fault knob {name} needs a number, got {value!r}") from None
    if name == "slow_pages":
        return min(max(number, 0.0), MAX_SLOW_SECONDS)
    return min(max(number, 0.0), 1.0)


def parse_faults(spec) -> tuple[dict, tuple[str, ...]]:
    """"a=1,b=0.5" or {"a": 1} → ({knob: value}, unknown knobs and unreadable values)."""
    if not spec:
        return {}, ()
    if isinstance(spec, dict):
        pairs = [(str(k), "" if v is None else str(v)) for k, v in spec.items()]
    else:
        pairs = []
        for part in str(spec).split(","):
            if part.strip():
                name, _, value = part.partition("=")
                pairs.append((name.strip(), value.strip() if _ else "1"))
    knobs, ignored = {}, []
    for name, value in pairs:
        if name not in FAULT_KNOBS:
            ignored.append(name)
        elif name in ("slow_pages", "error_rate", "duplicate_across_pages"):
            try:
                knobs[name] = _fraction(name, value)
            except ValueError:
                ignored.append(f"{name}={value}")
        else:
            knobs[name] = "" if value.lower() in OFF else value
    return knobs, tuple(ignored)


def _shops() -> dict:
    shops = setting("OMS_SANDBOX_SHOPS", {}) or {}
    if isinstance(shops, str):
        shops = json.loads(shops)
    return shops


def _skus(value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in (s.strip() for s in value.split(",")) if v]
    return tuple(value) or DEFAULT_SKUS


@dataclass(frozen=True)
class Resolved:
    seed: str
    orders_per_minute: int
    skus: tuple[str, ...]
    faults: Faults


def resolve(shop_key: str, request) -> Resolved:
    """The configuration one request runs with: global < shop < request."""
    shop = _shops().get(shop_key, {})
    seed = str(setting("OMS_SANDBOX_SEED", DEFAULT_SEED) or DEFAULT_SEED)
    seed = str(shop.get("seed", seed))
    seed = request.GET.get("sandbox_seed") or request.headers.get("X-Sandbox-Seed") or seed
    rate = int(shop.get("orders_per_minute",
                        setting("OMS_SANDBOX_ORDERS_PER_MINUTE", DEFAULT_ORDERS_PER_MINUTE)))
    skus = _skus(shop.get("skus", setting("OMS_SANDBOX_SKUS", DEFAULT_SKUS)))
    faults = Faults().merged(setting("OMS_SANDBOX_FAULTS", "")).merged(shop.get("faults", ""))
    for spec in (request.GET.get("sandbox_faults"), request.headers.get("X-Sandbox-Faults")):
        faults = faults.merged(spec)
    return Resolved(seed=seed, orders_per_minute=max(1, rate), skus=skus, faults=faults)
