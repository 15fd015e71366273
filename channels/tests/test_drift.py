"""Schema drift: learning, new / renamed / retyped fields, one open drift per change,
acknowledging, intake never blocked by the detector, hostile payloads."""

import copy
import json
import logging
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from channels import drift
from channels.intake import archive, ingest_raw
from channels.models import Channel, RawPayload, SchemaDrift, SchemaField
from channels.sandbox.config import Faults
from channels.sandbox.faults import mutate_order
from inventory.services import receive_stock
from oms.tests.factories import UserFactory
from orders.models import Order
from orders.tests.factories import SKUFactory, WarehouseFactory

pytestmark = pytest.mark.django_db

LEARN = 5


@pytest.fixture(autouse=True)
def fresh_detector(settings):
    settings.OMS_SCHEMA_LEARNING_PAYLOADS = LEARN
    settings.OMS_SCHEMA_VANISHED_AFTER = 10
    drift.reset()
    yield
    drift.reset()


@pytest.fixture
def shop():
    return Channel.objects.create(code="TMALL1", name="Tmall shop", kind="taobao")


def trade(n: int = 1) -> dict:
    """A Taobao TOP trade, as far as the detector cares."""
    return {
        "tid": 4000000000 + n, "status": "WAIT_SELLER_SEND_GOODS", "payment": "12.30", "post_fee": "0.00",
        "receiver_name": "张三", "receiver_mobile": "138****1234", "oaid": "abc", "buyer_memo": None,
        "orders": {"order": [{"oid": 5000000000 + n, "outer_sku_id": "SKU-1", "num": 1, "price": "12.30"}]},
    }


class Feed:
    """Payloads of one channel a minute apart (last_seen moves at most once a minute)."""

    def __init__(self, channel):
        self.channel = channel
        self.minute = 0
        self.start = timezone.now() - timedelta(days=1)

    def __call__(self, raw: dict) -> list:
        payload = archive(self.channel, json.dumps(raw), "pull")
        RawPayload.objects.filter(pk=payload.pk).update(received_at=self.start + timedelta(minutes=self.minute))
        self.minute += 1
        payload.refresh_from_db()
        return drift.observe(self.channel, raw, payload)

    def learn(self, count: int = LEARN, make=trade):
        for n in range(count):
            assert self(make(n)) == []


def changes(channel, **filters):
    return sorted((d.kind, d.path, d.old_type, d.new_type)
                  for d in SchemaDrift.objects.filter(channel=channel, **filters))


def mutated(n: int, **knobs) -> dict:
    order = trade(n)
    assert mutate_order(order, Faults(**knobs), "taobao")
    return order


def test_flatten_dots_objects_and_marks_list_items():
    pairs, truncated = drift.flatten(trade())

    assert not truncated
    assert {("orders", "object"), ("orders.order", "array"), ("orders.order[]", "object"),
            ("orders.order[].outer_sku_id", "str"), ("orders.order[].num", "int"),
            ("tid", "int"), ("buyer_memo", "null"), ("payment", "str")} <= pairs
    assert drift.flatten({"a": [True, 1.5, [1]]})[0] == {
        ("a", "array"), ("a[]", "bool"), ("a[]", "float"), ("a[]", "array"), ("a[][]", "int")}


def test_the_learning_period_only_learns(shop):
    feed = Feed(shop)
    # Whatever the first payloads carry is the channel's schema, however much they differ.
    for n in range(LEARN):
        assert feed({**trade(n), f"extra_{n}": n}) == []

    assert not SchemaDrift.objects.exists()
    assert SchemaField.objects.filter(channel=shop, path="extra_3", value_type="int", accepted=True).exists()
    assert SchemaField.objects.filter(channel=shop, accepted=False).count() == 0
    # The first payload after learning is compared.
    feed({**trade(9), "extra_9": 9})
    assert changes(shop) == [("new", "extra_9", "", "int")]


def test_default_learning_period_is_twenty_payloads(shop, settings):
    del settings.OMS_SCHEMA_LEARNING_PAYLOADS
    feed = Feed(shop)
    for n in range(20):
        feed({**trade(n), f"extra_{n}": n})
    assert not SchemaDrift.objects.exists()

    feed({**trade(20), "extra_20": 1})
    assert changes(shop) == [("new", "extra_20", "", "int")]


def test_a_new_field_from_the_sandbox_raises_one_drift_with_an_example(shop, caplog):
    feed = Feed(shop)
    feed.learn()

    with caplog.at_level(logging.WARNING, logger="channels.drift"):
        found = feed(mutated(100, new_field="1"))

    assert changes(shop) == [("new", "sandbox_new_field", "", "str")]
    stored = SchemaDrift.objects.get(channel=shop)
    assert stored.example["sandbox_new_field"] == "1" and stored.example["tid"] == 4000000100
    assert stored.payload == RawPayload.objects.filter(channel=shop).order_by("received_at").last()
    assert stored.acknowledged_at is None and len(found) == 1
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "channel API changed" in caplog.text and "sandbox_new_field" in caplog.text


def test_a_renamed_field_is_new_then_vanished(shop, monkeypatch):
    monkeypatch.setattr(drift, "VANISHED_CHECK_EVERY", 5)
    feed = Feed(shop)
    feed.learn()

    feed(mutated(100, renamed_field="1"))
    assert changes(shop) == [("new", "receiver_phone", "", "str")]
    first_change_set = SchemaDrift.objects.get().change_set

    for n in range(101, 115):  # more than OMS_SCHEMA_VANISHED_AFTER (10) without receiver_mobile
        feed(mutated(n, renamed_field="1"))

    assert changes(shop) == [("new", "receiver_phone", "", "str"), ("vanished", "receiver_mobile", "str", "")]
    vanished = SchemaDrift.objects.get(kind="vanished")
    assert vanished.change_set != first_change_set and "receiver_mobile" not in vanished.example
    # Checked again later: still one open drift per change.
    for n in range(115, 130):
        feed(mutated(n, renamed_field="1"))
    assert SchemaDrift.objects.count() == 2


def test_a_vanished_field_is_not_reported_again_after_acknowledging_until_it_comes_back(shop, monkeypatch):
    monkeypatch.setattr(drift, "VANISHED_CHECK_EVERY", 1)
    feed = Feed(shop)
    feed.learn()
    without = {k: v for k, v in trade().items() if k != "oaid"}
    for _n in range(12):
        feed(without)
    assert changes(shop) == [("vanished", "oaid", "str", "")]

    drift.acknowledge(SchemaDrift.objects.all())
    for _n in range(12):
        feed(without)

    assert SchemaDrift.objects.count() == 1
    assert SchemaField.objects.get(channel=shop, path="oaid").accepted  # coming back is no change


def test_a_retyped_field_raises_a_retyped_drift(shop):
    feed = Feed(shop)
    feed.learn()

    feed(mutated(100, retyped_field="1"))  # payment "12.30" → 12.3

    assert changes(shop) == [("retyped", "payment", "str", "float")]


def test_null_and_int_float_are_not_changes(shop):
    feed = Feed(shop)
    feed.learn(make=lambda n: {**trade(n), "discount": 1.5})

    feed({**trade(100), "discount": 2, "receiver_name": None, "buyer_memo": "please hurry"})

    assert not SchemaDrift.objects.exists()
    assert SchemaField.objects.get(channel=shop, path="discount", value_type="int").accepted


def test_repeats_do_not_open_a_second_drift(shop):
    feed = Feed(shop)
    feed.learn()

    for n in range(100, 110):
        feed({**trade(n), "coupon": {"code": "X", "amount": "5.00"}})
    drift.reset()  # another worker process, with its own cache
    feed({**trade(200), "coupon": {"code": "X", "amount": "5.00"}, "payment": 12.3})
    feed({**trade(201), "coupon": None, "payment": 12.3})

    assert changes(shop) == [("new", "coupon", "", "object"), ("new", "coupon.amount", "", "str"),
                             ("new", "coupon.code", "", "str"), ("retyped", "payment", "str", "float")]
    # The three rows of the first payload make one change set: one alert.
    assert SchemaDrift.objects.filter(path__startswith="coupon").values("change_set").distinct().count() == 1


def test_acknowledging_makes_the_field_known(shop):
    feed = Feed(shop)
    feed.learn()
    feed({**trade(100), "coupon": "C1"})
    user = UserFactory(role="ops")

    assert drift.acknowledge(SchemaDrift.objects.all(), user) == 1
    for n in range(101, 105):
        feed({**trade(n), "coupon": "C1"})

    open_drift = SchemaDrift.objects.get()
    assert open_drift.acknowledged_by == user and open_drift.acknowledged_at is not None
    assert SchemaField.objects.get(channel=shop, path="coupon").accepted
    # A later, different change of that field is reported again.
    feed({**trade(110), "coupon": ["C1"]})
    assert changes(shop, acknowledged_at__isnull=True) == [("new", "coupon[]", "", "str"),
                                                           ("retyped", "coupon", "str", "array")]


def test_api_lists_and_acknowledges(shop, client_for):
    feed = Feed(shop)
    feed.learn()
    feed({**trade(100), "coupon": "C1"})
    other = Channel.objects.create(code="JD1", name="JD", kind="jd")
    Feed(other).learn()
    ops = client_for("ops")

    listed = ops.get("/api/v1/channels/drift/", {"channel": "TMALL1", "acknowledged": "false"})
    assert listed.status_code == 200
    [row] = listed.json()["results"]
    assert row["channel"] == "TMALL1" and row["kind"] == "new" and row["path"] == "coupon"
    assert row["example"]["coupon"] == "C1"

    acked = ops.post(f"/api/v1/channels/drift/{row['id']}/acknowledge/")
    assert acked.status_code == 200
    assert acked.json()["acknowledged_by"] == ops.user.username and acked.json()["acknowledged_at"]
    assert ops.get("/api/v1/channels/drift/", {"acknowledged": "false"}).json()["results"] == []
    assert len(ops.get("/api/v1/channels/drift/", {"acknowledged": "true"}).json()["results"]) == 1
    # The channel viewset's detail route is untouched.
    assert ops.get("/api/v1/channels/TMALL1/").json()["code"] == "TMALL1"

    cs = client_for("customer_service")
    assert cs.get("/api/v1/channels/drift/").status_code == 403
    assert cs.post(f"/api/v1/channels/drift/{row['id']}/acknowledge/").status_code == 403


def test_admin_acknowledge_action(shop, client):
    feed = Feed(shop)
    feed.learn()
    feed({**trade(100), "coupon": "C1"})
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    found = SchemaDrift.objects.get()

    assert client.get("/admin/channels/schemadrift/?acknowledged=no").status_code == 200
    assert client.get("/admin/channels/schemafield/").status_code == 200
    reply = client.post("/admin/channels/schemadrift/", {"action": "acknowledge", "_selected_action": [found.pk]})

    assert reply.status_code == 302
    found.refresh_from_db()
    assert found.acknowledged_by == admin and SchemaField.objects.get(path="coupon").accepted


@pytest.fixture
def generic():
    sku = SKUFactory(code="SKU-001", barcode="6901234567890")
    receive_stock(WarehouseFactory(code="WH-SH", provinces=["上海"]).code, sku.code, 100)
    return Channel.objects.create(code="MINI", name="Mini-program", kind="generic")


def webhook_order(n: int, **extra) -> dict:
    return {
        "external_order_id": f"MP-{n}", "status": "paid", "placed_at": "2026-01-09T10:00:00+08:00",
        "currency": "CNY", "buyer": {"name": "张三", "phone": "13800001234"},
        "receiver": {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
                     "district": "浦东新区", "address": "世纪大道100号"},
        "lines": [{"sku": "SKU-001", "quantity": 1, "unit_price": "99.00", "discount": "0.00"}],
        "shipping_fee": "0.00", "discount_total": "0.00", "payable": "99.00", **extra,
    }


def test_intake_observes_every_raw_order(generic):
    for n in range(LEARN):
        ingest_raw(generic, webhook_order(n), "webhook")
    result = ingest_raw(generic, webhook_order(99, gift_wrap=True), "webhook")

    assert result.result == "created"
    assert changes(generic) == [("new", "gift_wrap", "", "bool")]
    assert SchemaField.objects.filter(channel=generic, path="lines[].sku", accepted=True).exists()


def test_a_drift_bug_does_not_block_intake(generic, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("drift bug")

    monkeypatch.setattr(drift, "observe", broken)
    with caplog.at_level(logging.ERROR, logger="channels.drift"):
        result = ingest_raw(generic, webhook_order(1), "pull")

    assert result.result == "created" and Order.objects.filter(channel=generic).count() == 1
    assert "schema drift detection failed" in caplog.text


def test_a_database_error_in_drift_leaves_the_intake_transaction_usable(generic, monkeypatch):
    def failing_load(channel, previous):
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table_for_drift")

    monkeypatch.setattr(drift, "_load", failing_load)
    with transaction.atomic():  # as a pull ingests
        result = ingest_raw(generic, webhook_order(2), "pull")

    assert result.result == "created" and Order.objects.filter(channel=generic).count() == 1


def test_a_hostile_payload_is_capped(shop):
    deep = leaf = {}
    for _n in range(900):  # about as deep as json.loads accepts
        leaf["x"] = {}
        leaf = leaf["x"]
    wide = {f"k{n}": [{"v": n}] * 50 for n in range(5000)}
    hostile = {**trade(), "deep": deep, "wide": wide, "long": "y" * 100_000, ("z" * 400): 1}

    pairs, truncated = drift.flatten(hostile)
    assert truncated and len(pairs) <= drift.MAX_PAIRS
    assert max(path.count(".") for path, _t in pairs) <= drift.MAX_DEPTH
    assert all(len(path) <= drift.MAX_PATH for path, _t in pairs)

    feed = Feed(shop)
    feed.learn()
    feed(hostile)
    feed(copy.deepcopy(trade(7)) | {"wide": {"k1": 1}})

    assert 0 < SchemaDrift.objects.count() <= drift.MAX_DRIFTS_PER_PAYLOAD
    assert SchemaField.objects.filter(channel=shop).count() <= drift.MAX_PAIRS + 20
    assert all(len(json.dumps(d.example, ensure_ascii=False).encode()) <= drift.EXAMPLE_MAX_BYTES
               for d in SchemaDrift.objects.all())


def test_example_is_size_capped():
    small = drift.example(trade())
    big = drift.example({"lines": [{"name": "x" * 300, "n": n} for n in range(1000)]})
    huge = drift.example({f"k{n}": "x" * 400 for n in range(150)})

    assert small == trade()
    assert len(big["lines"]) == 3
    assert huge["_truncated"] and len(json.dumps(huge, ensure_ascii=False).encode()) <= drift.EXAMPLE_MAX_BYTES
    deep = leaf = {}
    for _n in range(5000):  # too deep for json.dumps
        leaf["x"] = {}
        leaf = leaf["x"]
    assert json.dumps(drift.example({"deep": deep})).count("{") == drift.MAX_DEPTH


def test_a_known_payload_costs_no_query_once_cached(shop, django_assert_num_queries):
    feed = Feed(shop)
    feed.learn()
    feed(trade(50))  # past learning, cache warm, last_seen just written
    payloads = [archive(shop, "{}", "pull") for _n in range(3)]
    RawPayload.objects.filter(pk__in=[p.pk for p in payloads]).update(
        received_at=feed.start + timedelta(minutes=feed.minute - 1, seconds=30))

    for n, payload in enumerate(payloads):
        payload.refresh_from_db()
        with django_assert_num_queries(0):
            assert drift.observe(shop, trade(60 + n), payload) == []
