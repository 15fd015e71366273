"""DRF throttles (issue 15, oms/throttling.py): the token endpoint per address, and the refused
requests of the public signed callbacks per address (429 past the rate, nothing written; a
validly signed callback is never throttled). The test run turns throttles off (bin/test:
OMS_LOGIN_THROTTLE=0); these tests set their own rates."""

import hashlib
import json
import logging
import uuid
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from channels.models import Channel, RawPayload
from inventory.services import receive_stock
from oms import settings as oms_settings
from oms import signing
from oms.tests.factories import DEFAULT_PASSWORD, UserFactory
from oms.throttling import AddressRateThrottle
from orders.tests.factories import SKUFactory, WarehouseFactory
from reconciliation.models import PaymentCallback
from reconciliation.providers import testing

pytestmark = pytest.mark.django_db

LIMIT = 3
GENERIC_SECRET = "throttle-generic-secret"
API_V3_KEY = "0123456789abcdef0123456789abcdef"
SERIAL = "5157F09EFDC096DE15EBE81A47057A72"
ALIPAY_APP_ID = "2021000000000001"
KUAIDI100_SALT = "s4lt"
OTHER_ADDRESS = "10.9.8.7"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def with_rates(settings, **rates):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


@pytest.fixture
def fresh_cache():
    """Throttle counts live in the cache: none left from another test, none left behind."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def rates(settings, fresh_cache):
    with_rates(settings, auth_token=f"{LIMIT}/min", callback_rejection=f"{LIMIT}/min")


@pytest.fixture(scope="module")
def provider_keys():
    """(platform key pair, a forger's key pair), for WeChat Pay and Alipay alike."""
    return testing.generate_rsa_keypair(), testing.generate_rsa_keypair()


@pytest.fixture(autouse=True)
def callbacks_configured(settings, provider_keys):
    pem = testing.public_key_pem(provider_keys[0][1])
    settings.OMS_PAYMENT_GENERIC_SECRET = GENERIC_SECRET
    settings.OMS_WECHATPAY_API_V3_KEY = API_V3_KEY
    settings.OMS_WECHATPAY_PLATFORM_KEYS = {SERIAL: pem}
    settings.OMS_ALIPAY_PUBLIC_KEY = pem.decode()
    settings.OMS_ALIPAY_APP_ID = ALIPAY_APP_ID
    settings.OMS_CARRIER_ADAPTER = "kuaidi100"
    settings.OMS_KUAIDI100_CUSTOMER, settings.OMS_KUAIDI100_KEY = "CUST0001", "kEy123"
    settings.OMS_KUAIDI100_SALT = KUAIDI100_SALT
    settings.OMS_KUAIDI100_BASE_URL = "http://127.0.0.1:1"


# --- the token endpoint -----------------------------------------------------------------------


def token(client, username, password):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def test_the_token_endpoint_answers_429_past_its_rate_from_one_address(rates):
    user = UserFactory(role="ops")
    client = APIClient()
    assert [token(client, user.username, p).status_code for p in ("wrong", "wrong", DEFAULT_PASSWORD)] == [
        400, 400, 200]

    refused = token(client, user.username, DEFAULT_PASSWORD)

    assert refused.status_code == 429 and "token" not in refused.json()
    assert refused.json()["error"] == "throttled" and int(refused["Retry-After"]) > 0
    # Whatever the username, and X-Forwarded-For sent by the client is not its address.
    assert token(client, "someone-else", "x").status_code == 429
    assert client.post("/api/v1/auth/token/", {"username": user.username, "password": DEFAULT_PASSWORD},
                       format="json", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 429
    # Another address has its own count.
    assert token(APIClient(REMOTE_ADDR=OTHER_ADDRESS), user.username, DEFAULT_PASSWORD).status_code == 200


def test_behind_a_proxy_the_address_is_taken_from_x_forwarded_for(settings, rates):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    user = UserFactory(role="ops")
    proxy = APIClient(REMOTE_ADDR="10.0.0.1")
    for _ in range(LIMIT):
        token(proxy, user.username, "wrong")
    assert proxy.post("/api/v1/auth/token/", {"username": user.username, "password": DEFAULT_PASSWORD},
                      format="json", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 200


def test_a_throttle_whose_cache_does_not_answer_lets_requests_through(rates, monkeypatch):
    class Down:
        def get(self, *args, **kwargs):
            raise ConnectionError("cache down")

        set = get

    monkeypatch.setattr(AddressRateThrottle, "cache", Down())
    user = UserFactory(role="ops")
    client = APIClient()
    assert all(token(client, user.username, DEFAULT_PASSWORD).status_code == 200 for _ in range(LIMIT + 2))


# --- the public callbacks ---------------------------------------------------------------------


def _md5u(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


class Callback:
    """One kind of signed callback: a forged request, a validly signed one, and what a refusal
    leaves behind."""

    accepted = (200,)

    def __init__(self, keys):
        self.keys = keys

    def trace(self, caplog) -> int:
        return PaymentCallback.objects.filter(outcome="rejected").count()


class Generic(Callback):
    url = "/api/v1/payments/notify/generic/"

    def post(self, client, secret):
        body = {"transaction_no": f"GEN-{uuid.uuid4().hex[:12]}", "order_no": "NO-SUCH-ORDER",
                "amount": "5.00", "currency": "CNY", "paid_at": timezone.now().isoformat()}
        headers, raw = testing.generic_notification(body, secret=secret)
        return client.generic("POST", self.url, raw, content_type="application/json",
                              headers={k: v for k, v in headers.items() if k.startswith("X-OMS")})

    def forged(self, client):
        return self.post(client, "not-the-secret")

    def valid(self, client):
        return self.post(client, GENERIC_SECRET)


class WechatPay(Callback):
    url = "/api/v1/payments/notify/wechatpay/"
    accepted = (200, 204)

    def post(self, client, private_key):
        fen = 500
        transaction = {
            "appid": "wx1234567890", "mchid": "1900000001", "out_trade_no": "NO-SUCH-ORDER",
            "transaction_id": f"42000{uuid.uuid4().int % 10**15:015d}", "trade_type": "JSAPI",
            "trade_state": "SUCCESS", "success_time": timezone.now().isoformat(),
            "amount": {"total": fen, "payer_total": fen, "currency": "CNY", "payer_currency": "CNY"},
        }
        headers, body = testing.wechatpay_notification(
            transaction, platform_private_key=private_key, serial=SERIAL, api_v3_key=API_V3_KEY)
        return client.generic("POST", self.url, body, content_type="application/json",
                              headers={k: v for k, v in headers.items() if k.lower() != "content-type"})

    def forged(self, client):
        return self.post(client, self.keys[1][0])

    def valid(self, client):
        return self.post(client, self.keys[0][0])


class Alipay(Callback):
    url = "/api/v1/payments/notify/alipay/"

    def post(self, client, private_key):
        now = timezone.localtime(timezone.now(), SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
        params = {
            "notify_time": now, "notify_type": "trade_status_sync",
            "notify_id": uuid.uuid4().hex, "app_id": ALIPAY_APP_ID, "charset": "utf-8",
            "version": "1.0", "trade_no": f"2026{uuid.uuid4().int % 10**24:024d}",
            "out_trade_no": "NO-SUCH-ORDER", "trade_status": "TRADE_SUCCESS", "total_amount": "5.00",
            "receipt_amount": "5.00", "gmt_create": now, "gmt_payment": now,
        }
        return client.post(self.url, testing.alipay_notification(params, private_key=private_key))

    def forged(self, client):
        return self.post(client, self.keys[1][0])

    def valid(self, client):
        reply = self.post(client, self.keys[0][0])
        assert reply.content == b"success"
        return reply


class Webhook(Callback):
    """A bad signature on the channel webhook stores nothing (CONTRACTS.md): the trace is the
    archived payloads, which must stay none."""

    accepted = (202,)

    def __init__(self, keys):
        super().__init__(keys)
        self.channel = Channel.objects.create(code="MINI", name="Mini-program", kind="generic")
        sku = SKUFactory(code="SKU-001", barcode="6901234567890")
        receive_stock(WarehouseFactory(code="WH-SH", provinces=["上海"]).code, sku.code, 100)

    def post(self, client, secret):
        content = json.dumps({
            "external_order_id": f"MP-{uuid.uuid4().hex[:10]}", "status": "paid", "currency": "CNY",
            "buyer": {"name": "张三", "phone": "13800001234"},
            "receiver": {"name": "张三", "phone": "13800001234", "province": "上海", "city": "上海市",
                         "district": "浦东新区", "address": "世纪大道100号"},
            "lines": [{"sku": "SKU-001", "quantity": 1, "unit_price": "99.00", "discount": "0.00"}],
            "shipping_fee": "0.00", "discount_total": "0.00", "payable": "99.00",
        }, ensure_ascii=False).encode()
        return client.post(f"/api/v1/channels/{self.channel.code}/webhook/", data=content,
                           content_type="application/json", headers=signing.sign(secret, content))

    def forged(self, client):
        return self.post(client, "not-the-secret")

    def valid(self, client):
        return self.post(client, self.channel.webhook_secret)

    def trace(self, caplog) -> int:
        return RawPayload.objects.count()


class Kuaidi100(Callback):
    """A refused push is logged (a warning): the trace is those log lines."""

    def post(self, client, salt):
        param = json.dumps({"status": "polling", "lastResult": {
            "message": "ok", "state": "0", "status": "200", "ischeck": "0", "com": "zhongtong",
            "nu": f"ZT{uuid.uuid4().int % 10**10:010d}", "data": []}})
        form = {"param": param, "sign": _md5u(param + salt)}
        return client.post("/api/v1/carriers/kuaidi100/push/", urlencode(form),
                           content_type="application/x-www-form-urlencoded")

    def forged(self, client):
        return self.post(client, "not-the-salt")

    def valid(self, client):
        return self.post(client, KUAIDI100_SALT)

    def trace(self, caplog) -> int:
        return sum(r.getMessage().startswith("tracking push refused") for r in caplog.records)


CALLBACKS = {"generic": Generic, "wechatpay": WechatPay, "alipay": Alipay, "webhook": Webhook,
             "kuaidi100": Kuaidi100}


@pytest.fixture(params=sorted(CALLBACKS))
def callback(request, provider_keys):
    return CALLBACKS[request.param](provider_keys)


def test_refused_callbacks_past_the_rate_answer_429_and_write_nothing(callback, rates, caplog):
    caplog.set_level(logging.WARNING)
    client = APIClient()
    assert [callback.forged(client).status_code for _ in range(LIMIT)] == [401] * LIMIT
    written = callback.trace(caplog)
    assert written == (0 if isinstance(callback, Webhook) else LIMIT)

    replies = [callback.forged(client) for _ in range(LIMIT)]

    assert {reply.status_code for reply in replies} == {429}
    assert all(int(reply["Retry-After"]) > 0 for reply in replies)
    assert callback.trace(caplog) == written
    # A validly signed callback goes through from the throttled address.
    assert callback.valid(client).status_code in callback.accepted
    # Another address has its own count.
    assert callback.forged(APIClient(REMOTE_ADDR=OTHER_ADDRESS)).status_code == 401


def test_valid_callbacks_are_never_counted(callback, rates):
    client = APIClient()
    assert all(callback.valid(client).status_code in callback.accepted for _ in range(LIMIT + 2))
    assert callback.forged(client).status_code == 401


def test_the_refusals_of_one_address_are_counted_across_callbacks(rates, provider_keys):
    client = APIClient()
    for _ in range(LIMIT):
        assert Generic(provider_keys).forged(client).status_code == 401
    assert Kuaidi100(provider_keys).forged(client).status_code == 429
    # Probing for channel codes is refused like a forgery.
    reply = client.post("/api/v1/channels/NO-SUCH-CHANNEL/webhook/", data=b"{}", content_type="application/json")
    assert reply.status_code == 429 and reply.json()["error"] == "throttled"


def test_the_429_of_each_provider_is_in_its_own_failure_format(rates, provider_keys):
    client = APIClient()
    for _ in range(LIMIT):
        Generic(provider_keys).forged(client)
    generic = Generic(provider_keys).forged(client)
    assert generic.json()["error"] == "throttled"
    assert json.loads(WechatPay(provider_keys).forged(client).content)["code"] == "FAIL"
    assert Alipay(provider_keys).forged(client).content == b"fail"


def test_without_a_rate_nothing_is_throttled(settings, fresh_cache, provider_keys):
    with_rates(settings, auth_token=None, callback_rejection=None)
    client = APIClient()
    assert {Generic(provider_keys).forged(client).status_code for _ in range(LIMIT * 3)} == {401}
    assert PaymentCallback.objects.filter(outcome="rejected").count() == LIMIT * 3


# --- settings ---------------------------------------------------------------------------------


def test_rates_come_from_the_environment_and_follow_the_login_throttle_switch(monkeypatch):
    monkeypatch.delenv("OMS_CALLBACK_REJECTION_RATE", raising=False)
    monkeypatch.setattr(oms_settings, "AXES_ENABLED", True)
    assert oms_settings.env_rate("OMS_CALLBACK_REJECTION_RATE", "30/min") == "30/min"
    monkeypatch.setattr(oms_settings, "AXES_ENABLED", False)  # OMS_LOGIN_THROTTLE=0
    assert oms_settings.env_rate("OMS_CALLBACK_REJECTION_RATE", "30/min") is None
    monkeypatch.setenv("OMS_CALLBACK_REJECTION_RATE", "100/hour")
    assert oms_settings.env_rate("OMS_CALLBACK_REJECTION_RATE", "30/min") == "100/hour"
    monkeypatch.setenv("OMS_CALLBACK_REJECTION_RATE", "off")
    assert oms_settings.env_rate("OMS_CALLBACK_REJECTION_RATE", "30/min") is None
    monkeypatch.setenv("OMS_CALLBACK_REJECTION_RATE", "lots")
    with pytest.raises(Exception, match="a rate like 20/min"):
        oms_settings.env_rate("OMS_CALLBACK_REJECTION_RATE", "30/min")
