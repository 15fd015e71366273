"""Webhook deliveries (CONTRACTS.md): accepted at once, processed in pages by a worker, their
outcome readable; a worker killed mid-page loses nothing and applies nothing twice."""

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from channels import deliveries
from channels.models import RawPayload
from channels.tasks import process_deliveries
from channels.tests.test_intake import body, post
from orders.models import Order

pytestmark = pytest.mark.django_db


def pending(channel, n: int, claimed_before: timedelta | None = None) -> list[RawPayload]:
    rows = [RawPayload.objects.create(channel=channel, source="webhook", sha256="x" * 64,
                                      body=json.dumps(body(external_order_id=f"MP-{i}"), ensure_ascii=False))
            for i in range(n)]
    if claimed_before is not None:
        RawPayload.objects.filter(pk__in=[r.pk for r in rows]).update(claimed_at=timezone.now() - claimed_before)
    return rows


def test_a_delivery_is_accepted_at_once_and_its_outcome_read_later(client, client_for, channel, sku):
    reply = post(client, channel, body(), wait=None)
    assert reply.status_code == 202
    accepted = reply.json()
    assert accepted == {"delivery": accepted["delivery"], "result": "accepted", "order_no": None, "reasons": []}
    url = f"/api/v1/channels/{channel.code}/deliveries/{accepted['delivery']}/"
    outcome = client_for("ops").get(url).json()  # processed by now (the worker runs inline in tests)
    order = Order.objects.get(channel=channel)
    assert outcome == {"delivery": accepted["delivery"], "result": "created", "order_no": order.order_no, "reasons": []}
    assert client_for("integration").get(url).status_code == 200
    assert client_for("customer_service").get(url).status_code == 403
    assert client.get(url).status_code == 401
    assert client_for("ops").get(f"/api/v1/channels/OTHER/deliveries/{accepted['delivery']}/").status_code == 404
    assert client_for("ops").get(f"/api/v1/channels/{channel.code}/deliveries/{'9' * 18}/").status_code == 404


def test_an_order_the_worker_cannot_accept_is_failed_with_its_reasons(client, channel, sku):
    reply = post(client, channel, body(lines="not a list"))
    assert reply.status_code == 202 and reply.json()["result"] in {"failed", "held"}
    assert reply.json()["reasons"]


def test_prefer_wait_is_read_as_rfc_7240_says_and_capped():
    assert deliveries.requested_wait("wait=2") == 2
    assert deliveries.requested_wait("respond-async, wait=100") == 5
    assert deliveries.requested_wait("wait=abc") == 0 == deliveries.requested_wait("") == deliveries.requested_wait("wait=-3")


def test_a_dead_workers_claim_expires_and_the_page_is_taken_again(channel, sku):
    stale = pending(channel, 3, claimed_before=timedelta(minutes=5))
    live = pending(channel, 2, claimed_before=timedelta(seconds=5))  # another worker has these
    assert deliveries.process_pending(channel.pk) == 3
    assert set(RawPayload.objects.filter(pk__in=[r.pk for r in stale]).values_list("outcome", flat=True)) == {"created"}
    assert set(RawPayload.objects.filter(pk__in=[r.pk for r in live]).values_list("outcome", flat=True)) == {"pending"}
    assert Order.objects.count() == 3
    assert deliveries.process_pending(channel.pk) == 0  # nothing applied twice


def test_the_backstop_processes_what_no_wake_up_reached(channel, sku):
    pending(channel, 4)
    assert process_deliveries() == 4
    assert Order.objects.count() == 4 and not RawPayload.objects.filter(outcome="pending").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_never_claim_the_same_delivery(channel):
    rows = pending(channel, 300)
    got: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def worker(slot: int):
        start.wait()
        while page := deliveries.claim(channel.pk, size=25):
            got[slot].extend(p.pk for p in page)
        connection.close()

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == sorted(r.pk for r in rows)
