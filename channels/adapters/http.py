"""The default transport: one HTTP call with `requests`, as the adapters' Transport protocol.

Connection errors, timeouts, 5xx answers and 2xx answers that are not JSON (a gateway's error
page) raise TransportError, which the puller retries with backoff. Any other answer is
returned as (status, parsed JSON) for the adapter to judge.
"""

from __future__ import annotations

import threading

import requests

from .base import ChannelAPIError, TransportError

_local = threading.local()
USER_AGENT = "oms-channel-adapter/1.0"


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        _local.session = session
    return session


def requests_transport(method: str, url: str, *, params: dict | None = None,
                       json: dict | None = None, headers: dict | None = None,
                       timeout: float = 10.0, data: bytes | None = None) -> tuple[int, dict]:
    """`data` is a body sent byte for byte (a signed JSON text must not be serialised again)."""
    try:
        response = _session().request(method, url, params=params, json=json, data=data, headers=headers,
                                      timeout=timeout)
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise TransportError(f"{method} {url}: {exc.__class__.__name__}: {exc}") from exc
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema) as exc:
        raise ChannelAPIError(f"{method} {url}: {exc}") from exc
    except requests.RequestException as exc:
        raise TransportError(f"{method} {url}: {exc.__class__.__name__}: {exc}") from exc
    status = response.status_code
    if status >= 500:
        raise TransportError(f"{method} {url}: HTTP {status}")
    try:
        body = response.json()
    except ValueError:
        if status < 400:
            raise TransportError(f"{method} {url}: HTTP {status} with a body that is not JSON") from None
        body = {"error": response.text[:500]}
    return status, body
