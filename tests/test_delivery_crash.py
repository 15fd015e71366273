"""SIGKILL the Celery worker in the middle of a page of webhook deliveries: every delivery ends
as exactly one order, none is lost, none applied twice."""

import json
import os
import signal
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from channels import deliveries
from channels.models import Channel, RawPayload
from inventory.services import receive_stock
from orders.models import Order
from orders.tests.factories import SKUFactory, WarehouseFactory
from tests.processes import clean_env, send_task, start_worker

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
DELIVERIES = 1_500


def delivery(channel, n: int) -> RawPayload:
    body = {"external_order_id": f"KILL-{n}", "status": "paid", "placed_at": "2026-01-09T10:00:00+08:00",
            "paid_at": "2026-01-09T10:00:05+08:00", "currency": "CNY",
            "buyer": {"name": "张三", "phone": "13800001234"},
            "receiver": {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
                         "district": "浦东新区", "address": "世纪大道100号"},
            "lines": [{"sku": "SKU-K", "quantity": 1, "unit_price": "9.00", "discount": "0.00"}],
            "shipping_fee": "0.00", "discount_total": "0.00", "payable": "9.00"}
    return RawPayload(channel=channel, source="webhook", sha256="k" * 64, body=json.dumps(body, ensure_ascii=False))


def test_a_worker_killed_mid_page_loses_and_doubles_nothing(tmp_path):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL or 127.0.0.1:6379) for the worker's broker")
    receive_stock(WarehouseFactory(code="WH-K", provinces=[]).code, SKUFactory(code="SKU-K").code, 10_000)
    channel = Channel.objects.create(code="KILL", name="kill", kind="generic")
    RawPayload.objects.bulk_create([delivery(channel, n) for n in range(DELIVERIES)])
    db = connection.settings_dict
    env = clean_env(OMS_VAR_DIR=str(tmp_path), REDIS_URL=settings.REDIS_URL,
                    DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}")
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    worker = start_worker(queue, env)
    try:
        send_task("channels.tasks", "process_deliveries", [channel.pk], queue, env)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and Order.objects.filter(channel=channel).count() < 50:
            time.sleep(0.05)
        assert Order.objects.filter(channel=channel).count() >= 50, "the worker never started"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    done = RawPayload.objects.filter(channel=channel).exclude(outcome="pending").count()
    assert done < DELIVERIES, "the worker finished before it was killed: nothing was tested"
    assert Order.objects.filter(channel=channel).count() == done  # each applied delivery, one order

    # The killed worker's claim on its page expires after a minute; then anyone takes it.
    RawPayload.objects.filter(channel=channel, outcome="pending").update(
        claimed_at=timezone.now() - deliveries.CLAIM_FOR - timedelta(seconds=1))
    deliveries.process_pending(channel.pk)
    assert not RawPayload.objects.filter(channel=channel, outcome="pending").exists()
    orders = Order.objects.filter(channel=channel)
    assert orders.count() == DELIVERIES
    assert not orders.values("external_order_id").annotate(n=Count("id")).filter(n__gt=1).exists()
