"""POSTing JSON to a receiver, with its outcome mapped to `DeliveryError` in one place."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from monitor.alerts.channels.base import DeliveryError
from monitor.alerts.redact import redact
from monitor.store.models import utcnow

# 408 and 425 are the receiver asking for the same request later; 429 is rate limiting.
_RETRYABLE_4XX = {408, 425, 429}


async def post_json(client: httpx.AsyncClient, url: str, body: Any, *, within: float, secret: str,
                    headers: dict[str, str] | None = None) -> httpx.Response:
    """POSTs ``body`` as JSON, waiting at most ``within`` seconds; returns the 2xx response or raises `DeliveryError`.

    Messages never hold the URL (``secret`` and its parts are masked from anything the receiver
    or the network library says).
    """
    try:
        response = await client.post(url, json=body, timeout=within, headers=headers,
                                     follow_redirects=False)
    except httpx.TimeoutException as exc:
        raise DeliveryError(True, f"no answer within {within:g}s ({type(exc).__name__})") from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        raise DeliveryError(False, "the URL is not a valid http(s) URL") from None
    except httpx.TransportError as exc:
        raise DeliveryError(True, redact(f"{type(exc).__name__}: {exc}", [secret])) from None
    check(response, secret=secret)
    return response


def check(response: httpx.Response, *, secret: str) -> None:
    """Raises `DeliveryError` unless ``response`` is 2xx: retryable for 5xx, 408, 425 and 429."""
    status = response.status_code
    if 200 <= status < 300:
        return
    retryable = status >= 500 or status in _RETRYABLE_4XX
    body = " ".join(response.text.split())[:200]
    message = redact(f"HTTP {status} {response.reason_phrase}" + (f": {body}" if body else ""), [secret])
    raise DeliveryError(retryable, message, retry_after=_retry_after(response))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(value) - utcnow()).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None
