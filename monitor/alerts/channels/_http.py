"""POSTing JSON to a receiver, with its outcome mapped to `DeliveryError` in one place."""

from __future__ import annotations

import asyncio
import math
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from monitor.alerts.channels.base import DeliveryError
from monitor.alerts.redact import redact
from monitor.store.models import utcnow

# 408 and 425 are the receiver asking for the same request later; 429 is rate limiting.
_RETRYABLE_4XX = {408, 425, 429}
MAX_ANSWER = 64 * 1024  # bytes of a receiver's answer kept (a 2xx body is not used; an error quotes 200 characters)


async def post_json(client: httpx.AsyncClient, url: str, body: Any, *, within: float, secret: str,
                    headers: dict[str, str] | None = None) -> httpx.Response:
    """POSTs ``body`` as JSON, waiting at most ``within`` seconds; returns the 2xx response or raises `DeliveryError`.

    ``within`` bounds the whole exchange, not each phase: httpx's timeouts restart with every
    byte, so a receiver trickling its answer a byte a second would otherwise hold the send (and
    the outbox row's lease) for as long as it likes. Messages never hold the URL (``secret`` and
    its parts are masked from anything the receiver or the network library says).
    """
    try:
        async with asyncio.timeout(within), client.stream("POST", url, json=body, timeout=within, headers=headers,
                                                          follow_redirects=False) as streamed:
            # Only the start of an answer is read: it is quoted in an error at most.
            head = bytearray()
            async for chunk in streamed.aiter_bytes():
                head += chunk
                if len(head) >= MAX_ANSWER:
                    break
            kept = {k: v for k, v in streamed.headers.items() if k.lower() in ("retry-after", "content-type")}
            response = httpx.Response(streamed.status_code, headers=kept, content=bytes(head[:MAX_ANSWER]),
                                      request=streamed.request)
    except TimeoutError:
        raise DeliveryError(True, f"no answer within {within:g}s (the deadline for the whole exchange)") from None
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
        seconds = float(value)
    except ValueError:
        pass
    else:  # "nan" parses as a float, and would slip through every comparison after it
        return None if math.isnan(seconds) else max(seconds, 0.0)
    try:
        return max((parsedate_to_datetime(value) - utcnow()).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None
