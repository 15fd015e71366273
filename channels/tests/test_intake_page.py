"""Page-level intake (`ingest_page`): the same outcome as ingesting the raws one by one, every
payload archived once, unchanged raws recognised by digest, drift still observed, and two
pulls of one page at the same time creating each order once."""

import copy
import json
import logging
import re
from collections import Counter
from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from channels import drift
from channels.adapters import ADAPTERS
from channels.adapters.generic import GenericAdapter
from channels.intake import archive, canonical, ingest_page, ingest_raw, process
from channels.models import (
    Channel,
    ChannelSkuMapping,
    CleansingRule,
    RawPayload,
    SchemaDrift,
    SchemaField,
)
from channels.tests.adapter_support import load
from inventory.models import Reservation, StockLevel
from inventory.services import receive_stock
from oms.tests.threads import run_together
from orders.models import Order, OrderEvent
from orders.tests.factories import SKUFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sku():
    sku = SKUFactory(code="SKU-001", barcode="6901234567890")
    receive_stock(WarehouseFactory(code="WH-SH", provinces=["上海"]).code, sku.code, 1000)
    return sku


def generic_channel(code: str, sku=None) -> Channel:
    channel = Channel.objects.create(code=code, name=code, kind="generic")
    if sku is not None:
        ChannelSkuMapping.objects.create(channel=channel, external_code="CH-SKU-9", sku=sku)
    return channel


def body(external_order_id: str, buyer: int = 1, **overrides) -> dict:
    phone = f"1380000{buyer:04d}"
    data = {
        "external_order_id": external_order_id, "status": "paid",
        "placed_at": "2026-01-09T10:00:00+08:00", "paid_at": "2026-01-09T10:00:05+08:00",
        "currency": "CNY", "buyer": {"name": "张三", "phone": phone},
        "receiver": {"name": "张三", "phone": phone, "province": "上海", "city": "上海市",
                     "district": "浦东新区", "address": "世纪大道100号"},
        "lines": [{"sku": "SKU-001", "quantity": 2, "unit_price": "99.00", "discount": "0.00"}],
        "shipping_fee": "0.00", "discount_total": "0.00", "payable": "198.00",
    }
    data.update(overrides)
    return data


def unpaid(external_order_id: str, buyer: int = 1, **overrides) -> dict:
    return body(external_order_id, buyer, status="pending_payment", paid_at=None, **overrides)


def scenario(buyer_base: int) -> tuple[list[dict], list[dict]]:
    """(what the channel sent before, the page): every kind of payload a page can hold.
    Buyers are per channel (`buyer_base`): the duplicate merge looks across channels."""
    b = buyer_base
    before = [
        unpaid("A", b + 1),
        body("B", b + 2),
        unpaid("C", b + 3),
        unpaid("D1", b + 4),
    ]
    placeholder = {**body("P", b + 6)["receiver"], "address": "临时地址"}
    no_id = body("X", b + 7)
    del no_id["external_order_id"]
    page = [
        body("N", b + 5),  # new
        unpaid("A", b + 1),  # unchanged: the raw last applied to A
        body("B", b + 2, status="cancelled"),  # changed: cancelled on the channel
        body("BAD", b + 8, status="shipped"),  # invalid: not a status the contract knows
        body("H", b + 9, lines=[{"sku": "NOPE-9", "quantity": 1, "unit_price": "198.00"}]),  # held
        body("P", b + 6, receiver=placeholder),  # created on hold (placeholder address)
        body("M", b + 10, lines=[{"sku": "CH-SKU-9", "quantity": 2, "unit_price": "99.00"}]),  # mapped
        body("N", b + 5),  # the new order again, same page: unchanged
        unpaid("C", b + 3),  # unchanged...
        body("C", b + 3),  # ...then changed (paid): applied
        unpaid("C", b + 3),  # the older raw after the change: read again, not taken as unchanged
        unpaid("D2", b + 4),  # a duplicate of D1 (same buyer and lines, unpaid): merged
        {**unpaid("A", b + 1), "note": "gift"},  # another raw saying the same as A's: unchanged
        unpaid("A", b + 1),  # A's first raw again: A now remembers the other raw, so read again
        no_id,  # invalid: no order id
        body("BAD", b + 8, status="shipped", amount_note=1),  # invalid again, another body
    ]
    return before, page


def one_by_one(channel: Channel, raw: dict):
    """Intake as it was before pages: archive, observe, then the full path for each raw
    (no digest shortcut), in one transaction per raw as a pull ran it."""
    try:
        external_id = ADAPTERS[channel.kind](channel).external_id(raw)
    except Exception:  # noqa: BLE001 - as intake did
        external_id = ""
    with transaction.atomic():
        payload = archive(channel, canonical(raw), "pull", str(external_id))
        drift.observe_safely(channel, raw, payload)
        return process(payload, raw)


def outcome(channel: Channel, results) -> dict:
    """Everything intake decided, without what differs between channels by construction
    (order numbers, ids, times)."""
    ext = dict(Order.objects.filter(channel=channel).values_list("order_no", "external_order_id"))
    orders = {
        o.external_order_id: (o.status, o.fulfilment, o.hold_reason,
                              o.merged_into.external_order_id if o.merged_into else None,
                              sorted(Counter(re.sub(r"\b[A-Z]{2}\d{13}\b", "<order_no>", summary).replace(channel.code, "<ch>")
                                             for summary in OrderEvent.objects.filter(order=o)
                                             .values_list("summary", flat=True)).items()))
        for o in Order.objects.filter(channel=channel).select_related("merged_into")
    }
    payloads = [(p.outcome, p.errors, p.external_order_id, p.order.external_order_id if p.order else None, p.body)
                for p in RawPayload.objects.filter(channel=channel).select_related("order").order_by("pk")]
    return {
        "results": [(str(r.result), r.reasons, ext.get(r.order_no)) for r in results],
        "orders": orders,
        "payloads": payloads,
    }


def test_a_page_gives_the_results_of_one_by_one_ingestion(sku):
    one, paged, webhook = generic_channel("ONE", sku), generic_channel("PAGED", sku), generic_channel("HOOK", sku)
    # The duplicate merge looks across channels: each channel has its own buyers.
    (before_one, page_one), (before_paged, page_paged), (before_hook, page_hook) = \
        scenario(100), scenario(200), scenario(300)

    results_one = [one_by_one(one, raw) for raw in before_one]
    results_paged = [ingest_raw(paged, raw, "pull") for raw in before_paged]
    results_hook = [ingest_raw(webhook, raw, "webhook") for raw in before_hook]
    for _ in range(2):  # the page, then the same page again
        results_one += [one_by_one(one, raw) for raw in page_one]
        results_paged += ingest_page(paged, page_paged, "pull")
        results_hook += [ingest_raw(webhook, raw, "webhook") for raw in page_hook]

    expected = outcome(one, results_one)
    for got in (outcome(paged, results_paged), outcome(webhook, results_hook)):
        # The bodies name each channel's own buyers: everything else must be the same.
        assert [row[:4] for row in got.pop("payloads")] == [row[:4] for row in expected["payloads"]]
        assert got == {k: v for k, v in expected.items() if k != "payloads"}
    got = outcome(paged, results_paged)
    first = [r for r, *_ in got["results"][len(before_paged):len(before_paged) + len(page_paged)]]
    assert first == ["created", "unchanged", "updated", "invalid", "held", "held", "created", "unchanged",
                     "unchanged", "updated", "updated", "merged", "unchanged", "unchanged", "invalid", "invalid"]


def test_every_payload_of_a_page_is_archived_once_with_its_outcome(sku):
    channel = generic_channel("PAGED", sku)
    before, page = scenario(300)
    for raw in before:
        ingest_raw(channel, raw, "pull")
    archived = RawPayload.objects.count()

    results = ingest_page(channel, page, "pull")

    assert RawPayload.objects.count() == archived + len(page)
    rows = {p.pk: p for p in RawPayload.objects.filter(pk__in=[r.payload_id for r in results])}
    assert len(rows) == len(page)  # one row per payload, none shared
    for raw, result in zip(page, results, strict=True):
        row = rows[result.payload_id]
        assert row.body == canonical(raw) and row.source == "pull"
        assert row.outcome == result.result and row.errors == result.reasons
        assert row.processed_at is not None
        assert (row.order.order_no if row.order else None) == result.order_no
    assert [rows[r.payload_id].pk for r in results] == sorted(rows)  # archived in the order received


def test_unchanged_raws_skip_normalisation_and_cost_a_few_queries(sku, monkeypatch, django_assert_max_num_queries):
    channel = generic_channel("PAGED", sku)
    page = [body(f"U{n}", 400 + n) for n in range(30)]
    first = ingest_page(channel, page, "pull")
    assert {r.result for r in first} == {"created"}
    calls = []
    real = GenericAdapter.normalise
    monkeypatch.setattr(GenericAdapter, "normalise", lambda self, raw: calls.append(raw) or real(self, raw))

    with django_assert_max_num_queries(12):  # for 30 payloads: none of them per payload
        again = ingest_page(channel, page, "pull")

    assert [r.result for r in again] == ["unchanged"] * 30 and calls == []
    assert [r.order_no for r in again] == [r.order_no for r in first]
    rows = RawPayload.objects.filter(pk__in=[r.payload_id for r in again])
    assert {(p.outcome, p.external_order_id == p.order.external_order_id) for p in rows} == {("unchanged", True)}
    assert Order.objects.filter(channel=channel).exclude(source_raw_sha256="").count() == 30


def test_a_changed_payload_after_an_unchanged_one_is_applied(sku):
    channel = generic_channel("PAGED", sku)
    ingest_page(channel, [unpaid("C")], "pull")

    results = ingest_page(channel, [unpaid("C"), body("C"), unpaid("C")], "pull")

    assert [r.result for r in results] == ["unchanged", "updated", "updated"]
    order = Order.objects.get(channel=channel, external_order_id="C")
    assert order.status == "paid"  # the channel's pending raw after it cannot unpay it
    assert order.source_raw_sha256 == RawPayload.objects.get(pk=results[2].payload_id).sha256


def test_a_new_cleansing_rule_makes_the_same_raw_go_through_it_again(sku):
    channel = generic_channel("PAGED", sku)
    ingest_page(channel, [body("MP-1ERR")], "pull")
    assert ingest_page(channel, [body("MP-1ERR")], "pull")[0].result == "unchanged"
    CleansingRule.objects.create(channel=channel, action="strip_suffix", field="external_order_id", argument="ERR")

    result = ingest_page(channel, [body("MP-1ERR")], "pull")[0]
    again = ingest_page(channel, [body("MP-1ERR"), body("MP-1ERR")], "pull")

    assert result.result == "created"
    assert Order.objects.get(order_no=result.order_no).external_order_id == "MP-1"
    assert [(r.result, r.order_no) for r in again] == [("unchanged", result.order_no)] * 2


def test_a_new_key_arriving_in_a_page_is_a_drift(sku, settings):
    settings.OMS_SCHEMA_LEARNING_PAYLOADS = 5
    drift.reset()
    channel = generic_channel("PAGED", sku)
    try:
        # A brand-new channel's first page: the first five payloads learn, the rest do not.
        first = [body(f"L{n}", 500 + n) for n in range(7)] + [body("G1", 510, gift_wrap=True),
                                                             body("G2", 511, gift_wrap=True)]
        results = ingest_page(channel, first, "pull")
        opened = SchemaDrift.objects.get(channel=channel)
        assert (opened.kind, opened.path, opened.new_type) == ("new", "gift_wrap", "bool")
        assert opened.payload_id == results[7].payload_id and opened.example["external_order_id"] == "G1"

        # Past learning, a page is observed at once: a new key in its middle, seen twice,
        # and a page of nothing but unchanged raws: every payload is still observed.
        later = [body(f"K{n}", 520 + n) for n in range(5)]
        later[2] = body("K2", 522, gift_card="GC-1")
        later[4] = body("K4", 524, gift_card="GC-2")
        results = ingest_page(channel, later, "pull")
        card = SchemaDrift.objects.get(channel=channel, path="gift_card")
        assert card.kind == "new" and card.payload_id == results[2].payload_id
        assert SchemaDrift.objects.filter(channel=channel).count() == 2

        unchanged = ingest_page(channel, [later[0], {**later[1], "coupon": {"code": "X"}}], "pull")
        assert [r.result for r in unchanged] == ["unchanged", "unchanged"]
        assert SchemaDrift.objects.get(channel=channel, path="coupon").payload_id == unchanged[1].payload_id
    finally:
        drift.reset()


def test_a_drift_failure_does_not_stop_the_page(sku, monkeypatch, caplog):
    channel = generic_channel("PAGED", sku)

    def broken(*args, **kwargs):
        raise RuntimeError("drift bug")

    monkeypatch.setattr(drift, "observe", broken)
    monkeypatch.setattr(drift, "_observe_many", broken)
    with caplog.at_level(logging.ERROR, logger="channels.drift"):
        results = ingest_page(channel, [body("E1", 600), body("E2", 601)], "pull")

    assert [r.result for r in results] == ["created", "created"]
    assert "schema drift detection failed" in caplog.text


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_pulls_ingesting_the_same_page_at_once_create_each_order_once(sku):
    channel = generic_channel("PAGED", sku)
    page = [body(f"R{n}", 700 + n) for n in range(12)]
    page.insert(6, copy.deepcopy(page[2]))  # and one order twice in the page
    existing = ingest_page(channel, [body("R0", 700)], "pull")[0]

    outcomes = run_together([lambda: ingest_page(channel, page, "pull")] * 2)

    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    orders = Order.objects.filter(channel=channel)
    assert orders.count() == 12 and orders.values("external_order_id").distinct().count() == 12
    assert RawPayload.objects.filter(channel=channel).count() == 1 + 2 * len(page)
    per_order = Counter()
    for _kind, results in outcomes:
        for result in results:
            per_order[(Order.objects.get(order_no=result.order_no).external_order_id, str(result.result))] += 1
    for n in range(1, 12):
        copies = 2 if n == 2 else 1  # R2 is twice in the page
        assert per_order[(f"R{n}", "created")] == 1
        assert per_order[(f"R{n}", "unchanged")] == 2 * copies - 1
    assert per_order[("R0", "unchanged")] == 2 and existing.result == "created"
    # Stock was reserved once per order: 2 units each, 12 orders.
    assert StockLevel.objects.filter(sku=sku).aggregate(r=Sum("reserved"))["r"] == 24
    assert Reservation.objects.filter(order__channel=channel).count() == 12
    assert {p.outcome for p in RawPayload.objects.filter(channel=channel)} == {"created", "unchanged"}
    assert not RawPayload.objects.filter(channel=channel, processed_at__isnull=True).exists()
    assert all(json.loads(p.body)["external_order_id"] == p.external_order_id
               for p in RawPayload.objects.filter(channel=channel))


def test_the_platforms_no_news_status_is_read_in_a_page_as_one_by_one(settings):
    """A Taobao status that carries no news (shipped there) keeps a known order's status and
    makes a first-seen order paid: "known" includes an order created earlier in the page."""
    warehouse = WarehouseFactory(code="WH-ALL", provinces=[])
    for code in ("TSHIRT-BLK-M", "MUG-WHT"):
        SKUFactory(code=code)
        receive_stock(warehouse.code, code, 100)
    paid = load("taobao", "trade_paid")
    shipped = copy.deepcopy(paid)
    shipped["trade_fullinfo_get_response"]["trade"].update(status="WAIT_BUYER_CONFIRM_GOODS",
                                                            modified="2025-03-02 09:00:00")
    other = copy.deepcopy(shipped)
    other["trade_fullinfo_get_response"]["trade"].update(tid=3890001122339999, tid_str="3890001122339999")
    page, later = [paid, shipped, other, shipped, paid], [other, other, shipped]
    one = Channel.objects.create(code="TB-ONE", name="one", kind="taobao")
    paged = Channel.objects.create(code="TB-PAGED", name="paged", kind="taobao")

    expected = outcome(one, [one_by_one(one, raw) for raw in page + later])
    got = outcome(paged, ingest_page(paged, page, "pull") + ingest_page(paged, later, "pull"))

    assert got == expected
    # The order first seen shipped was made paid; the same raw again, the order now known,
    # keeps its status: an update (of the payload hash), then nothing.
    assert [r for r, *_ in got["results"]] == ["created", "updated", "created", "unchanged", "updated",
                                               "updated", "unchanged", "updated"]
    assert got["orders"]["3890001122339999"][0] == "paid"


def test_observing_a_page_records_what_observing_each_payload_records(settings):
    """drift.observe_page against drift.observe in turn, payloads a minute apart: the same
    fields (seen counts, first and last seen), the same drifts, named by the same payloads."""
    settings.OMS_SCHEMA_LEARNING_PAYLOADS = 5
    settings.OMS_SCHEMA_VANISHED_AFTER = 10

    def raw(n: int) -> dict:
        order = {"tid": n, "status": "WAIT", "payment": "1.00" if n < 20 else 1.5,
                 "orders": {"order": [{"oid": n, "sku": "A"}]}}
        if n < 15:
            order["memo"] = "x"  # vanishes
        if n in (12, 13, 31):
            order["gift"] = True  # new
        if n == 40:
            order["orders"]["order"].append({"oid": "n", "sku": None, "extra": [1]})
        return order

    raws = [raw(n) for n in range(60)]
    start = timezone.now() - timedelta(days=1)

    def archived(channel, first: int, count: int):
        rows = [archive(channel, json.dumps(r), "pull") for r in raws[first:first + count]]
        for n, row in enumerate(rows, start=first):
            row.received_at = start + timedelta(minutes=n)
        RawPayload.objects.bulk_update(rows, ["received_at"])
        return rows

    def recorded(channel, rows):
        index = {row.pk: n for n, row in enumerate(rows)}
        fields = sorted(SchemaField.objects.filter(channel=channel).values_list(
            "path", "value_type", "accepted", "seen_count", "first_seen", "last_seen"))
        drifts = sorted((d.kind, d.path, d.old_type, d.new_type, index[d.payload_id])
                        for d in SchemaDrift.objects.filter(channel=channel))
        return fields, drifts

    one, paged = (Channel.objects.create(code=c, name=c, kind="taobao") for c in ("D-ONE", "D-PAGED"))
    drift.reset()
    try:
        rows_one, rows_paged = [], []
        for n, r in enumerate(raws):
            rows_one += archived(one, n, 1)
            drift.observe(one, r, rows_one[-1])
        for at in range(0, len(raws), 20):
            rows_paged += archived(paged, at, 20)
            drift.observe_page(paged, raws[at:at + 20], rows_paged[at:at + 20])
        # Last seen and counts not yet written (at most once a minute per field) are in memory.
        for channel in (one, paged):
            state = drift._STATES[channel.pk]
            drift._touch_counts(state, {pair: [0, f.last_seen] for pair, f in state.fields.items()},
                                lambda: None)
    finally:
        drift.reset()

    expected, got = recorded(one, rows_one), recorded(paged, rows_paged)
    assert got == expected
    assert {(kind, path) for kind, path, *_ in got[1]} == {
        ("new", "gift"), ("retyped", "payment"), ("vanished", "memo"), ("new", "orders.order[].extra"),
        ("new", "orders.order[].extra[]"), ("retyped", "orders.order[].oid")}
