"""Intake through the signed generic webhook: archive, rules, validation, hold, replay."""

import json
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from channels.models import Channel, CleansingRule, RawPayload
from oms import signing
from orders.models import Order, Status

pytestmark = pytest.mark.django_db




def body(**overrides) -> dict:
    data = {
        "external_order_id": "MP-10001", "status": "paid",
        "placed_at": "2026-01-09T10:00:00+08:00", "paid_at": "2026-01-09T10:00:05+08:00",
        "currency": "CNY", "buyer": {"name": "张三", "phone": "13800001234"},
        "receiver": {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
                     "district": "浦东新区", "address": "世纪大道100号"},
        "lines": [{"sku": "SKU-001", "quantity": 2, "unit_price": "99.00", "discount": "0.00"}],
        "shipping_fee": "0.00", "discount_total": "0.00", "payable": "198.00",
    }
    data.update(overrides)
    return data


def post(client, channel, payload, secret=None, raw: bytes | None = None, wait: str | None = "5", **signed):
    """Signed like an integrator does; by default asking for the outcome in the reply."""
    content = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
    signed.setdefault("version", channel.signature_version)
    headers = signing.sign(secret or channel.webhook_secret, content, **signed)
    if wait is not None:
        headers["Prefer"] = f"wait={wait}"
    return client.post(f"/api/v1/channels/{channel.code}/webhook/", data=content,
                       content_type="application/json", headers=headers)


def test_signed_webhook_creates_the_order_and_a_repeat_changes_nothing(client, channel, sku):
    first = post(client, channel, body())
    again = post(client, channel, body())

    assert first.status_code == 202 and first.json()["result"] == "created"
    assert again.status_code == 202 and again.json() == {**again.json(), "result": "unchanged"}
    order = Order.objects.get(channel=channel)
    assert order.order_no == first.json()["order_no"] and order.status == Status.PAID
    assert RawPayload.objects.filter(channel=channel).count() == 2


def test_an_update_after_payment_is_applied(client, channel, sku):
    post(client, channel, body(status="pending_payment", paid_at=None))

    reply = post(client, channel, body())

    assert reply.json()["result"] == "updated"
    assert Order.objects.get(channel=channel).status == Status.PAID


def test_bad_signature_is_401_and_nothing_is_stored(client, channel, sku):
    reply = post(client, channel, body(), secret="not-the-secret")

    assert reply.status_code == 401
    assert not RawPayload.objects.exists() and not Order.objects.exists()


def test_malformed_body_is_400_and_still_archived(client, channel):
    reply = post(client, channel, None, raw=b'{"external_order_id": "MP-1", "lines": [')

    assert reply.status_code == 400 and "body" in reply.json()["fields"]
    archived = RawPayload.objects.get(channel=channel)
    assert archived.outcome == "invalid" and archived.body.startswith('{"external_order_id"')


def test_unknown_sku_is_held_with_the_reason_not_dropped(client, channel, sku):
    reply = post(client, channel, body(lines=[{"sku": "NOPE-9", "quantity": 1, "unit_price": "198.00"}]))

    assert reply.status_code == 202 and reply.json()["result"] == "held"
    assert "NOPE-9 is not a known SKU" in reply.json()["reasons"][0]
    assert RawPayload.objects.get(channel=channel).outcome == "held"
    assert not Order.objects.exists()


@pytest.mark.parametrize("address", ["临时地址", "测试", "test street 1"])
def test_placeholder_address_creates_the_order_on_hold(client, channel, sku, address):
    receiver = {**body()["receiver"], "address": address}

    reply = post(client, channel, body(receiver=receiver))

    assert reply.json()["result"] == "held"
    order = Order.objects.get(order_no=reply.json()["order_no"])
    assert order.status == Status.ON_HOLD and "placeholder" in order.hold_reason


def test_an_unpaid_order_with_a_placeholder_address_is_held_when_it_is_paid(client, channel, sku):
    receiver = {**body()["receiver"], "address": "测试地址"}
    first = post(client, channel, body(status="pending_payment", receiver=receiver))
    assert first.json()["result"] == "held"
    assert Order.objects.get(order_no=first.json()["order_no"]).status == Status.PENDING_PAYMENT

    paid = post(client, channel, body(status="paid", receiver=receiver))

    assert paid.json()["result"] == "held"
    order = Order.objects.get(order_no=first.json()["order_no"])
    assert order.status == Status.ON_HOLD and "placeholder" in order.hold_reason


@pytest.mark.parametrize("receiver", [{}, None], ids=["empty", "missing"])
def test_an_order_without_a_receiver_is_made_and_held_never_dropped(client, channel, sku, receiver):
    payload = body()
    if receiver is None:
        payload.pop("receiver")
    else:
        payload["receiver"] = receiver

    reply = post(client, channel, payload)

    assert reply.json()["result"] == "held"
    order = Order.objects.get(order_no=reply.json()["order_no"])
    assert order.status == Status.ON_HOLD
    assert "receiver.name is missing" in order.hold_reason and "receiver.address is missing" in order.hold_reason


def test_amounts_that_do_not_add_up_hold_the_order(client, channel, sku):
    reply = post(client, channel, body(payable="190.00"))

    order = Order.objects.get(order_no=reply.json()["order_no"])
    assert order.status == Status.ON_HOLD and "payable 190.00" in order.hold_reason


def test_sku_may_be_our_barcode(client, channel, sku):
    reply = post(client, channel, body(lines=[{"sku": "6901234567890", "quantity": 2, "unit_price": "99.00"}]))

    assert reply.json()["result"] == "created"


def test_suffix_rule_and_replay_fix_already_archived_payloads(client, channel, sku):
    broken = post(client, channel, body(external_order_id="MP-10001ERR"))
    assert Order.objects.get(order_no=broken.json()["order_no"]).external_order_id == "MP-10001ERR"
    CleansingRule.objects.create(channel=channel, action="strip_suffix", field="external_order_id",
                                 argument="ERR", note="integration glued order_id_suffix on ids")

    call_command("replay_channel_payloads", "--channel", "MINI",
                 "--since", (timezone.now() - timedelta(hours=1)).isoformat(),
                 "--until", (timezone.now() + timedelta(minutes=1)).isoformat())

    fixed = Order.objects.get(channel=channel, external_order_id="MP-10001")
    superseded = Order.objects.get(order_no=broken.json()["order_no"])
    assert fixed.status == Status.PAID
    assert superseded.status == Status.CANCELLED and fixed.order_no in superseded.cancel_reason
    assert post(client, channel, body(external_order_id="MP-10001ERR")).json()["result"] == "unchanged"


def test_channel_api_returns_the_webhook_secret_once(client_for):
    ops = client_for("ops")

    created = ops.post("/api/v1/channels/", {"code": "DY-2", "name": "抖音二店", "kind": "douyin"}, format="json")
    listed = ops.get("/api/v1/channels/DY-2/")

    assert created.status_code == 201 and len(created.json()["webhook_secret"]) > 20
    assert created.json()["order_prefix"] == "DY"
    assert "webhook_secret" not in listed.json()
    bad = ops.post("/api/v1/channels/", {"code": "X", "name": "x", "kind": "ebay"}, format="json")
    assert bad.status_code == 400 and "kind" in bad.json()["fields"]
    assert client_for("customer_service").post(
        "/api/v1/channels/", {"code": "Y", "name": "y", "kind": "jd"}, format="json").status_code == 403


def test_an_unpaid_duplicate_within_five_minutes_is_merged_as_a_linked_sub_order(client, channel, sku):
    other = Channel.objects.create(code="TB-DUP", name="Taobao", kind="generic")
    first = post(client, channel, body(external_order_id="MP-1", status="pending_payment", paid_at=None,
                                       placed_at="2026-01-09T10:00:00+08:00"))
    masked_buyer = {"name": "张三", "phone": "138-0000-1234"}
    second = post(client, other, body(external_order_id="TB-9", status="pending_payment", paid_at=None,
                                      placed_at="2026-01-09T10:03:00+08:00", buyer=masked_buyer))
    later = post(client, channel, body(external_order_id="MP-2", status="pending_payment", paid_at=None,
                                       placed_at="2026-01-09T10:09:00+08:00"))
    other_lines = post(client, channel, body(external_order_id="MP-3", status="pending_payment", paid_at=None,
                                             placed_at="2026-01-09T10:01:00+08:00", payable="99.00",
                                             lines=[{"sku": "SKU-001", "quantity": 1, "unit_price": "99.00"}]))

    assert second.json()["result"] == "merged"
    assert later.json()["result"] == "created" and other_lines.json()["result"] == "created"
    duplicate = Order.objects.get(order_no=second.json()["order_no"])
    original = Order.objects.get(order_no=first.json()["order_no"])
    assert duplicate.merged_into == original and duplicate.status == Status.PENDING_PAYMENT
    assert original.events.filter(summary__contains=duplicate.order_no).exists()
    assert RawPayload.objects.filter(outcome="merged").count() == 1


def test_duplicates_report_per_channel_hour_and_top_skus(client, client_for, channel, sku):
    now = timezone.now()
    for n, minutes in enumerate((0, 1, 2)):
        post(client, channel, body(external_order_id=f"MP-{n}", status="pending_payment", paid_at=None,
                                   placed_at=(now - timedelta(minutes=10 - minutes)).isoformat()))

    report = client_for("ops").get("/api/v1/channels/duplicates/", {"hours": 1})

    assert report.status_code == 200
    assert sum(row["duplicates"] for row in report.json()["per_channel_hour"]) == 2
    assert report.json()["top_skus"] == [{"sku": "SKU-001", "orders": 2}]
    bad = client_for("ops").get("/api/v1/channels/duplicates/", {"hours": "x"})
    assert bad.status_code == 400 and "hours" in bad.json()["fields"]


@pytest.mark.parametrize(("field", "ciphertext"), [
    ("address", "AAS" + "QkZnR0hJSktMTU5PUFFSU1RVVldYWVo=" * 2),  # JD
    ("phone", "$138$U2FsdGVkX1+AbCdEfGhIjKl0123456789==$1$"),  # Douyin phone
    ("name", "#张#U2FsdGVkX1+QwErTyUiOpAsDfGh==#1##"),  # Douyin name
    ("address", "~AgAAAAFVx0Q3b3RoZXJ0ZXh0aGVyZQ==~0~"),  # Pinduoduo
])
def test_a_platform_ciphertext_receiver_is_held_never_shown_as_an_address(client, channel, sku, field, ciphertext,
                                                                         client_for):
    receiver = {**body()["receiver"], field: ciphertext}

    reply = post(client, channel, body(receiver=receiver))

    assert reply.json()["result"] == "held", reply.json()
    order = Order.objects.get(order_no=reply.json()["order_no"])
    assert order.status == Status.ON_HOLD
    assert f"receiver.{field} is the platform's ciphertext" in order.hold_reason
    shown = client_for("ops").get(f"/api/v1/orders/{order.order_no}/").json()["receiver"]
    assert shown[field] == "" and shown["encrypted"] == [field]
    if field == "phone":  # ciphertext digits are no phone: no buyer identity is made of them
        from orders.identity import new_identity

        assert new_identity(ciphertext, "张三", "世纪大道100号") is None


# --- hostile input on the unauthenticated webhook (issue 15) ----------------------------------

def test_a_body_over_one_megabyte_is_refused_413_before_it_is_read(client, channel):
    big = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    reply = post(client, channel, None, raw=big)
    assert reply.status_code == 413 and reply.json()["error"] == "too_large"
    assert not RawPayload.objects.exists()


def test_a_non_ascii_signature_is_a_401_not_a_500(client, channel):
    reply = client.post(f"/api/v1/channels/{channel.code}/webhook/", data=b"{}", content_type="application/json",
                        HTTP_X_OMS_SIGNATURE="sha256=签名签名")
    assert reply.status_code == 401
    assert not RawPayload.objects.exists()


def test_validly_signed_json_nested_too_deep_is_a_400_and_archived(client, channel):
    deep = b"[" * 100_000 + b"]" * 100_000
    reply = post(client, channel, None, raw=deep)
    assert reply.status_code == 400 and "nested too deep" in reply.json()["fields"]["body"][0]
    assert RawPayload.objects.get().outcome == "invalid"  # kept for replay, as the contract says


def test_signature_version_2_refuses_a_replay_and_a_body_signed_without_its_timestamp(client, channel, sku):
    assert channel.signature_version == 2  # every channel created now
    stale = post(client, channel, body(), now=time.time() - 301)
    assert stale.status_code == 401 and "300 s" in stale.json()["detail"]
    content = json.dumps(body(), ensure_ascii=False).encode()
    v1 = client.post(f"/api/v1/channels/{channel.code}/webhook/", data=content, content_type="application/json",
                     headers=signing.sign(channel.webhook_secret, content, version=1))
    assert v1.status_code == 401 and "X-OMS-Timestamp" in v1.json()["detail"]
    assert not RawPayload.objects.exists()
    assert post(client, channel, body()).status_code == 202


def test_a_channel_created_before_version_2_keeps_version_1(client, channel, sku):
    Channel.objects.filter(pk=channel.pk).update(signature_version=1)
    channel.refresh_from_db()
    assert post(client, channel, body()).status_code == 202


def test_a_version_1_channel_moves_to_version_2_without_a_gap(client, client_for, sku):
    old = Channel.objects.create(code="OLD", name="old", kind="generic", signature_version=1)
    # The integrator switches first: version 2 is taken on a version-1 channel ...
    assert post(client, old, body(external_order_id="V2-1"), version=2).json()["result"] == "created"
    assert post(client, old, body(external_order_id="V1-1"), version=1).json()["result"] == "created"
    # ... then ops move the channel to 2, and version 1 is refused from then on.
    ops = client_for("ops")
    assert ops.patch("/api/v1/channels/OLD/", {"signature_version": 2}, format="json").status_code == 200
    old.refresh_from_db()
    assert old.signature_version == 2
    assert post(client, old, body(external_order_id="V1-2"), version=1).status_code == 401
    back = ops.patch("/api/v1/channels/OLD/", {"signature_version": 1}, format="json")
    assert back.status_code == 400 and "signature_version" in back.json()["fields"]
