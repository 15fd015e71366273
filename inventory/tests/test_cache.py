"""The availability cache on real Redis: write-through, newest version wins, repair, Redis down."""

import pytest
from django.conf import settings
from django.test import override_settings

from inventory import cache, services
from inventory.cache_health import run_check
from inventory.models import StockLevel
from inventory.selectors_availability import availability
from inventory.stock import LevelState
from orders.tests.factories import SKUFactory, WarehouseFactory, make_order

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL or 127.0.0.1:6379)"),
]

DEAD_REDIS = "redis://127.0.0.1:1/0"
REDIS_DOWN = {
    "REDIS_URL": DEAD_REDIS,
    "CACHES": {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": DEAD_REDIS,
                           "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}},
}


@pytest.fixture
def stocked(django_capture_on_commit_callbacks):
    warehouse = WarehouseFactory(code="WH-C")
    sku = SKUFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.receive_stock(warehouse.code, sku.code, 10)
    return warehouse, sku


def test_services_write_through_after_commit(stocked, django_capture_on_commit_callbacks):
    warehouse, sku = stocked

    with django_capture_on_commit_callbacks(execute=True):
        make_order(lines=[(sku, 3, "10.00")], stock=False)

    cached = cache.read_levels(sku.pk)[warehouse.pk]
    assert (cached["on_hand"], cached["reserved"]) == (10, 3)
    result = availability(sku)
    assert result.source == "cache" and result.levels[0]["available"] == 7


def test_an_older_version_never_overwrites_a_newer_one(stocked):
    warehouse, sku = stocked
    cache.publish_level(LevelState(warehouse.pk, sku.pk, 10, 5, 0, version=50))
    cache.publish_level(LevelState(warehouse.pk, sku.pk, 10, 4, 0, version=49))  # late commit

    assert cache.read_levels(sku.pk)[warehouse.pk]["reserved"] == 5


def test_a_miss_reads_the_database_and_fills_the_cache(stocked):
    _, sku = stocked
    cache.forget(sku.pk)

    first, second = availability(sku), availability(sku)

    assert (first.source, second.source) == ("database", "cache")
    assert first.levels == second.levels


def test_health_check_repairs_holes_and_wrong_values_and_reports(stocked):
    warehouse, sku = stocked
    other = SKUFactory()
    services.receive_stock(warehouse.code, other.code, 4)
    level = StockLevel.objects.get(warehouse=warehouse, sku=other)
    cache.take_counts()  # statistics start from here
    cache.forget(other.pk)
    availability(other)  # a miss, which fills the cache from the database
    cache.replace_levels(other.pk, {warehouse.pk: {"version": level.version, "on_hand": 999,
                                                   "reserved": 0, "safety_stock": 0}})  # corrupted
    availability(other)  # a hit, on the wrong value
    cache.forget(sku.pk)  # a hole: the half-failed nightly refresh

    check = run_check([sku.pk, other.pk])

    assert (check.sampled, check.holes, check.wrong, check.repaired) == (2, 1, 1, 2)
    assert check.alerting and check.mismatch_ratio == 1.0
    assert (check.hits, check.misses) == (1, 1)
    assert cache.read_levels(other.pk)[warehouse.pk]["on_hand"] == 4
    assert run_check([sku.pk, other.pk]).alerting is False


def test_with_redis_down_reservations_work_and_reads_use_the_database(stocked):
    warehouse, sku = stocked

    with override_settings(**REDIS_DOWN):
        order = make_order(lines=[(sku, 2, "10.00")], stock=False)
        result = availability(sku)
        check = run_check([sku.pk])

    assert order.status == "paid"
    assert StockLevel.objects.get(warehouse=warehouse, sku=sku).reserved == 2
    assert result.source == "database" and result.levels[0]["reserved"] == 2
    assert check.cache_up is False and check.alerting is True
