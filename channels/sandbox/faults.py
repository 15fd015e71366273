"""Applying the fault knobs of config.Faults to one request (see config.py for the knobs)."""

from __future__ import annotations

import time

from .config import Faults
from .stream import digest, unit

sleep = time.sleep  # tests replace it
NEW_FIELD = {"taobao": ("sandbox_new_field", "1"), "shopify": ("sandboxNewField", "1")}
RENAMED_FIELD = {"taobao": "receiver_mobile:receiver_phone",
                 "shopify": "shippingAddress.phone:phoneNumber"}
RETYPED_FIELD = {"taobao": "payment", "shopify": "lineItems.edges.node.quantity"}


def annotate(response, applied: list[str], faults: Faults) -> None:
    """Name the knobs that acted on this answer, and the ones that were not understood."""
    if applied:
        response["X-Sandbox-Faults-Applied"] = ",".join(sorted(set(applied)))
    if faults.ignored:
        response["X-Sandbox-Faults-Ignored"] = ",".join(faults.ignored)


def slow(faults: Faults) -> None:
    if faults.slow_pages:
        sleep(faults.slow_pages)


def fails(faults: Faults, seed: str, fingerprint: str, at: int) -> bool:
    """Whether this request gets a 503: a draw on the seed, the request and the second."""
    return bool(faults.error_rate) and unit(seed, "error", fingerprint, at) < faults.error_rate


def duplicates_at(faults: Faults, seed: str, fingerprint: str, boundary) -> bool:
    """Whether the page boundary `boundary` of the query `fingerprint` repeats an order."""
    return bool(faults.duplicate_across_pages) and (
        unit(seed, "duplicate", fingerprint, boundary) < faults.duplicate_across_pages)


def request_id(seed: str, fingerprint: str) -> str:
    return f"{digest(seed, 'request', fingerprint):x}"[:13]


def _path_parts(path: str) -> list[str]:
    return [p for p in path.split(".") if p]


def _walk(node, parts: list[str], visit) -> None:
    """Call visit(parent dict, key) for every place `parts` leads to; lists are walked."""
    if isinstance(node, list):
        for item in node:
            _walk(item, parts, visit)
        return
    if not isinstance(node, dict) or not parts:
        return
    head, rest = parts[0], parts[1:]
    if not rest:
        if head in node:
            visit(node, head)
        return
    if head in node:
        _walk(node[head], rest, visit)


def _retype(value):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return [value]
    return int(number) if number.is_integer() and "." not in str(value) else number


def mutate_order(order: dict, faults: Faults, platform: str) -> list[str]:
    """Apply the field faults to one rendered order in place; returns the knobs applied."""
    applied = []
    if faults.new_field:
        name, value = NEW_FIELD[platform]
        if faults.new_field != "1":
            name, _, custom = faults.new_field.partition(":")
            value = custom or value
        order[name] = value
        applied.append("new_field")
    if faults.renamed_field:
        spec = RENAMED_FIELD[platform] if faults.renamed_field == "1" else faults.renamed_field
        path, _, new_name = spec.partition(":")
        if new_name:
            def rename(parent, key):
                parent[new_name.rsplit(".", 1)[-1]] = parent.pop(key)
            _walk(order, _path_parts(path), rename)
            applied.append("renamed_field")
    if faults.retyped_field:
        path = RETYPED_FIELD[platform] if faults.retyped_field == "1" else faults.retyped_field

        def retype(parent, key):
            parent[key] = _retype(parent[key])
        _walk(order, _path_parts(path), retype)
        applied.append("retyped_field")
    return applied
