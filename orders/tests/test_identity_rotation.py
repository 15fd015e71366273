"""Rotating OMS_IDENTITY_KEY: identities made under the previous key are found and re-keyed."""

import pytest
from django.core.management import call_command
from django.test import override_settings

from orders.models import CustomerIdentity
from orders.selectors import search_orders
from orders.tests.factories import make_order

pytestmark = pytest.mark.django_db
OLD, NEW = "old-identity-key-" + "a" * 30, "new-identity-key-" + "b" * 30


def test_a_buyer_seen_again_after_a_rotation_keeps_their_identity():
    with override_settings(OMS_IDENTITY_KEY=OLD):
        first = make_order(phone="13912345678")
    with override_settings(OMS_IDENTITY_KEY=NEW, OMS_IDENTITY_PREVIOUS_KEY=OLD):
        matches, _weak = search_orders("13912345678")
        assert [o.order_no for o in matches] == [first.order_no]  # found under the previous key
        second = make_order(phone="13912345678")
    assert second.customer_id == first.customer_id
    with override_settings(OMS_IDENTITY_KEY=NEW):  # the rotation is over
        assert [o.order_no for o in search_orders("13912345678")[0]] == [second.order_no, first.order_no]


def test_rehash_identities_rekeys_from_the_orders_receivers():
    with override_settings(OMS_IDENTITY_KEY=OLD):
        order = make_order(phone="13912345678")
        old_key = order.customer.key
    with override_settings(OMS_IDENTITY_KEY=NEW, OMS_IDENTITY_PREVIOUS_KEY=OLD):
        call_command("rehash_identities")
        call_command("rehash_identities")  # again: nothing left to do
    identity = CustomerIdentity.objects.get(pk=order.customer_id)
    assert identity.key != old_key
    with override_settings(OMS_IDENTITY_KEY=NEW):
        assert [o.order_no for o in search_orders("13912345678")[0]] == [order.order_no]
