"""Payment-provider callbacks (CONTRACTS.md). Authenticated by signature, not by token.

Each view verifies with the provider module, books through `vouchers.record_notice` and answers
as that provider expects: a success reply for new and repeated notices alike (a repeat must stop
the provider's retries), a failure reply the provider will retry on for anything we could not
book. Every arrival is logged in PaymentCallback, rejected ones included, except that past
`callback_rejection` refusals from one address a minute (oms.throttling) a request that is not
signed by the provider answers 429 and is not logged; a signed one is never throttled.
"""

import logging
import math

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from oms.throttling import rejection_allowed

from .models import PaymentCallback
from .providers import NoticeError, SignatureError, alipay, generic, wechatpay
from .vouchers import log_callback, record_notice

logger = logging.getLogger(__name__)


@method_decorator(csrf_exempt, name="dispatch")
class CallbackView(View):
    provider = ""
    http_method_names = ["post"]

    def post(self, request):
        body = request.body
        try:
            notice = self.parse(request, body)
        except (SignatureError, NoticeError, ValueError) as exc:
            reason = str(exc) or exc.__class__.__name__
            if isinstance(exc, SignatureError):
                # Not from the provider: counted per address; past the rate, 429 and no row.
                allowed, wait = rejection_allowed(request)
                if not allowed:
                    return self.throttled(wait)
            log_callback(self.provider, body, PaymentCallback.Outcome.REJECTED, detail=reason)
            logger.warning("payment callback refused", extra={"provider": self.provider, "reason": reason})
            status = 401 if isinstance(exc, SignatureError) else 400
            return self.failure(reason, status)
        record_notice(notice, body)
        return self.success()

    def parse(self, request, body):
        raise NotImplementedError

    def success(self):
        return JsonResponse({"result": "ok"})

    def failure(self, reason: str, status: int):
        error = {401: "unauthenticated", 429: "throttled"}.get(status, "validation")
        return JsonResponse({"error": error, "detail": reason}, status=status)

    def throttled(self, wait: float | None):
        """429 in the provider's failure format, with Retry-After (oms.throttling)."""
        seconds = max(1, math.ceil(wait or 1))
        response = self.failure(f"too many refused callbacks from this address: retry in {seconds} s", 429)
        response["Retry-After"] = str(seconds)
        return response


class WechatPayCallback(CallbackView):
    provider = "wechatpay"

    def parse(self, request, body):
        if not (settings.OMS_WECHATPAY_API_V3_KEY and settings.OMS_WECHATPAY_PLATFORM_KEYS):
            raise SignatureError("WeChat Pay is not configured (API v3 key, platform keys)")
        return wechatpay.parse_notification(
            request.headers, body,
            platform_keys=settings.OMS_WECHATPAY_PLATFORM_KEYS,
            api_v3_key=settings.OMS_WECHATPAY_API_V3_KEY.encode(),
            max_skew_seconds=settings.OMS_WECHATPAY_MAX_SKEW_SECONDS,
        )

    def success(self):
        status, content = wechatpay.success_reply()
        return HttpResponse(content, status=status)

    def failure(self, reason: str, status: int):
        status, content = wechatpay.failure_reply(reason[:200], status=status)
        return HttpResponse(content, status=status, content_type="application/json")


class AlipayCallback(CallbackView):
    provider = "alipay"

    def parse(self, request, body):
        if not settings.OMS_ALIPAY_PUBLIC_KEY:
            raise SignatureError("Alipay is not configured (public key)")
        return alipay.parse_notification(
            request.POST, alipay_public_key=settings.OMS_ALIPAY_PUBLIC_KEY,
            app_id=settings.OMS_ALIPAY_APP_ID or None,
        )

    def success(self):
        return HttpResponse(alipay.SUCCESS_REPLY, content_type="text/plain")

    def failure(self, reason: str, status: int):
        # Alipay retries until it reads "success"; anything else, with any status, is a failure.
        return HttpResponse(alipay.FAILURE_REPLY, status=status, content_type="text/plain")


class GenericCallback(CallbackView):
    provider = "generic"

    def parse(self, request, body):
        if not settings.OMS_PAYMENT_GENERIC_SECRET:
            raise SignatureError("OMS_PAYMENT_GENERIC_SECRET is not set")
        return generic.parse_notification(
            request.headers, body, secret=settings.OMS_PAYMENT_GENERIC_SECRET
        )
