"""New paid orders of a page made together (orders.batch): the same orders, events, stock
reservations and ledger rows as one at a time, a statement count that does not grow with the
page, and everything else still through `create_order`."""

import copy
import re
import threading
from decimal import Decimal

import pytest
from django.db import OperationalError, connection, transaction
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from channels import intake
from channels.intake import ingest_page
from channels.tests.test_intake_page import body, generic_channel, unpaid
from inventory import stock
from inventory.models import MovementKind, Reservation, StockLevel, StockMovement
from inventory.services import receive_stock
from oms.tests.threads import run_together
from orders import batch
from orders.models import ApprovalLevel, ApprovalPolicy, ApprovalTask, Order, OrderEvent
from orders.tests.factories import SKUFactory, WarehouseFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def stock_setup():
    """Two warehouses (Shanghai serves 上海), three SKUs; SKU-003 has 3 units in all."""
    shanghai, beijing = WarehouseFactory(code="WH-SH", provinces=["上海"]), WarehouseFactory(code="WH-BJ", provinces=["北京"])
    for code in ("SKU-001", "SKU-002", "SKU-003"):
        SKUFactory(code=code)
    receive_stock(shanghai.code, "SKU-001", 100)
    receive_stock(beijing.code, "SKU-001", 100)
    receive_stock(beijing.code, "SKU-002", 100)
    receive_stock(beijing.code, "SKU-003", 3)


def line(sku: str, quantity: int, price: str = "10.00") -> dict:
    return {"sku": sku, "quantity": quantity, "unit_price": price, "discount": "0.00"}


def page_of(prefix: str, buyers: int) -> list[dict]:
    """New paid orders routed every way, and the kinds that must not be made together. Each
    channel has its own buyers (`buyers`): the duplicate merge looks across channels."""
    def paid(n, lines, province="上海", **extra):
        payable = sum(int(item["quantity"]) * float(item["unit_price"]) for item in lines)
        receiver = {**body("x", buyers + n)["receiver"], "province": province}
        return body(f"{prefix}{n}", buyers + n, lines=lines, receiver=receiver, payable=f"{payable:.2f}", **extra)

    return [
        paid(1, [line("SKU-001", 2)]),  # Shanghai serves 上海
        paid(2, [line("SKU-001", 1), line("SKU-002", 1)]),  # only Beijing has both
        paid(3, [line("SKU-003", 2)], province="北京"),
        paid(4, [line("SKU-003", 2)]),  # 1 left: out of stock, held (one at a time)
        paid(5, [line("SKU-001", 1)], province="北京"),
        unpaid(f"{prefix}6", buyers + 6, lines=[line("SKU-001", 1)], payable="10.00"),  # unpaid: one at a time
        body(f"{prefix}7", buyers + 7, lines=[line("SKU-001", 1)], payable="10.00", status="cancelled"),
        paid(8, [line("SKU-002", 3)], receiver_note="x"),
        paid(9, [line("SKU-001", 1)]),
        paid(9, [line("SKU-001", 1)]),  # the same order twice in a page: one at a time
        paid(10, [line("SKU-002", 1)], status="refunded"),
        paid(11, [line("SKU-002", 1)], status="cancelled", paid_at=None),  # closed unpaid
        unpaid(f"{prefix}12", buyers + 12, lines=[line("SKU-001", 2)], payable="20.00"),
        unpaid(f"{prefix}13", buyers + 12, lines=[line("SKU-001", 2)], payable="20.00"),  # the buyer again: merged
        unpaid(f"{prefix}14", buyers + 14, lines=[line("SKU-002", 2)], payable="20.00"),
        unpaid(f"{prefix}15", buyers + 15, lines=[line("SKU-001", 1)], payable="10.00"),
        unpaid(f"{prefix}16", buyers + 15, lines=[line("SKU-002", 1)], payable="10.00"),  # other lines: no duplicate
        unpaid(f"{prefix}17", buyers + 17, lines=[line("SKU-001", 1)], payable="10.00",
               receiver={**body("x", buyers + 17)["receiver"], "address": "临时地址"}),  # held: one at a time
        unpaid(f"{prefix}18", buyers + 17, lines=[line("SKU-001", 1)], payable="10.00"),  # its duplicate: merged
    ]


def what_was_made(channel) -> dict:
    """Everything about the channel's orders but ids, order numbers and times."""
    def plain(text) -> str:
        text = re.sub(r"\b[A-Z]{2}\d{13}\b", "<order_no>", str(text)).replace(channel.code, "<ch>")
        text = re.sub(r"'approval_task': \d+", "'approval_task': <id>", text)
        text = re.sub(r"due \d{4}-\d\d-\d\d \d\d:\d\d", "due <time>", text)  # now + the level's hours
        return re.sub(r"\b[TA](\d+)\b", r"<order \1>", text)  # each channel's own ids: T1, A1

    made = {}
    for order in Order.objects.filter(channel=channel).select_related("warehouse", "customer").order_by("external_order_id"):
        key = order.external_order_id[1:]
        made[key] = {
            "order": (order.status, order.fulfilment, order.hold_reason, order.goods_amount, order.payable_amount,
                      order.paid_at, order.placed_at, order.receiver_province, order.customer.strength,
                      len(order.source_hash), bool(order.source_raw_sha256),
                      order.merged_into and order.merged_into.external_order_id[1:],
                      order.status_changed_at == (order.paid_at or order.placed_at)),
            "warehouse": order.warehouse and order.warehouse.code,
            "approval": list(order.approval_tasks.values_list("policy__name", "level", "status", "assignee_group")),
            "lines": list(order.lines.order_by("line_no").values_list("line_no", "sku__code", "quantity", "unit_price")),
            "events": [(e.track, e.kind, e.from_state, e.to_state, plain(e.actor), plain(e.summary),
                        plain(e.payload))
                       for e in OrderEvent.objects.filter(order=order).order_by("at", "pk")],
            "reservations": sorted(Reservation.objects.filter(order=order).values_list(
                "order_line__line_no", "warehouse__code", "sku__code", "quantity", "status")),
            "movements": sorted(
                (m.warehouse.code, m.sku.code, m.kind, m.on_hand_delta, m.reserved_delta, plain(m.reason),
                 m.reference == order.order_no, m.reservation.order_line.line_no)
                for m in StockMovement.objects.filter(order=order).select_related("warehouse", "sku", "reservation__order_line")),
        }
    return made


@pytest.mark.parametrize("approval_policy", [False, True], ids=["no-approvals", "approval-policy"])
def test_a_page_of_new_orders_is_made_as_one_at_a_time_would_make_it(stock_setup, monkeypatch, approval_policy):
    if approval_policy:  # orders of 25.00 or more wait for ops; the others are approved and allocated
        policy = ApprovalPolicy.objects.create(name="big orders", min_amount=Decimal("25.00"))
        ApprovalLevel.objects.create(policy=policy, position=1, approver_group="ops")
    together, alone = generic_channel("TOGETHER"), generic_channel("ALONE")
    before = dict(StockLevel.objects.values_list("pk", "reserved"))

    made_together = ingest_page(together, page_of("T", 500), "pull")
    reserved_by_together = {pk: r - before[pk] for pk, r in StockLevel.objects.values_list("pk", "reserved")}
    # The second channel competes for the same stock: give it its own copy of what the first took.
    for level in StockLevel.objects.all():
        if reserved_by_together[level.pk]:
            receive_stock(level.warehouse.code, level.sku.code, reserved_by_together[level.pk])
    monkeypatch.setattr(batch, "can_batch", lambda channel, sku_ids: False)
    made_alone = ingest_page(alone, page_of("A", 600), "pull")

    assert [(r.result, r.reasons) for r in made_together] == [(r.result, r.reasons) for r in made_alone]
    assert [r.result for r in made_together] == [
        "created", "created", "created", "created", "created", "created", "created", "created", "created", "unchanged",
        "created", "created", "created", "merged", "created", "created", "created", "held", "merged"]
    statuses = dict(Order.objects.filter(channel=together).values_list("external_order_id", "status"))
    assert [statuses[f"T{n}"] for n in (7, 10, 11, 12, 14)] == [
        "cancelled", "refunding", "cancelled", "pending_payment", "pending_payment"]
    merged = Order.objects.get(channel=together, external_order_id="T13")
    assert merged.merged_into.external_order_id == "T12"
    assert Order.objects.get(channel=together, external_order_id="T18").merged_into.external_order_id == "T17"
    assert Order.objects.get(channel=together, external_order_id="T4").status == "on_hold"  # out of stock
    assert what_was_made(together) == what_was_made(alone)
    t2 = Order.objects.get(channel=together, external_order_id="T2")
    assert (t2.status, t2.warehouse and t2.warehouse.code) == (("approved", "WH-BJ") if approval_policy else ("paid", None))
    tasks = ApprovalTask.objects.filter(order__channel=together)
    assert sorted(tasks.values_list("order__external_order_id", flat=True)) == (["T8"] if approval_policy else [])
    assert set(Reservation.objects.filter(order__external_order_id="T2").values_list("warehouse__code", flat=True)) == {"WH-BJ"}


@pytest.mark.parametrize("status", ["paid", "pending_payment"])
def test_a_page_costs_the_same_statements_for_five_new_orders_or_fifty(stock_setup, settings, status):
    settings.OMS_SCHEMA_LEARNING_PAYLOADS = 0  # drift observes payload by payload while it learns
    channel = generic_channel("PAGED")
    ingest_page(channel, [body("FIRST", 599, lines=[line("SKU-001", 1)], payable="10.00")], "pull")
    counts = []
    for size, start in ((5, 0), (50, 100)):
        page = [body(f"Q{start + n}", 600 + start + n, lines=[line("SKU-001", 1)], payable="10.00", status=status)
                for n in range(size)]
        with CaptureQueriesContext(connection) as queries:
            results = ingest_page(channel, page, "pull")
        assert {r.result for r in results} == {"created"}
        # The orders' statements (drift's own checks run on a clock of their own).
        counts.append(sum(1 for q in queries.captured_queries if re.search(r"\b(orders|inventory)_", q["sql"])))
    assert counts[0] == counts[1] < 20


def test_reserving_for_many_changes_nothing_when_one_level_is_short(stock_setup):
    levels = {(lv.warehouse.code, lv.sku.code): lv for lv in StockLevel.objects.select_related("warehouse", "sku")}
    enough, short = levels[("WH-BJ", "SKU-001")], levels[("WH-BJ", "SKU-003")]
    before = list(StockLevel.objects.order_by("pk").values_list("on_hand", "reserved", "version"))
    movements = [
        StockMovement(warehouse_id=enough.warehouse_id, sku_id=enough.sku_id, kind=MovementKind.RESERVE, reserved_delta=5),
        StockMovement(warehouse_id=short.warehouse_id, sku_id=short.sku_id, kind=MovementKind.RESERVE, reserved_delta=2),
        StockMovement(warehouse_id=short.warehouse_id, sku_id=short.sku_id, kind=MovementKind.RESERVE, reserved_delta=2),
    ]
    movement_count = StockMovement.objects.count()

    assert stock.reserve_many(movements) is None  # 4 of SKU-003 wanted, 3 there

    assert list(StockLevel.objects.order_by("pk").values_list("on_hand", "reserved", "version")) == before
    assert StockMovement.objects.count() == movement_count
    states = stock.reserve_many(movements[:2])
    assert {(s.sku_id, s.reserved) for s in states} == {(enough.sku_id, 5), (short.sku_id, 2)}
    assert StockMovement.objects.count() == movement_count + 2


@pytest.mark.django_db(transaction=True)
def test_two_pages_racing_for_the_last_units_never_oversell(stock_setup):
    """SKU-003: 3 units, in Beijing only. Two pulls of two channels, each with three orders of
    one unit, at once: both plan against the same stock; the one that locks second finds it
    gone, writes nothing of its page and makes its orders one at a time (the short ones held)."""
    first, second = generic_channel("RACE-1"), generic_channel("RACE-2")
    pages = [[body(f"{prefix}{n}", buyers + n, lines=[line("SKU-003", 1)], payable="10.00") for n in range(3)]
             for prefix, buyers in (("R", 700), ("S", 800))]

    outcomes = run_together([lambda: ingest_page(first, pages[0], "pull"), lambda: ingest_page(second, pages[1], "pull")])

    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    level = StockLevel.objects.get(sku__code="SKU-003")
    assert (level.on_hand, level.reserved) == (3, 3)
    orders = Order.objects.filter(channel__in=[first, second])
    assert orders.count() == 6
    assert sorted(orders.values_list("status", flat=True)) == ["on_hold"] * 3 + ["paid"] * 3
    assert Reservation.objects.filter(sku__code="SKU-003", status="active").aggregate(n=Sum("quantity"))["n"] == 3
    assert StockMovement.objects.filter(sku__code="SKU-003", kind=MovementKind.RESERVE).count() == 3


@pytest.mark.django_db(transaction=True)
def test_stock_taken_between_planning_and_reserving_sends_the_page_one_at_a_time(stock_setup, monkeypatch):
    """Another process reserves 2 of SKU-003's 3 units after the page was planned: nothing of
    the batch is written, and one at a time the first order gets the last unit, the others are
    held with the reason."""
    level = StockLevel.objects.get(sku__code="SKU-003")

    def another_process_reserves():
        with transaction.atomic():
            assert stock.reserve(level.warehouse_id, level.sku_id, 2, reference="elsewhere") is not None
        connection.close()

    planned = batch.plan_together

    def plan_then_lose_the_stock(requests):
        plans = planned(requests)
        thread = threading.Thread(target=another_process_reserves)
        thread.start()
        thread.join()
        return plans

    monkeypatch.setattr(batch, "plan_together", plan_then_lose_the_stock)
    channel = generic_channel("MOVED")
    page = [body(f"M{n}", 900 + n, lines=[line("SKU-003", 1)], payable="10.00") for n in range(3)]

    results = ingest_page(channel, page, "pull")

    assert [r.result for r in results] == ["created"] * 3
    statuses = dict(Order.objects.filter(channel=channel).values_list("external_order_id", "status"))
    assert statuses == {"M0": "paid", "M1": "on_hold", "M2": "on_hold"}
    level.refresh_from_db()
    assert (level.on_hand, level.reserved) == (3, 3)
    assert StockMovement.objects.filter(sku__code="SKU-003", order__channel=channel).count() == 1
    assert "out of stock" in Order.objects.get(channel=channel, external_order_id="M1").hold_reason


@pytest.mark.parametrize("first", ["existing order now paid", "new order put on hold"])
def test_an_order_made_one_at_a_time_keeps_its_place_in_the_page_for_stock(stock_setup, first):
    """SKU-003 has 3 units. The page's first order, made one at a time, takes them all, as in
    the order received; the new paid order after it must not be batched ahead of it."""
    channel = generic_channel("ORDERLY")
    receiver = body("x", 950)["receiver"]
    if first == "existing order now paid":
        ingest_page(channel, [unpaid("E", 950, lines=[line("SKU-003", 3)], payable="30.00")], "pull")
        earlier = body("E", 950, lines=[line("SKU-003", 3)], payable="30.00")
    else:
        earlier = body("E", 950, lines=[line("SKU-003", 3)], payable="30.00",
                       receiver={**receiver, "address": "临时地址"})
    page = [earlier, body("N", 951, lines=[line("SKU-003", 1)], payable="10.00")]

    ingest_page(channel, page, "pull")

    e, n = (Order.objects.get(channel=channel, external_order_id=x) for x in ("E", "N"))
    assert Reservation.objects.filter(order=e, status="active").aggregate(n=Sum("quantity"))["n"] == 3
    assert not Reservation.objects.filter(order=n).exists()
    assert (n.status, "out of stock" in n.hold_reason) == ("on_hold", True)


def test_a_payload_that_gives_way_in_a_deadlock_runs_again_on_its_data_as_it_was(stock_setup, monkeypatch):
    """PostgreSQL breaks a deadlock by rolling one transaction back: that payload is applied
    again, from the data as normalised, not as the failed attempt left it."""
    from psycopg.errors import DeadlockDetected

    channel = generic_channel("RETRY")
    real_apply, seen = intake._apply, []

    def deadlocked_once(page, payload, data, key):
        seen.append(copy.deepcopy(data))
        if len(seen) == 1:
            data["status"] = "mangled by the failed attempt"
            error = OperationalError("deadlock detected")
            error.__cause__ = DeadlockDetected()
            raise error
        return real_apply(page, payload, data, key)

    monkeypatch.setattr(intake, "_apply", deadlocked_once)
    monkeypatch.setattr(batch, "can_batch", lambda channel, sku_ids: False)

    result = ingest_page(channel, [body("D", 960, lines=[line("SKU-001", 1)], payable="10.00")], "pull")[0]

    assert result.result == "created" and len(seen) == 2 and seen[0] == seen[1]
    assert Order.objects.get(channel=channel, external_order_id="D").status == "paid"
