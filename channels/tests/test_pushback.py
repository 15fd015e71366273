"""Sending tracking numbers back: not needed, retried, and given up visibly."""

import pytest

from channels.adapters.base import TransportError
from channels.models import Channel
from channels.pushback import claim_pushes, push_shipment
from orders.models import OrderEvent, Shipment
from orders.tests.factories import advance, make_order

pytestmark = pytest.mark.django_db


def shipped_order(channel):
    order = advance(make_order(channel=channel), "outbound")
    return Shipment.objects.get(order=order)


def test_a_channel_without_an_api_needs_no_push():
    shipment = shipped_order(Channel.objects.create(code="MINI", name="Mini", kind="generic"))

    assert push_shipment(shipment.pk) == "not_needed"
    assert Shipment.objects.get(pk=shipment.pk).push_status == "not_needed"


def test_an_unreachable_channel_is_retried_then_given_up_on_the_timeline():
    channel = Channel.objects.create(code="TB-X", name="TB", kind="taobao",
                                     api_base_url="http://127.0.0.1:1/router/rest",
                                     credentials={"app_key": "k", "app_secret": "s", "session": "t"})
    shipment = shipped_order(channel)

    with pytest.raises(TransportError):
        push_shipment(shipment.pk)
    assert Shipment.objects.get(pk=shipment.pk).push_status == "pending"

    with pytest.raises(TransportError):
        push_shipment(shipment.pk, attempt_is_last=True)

    shipment.refresh_from_db()
    assert (shipment.push_status, shipment.push_attempts) == ("failed", 2)
    assert OrderEvent.objects.filter(order=shipment.order, kind="api_call", summary__contains="failed").exists()


def test_the_sweep_queues_each_new_shipment_once():
    channel = Channel.objects.create(code="TB-Y", name="TB", kind="taobao", api_base_url="http://127.0.0.1:1/")
    shipment = shipped_order(channel)

    assert claim_pushes() == [shipment.pk]
    assert claim_pushes() == []  # queued: not again while its task runs
    assert Shipment.objects.get(pk=shipment.pk).push_status == "queued"
