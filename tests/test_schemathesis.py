"""The API against its own OpenAPI schema (Schemathesis), as an ops superuser.

Every operation of the live `/api/schema/` gets generated requests, valid and invalid, sent
in-process to the WSGI app over demo data: first with generated path parameters (mostly unknown
objects), then once more for the operations on an object with the ids of objects that exist,
read from the operation's own list endpoint. A response must never be a server error (5xx) and
must match what the schema documents: its status code, content type and body.

Bounded for `make test`: derandomized (the same requests every run), a few examples per
operation, Schemathesis's coverage and stateful phases off.
"""

import io
import re
from decimal import Decimal

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.wsgi import get_wsgi_application
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
RANDOM_EXAMPLES = 8  # per operation and mode, path parameters generated
KNOWN_EXAMPLES = 4  # per operation, mode and known object
KNOWN_OBJECTS = 2  # known objects tried per operation on an object

CONFIG = {
    "generation": {"deterministic": True, "no-shrink": True},
    "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
}


def _load_data():
    """The demo data of `manage.py oms_demo` (orders at every stage, stock, listings, money,
    alerts) without the sandbox channel, which polls a carrier; plus one of each object the
    demo has none of: an approval task, exception cases (one without an order), a schema drift,
    a draft stock count and a suggested payment match."""
    from importlib import import_module

    from channels.models import Channel, SchemaDrift
    from inventory import counts
    from oms.management.commands.oms_demo import DEMO_MODULES
    from orders import cases, services
    from orders.events import SYSTEM, Actor
    from orders.models import ApprovalLevel, ApprovalPolicy, Order
    from reconciliation.models import FundVoucher, PaymentMatch

    for name in DEMO_MODULES:
        if name != "channels.demo":
            import_module(name).load(io.StringIO())

    policy = ApprovalPolicy.objects.create(name="schemathesis", min_amount=Decimal("1000.00"))
    ApprovalLevel.objects.create(policy=policy, position=1, approver_group="ops")
    channel = Channel.objects.get(code="TB-FLAGSHIP")
    receiver = {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
                "district": "浦东新区", "address": "世纪大道100号"}
    big, _result = services.create_order(channel, {
        "external_order_id": "ST-BIG-1", "status": "paid", "currency": "CNY", "receiver": receiver,
        "lines": [{"sku": import_module("inventory.models").SKU.objects.get(code="SKU-TEA-001"),
                   "quantity": 10, "unit_price": Decimal("168.00"), "discount": Decimal("0")}],
        "shipping_fee": Decimal("0"), "discount_total": Decimal("0"), "payable": Decimal("1680.00"),
    }, Actor.for_channel(channel))

    kinds = list(cases.SOPS)
    cases.open_case(None, kinds[0], "no order", actor=SYSTEM)
    cases.open_case(big, kinds[1], "with an order", actor=SYSTEM)
    SchemaDrift.objects.create(channel=channel, kind="new", path="$.gift_wrap", new_type="bool",
                               change_set="st0000000000001", example={"gift_wrap": True})
    counts.create_count("WH-SH", "schemathesis", [{"sku": "SKU-TEA-001", "counted": 190, "reason": "damaged"}])
    orphan = FundVoucher.objects.filter(order__isnull=True).first()
    PaymentMatch.objects.create(voucher=orphan, order=Order.objects.order_by("id").first(),
                                reason="amount and time match")


@pytest.fixture
def staff_token(transactional_db):
    """An ops superuser's token: every permission, and an approver of the `ops` level below."""
    user = get_user_model().objects.create_superuser("schemathesis-ops", password="not-used-here-1")
    user.groups.add(Group.objects.get_or_create(name="ops")[0])
    return Token.objects.create(user=user).key


@pytest.fixture
def api_schema(transactional_db, staff_token):
    # Committed for real, request by request, as in production: a request that fails inside
    # the database must not abort a transaction that every later request would share.
    _load_data()
    return schemathesis.openapi.from_wsgi(
        "/api/schema/", get_wsgi_application(), config=schemathesis.Config.from_dict(CONFIG))


def _known_path_parameters(client, operation) -> list[dict]:
    """Path parameters of existing objects, from the list endpoint the operation's path starts
    with (`/orders/{order_no}/cancel/` → `/orders/`): the first and the last listed."""
    names = re.findall(r"{(\w+)}", operation.path)
    listing = client.get(operation.path.partition("{")[0], {"limit": 100})
    if not names or listing.status_code != 200:
        return []
    items = listing.json().get("results", [])
    items = [item for item in items if all(item.get(name) is not None for name in names)]
    picked = items[:1] + items[-1:] if len(items) > 1 else items
    return [{name: str(item[name]) for name in names} for item in picked[:KNOWN_OBJECTS]]


def _negatable(operation, known: dict | None) -> bool:
    """Whether an invalid request exists: a body or a query parameter to break, or a path
    parameter with a type or pattern (when not fixed to a known object)."""
    raw = operation.definition.raw
    parameters = raw.get("parameters", [])
    if "requestBody" in raw or any(parameter["in"] == "query" for parameter in parameters):
        return True
    return not known and any(
        parameter["in"] == "path" and (parameter["schema"].get("pattern") or parameter["schema"].get("type") != "string")
        for parameter in parameters)


def _run(operation, mode, token, examples, path_parameters=None) -> None:
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        # Hypothesis found no invalid request to make, e.g. for a path pattern of `[^/]+`.
        assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.django_db(transaction=True)
def test_api_conforms_to_its_schema(api_schema, staff_token):
    # schemathesis.pytest's fixture loader (from_fixture) does not run under pytest 9, and each
    # operation is driven here instead: every operation's failures are reported together.
    client = Client(HTTP_AUTHORIZATION=f"Token {staff_token}")
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 50
    runs = []
    for operation in operations:
        runs.append((operation, GenerationMode.POSITIVE, RANDOM_EXAMPLES, None))
        if _negatable(operation, None):
            runs.append((operation, GenerationMode.NEGATIVE, RANDOM_EXAMPLES, None))
    for operation in operations:
        for known in _known_path_parameters(client, operation):
            runs.append((operation, GenerationMode.POSITIVE, KNOWN_EXAMPLES, known))
            if _negatable(operation, known):
                runs.append((operation, GenerationMode.NEGATIVE, KNOWN_EXAMPLES, known))
    failures = []
    for operation, mode, examples, known in runs:
        try:
            _run(operation, mode, staff_token, examples, known)
        except (Exception, FailureGroup) as exc:
            failures.append(f"{operation.label} {mode.value} {known or ''}: {exc}")
    assert not failures, "\n\n".join(failures)
