"""What a receiver answers is input from outside: any status, body and Retry-After is judged
(delivered, or a `DeliveryError` with a one-line message and a usable wait), never raised on."""

from __future__ import annotations

import math

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from monitor.alerts.channels import DeliveryError
from monitor.alerts.channels._http import _retry_after, check
from monitor.config.alerts import RetryConfig

# Header values as they come off the wire: bytes read as latin-1, no CR or LF.
_header = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)


@given(_header)
@example("nan")
@example("NaN")
@example("inf")
@example("-1e400")
@example("Fri, 31 Dec 9999 23:59:59 -1200")
@example("Mon, 01 Jan 0001 00:00:00 +2359")
@example("Fri, 31 Dec 99999 23:59:59 GMT")
def test_any_retry_after_is_a_wait_or_none(value):
    wait = _retry_after(httpx.Response(429, headers=[(b"retry-after", value.encode("latin-1"))]))
    assert wait is None or (not math.isnan(wait) and wait >= 0)
    delay = RetryConfig().delay(3, wait)  # what the outbox does with it
    assert 0 <= delay <= RetryConfig().max_delay


@given(st.integers(100, 599), st.binary(max_size=300), _header, _header)
def test_any_answer_is_accepted_or_a_delivery_error(status, body, content_type, retry_after):
    response = httpx.Response(status, content=body, headers=[(b"content-type", content_type.encode("latin-1")),
                                                             (b"retry-after", retry_after.encode("latin-1"))])
    try:
        check(response, secret="s3cret")
    except DeliveryError as exc:
        assert not 200 <= status < 300
        assert "\n" not in exc.message and exc.message.startswith(f"HTTP {status}")
        assert exc.retryable is (status >= 500 or status in (408, 425, 429))
    else:
        assert 200 <= status < 300
