"""Request throttles (issue 15), on DRF's SimpleRateThrottle and the default cache.

Rates are in settings REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] ("20/min"; None turns one off),
counted per client address (REMOTE_ADDR; behind proxies REST_FRAMEWORK["NUM_PROXIES"] picks the
address from X-Forwarded-For, see DRF's `get_ident`):

* `auth_token`: every `POST /api/v1/auth/token/`. django-axes locks a username out after wrong
  passwords; this bounds how many usernames one address may try.
* `callback_rejection`: the refused requests of the public callbacks that authenticate by
  signature (channel webhook, payment notifies, carrier push). Only a refusal is counted and
  only a refusal is throttled, so a validly signed callback always goes through; past the rate
  a refused request answers 429 and leaves nothing behind (no PaymentCallback row, no log line).

A throttle never takes an endpoint down: if the cache does not answer, the request is let
through (as without a throttle).
"""

import logging

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


class AddressRateThrottle(SimpleRateThrottle):
    """SimpleRateThrottle keyed by the client address alone (authenticated or not), reading
    its rate when it is used: SimpleRateThrottle.THROTTLE_RATES is bound once at import, which
    override_settings (and a test's own rates) would not reach."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:  # noqa: BLE001 - a throttle is a guard, not a dependency
            logger.warning("throttle %s: the cache does not answer; request let through",
                           self.scope, exc_info=True)
            return True


class AuthTokenThrottle(AddressRateThrottle):
    scope = "auth_token"


class CallbackRejectionThrottle(AddressRateThrottle):
    scope = "callback_rejection"


def rejection_allowed(request) -> tuple[bool, float | None]:
    """Count one refused callback from this request's address. (True, None) while under the
    rate: refuse as usual (401, logged). (False, seconds to wait) past it: answer 429 and write
    nothing. `request` is a Django HttpRequest or a DRF Request."""
    throttle = CallbackRejectionThrottle()
    if throttle.allow_request(request, None):
        return True, None
    return False, throttle.wait()
