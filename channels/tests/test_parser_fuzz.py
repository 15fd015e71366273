"""Fuzzing every channel adapter's order parser (issue 15): whatever one raw order holds,
`external_id` and `normalise` raise nothing but NormaliseError (which intake turns into an
"invalid" payload naming the field), and the cleansing rules never raise at all.

Samples are the adapters' test fixtures and the sandbox marketplace's trades, mutated value by
value: a value swapped for any JSON value (wrong types, huge or exotic numbers, impossible
dates), keys dropped or added. derandomize=True: CI runs the same examples every time; a failure
is an adapter defect to fix in the adapter, then kept here as an @example.
"""

import copy
import json
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from channels.adapters import ADAPTERS
from channels.adapters.base import NormaliseError
from channels.cleansing import apply_rules

from .adapter_support import fake_channel, load

FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FIXTURES = {
    "taobao": ["trade_paid", "trade_cents", "trade_closed", "trade_closed_by_taobao", "trade_finished",
               "trade_line_refund", "trade_paid_updated", "trade_wait_pay"],
    "jd": ["order_canceled", "order_cod", "order_updated", "order_wait_stock_out"],
    "douyin": ["order_cancelled", "order_paid", "order_pending"],
    "pdd": ["order_cancelled", "order_paid", "order_paid_updated", "order_refunded", "order_shipped"],
    "shopify": ["order_cancelled", "order_paid", "order_partially_refunded"],
    "generic": ["webhook_paid"],
}


def sandbox_trades() -> list[dict]:
    """Trades of the sandbox marketplace at a fixed moment, as its TOP router sends them."""
    from channels.sandbox import stream, taobao

    shop = stream.Shop("taobao", "shop-a", "fuzz-seed")
    at = 1_767_225_600  # 2026-01-01, a fixed clock: the same trades every run
    views = [shop.view(index, at) for index in shop.indexes(at - 3 * 3600, at)]
    trades = [taobao.render_trade(view) for view in views if view is not None]
    # Pending, paid, closed and refunded ones.
    picked = {trade["status"]: trade for trade in trades}
    return [json.loads(json.dumps(trade, default=str)) for trade in picked.values()]


SAMPLES = {kind: [load(kind, name) for name in names] for kind, names in FIXTURES.items()}
SAMPLES["sandbox"] = sandbox_trades()
KINDS = sorted(SAMPLES)
assert set(KINDS) == set(ADAPTERS)


def adapter(kind: str):
    return ADAPTERS[kind](fake_channel(kind.upper()))


# Values platforms (or attackers) send: exotic numbers and times, ciphertext, envelopes.
AWKWARD = [
    "", " ", "0", "-1", "1", "2", "105", "1e30", "-1e30", "1e999999999", "1E-999999999", "NaN", "Infinity", "-0",
    "0.001", "12.345", "12.30", "9" * 40, "1_000", "١٢٣", "１２", "0x10", "1-货到付款", "4-在线支付",
    "0001-01-01 00:00:00", "0000-00-00 00:00:00", "9999-12-31 23:59:59", "9999-12-31T23:59:59-14:00",
    "0001-01-02T00:00:00+23:59", "2025-02-30 10:00:00", "2025-03-01T10:00:00Z", "not a date",
    "#王#AbCdEf0123456789==#*#", "~abcdefghij~", "$x$", "gid://shopify/Order/", "/", "SUCCESS", "FREE",
    "WAIT_SELLER_SEND_GOODS", "TRADE_CLOSED", "PAID", "REFUNDED", "UNFULFILLED", "FULFILLED", "SALE",
    "paid", "pending_payment", "NO_REFUND", "WAIT_SELLER_STOCK_OUT",
]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([10**30, -10**30, 2**63, 10**17, -1, 0]),
    st.floats(), st.sampled_from(AWKWARD), st.text(max_size=12),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def paths(value, prefix=()):
    """Every place in a JSON value: (path, container, key)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield prefix + (index,)
            yield from paths(item, prefix + (index,))


def keys(value) -> set[str]:
    return {path[-1] for path in paths(value) if isinstance(path[-1], str)}


def at(value, path):
    for step in path:
        value = value[step]
    return value


@st.composite
def mutated_orders(draw):
    kind = draw(st.sampled_from(KINDS))
    raw = copy.deepcopy(draw(st.sampled_from(SAMPLES[kind])))
    known = sorted(set().union(*(keys(sample) for sample in SAMPLES[kind])))
    for _ in range(draw(st.integers(1, 5))):
        places = list(paths(raw))
        if not places:
            break
        path = draw(st.sampled_from(places))
        parent = at(raw, path[:-1])
        operation = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add", "empty"]))
        if operation == "replace":
            parent[path[-1]] = draw(json_values)
        elif operation == "empty":
            parent[path[-1]] = draw(st.sampled_from([None, "", [], {}, 0]))
        elif operation == "drop":
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(known) | st.text(max_size=6))] = draw(json_values)
    return kind, raw


def read(kind: str, raw) -> dict | None:
    """The normalised order, None when refused; fails on anything but NormaliseError."""
    parser = adapter(kind)
    try:
        external = parser.external_id(raw)
    except NormaliseError as exc:
        assert exc.field and exc.reason
    else:
        assert isinstance(external, str) and external
    try:
        data = parser.normalise(raw)
    except NormaliseError as exc:
        assert isinstance(exc.field, str) and exc.field and isinstance(exc.reason, str) and exc.reason
        return None
    assert isinstance(data, dict)
    assert isinstance(data["external_order_id"], str) and data["external_order_id"]
    return data


@pytest.mark.parametrize("kind", KINDS)
def test_every_sample_normalises(kind):
    for raw in SAMPLES[kind]:
        assert read(kind, copy.deepcopy(raw)) is not None


@settings(max_examples=700, **FUZZ)
@given(mutated_orders())
# Found: quantize() past the decimal context (InvalidOperation), an unhashable status or
# transaction kind (TypeError), a trade envelope or shopMoney that is no object
# (AttributeError), GraphQL nodes that are no list (TypeError), a time whose Beijing time is
# past year 9999 (OverflowError).
@example(("taobao", {"tid": "1", "status": "TRADE_FINISHED", "payment": "1e30", "total_fee": "1",
                     "orders": {"order": [{"num": 1, "price": "1.00"}]}}))
@example(("douyin", load("douyin", "order_paid") | {"pay_amount": 10**30}))
@example(("generic", load("generic", "webhook_paid") | {"status": ["paid"]}))
@example(("taobao", {"trade_fullinfo_get_response": {"trade": ["tid"]}}))
@example(("shopify", load("shopify", "order_paid") | {"totalPriceSet": {"shopMoney": ["1.00"]}}))
@example(("shopify", load("shopify", "order_paid") | {"lineItems": {"nodes": 5}}))
@example(("shopify", load("shopify", "order_paid") | {"lineItems": {"edges": [5]}, "transactions": 7}))
@example(("shopify", load("shopify", "order_paid") | {"transactions": [{"status": "SUCCESS", "kind": ["SALE"]}]}))
@example(("jd", load("jd", "order_wait_stock_out") | {"modified": "9999-12-31T23:59:59-14:00"}))
@example(("pdd", load("pdd", "order_paid") | {"goods_amount": "1e999999999"}))
def test_mutated_orders(order):
    read(*order)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, **FUZZ)
@given(raw=json_values)
def test_arbitrary_json(kind, raw):
    read(kind, raw)


@pytest.mark.parametrize("kind", KINDS)
def test_values_nested_deeper_than_the_stack(kind):
    """json.loads accepts nesting almost as deep as the recursion limit; the adapter, called
    further down the stack, must not recurse over it."""
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    for raw in SAMPLES[kind]:
        for path in [path for path in paths(raw) if len(path) <= 2]:
            mutated = copy.deepcopy(raw)
            at(mutated, path[:-1])[path[-1]] = deep
            read(kind, mutated)


# --- cleansing rules ------------------------------------------------------------------------------

FIELDS = ["external_order_id", "lines[].sku", "lines[]", "lines[].", "receiver.phone", "receiver", "receiver.",
          "buyer.name.x", "status", "lines", "", ".", "[]", "a..b", "lines[].sku.x", "payable"]


@st.composite
def rules(draw):
    return [
        SimpleNamespace(
            action=draw(st.sampled_from(["drop_field", "strip_suffix", "strip_prefix", "map_value", "other"])),
            field=draw(st.sampled_from(FIELDS) | st.text(max_size=10)),
            argument=draw(st.sampled_from(["", "=>", "A=>B", "-", "0", "paid=>cancelled"]) | st.text(max_size=6)),
        )
        for _ in range(draw(st.integers(1, 4)))
    ]


@settings(max_examples=200, **FUZZ)
@given(mutated_orders(), rules())
@example(("generic", {"external_order_id": "X", "lines": [{"sku": "A"}, 5, "x", None]}),
         [SimpleNamespace(action="drop_field", field="lines[].sku", argument="")])
def test_cleansing_rules_never_raise(order, chosen):
    data = read(*order)
    if data is not None:
        apply_rules(data, chosen)
