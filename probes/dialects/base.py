"""The contract every dialect module fulfils, and the small values they exchange.

A dialect knows one wire protocol and nothing else: how to build the cheapest honest
request, how to read one stream event, and how to read an error body. It never decides
what an error *means* for availability: it extracts the provider's own words
(`ProviderError`) and `probes.classify` maps them to an `ErrorKind`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

import httpx

from probes.framing import Event
from probes.target import Target

Finish = Literal["stop", "length", "filter", "error", "other"]


@dataclass(slots=True)
class RequestSpec:
    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ProviderError:
    """An error as the provider stated it, in its own terms."""

    http_status: int | None  # None for an error event inside a 200 stream
    type: str | None = None  # OpenAI error.type, Anthropic error.type, Gemini error.status
    code: str | None = None  # OpenAI error.code, Gemini details reason, Anthropic details.error_code
    message: str = ""
    retry_after_s: float | None = None

    def __post_init__(self) -> None:
        # Bodies are untrusted JSON: a type or code may arrive as a number, list or object.
        # Kept as text so `probes.classify` can always look it up (an int code such as
        # llama.cpp's 503 becomes "503"; a list no longer crashes a dict lookup).
        self.type = None if self.type is None else str(self.type)
        self.code = None if self.code is None else str(self.code)
        self.message = str(self.message)


@dataclass(slots=True)
class Chunk:
    """What one stream event told us."""

    text: str = ""
    finish: Finish | None = None
    finish_raw: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: ProviderError | None = None
    done: bool = False  # the protocol's own end-of-stream marker


class Dialect(Protocol):
    name: str
    framing: Literal["sse", "ndjson"]

    def build_request(self, target: Target, prompt: str, *, api_key: str | None) -> RequestSpec: ...

    def parse_event(self, event: Event) -> Chunk:
        """Read one event; raise ValueError when it is not what the protocol allows."""
        ...

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError: ...


_FINISHES = frozenset(get_args(Finish))


def checked(parse_event: Callable[[Any, Event], Chunk]) -> Callable[[Any, Event], Chunk]:
    """Wrap a dialect's ``parse_event`` so an event of the wrong shape is a ValueError.

    Valid JSON can still hold a number where an object belongs (``"choices": [1]``) or a
    list where text belongs; reading it must end as the probe's MALFORMED, never as an
    AttributeError or TypeError escaping `probes.runner.probe`, which promises not to raise.
    """

    @functools.wraps(parse_event)
    def wrapper(self: Any, event: Event) -> Chunk:
        try:
            chunk = parse_event(self, event)
        except (AttributeError, TypeError) as exc:
            raise ValueError(f"unexpected event shape ({exc}): {event.data[:80]!r}") from None
        counts_ok = all(
            n is None or (isinstance(n, int | float) and not isinstance(n, bool))
            for n in (chunk.input_tokens, chunk.output_tokens)
        )
        finish_ok = chunk.finish is None or chunk.finish in _FINISHES
        if not isinstance(chunk.text, str) or not counts_ok or not finish_ok:
            raise ValueError(f"unexpected event shape: {event.data[:80]!r}")
        return chunk

    return wrapper


def loads(text: str) -> Any:
    """json.loads that reports malformed input as ValueError with a short excerpt."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON ({exc.msg}): {text[:80]!r}") from None


def body_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI SDK) or ``retry-after`` (seconds or HTTP date)."""
    if ms := headers.get("retry-after-ms"):
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        from datetime import UTC, datetime
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # a date without a zone (or "-0000"): HTTP dates are GMT
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_text(body: bytes, limit: int = 200) -> str:
    return body[:limit].decode(errors="replace").strip()
