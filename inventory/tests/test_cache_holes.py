"""Availability cache holes (issue 15, item 8), on real Redis and, for the races, PostgreSQL.

A hash is complete or a miss; keys belong to one database generation and one Redis server run;
the health check covers every SKU that moved, safety stock is written through, and fills and
repairs never overwrite a newer commit.
"""

import shutil
import socket
import subprocess
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from inventory import cache, cache_health, selectors_availability, services, stock
from inventory.cache_health import run_check, skus_to_check
from inventory.models import SKU, CacheCheck, CacheGeneration, StockLevel
from inventory.selectors_availability import availability, levels_from_database
from inventory.stock import LevelState
from oms.tests.threads import run_together
from orders.tests.factories import SKUFactory, WarehouseFactory

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL or 127.0.0.1:6379)")


@pytest.fixture(autouse=True)
def namespace_of_its_own(db):
    """Each test starts with a database generation of its own, as a new database would: SQLite
    hands out the ids of a rolled-back test again. Tests here also reset and rotate it inside
    rolled-back transactions, so this process's memory of it is dropped after each."""
    CacheGeneration.rotate()
    cache.note_generation(None)
    yield
    cache.note_generation(None)


@pytest.fixture
def three_warehouses(db, django_capture_on_commit_callbacks):
    """WH-GZ, WH-SH and WH-BJ holding 200 each of one SKU."""
    warehouses = [WarehouseFactory(code=code) for code in ("WH-GZ", "WH-SH", "WH-BJ")]
    sku = SKUFactory()
    with django_capture_on_commit_callbacks(execute=True):
        for warehouse in warehouses:
            services.receive_stock(warehouse.code, sku.code, 200)
    return warehouses, sku


def shown(result) -> dict[str, tuple[int, int]]:
    return {row["warehouse"]: (row["on_hand"], row["reserved"]) for row in result.levels}


def database_view(sku) -> dict[str, tuple[int, int]]:
    return {code: (on_hand, reserved) for code, on_hand, reserved in StockLevel.objects.filter(sku=sku)
            .values_list("warehouse__code", "on_hand", "reserved")}


def put_raw_hash(sku_id: int, fields: dict[str, str]) -> None:
    """Leave the SKU's hash exactly as `fields` (no completeness marker unless given)."""
    generation = cache.known_generation()

    def commands(run):
        key = cache._key(generation, run, sku_id)
        flat = [part for item in fields.items() for part in item]
        return [("DEL", key), ("HSET", key, *flat)]

    cache._roundtrip(cache._redis(), commands)


def reserve_committed(warehouse, sku, quantity: int) -> LevelState:
    with transaction.atomic():
        state = stock.reserve(warehouse.pk, sku.pk, quantity, reference="test", reason="test")
    assert state is not None
    return state


# --- 1. a hash is complete or a miss ------------------------------------------------------------


def test_a_write_through_after_a_lost_key_does_not_hide_the_other_warehouses(
        three_warehouses, django_capture_on_commit_callbacks):
    (gz, _sh, _bj), sku = three_warehouses
    assert availability(sku).source in ("cache", "database")
    cache.forget(sku.pk)  # the key is lost (evicted, expired, flushed)

    with django_capture_on_commit_callbacks(execute=True):
        reserve_committed(gz, sku, 5)
    result = availability(sku)

    assert shown(result) == {"WH-GZ": (200, 5), "WH-SH": (200, 0), "WH-BJ": (200, 0)}
    assert result.source == "cache"  # the write-through filled the hash from the database


def test_a_hash_without_the_completeness_marker_is_a_miss_that_refills(three_warehouses):
    (gz, _sh, _bj), sku = three_warehouses
    level = StockLevel.objects.get(warehouse=gz, sku=sku)
    put_raw_hash(sku.pk, {str(gz.pk): cache.encode(level.version, 200, 0, 0)})  # one warehouse only

    first, second = availability(sku), availability(sku)

    assert first.source == "database" and second.source == "cache"
    assert shown(first) == shown(second) == {"WH-GZ": (200, 0), "WH-SH": (200, 0), "WH-BJ": (200, 0)}


def test_a_hit_is_one_redis_round_trip_and_one_query(three_warehouses, monkeypatch, django_assert_num_queries):
    _, sku = three_warehouses
    availability(sku)  # warm
    round_trips = []
    real = cache._roundtrip
    monkeypatch.setattr(cache, "_roundtrip", lambda *args: round_trips.append(1) or real(*args))

    with django_assert_num_queries(1):  # warehouse codes, and the generation with them
        result = availability(sku)

    assert result.source == "cache" and len(round_trips) == 1


# --- 2. the cache belongs to one database -------------------------------------------------------


def test_a_reset_database_never_reads_the_numbers_of_the_one_before(db, django_capture_on_commit_callbacks):
    warehouse, sku = WarehouseFactory(code="WH-R"), SKUFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.receive_stock(warehouse.code, sku.code, 1000)
    # what the previous database left for the same SKU id: a later version, 990 reserved
    cache.replace_levels(sku.pk, {warehouse.pk: {"version": 990, "on_hand": 1000, "reserved": 990,
                                                 "safety_stock": 0}})
    assert shown(availability(sku)) == {"WH-R": (1000, 990)}  # the stale cache, as it was served

    CacheGeneration.objects.all().delete()  # a reset: the new database has a generation of its own
    fresh = availability(sku)
    with django_capture_on_commit_callbacks(execute=True):
        reserve_committed(warehouse, sku, 5)  # version 2: not refused as older than 990
    after = availability(sku)

    assert fresh.source == "database" and shown(fresh) == {"WH-R": (1000, 0)}
    assert after.source == "cache" and shown(after) == {"WH-R": (1000, 5)}


def test_a_new_database_gets_a_generation_of_its_own(db):
    CacheGeneration.objects.all().delete()  # a flushed database
    first = CacheGeneration.current()
    CacheGeneration.objects.all().delete()

    assert CacheGeneration.current() != first
    assert CacheGeneration.objects.count() == 1


def test_after_a_restore_rotating_the_generation_drops_what_was_cached_since_the_backup(
        db, django_capture_on_commit_callbacks):
    warehouse, sku = WarehouseFactory(code="WH-T"), SKUFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.receive_stock(warehouse.code, sku.code, 10)  # the database is restored to this
    availability(sku)
    cache.publish_level(LevelState(warehouse.pk, sku.pk, 10, 7, 0, version=40))  # written after the backup
    with django_capture_on_commit_callbacks(execute=True):
        reserve_committed(warehouse, sku, 1)  # version 2 after the restore: refused as older
    assert shown(availability(sku)) == {"WH-T": (10, 7)}
    before = CacheGeneration.current()

    out = StringIO()
    call_command("rotate_cache_generation", stdout=out)
    fresh = availability(sku)
    with django_capture_on_commit_callbacks(execute=True):
        reserve_committed(warehouse, sku, 1)

    assert CacheGeneration.current() != before and before in out.getvalue()
    assert fresh.source == "database" and shown(fresh) == {"WH-T": (10, 1)}
    assert shown(availability(sku)) == {"WH-T": (10, 2)}


def test_the_health_check_repairs_a_value_newer_than_the_database_and_says_so(
        db, django_capture_on_commit_callbacks, caplog):
    warehouse, sku = WarehouseFactory(code="WH-U"), SKUFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.receive_stock(warehouse.code, sku.code, 10)
    availability(sku)
    cache.publish_level(LevelState(warehouse.pk, sku.pk, 10, 7, 0, version=40))  # a restore left it behind

    check = run_check([sku.pk])

    assert (check.wrong, check.repaired) == (1, 1)
    assert shown(availability(sku)) == {"WH-U": (10, 0)}
    assert "rotate_cache_generation" in caplog.text
    assert run_check([sku.pk]).wrong == 0


# --- 3. the cache belongs to one Redis server run -----------------------------------------------


class RedisServer:
    """A private redis-server whose data directory survives a restart (RDB snapshot)."""

    def __init__(self, directory):
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(  # noqa: S603 - a fixed local binary
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def snapshot(self):
        redis.Redis(port=self.port).save()

    def stop(self):
        """Killed, as in a crash: nothing is saved beyond the last snapshot."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_a_redis_restart_from_an_old_snapshot_serves_nothing_from_it(
        db, tmp_path, settings, django_capture_on_commit_callbacks):
    server = RedisServer(tmp_path)
    server.start()
    try:
        settings.REDIS_URL = server.url
        warehouse, sku = WarehouseFactory(code="WH-V"), SKUFactory()
        with django_capture_on_commit_callbacks(execute=True):
            services.receive_stock(warehouse.code, sku.code, 10)
        assert shown(availability(sku)) == {"WH-V": (10, 0)}
        server.snapshot()  # Redis saves 10 on hand ...
        with django_capture_on_commit_callbacks(execute=True):
            services.receive_stock(warehouse.code, sku.code, 5)  # ... then 15 is written through
        assert availability(sku).source == "cache"

        server.stop()
        server.start()  # back from the snapshot that says 10
        result = availability(sku)  # through a pooled connection to the old server run
        again = availability(sku)

        assert result.source == "database" and shown(result) == {"WH-V": (15, 0)}
        assert again.source == "cache" and shown(again) == {"WH-V": (15, 0)}
    finally:
        server.stop()
        cache._clients.pop(server.url, None)


# --- 4. the health check ------------------------------------------------------------------------


def test_the_health_check_covers_every_sku_moved_since_its_last_run(db):
    warehouse = WarehouseFactory(code="WH-W")
    skus = SKU.objects.bulk_create(
        [SKU(code=f"HC-{i:03d}", barcode=f"697{i:010d}", name=f"HC {i}") for i in range(320)])
    StockLevel.objects.bulk_create([StockLevel(warehouse=warehouse, sku=sku, on_hand=5, version=1) for sku in skus])
    first = run_check()  # the first run covers every SKU with stock and fills the cache
    assert first.sampled >= 320 and first.holes >= 320
    long_ago = timezone.now() - timedelta(hours=1)
    StockLevel.objects.update(updated_at=long_ago)
    CacheCheck.objects.update(at=long_ago + timedelta(minutes=10))
    moved = [sku.pk for sku in skus[:270]]  # more than any sample: each lost its write-through
    StockLevel.objects.filter(sku_id__in=moved).update(
        on_hand=F("on_hand") + 1, version=F("version") + 1, updated_at=timezone.now())

    covered = skus_to_check()
    check = run_check()

    assert set(moved) <= set(covered) and len(covered) <= 270 + cache_health.RANDOM_SAMPLE
    assert (check.wrong, check.repaired) == (270, 270) and check.alerting
    hashes = cache.read_hashes([sku.pk for sku in skus])
    assert all(cache.complete_levels(hashes[pk])[warehouse.pk]["on_hand"] == 6 for pk in moved)
    assert run_check(moved).wrong == 0


def test_a_safety_stock_change_is_written_through_and_checked(db, django_capture_on_commit_callbacks):
    warehouse, sku = WarehouseFactory(code="WH-X"), SKUFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.receive_stock(warehouse.code, sku.code, 10)
    availability(sku)
    CacheCheck.objects.create(sampled=0, holes=0, wrong=0, repaired=0, mismatch_ratio=0)
    StockLevel.objects.update(updated_at=timezone.now() - timedelta(hours=1))
    CacheCheck.objects.update(at=timezone.now() - timedelta(minutes=30))

    with django_capture_on_commit_callbacks(execute=True):
        services.set_safety_stock(warehouse.code, sku.code, 4)

    result = availability(sku)
    assert result.source == "cache" and result.levels[0]["safety_stock"] == 4
    assert sku.pk in skus_to_check(random=0)


# --- races, on PostgreSQL with real connections ---------------------------------------------------

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="races need concurrent connections to PostgreSQL (SQLite serialises every writer)")


@pytest.fixture
def committed_stock(transactional_db):
    warehouse, sku = WarehouseFactory(code="WH-Y"), SKUFactory()
    services.receive_stock(warehouse.code, sku.code, 10)  # autocommit: written through at once
    return warehouse, sku


def cached_numbers(warehouse, sku) -> tuple[int, int]:
    numbers = cache.read_levels(sku.pk)[warehouse.pk]
    return numbers["version"], numbers["reserved"]


def database_numbers(warehouse, sku) -> tuple[int, int]:
    level = StockLevel.objects.get(warehouse=warehouse, sku=sku)
    return level.version, level.reserved


def pause(module, name: str, monkeypatch, *, before: bool = False):
    """Make the first call of module.name wait, after it ran (or `before` it runs), until
    `go_on` is set; `read` tells when it got there. Later calls (the write-through's own
    fill) go straight on."""
    read, go_on = threading.Event(), threading.Event()
    real = getattr(module, name)

    def wait():
        read.set()
        assert go_on.wait(20), "the other side never committed"

    def paused(*args, **kwargs):
        first = not read.is_set()
        if first and before:
            wait()
        result = real(*args, **kwargs)
        if first and not before:
            wait()
        return result

    monkeypatch.setattr(module, name, paused)
    return read, go_on


def commit_between(read, go_on, warehouse, sku):
    def call():
        assert read.wait(20), "the reader never read the database"
        try:
            reserve_committed(warehouse, sku, 3)  # the write-through runs after this commit
        finally:
            go_on.set()
    return call


@pytest.mark.postgres
@on_postgres
def test_a_repair_racing_a_newer_commit_keeps_the_commit(committed_stock, monkeypatch):
    warehouse, sku = committed_stock
    availability(sku)
    level = StockLevel.objects.get(warehouse=warehouse, sku=sku)
    cache.replace_levels(sku.pk, {warehouse.pk: {"version": level.version, "on_hand": 999, "reserved": 0,
                                                 "safety_stock": 0}})  # wrong: the check will repair it
    read, go_on = pause(cache, "fill_levels", monkeypatch, before=True)  # it has decided to repair

    results = run_together([lambda: run_check([sku.pk]), commit_between(read, go_on, warehouse, sku)])

    assert [status for status, _ in results] == ["ok", "ok"], results
    assert results[0][1].repaired == 1  # with what it had read: the version before the commit
    assert cached_numbers(warehouse, sku) == database_numbers(warehouse, sku) == (level.version + 1, 3)


@pytest.mark.postgres
@on_postgres
def test_a_fill_after_a_miss_racing_a_newer_commit_keeps_the_commit(committed_stock, monkeypatch):
    warehouse, sku = committed_stock
    cache.forget(sku.pk)
    read, go_on = pause(selectors_availability, "levels_from_database", monkeypatch)

    results = run_together([lambda: availability(sku), commit_between(read, go_on, warehouse, sku)])

    assert [status for status, _ in results] == ["ok", "ok"], results
    assert results[0][1].source == "database" and results[0][1].levels[0]["reserved"] == 0
    assert cached_numbers(warehouse, sku) == database_numbers(warehouse, sku)
    assert cached_numbers(warehouse, sku)[1] == 3


@pytest.mark.postgres
@on_postgres
def test_writers_readers_and_the_check_at_once_never_show_part_of_a_sku(transactional_db):
    warehouses = [WarehouseFactory(code=code) for code in ("WH-Z1", "WH-Z2", "WH-Z3")]
    sku = SKUFactory()
    for warehouse in warehouses:
        services.receive_stock(warehouse.code, sku.code, 1000)
    stop = threading.Event()

    def writer(warehouse):
        def call():
            for i in range(25):
                reserve_committed(warehouse, sku, 2)
                if i % 3 == 0:
                    with transaction.atomic():
                        stock.release(warehouse.pk, sku.pk, 1, reason="test")
            return "written"
        return call

    def reader(forgetting: bool):
        def call():
            reads = 0
            while not stop.is_set():
                result = availability(sku)
                assert len(result.levels) == 3  # never a hash holding some of the warehouses
                reads += 1
                if forgetting and reads % 7 == 0:
                    cache.forget(sku.pk)
            return reads
        return call

    def checker():
        checks = 0
        while not stop.is_set():
            run_check([sku.pk])
            checks += 1
        return checks

    def writers_then_stop():
        try:
            return run_together([writer(warehouse) for warehouse in warehouses])
        finally:
            stop.set()

    results = run_together([writers_then_stop, reader(True), reader(False), checker])

    assert all(status == "ok" for status, _ in results), results
    assert all(status == "ok" for status, _ in results[0][1]), results[0][1]
    assert results[1][1] > 0 and results[3][1] > 0
    # A fill that read the database before a commit whose write-through was then lost with the
    # key (here: forget) can be behind: the check repairs it (the SKU moved).
    run_check([sku.pk])
    assert cache.read_levels(sku.pk) == levels_from_database(sku.pk)
    assert shown(availability(sku)) == database_view(sku)
