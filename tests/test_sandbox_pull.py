"""A pull from the sandbox marketplace over real HTTP, end to end into orders."""

from datetime import timedelta

import pytest
from django.db.models import Count
from django.test import override_settings
from django.utils import timezone

from channels.models import Channel, RawPayload, SyncRun
from channels.pulls import pull
from inventory.services import receive_stock
from orders.models import Order
from orders.tests.factories import SKUFactory, WarehouseFactory

pytestmark = pytest.mark.django_db(transaction=True)

DEMO_SKUS = ["SKU-TEA-001", "SKU-TEA-002", "SKU-CUP-001", "SKU-POT-001", "SKU-GIFT-01"]


@pytest.fixture
def sandbox_channel(live_server):
    warehouse = WarehouseFactory(code="WH-ALL", provinces=[])
    for code in DEMO_SKUS:
        SKUFactory(code=code)
        receive_stock(warehouse.code, code, 10_000)
    return Channel.objects.create(
        code="SANDBOX-TB", name="Sandbox", kind="sandbox", credentials={"app_key": "demo"},
        api_base_url=f"{live_server.url}/sandbox/taobao/router/rest",
        sync_cursor=timezone.now() - timedelta(minutes=20), pull_overlap_seconds=60,
    )


@override_settings(OMS_SANDBOX_ORDERS_PER_MINUTE=2)
def test_pull_creates_every_order_once_and_a_second_pull_changes_nothing(sandbox_channel):
    first = pull(sandbox_channel.pk)

    assert first.status == SyncRun.State.SUCCEEDED and first.fetched > 0
    orders = Order.objects.filter(channel=sandbox_channel)
    assert first.failed == 0 and orders.count() > 0
    assert orders.values("external_order_id").annotate(n=Count("id")).filter(n__gt=1).count() == 0
    assert RawPayload.objects.filter(sync_run=first).count() == first.fetched
    sandbox_channel.refresh_from_db()
    assert sandbox_channel.sync_cursor == first.window_end

    second = pull(sandbox_channel.pk)

    # The overlap is seen again and changes nothing; only orders the sandbox made since are new.
    assert second.unchanged > 0
    seen_first = set(RawPayload.objects.filter(sync_run=first).values_list("external_order_id", flat=True))
    created_second = set(RawPayload.objects.filter(sync_run=second, outcome="created")
                         .values_list("external_order_id", flat=True))
    assert not seen_first & created_second
    assert orders.values("external_order_id").annotate(n=Count("id")).filter(n__gt=1).count() == 0
    assert second.window_start == first.window_end - timedelta(seconds=60)


# Enough orders in the 21-minute window for more than one page of 50 (a page boundary to repeat across).
@override_settings(OMS_SANDBOX_ORDERS_PER_MINUTE=6, OMS_SANDBOX_FAULTS="duplicate_across_pages=1")
def test_the_same_order_on_two_pages_makes_one_order(sandbox_channel):
    run = pull(sandbox_channel.pk)

    orders = Order.objects.filter(channel=sandbox_channel)
    assert run.fetched > orders.count() > 0
    assert orders.values("external_order_id").annotate(n=Count("id")).filter(n__gt=1).count() == 0


@override_settings(OMS_SANDBOX_ORDERS_PER_MINUTE=2)
def test_shipping_a_pulled_order_sends_its_tracking_number_back(sandbox_channel):
    from orders.models import OrderEvent, Shipment
    from orders.tests.factories import advance

    pull(sandbox_channel.pk)
    order = Order.objects.filter(channel=sandbox_channel, status="paid").first()
    assert order is not None

    advance(order, "outbound")
    from channels.tasks import send_shipment_pushes

    assert send_shipment_pushes() == 1  # the beat sweep; its push task runs eagerly here

    shipment = Shipment.objects.get(order=order)
    assert shipment.push_status == "sent" and shipment.push_attempts == 1
    event = OrderEvent.objects.get(order=order, kind="api_call")
    assert shipment.tracking_no in event.summary and "SANDBOX-TB" in event.summary


# A backlog bigger than one pull may take: 3 h behind, in 30-minute slices, each pull allowed only
# one slice. Each pull moves the cursor to its last whole slice and the next goes on from there.
@override_settings(OMS_SANDBOX_ORDERS_PER_MINUTE=1, OMS_PULL_SLICE_SECONDS=1800, OMS_PULL_BUDGET_SECONDS=0)
def test_a_backlog_longer_than_one_pull_drains_slice_by_slice(sandbox_channel):
    behind = timezone.now() - timedelta(hours=3)
    Channel.objects.filter(pk=sandbox_channel.pk).update(sync_cursor=behind, pull_overlap_seconds=0)

    runs = []
    while len(runs) < 10:
        run = pull(sandbox_channel.pk)
        runs.append(run)
        assert run.status == SyncRun.State.SUCCEEDED
        sandbox_channel.refresh_from_db()
        assert sandbox_channel.sync_cursor == run.window_end  # committed slice by slice
        if timezone.now() - run.window_end < timedelta(minutes=30):
            break
    assert len(runs) >= 6  # 3 h of 30-minute slices, one a pull
    assert [r.window_start for r in runs[1:]] == [r.window_end for r in runs[:-1]]  # no gap, no restart
    orders = Order.objects.filter(channel=sandbox_channel)
    assert orders.values("external_order_id").annotate(n=Count("id")).filter(n__gt=1).count() == 0
