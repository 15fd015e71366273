"""Who may call what, for every operation of /api/v1/ (issue 15), generated from the URL conf.

Every route under /api/v1/ (the paths of oms/api_urls.py and the DRF router's routes) × each
method its view answers is an operation; EXPECTED below says, for each of them and each role,
whether the role gets through (`OK`: anything but 401/403, e.g. 400 for the empty body or 404 for
the unknown object these calls name) or is refused (exactly 401 without credentials, exactly
403 with them). An operation the URL conf has and the table has not fails the test by name: a
new endpoint cannot be added without deciding who may call it.

The public callbacks authenticate by signature, not by role (`SIGNED`): anyone may call them,
and a request without a valid signature is answered 401 whoever sends it.

The calls carry an empty body and name objects that do not exist: this is the view-level gate
(permission classes). What a role may do to one object past that gate (the approvers of one
task, the device of one warehouse) is tested with the features (orders/tests/test_permissions.py,
test_approvals.py, test_scanner_api.py).
"""

import re
from urllib.parse import urlencode

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from oms import roles
from oms.tests.factories import UserFactory
from orders.models import ApprovalLevel, ApprovalPolicy
from orders.tests.factories import ChannelFactory, WarehouseFactory, make_device
from reconciliation.providers import testing

pytestmark = pytest.mark.django_db

PREFIX = "api/v1/"

# The columns: every role of oms/roles.py, plus no credentials, an approver (a user named on an
# approval level, holding no role) and a signed-in user holding no role at all.
ROLES = ("anonymous", roles.OPS, roles.CUSTOMER_SERVICE, roles.FINANCE, roles.WAREHOUSE_DEVICE,
         roles.INTEGRATION, "approver", "no_role")

OK = "ok"           # gets through the permission check: any status but 401 and 403
SIGNED = "signed"   # public, authenticated by signature: an unsigned request is 401 for anyone
PUBLIC = (OK,) * 8
CALLBACK = (SIGNED,) * 8


def allowed(*who: str) -> tuple:
    """The row where exactly `who` get through: 401 without credentials, 403 for the others."""
    unknown = set(who) - set(ROLES)
    assert not unknown, unknown
    return tuple(OK if role in who else 401 if role == "anonymous" else 403 for role in ROLES)


OPS = roles.OPS
CS = roles.CUSTOMER_SERVICE
FIN = roles.FINANCE
DEVICE = roles.WAREHOUSE_DEVICE
INTEGRATION = roles.INTEGRATION
APPROVER = "approver"

SIGNED_IN = allowed(OPS, CS, FIN, DEVICE, INTEGRATION, APPROVER, "no_role")
OPS_ONLY = allowed(OPS)
FINANCE_ONLY = allowed(FIN)
ORDER_READERS = allowed(OPS, CS, FIN, INTEGRATION)          # orders.view_order
MASTER_DATA_READERS = allowed(OPS, CS)                       # warehouses, SKUs
CHANNEL_READERS = allowed(OPS, CS, FIN, INTEGRATION)        # channels.view_channel
STOCK_READERS = allowed(OPS, CS, INTEGRATION)               # inventory.view_stocklevel
FINANCE_READERS = allowed(OPS, FIN)                          # reconciliation.view_*
OPS_AND_CS = allowed(OPS, CS)
# Approvals: those who read them (ops, customer service) and those named as approvers; which
# task one of them may decide is checked per task (orders.approvals.may_decide, 403 otherwise).
APPROVALS = allowed(OPS, CS, APPROVER)

#                                                           anon ops  cs   fin  dev  int  appr none
EXPECTED: dict[str, tuple] = {
    # Authentication and the API root (a list of links; the schema itself is public).
    "POST /api/v1/auth/token/": PUBLIC,
    "GET /api/v1/": SIGNED_IN,
    # Public callbacks, authenticated by signature (CONTRACTS.md).
    "POST /api/v1/channels/{code}/webhook/": CALLBACK,
    "POST /api/v1/carriers/kuaidi100/push/": CALLBACK,
    "POST /api/v1/payments/notify/wechatpay/": CALLBACK,
    "POST /api/v1/payments/notify/alipay/": CALLBACK,
    "POST /api/v1/payments/notify/generic/": CALLBACK,
    # Orders.
    "GET /api/v1/orders/": ORDER_READERS,
    "POST /api/v1/orders/": OPS_ONLY,
    "GET /api/v1/orders/{order_no}/": ORDER_READERS,
    "GET /api/v1/orders/{order_no}/timeline/": ORDER_READERS,
    "POST /api/v1/orders/{order_no}/approve/": OPS_ONLY,
    "POST /api/v1/orders/{order_no}/route/": OPS_ONLY,
    "POST /api/v1/orders/{order_no}/cancel/": OPS_ONLY,
    "POST /api/v1/orders/{order_no}/ship-request/": OPS_ONLY,
    "POST /api/v1/orders/{order_no}/notes/": OPS_AND_CS,
    "POST /api/v1/orders/{order_no}/override-approval/": OPS_ONLY,
    "GET /api/v1/channels/duplicates/": ORDER_READERS,
    # Approvals and exception cases.
    "GET /api/v1/approvals/": APPROVALS,
    "GET /api/v1/approvals/{pk}/": APPROVALS,
    "POST /api/v1/approvals/{pk}/approve/": APPROVALS,
    "POST /api/v1/approvals/{pk}/reject/": APPROVALS,
    "GET /api/v1/exceptions/": OPS_AND_CS,
    "GET /api/v1/exceptions/closure-rate/": OPS_AND_CS,
    "GET /api/v1/exceptions/{pk}/": OPS_AND_CS,
    "POST /api/v1/exceptions/{pk}/close/": OPS_ONLY,
    # Alerts.
    "GET /api/v1/alerts/": OPS_AND_CS,
    "GET /api/v1/alerts/{pk}/": OPS_AND_CS,
    "POST /api/v1/alerts/{pk}/acknowledge/": OPS_ONLY,
    "POST /api/v1/alerts/{pk}/resolve/": OPS_ONLY,
    # Warehouse scanners.
    "POST /api/v1/warehouse/events/": allowed(DEVICE),
    "POST /api/v1/warehouse/devices/": OPS_ONLY,
    # Channels.
    "GET /api/v1/channels/": CHANNEL_READERS,
    "POST /api/v1/channels/": OPS_ONLY,
    "GET /api/v1/channels/{code}/": CHANNEL_READERS,
    "PATCH /api/v1/channels/{code}/": OPS_ONLY,
    "GET /api/v1/channels/{code}/deliveries/{delivery}/": allowed(OPS, INTEGRATION),
    "GET /api/v1/channels/drift/": OPS_ONLY,
    "GET /api/v1/channels/drift/{pk}/": OPS_ONLY,
    "POST /api/v1/channels/drift/{pk}/acknowledge/": OPS_ONLY,
    # Inventory.
    "GET /api/v1/inventory/warehouses/": MASTER_DATA_READERS,
    "POST /api/v1/inventory/warehouses/": OPS_ONLY,
    "GET /api/v1/inventory/warehouses/{code}/": MASTER_DATA_READERS,
    "PUT /api/v1/inventory/warehouses/{code}/": OPS_ONLY,
    "PATCH /api/v1/inventory/warehouses/{code}/": OPS_ONLY,
    "GET /api/v1/inventory/skus/": MASTER_DATA_READERS,
    "POST /api/v1/inventory/skus/": OPS_ONLY,
    "GET /api/v1/inventory/skus/{code}/": MASTER_DATA_READERS,
    "PUT /api/v1/inventory/skus/{code}/": OPS_ONLY,
    "PATCH /api/v1/inventory/skus/{code}/": OPS_ONLY,
    "GET /api/v1/inventory/stock/": STOCK_READERS,
    "PATCH /api/v1/inventory/stock/{warehouse}/{sku}/safety/": OPS_ONLY,
    "GET /api/v1/inventory/availability/": STOCK_READERS,
    "POST /api/v1/inventory/receipts/": OPS_ONLY,
    "GET /api/v1/inventory/listings/": OPS_ONLY,
    "POST /api/v1/inventory/listings/": OPS_ONLY,
    "GET /api/v1/inventory/listings/{pk}/": OPS_ONLY,
    "PATCH /api/v1/inventory/listings/{pk}/": OPS_ONLY,
    "GET /api/v1/inventory/counts/": OPS_ONLY,
    "POST /api/v1/inventory/counts/": OPS_ONLY,
    "GET /api/v1/inventory/counts/{pk}/": OPS_ONLY,
    "POST /api/v1/inventory/counts/{pk}/confirm/": OPS_ONLY,
    # Finance: ops read, finance act.
    "GET /api/v1/reconciliation/statements/": FINANCE_READERS,
    "POST /api/v1/reconciliation/statements/": FINANCE_ONLY,
    "GET /api/v1/reconciliation/statements/{pk}/": FINANCE_READERS,
    "GET /api/v1/reconciliation/imports/": FINANCE_READERS,
    "GET /api/v1/reconciliation/imports/{pk}/": FINANCE_READERS,
    "GET /api/v1/reconciliation/vouchers/": FINANCE_READERS,
    "GET /api/v1/reconciliation/vouchers/{transaction_no}/": FINANCE_READERS,
    "POST /api/v1/reconciliation/vouchers/{transaction_no}/accept/": FINANCE_ONLY,
    "POST /api/v1/reconciliation/vouchers/{transaction_no}/reverse/": FINANCE_ONLY,
    "GET /api/v1/reconciliation/runs/": FINANCE_READERS,
    "POST /api/v1/reconciliation/runs/": FINANCE_ONLY,
    "GET /api/v1/reconciliation/runs/{pk}/": FINANCE_READERS,
    "GET /api/v1/reconciliation/discrepancies/": FINANCE_READERS,
    "GET /api/v1/reconciliation/discrepancies/{pk}/": FINANCE_READERS,
    "PATCH /api/v1/reconciliation/discrepancies/{pk}/": FINANCE_ONLY,
    "GET /api/v1/reconciliation/payment-matches/": FINANCE_READERS,
    "POST /api/v1/reconciliation/payment-matches/{pk}/confirm/": FINANCE_ONLY,
    "POST /api/v1/reconciliation/payment-matches/{pk}/reject/": FINANCE_ONLY,
}


# --- the operations of the URL conf -------------------------------------------------------------

_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def _readable(route: str) -> str:
    """`^orders/(?P<order_no>[A-Za-z0-9-]+)/approve/$` or `orders/<str:order_no>/approve/` →
    `orders/{order_no}/approve/`."""
    route = route.replace("^", "").replace("$", "")
    return _CONVERTER.sub(r"{\1}", _GROUP.sub(r"{\1}", route))


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def _methods(pattern: URLPattern) -> list[str]:
    """The methods the view answers, HEAD and OPTIONS aside (HEAD is GET's, OPTIONS below)."""
    callback = pattern.callback
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    assert view_class is not None, f"{pattern} is not a class-based view: cannot list its methods"
    names = [m for m in view_class.http_method_names if m not in ("head", "options")]
    actions = getattr(callback, "actions", None)  # a router's viewset route: method → action
    if actions is not None:
        return [m.upper() for m in names if m in actions]
    return [m.upper() for m in names if hasattr(view_class, m)]


def _view_class(pattern: URLPattern) -> type:
    return getattr(pattern.callback, "cls", None) or pattern.callback.view_class


def api_operations() -> dict[str, type]:
    """"METHOD /api/v1/path/{param}/" → its view class, for every route under /api/v1/. The
    router's format-suffix twins (`orders.json`) are the same views and are left out."""
    operations = {}
    for route, pattern in _walk(get_resolver().url_patterns):
        path = "/" + _readable(route)
        if not route.startswith(PREFIX) or "{format}" in path:
            continue
        for method in _methods(pattern):
            operations.setdefault(f"{method} {path}", _view_class(pattern))
    return operations


OPERATIONS = api_operations()


def test_every_operation_of_the_url_conf_has_a_row():
    missing = sorted(set(OPERATIONS) - set(EXPECTED))
    assert not missing, (
        "API operations without a row in EXPECTED (decide who may call them):\n  " + "\n  ".join(missing))
    stale = sorted(set(EXPECTED) - set(OPERATIONS))
    assert not stale, "rows in EXPECTED for operations the URL conf no longer has:\n  " + "\n  ".join(stale)


def test_every_role_has_a_column():
    assert set(roles.ROLES) <= set(ROLES), f"roles without a column: {set(roles.ROLES) - set(ROLES)}"
    assert all(len(row) == len(ROLES) for row in EXPECTED.values())
    assert all(cell in (OK, SIGNED, 401, 403) for row in EXPECTED.values() for cell in row)
    # Without credentials: refused with 401, never 403.
    assert all(row[0] != 403 for row in EXPECTED.values())


# --- calling them -----------------------------------------------------------------------------

API_V3_SERIAL = "5157F09EFDC096DE15EBE81A47057A72"


@pytest.fixture(scope="module")
def provider_keys():
    return testing.generate_rsa_keypair()


@pytest.fixture(autouse=True)
def configured(settings, provider_keys):
    """Every callback configured, so that a 401 is about the signature; throttles off."""
    pem = testing.public_key_pem(provider_keys[1])
    settings.OMS_PAYMENT_GENERIC_SECRET = "matrix-generic-secret"
    settings.OMS_WECHATPAY_API_V3_KEY = "0123456789abcdef0123456789abcdef"
    settings.OMS_WECHATPAY_PLATFORM_KEYS = {API_V3_SERIAL: pem}
    settings.OMS_ALIPAY_PUBLIC_KEY = pem.decode()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"auth_token": None, "callback_rejection": None}}


def _token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def clients() -> dict[str, APIClient]:
    made = {"anonymous": APIClient()}
    for role in (OPS, CS, FIN, INTEGRATION):
        made[role] = _token_client(UserFactory(role=role))
    _device, token = make_device(WarehouseFactory(code="WH-MATRIX"), "matrix-scanner")
    made[DEVICE] = APIClient()
    made[DEVICE].credentials(HTTP_AUTHORIZATION=f"Token {token}")
    approver = UserFactory()
    policy = ApprovalPolicy.objects.create(name="matrix", min_amount=100_000)
    ApprovalLevel.objects.create(policy=policy, position=1, approver_user=approver)
    made[APPROVER] = _token_client(approver)
    made["no_role"] = _token_client(UserFactory())
    assert set(made) == set(ROLES)
    return made


def _url(operation: str) -> str:
    """The operation's path with an object that does not exist (`1`) in every parameter, but
    for the channel webhook, which must find its (active) channel to get to the signature."""
    path = operation.split(" ", 1)[1]
    if path == "/api/v1/channels/{code}/webhook/":
        return path.format(code=ChannelFactory(code="MATRIX").code)
    return re.sub(r"\{\w+\}", "1", path)


def _call(client: APIClient, operation: str, method: str | None = None):
    method = method or operation.split(" ", 1)[0]
    url = _url(operation)
    if EXPECTED.get(operation, (None,))[0] == SIGNED:
        # A form with a forged `sign` and no signature headers: refused by every kind of callback.
        return client.generic(method, url, urlencode({"sign": "forged"}),
                              content_type="application/x-www-form-urlencoded")
    if method in ("GET", "HEAD", "OPTIONS"):
        return client.generic(method, url)
    return client.generic(method, url, "{}", content_type="application/json")


def _verdict(expected, response) -> str | None:
    """Why `response` does not match the cell ("" when it does)."""
    status = response.status_code
    if expected == OK:
        if status in (401, 403):
            return f"refused with {status}, expected to get through"
        if status >= 500:
            return f"server error {status}"
    elif expected == SIGNED:
        if status != 401:
            return f"{status}: an unsigned callback must be refused with 401"
    elif status != expected:
        return f"{status}, expected {expected}"
    return None


@pytest.mark.parametrize("operation", sorted(EXPECTED))
def test_permission_matrix(operation, clients):
    if operation not in OPERATIONS:
        pytest.skip("not in the URL conf (test_every_operation_of_the_url_conf_has_a_row fails)")
    wrong = []
    for role, expected in zip(ROLES, EXPECTED[operation], strict=True):
        response = _call(clients[role], operation)
        problem = _verdict(expected, response)
        if problem is None and expected in (401, 403):
            kind = response.json().get("error")
            if kind != ("unauthenticated" if expected == 401 else "forbidden"):
                problem = f"{expected} with error {kind!r}"
        if problem is None and operation.startswith("GET "):
            head = _call(clients[role], operation, "HEAD")
            if (head.status_code in (401, 403)) != (response.status_code in (401, 403)):
                problem = f"HEAD answers {head.status_code} where GET answers {response.status_code}"
        if problem:
            wrong.append(f"{role}: {problem}: {response.content[:200]!r}")
    assert not wrong, f"{operation}:\n  " + "\n  ".join(wrong)


def _routes() -> dict[str, list[str]]:
    routes: dict[str, list[str]] = {}
    for operation in sorted(OPERATIONS):
        routes.setdefault(operation.split(" ", 1)[1], []).append(operation)
    return routes


@pytest.mark.parametrize(("path", "operations"), sorted(_routes().items()))
def test_options_tells_nothing_to_a_role_the_view_refuses_everything(path, operations, clients):
    """OPTIONS describes an endpoint (its name, what it parses, the fields the caller may send):
    a role refused every operation of the view (the viewset, or the view of a plain path) is
    refused OPTIONS too, with the same status. Who may read a viewset may read its description
    (orders.api: OPTIONS needs the read permission)."""
    if any(op not in EXPECTED for op in operations):
        pytest.skip("an operation without a row (test_every_operation_of_the_url_conf_has_a_row fails)")
    view = OPERATIONS[operations[0]]
    same_view = [op for op, cls in OPERATIONS.items() if cls is view and op in EXPECTED]
    wrong = []
    for index, role in enumerate(ROLES):
        cells = {EXPECTED[op][index] for op in same_view}
        if len(cells) != 1 or next(iter(cells)) not in (401, 403):
            continue
        expected = cells.pop()
        response = _call(clients[role], operations[0], "OPTIONS")
        if response.status_code != expected:
            wrong.append(f"{role}: OPTIONS answers {response.status_code}, every operation of "
                         f"{view.__name__} {expected}")
    assert not wrong, f"OPTIONS {path}:\n  " + "\n  ".join(wrong)
