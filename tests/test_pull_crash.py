"""SIGKILL the worker in the middle of a pull, pull again: every order exactly once."""

import os
import signal
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.test import override_settings
from django.utils import timezone

from channels.models import Channel, RawPayload, SyncRun
from channels.pulls import pull
from inventory.services import receive_stock
from orders.models import Order
from orders.tests.factories import SKUFactory, WarehouseFactory
from tests.processes import clean_env, send_task, start_worker

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SKUS = ["SKU-TEA-001", "SKU-TEA-002", "SKU-CUP-001", "SKU-POT-001", "SKU-GIFT-01"]


# ~120 orders in the window: several pages, each a quarter second late, so the kill lands while the
# pull is still fetching (a page of new orders is made in milliseconds once it has arrived).
@override_settings(OMS_SANDBOX_ORDERS_PER_MINUTE=12)
def test_a_pull_killed_halfway_leaves_the_cursor_and_the_next_pull_completes_it(live_server, tmp_path):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL or 127.0.0.1:6379) for the worker's broker")
    warehouse = WarehouseFactory(code="WH-ALL", provinces=[])
    for code in SKUS:
        SKUFactory(code=code)
        receive_stock(warehouse.code, code, 10_000)
    cursor = timezone.now() - timedelta(minutes=10)
    channel = Channel.objects.create(
        code="SANDBOX-KILL", name="Sandbox", kind="sandbox", credentials={"app_key": "kill"},
        # slow pages: the pull is still running when the worker is killed
        api_base_url=f"{live_server.url}/sandbox/taobao/router/rest?sandbox_faults=slow_pages=0.25",
        sync_cursor=cursor, pull_overlap_seconds=0,
    )
    db = connection.settings_dict
    env = clean_env(OMS_VAR_DIR=str(tmp_path), REDIS_URL=settings.REDIS_URL,
                    DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
                    OMS_SANDBOX_ORDERS_PER_MINUTE="12")
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    worker = start_worker(queue, env)
    try:
        send_task("channels.tasks", "pull_channel_orders", [channel.pk], queue, env)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and RawPayload.objects.filter(channel=channel).count() < 3:
            time.sleep(0.2)
        assert RawPayload.objects.filter(channel=channel).count() >= 3, "the pull never started"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    halfway = Order.objects.filter(channel=channel).count()
    channel.refresh_from_db()
    assert channel.sync_cursor == cursor  # nothing committed the window: the cursor stayed

    # The killed pull's claim would expire on its own; the next pull starts once it has.
    Channel.objects.filter(pk=channel.pk).update(pull_claimed_until=timezone.now() - timedelta(seconds=1))
    run = pull(channel.pk)

    orders = Order.objects.filter(channel=channel)
    assert orders.count() >= halfway and run.status == "succeeded"
    assert orders.values("external_order_id").annotate(n=Count("id")).filter(n__gt=1).count() == 0
    assert run.unchanged >= halfway - run.updated  # what the killed pull stored is seen, not redone
    # The killed pull's run is not left "running" for good: the next pull closed it.
    killed = SyncRun.objects.filter(channel=channel).exclude(pk=run.pk).get()
    assert killed.status == "failed" and killed.error.startswith("interrupted") and killed.finished_at
