"""Customer identity by keyed phone hash, unified order numbers, channel-order idempotency."""

import re
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from orders import services
from orders.events import Actor
from orders.identity import identity_for, mask_phone, masked_hash, normalise_phone, phone_hash
from orders.models import CustomerIdentity, Order, OrderEvent, Status
from orders.numbers import next_order_no
from orders.tests.factories import (
    ChannelFactory,
    SKUFactory,
    WarehouseFactory,
    make_order,
    order_payload,
    stock_up,
)

# --- phone normalisation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13800001234",
        "+8613800001234",
        "+86 138 0000 1234",
        "0086 138-0000-1234",
        "008613800001234",
        "8613800001234",
        "138-0000-1234",
        " (138) 0000 1234 ",
    ],
)
def test_full_phones_normalise_to_the_same_digits(raw):
    phone = normalise_phone(raw)
    assert (phone.digits, phone.prefix, phone.suffix) == ("13800001234", "138", "1234")
    assert phone.masked == "138****1234"


@pytest.mark.parametrize(
    "raw", ["138****1234", "138-****-1234", "138 **** 1234", "+86 138****1234", "0086-138-****-1234"]
)
def test_masked_phones_keep_prefix_and_suffix_only(raw):
    phone = normalise_phone(raw)
    assert (phone.digits, phone.prefix, phone.suffix) == (None, "138", "1234")


@pytest.mark.parametrize("raw", ["", "   ", "12345", "abc", None])
def test_unusable_phones_normalise_to_nothing(raw):
    assert normalise_phone(raw) is None
    assert mask_phone(raw) == ""


def test_full_and_masked_phones_meet_on_the_masked_hash_only():
    full = normalise_phone("+86 138 0000 1234")
    masked = normalise_phone("138-****-1234")
    other = normalise_phone("13800005678")
    assert masked_hash(full) == masked_hash(masked)
    assert masked_hash(full) != masked_hash(other)
    assert phone_hash(full) and phone_hash(masked) == ""
    assert phone_hash(full) != phone_hash(other)


def test_hash_is_keyed_by_the_server_secret():
    phone = normalise_phone("13800001234")
    first = phone_hash(phone)
    with override_settings(OMS_IDENTITY_KEY="another-secret"):
        assert phone_hash(phone) != first


# --- identities ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_full_phone_identity_is_exact_and_shared_across_formats():
    first = identity_for("13800001234", "张三", "世纪大道100号")
    again = identity_for("+86 138-0000-1234", "Zhang San", "another address")

    assert again.pk == first.pk
    assert first.strength == CustomerIdentity.Strength.EXACT
    assert first.phone_hash == phone_hash(normalise_phone("13800001234"))
    assert first.key == first.phone_hash
    assert first.masked_phone == "138****1234"


@pytest.mark.django_db
def test_masked_phone_identity_is_weaker_and_needs_name_and_address():
    full = identity_for("13800001234", "张三", "世纪大道100号")
    masked = identity_for("138****1234", "张三", "世纪大道100号")
    masked_again = identity_for("138-****-1234", " 张三 ", "世纪大道 100号")
    someone_else = identity_for("138****1234", "李四", "世纪大道100号")

    assert masked.strength == CustomerIdentity.Strength.MASKED
    assert masked.phone_hash == ""
    assert masked_again.pk == masked.pk  # separators and spacing do not matter
    assert someone_else.pk != masked.pk  # same masked phone, another person
    assert masked.pk != full.pk
    # ...but all of them meet on the masked hash, where a search finds them (weakly).
    assert {full.masked_hash, masked.masked_hash, someone_else.masked_hash} == {masked.masked_hash}


@pytest.mark.django_db
def test_identity_table_never_stores_a_phone_in_the_clear():
    make_order(phone="+86 139 1234 5678")
    identity_for("13912345678", "王五", "somewhere")
    identity_for("139****5678", "王五", "somewhere")

    rows = list(CustomerIdentity.objects.values())
    assert len(rows) == 2  # the full phone twice is one identity; the masked one is another
    for row in rows:
        assert "13912345678" not in " ".join(str(value) for value in row.values())
        assert row["masked_phone"] == "139****5678"
        for field in ("key", "phone_hash", "masked_hash"):
            assert re.fullmatch(r"[0-9a-f]{64}|", row[field])


@pytest.mark.django_db
def test_an_order_is_linked_to_the_buyers_identity():
    order = make_order(phone="13800001234")
    masked_order = make_order(phone="138****1234")
    assert order.customer.phone_hash == phone_hash(normalise_phone("13800001234"))
    assert masked_order.customer.strength == CustomerIdentity.Strength.MASKED
    assert masked_order.customer.masked_hash == order.customer.masked_hash


# --- order numbers --------------------------------------------------------------------------


@pytest.mark.django_db
def test_order_number_is_prefix_local_date_and_daily_sequence():
    channel = ChannelFactory(kind="taobao")
    assert channel.order_prefix == "TB"
    # 17:00 UTC on the 9th is already the 10th in Shanghai.
    evening = datetime(2026, 1, 9, 17, 0, tzinfo=UTC)
    morning = datetime(2026, 1, 9, 2, 0, tzinfo=UTC)

    first = make_order(channel, placed_at=evening)
    second = make_order(channel, placed_at=evening)
    other_day = make_order(channel, placed_at=morning)
    other_channel = make_order(ChannelFactory(kind="jd"), placed_at=evening)

    assert first.order_no == "TB2026011000001"
    assert second.order_no == "TB2026011000002"
    assert other_day.order_no == "TB2026010900001"
    assert other_channel.order_no == "JD2026011000001"
    assert re.fullmatch(r"TB\d{8}\d{5}", make_order(channel).order_no)


@pytest.mark.django_db
def test_next_order_no_defaults_to_today():
    today = timezone.localdate()
    assert next_order_no("ZZ") == f"ZZ{today:%Y%m%d}00001"
    assert next_order_no("ZZ") == f"ZZ{today:%Y%m%d}00002"


# --- create_order idempotency ---------------------------------------------------------------


@pytest.mark.django_db
def test_create_order_is_idempotent_on_channel_and_external_id():
    channel = ChannelFactory()
    actor = Actor.for_channel(channel)
    sku = SKUFactory()
    stock_up(WarehouseFactory(code="WH-DEFAULT"), [(sku, 2)])  # paid below: it reserves
    payload = order_payload([(sku, 2, "99.00")], status="pending_payment",
                            external_order_id="MP-10001")

    order, result = services.create_order(channel, payload, actor)
    assert result == "created"
    assert order.status == Status.PENDING_PAYMENT
    assert order.payable_amount == Decimal("198.00")
    events = OrderEvent.objects.filter(order=order).count()

    again, result = services.create_order(channel, dict(payload), actor)
    assert (again.pk, result) == (order.pk, "unchanged")
    assert OrderEvent.objects.filter(order=order).count() == events

    paid = {**payload, "status": "paid", "paid_at": timezone.now()}
    updated, result = services.create_order(channel, paid, actor)
    assert (updated.pk, result) == (order.pk, "updated")
    order.refresh_from_db()
    assert order.status == Status.PAID
    assert order.paid_at == paid["paid_at"]
    new = list(OrderEvent.objects.filter(order=order).order_by("id")[events:])
    assert [(e.track, e.kind, e.to_state) for e in new] == [
        ("business", "transition", "paid"), ("system", "sync", ""), ("system", "sync", ""),
    ]
    assert new[1].summary == "stock reserved: WH-DEFAULT × 2"
    assert new[2].summary == "channel sent an update (status paid)"

    assert services.create_order(channel, paid, actor)[1] == "unchanged"
    assert Order.objects.filter(channel=channel, external_order_id="MP-10001").count() == 1


@pytest.mark.django_db
def test_the_same_external_id_on_another_channel_is_another_order():
    payload = order_payload(external_order_id="MP-1")
    first, _ = services.create_order(ChannelFactory(), payload, Actor("system"))
    second, result = services.create_order(ChannelFactory(), payload, Actor("system"))
    assert result == "created"
    assert first.pk != second.pk


@pytest.mark.django_db
def test_channel_cancellation_and_refund_follow_the_channel_status():
    cancelled = make_order(status="cancelled")
    refunded = make_order(status="refunded")
    assert cancelled.status == Status.CANCELLED
    assert cancelled.cancel_reason
    assert refunded.status == Status.REFUNDING  # the refund itself is confirmed by its voucher


# --- numbers claimed in blocks (OMS_ORDER_NUMBER_BLOCK) ---------------------------------------


@pytest.fixture
def blocks_of_five(settings):
    from orders import numbers

    settings.OMS_ORDER_NUMBER_BLOCK = 5
    numbers.forget_blocks()
    yield
    numbers.forget_blocks()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_block_is_claimed_outside_the_callers_transaction_and_survives_its_rollback(blocks_of_five):
    from django.db import transaction

    from orders.models import OrderNumberSequence

    today = timezone.localdate()
    with pytest.raises(RuntimeError), transaction.atomic():
        assert next_order_no("BK") == f"BK{today:%Y%m%d}00001"
        raise RuntimeError("the order fails")
    # The claim was committed on its own: the block stays taken, the next number is not reused.
    assert OrderNumberSequence.objects.get(prefix="BK", day=today).last == 5
    assert [next_order_no("BK") for _ in range(5)] == [f"BK{today:%Y%m%d}{n:05d}" for n in (2, 3, 4, 5, 6)]
    assert OrderNumberSequence.objects.get(prefix="BK", day=today).last == 10


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_creators_do_not_wait_for_each_others_transactions(blocks_of_five):
    from django.db import connection, transaction

    from oms.tests.threads import run_together

    holding = threading.Event()
    release = threading.Event()

    def slow_creator():
        with transaction.atomic():
            number = next_order_no("BK")
            holding.set()
            released = release.wait(10)  # an order transaction still open meanwhile
        connection.close()
        return number, released

    def fast_creators():
        holding.wait(10)
        # A fresh process-wide state stands for another worker process.
        from orders import numbers

        with numbers._blocks_lock:
            numbers._blocks.clear()
        got = [next_order_no("BK") for _ in range(7)]
        release.set()
        connection.close()
        return got

    results = run_together([slow_creator, fast_creators], timeout=20)
    assert [status for status, _ in results] == ["ok", "ok"], results
    (_, (slow, released)), (_, fast) = results
    assert released, "the fast creator waited for the slow one's transaction"
    # The fast creator went on while the slow one's transaction was open (the slow one
    # only commits once released), and took numbers from blocks of its own.
    assert len({slow, *fast}) == 8
    today = timezone.localdate()
    assert slow == f"BK{today:%Y%m%d}00001"
    assert sorted(fast) == [f"BK{today:%Y%m%d}{n:05d}" for n in range(6, 13)]
