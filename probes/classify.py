"""The one place where failures become `ErrorKind`s.

Three doors lead here:

    from_exception(exc, answer_started)   httpx / OS / TLS errors raised while talking
        UnsupportedProtocol, InvalidURL     -> BAD_CONFIG (the target's base URL)
        ConnectTimeout                      -> CONNECT_TIMEOUT
        ConnectError  <- gaierror           -> DNS
                      <- ConnectionRefused  -> CONNECTION_REFUSED
                      <- ENETUNREACH, ...   -> UNREACHABLE
                      <- SSLError           -> TLS
        ReadError, "disconnected"           -> CONNECTION_RESET
        RemoteProtocolError, incomplete body-> STREAM_CUT (answer begun) / CONNECTION_RESET
        other protocol garbage              -> MALFORMED
    from_provider_error(dialect, error)   an error the provider stated (HTTP body or in-stream
                                          event), by its own type/code first (the table its
                                          dialect declares, `Dialect.errors`), HTTP status second
    from_finish(finish)                   how a 200 stream said it ended

A spent quota or credit balance (QUOTA_EXHAUSTED) is told from a rate limit (RATE_LIMITED)
in each provider's own form: OpenAI's 429 ``insufficient_quota``; Anthropic's 429
``enforced_spend_limit_reached`` and its 400 naming the credit balance; Gemini's 429
RESOURCE_EXHAUSTED whose quota id names a per-day limit (per-minute is a rate limit); a 402
(Cohere, Ollama's hosted API); a limit stated per day or per month. `quota_detail` says which.

Deadlines (first token, stall, total) are decided by the runner, which knows which
clock ran out; it names the kind directly.
"""

from __future__ import annotations

import errno
import socket
import ssl

import httpx

from probes.dialects import DIALECTS
from probes.dialects.base import ProviderError
from probes.result import ErrorKind

_UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}


def _causes(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def from_exception(exc: BaseException, *, answer_started: bool = False) -> tuple[ErrorKind, str]:
    """The kind of a transport failure, and a short message for people."""
    chain = list(_causes(exc))
    message = _short(exc)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ErrorKind.BAD_CONFIG, f"the target's URL cannot be requested: {message}"
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            return ErrorKind.DNS, f"DNS lookup failed: {cause.strerror or cause}"
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return ErrorKind.TLS, f"TLS failed: {_short(cause)}"
        if isinstance(cause, ConnectionRefusedError):
            return ErrorKind.CONNECTION_REFUSED, "connection refused"
        if isinstance(cause, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return ErrorKind.CONNECTION_RESET, "connection reset by peer"
        if isinstance(cause, OSError) and cause.errno in _UNREACHABLE_ERRNOS:
            return ErrorKind.UNREACHABLE, f"unreachable: {cause.strerror}"
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return ErrorKind.CONNECT_TIMEOUT, message or "connect timed out"
    if isinstance(exc, httpx.ConnectError):
        lowered = message.lower()
        if "name or service" in lowered or "nodename" in lowered or "getaddrinfo" in lowered:
            return ErrorKind.DNS, message
        return ErrorKind.CONNECTION_REFUSED, message or "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        lowered = message.lower()
        if "incomplete" in lowered or "peer closed" in lowered:
            return (ErrorKind.STREAM_CUT if answer_started else ErrorKind.CONNECTION_RESET), message
        if "disconnected" in lowered or "without sending" in lowered:
            return ErrorKind.CONNECTION_RESET, message
        return ErrorKind.MALFORMED, message
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.CloseError):
        return ErrorKind.CONNECTION_RESET, message or "connection lost"
    if isinstance(exc, httpx.DecodingError | UnicodeDecodeError | ValueError):
        return ErrorKind.MALFORMED, message
    if isinstance(exc, httpx.TimeoutException):
        return ErrorKind.TOTAL_TIMEOUT, message or "timed out"
    return ErrorKind.MALFORMED, message or type(exc).__name__


# Words that providers use for "no capacity right now" in a 5xx body.
_OVERLOAD_WORDS = ("overloaded", "capacity", "high demand", "server busy")
_CONTEXT_WORDS = (
    "too long", "context length", "maximum context", "exceeds the maximum number of tokens",
    "too many tokens",  # Cohere: "too many tokens: total number of tokens ... cannot exceed 2048"
)
_QUOTA_WORDS = ("quota", "billing", "credit", "spend limit", "usage limit", "exceeded your current")
# A 400 whose message names the provider's safety system is a refusal of the content, not a
# malformed request (OpenAI: "rejected as a result of our safety system", code sometimes null;
# "flagged as potentially violating our usage policy", code invalid_prompt).
_FILTER_WORDS = ("safety system", "violating our usage policy")
# A prepaid balance used up, in the words providers use for it.
_CREDIT_WORDS = ("credit balance", "purchase credits", "out of credits", "insufficient credits")
_DAY_WORDS = ("perday", "per day", "/ day", "/day", "daily")
_MONTH_WORDS = ("permonth", "per month", "/ month", "/month", "monthly")
# Codes that name a rate limit outright. Google says "quota" for every limit, a per-minute
# one included (reason RATE_LIMIT_EXCEEDED), so the money words must not override these.
_RATE_LIMIT_CODES = {"rate_limit_exceeded", "RATE_LIMIT_EXCEEDED"}


def from_provider_error(dialect: str, err: ProviderError) -> ErrorKind:
    """Kind of an error the provider stated, by its own code/type first, HTTP status second."""
    known = DIALECTS.get(dialect)
    table = known.errors if known is not None else {}
    lowered = err.message.lower()
    for key in (err.code, err.type):
        if key and key in table:
            kind = table[key]
            return _refine(kind, err, lowered)
    status = err.http_status
    kind = ErrorKind.STREAM_ERROR if status is None else _by_status(status)
    return _refine(kind, err, lowered)


def _refine(kind: ErrorKind, err: ProviderError, lowered: str) -> ErrorKind:
    if err.code == "API_KEY_INVALID":
        return ErrorKind.AUTH
    if err.code == "enforced_spend_limit_reached":
        return ErrorKind.QUOTA_EXHAUSTED
    if kind is ErrorKind.RATE_LIMITED and err.quota:
        # The quota named decides, not the retry hint Google adds to every 429: a day's or a
        # month's budget spent needs a human (or tomorrow); a minute's is a burst.
        return ErrorKind.QUOTA_EXHAUSTED if _window(err.quota.lower()) else ErrorKind.RATE_LIMITED
    if kind is ErrorKind.BAD_REQUEST and any(w in lowered for w in _CREDIT_WORDS):
        # Anthropic answers a spent prepaid balance with 400 invalid_request_error, "Your credit
        # balance is too low to access the Anthropic API" (docs: Errors; Plans & Billing).
        return ErrorKind.QUOTA_EXHAUSTED
    if kind is ErrorKind.RATE_LIMITED and err.code not in _RATE_LIMIT_CODES and _window(lowered):
        # A limit stated per day or per month (Cohere's trial key: "limited to 1000 API calls / month").
        return ErrorKind.QUOTA_EXHAUSTED
    if kind in (ErrorKind.SERVER_ERROR, ErrorKind.STREAM_ERROR) and any(w in lowered for w in _OVERLOAD_WORDS):
        return ErrorKind.OVERLOADED
    if (
        kind is ErrorKind.RATE_LIMITED
        and err.retry_after_s is None
        and err.code not in _RATE_LIMIT_CODES
        and any(w in lowered for w in _QUOTA_WORDS)
    ):
        # A 429 with no retry hint that talks about money is a spent quota, not a burst:
        # waiting will not help (OpenAI insufficient_quota, Anthropic spend limit, Gemini billing).
        return ErrorKind.QUOTA_EXHAUSTED
    if kind is ErrorKind.BAD_REQUEST and any(w in lowered for w in _FILTER_WORDS):
        return ErrorKind.CONTENT_FILTERED
    if kind is ErrorKind.BAD_REQUEST and any(w in lowered for w in _CONTEXT_WORDS):
        return ErrorKind.CONTEXT_TOO_LONG
    return kind


def _window(lowered: str) -> str | None:
    """``"daily"`` or ``"monthly"`` when lower-cased text names a limit over that window, else ``None``."""
    if any(w in lowered for w in _DAY_WORDS):
        return "daily"
    if any(w in lowered for w in _MONTH_WORDS):
        return "monthly"
    return None


def quota_detail(err: ProviderError) -> str:
    """What ran out, for a person, of an error classified QUOTA_EXHAUSTED: "credit balance", "spend limit",
    "daily quota", "monthly quota", "billing quota" (OpenAI's insufficient_quota), "payment required" (402),
    or "quota". A page says it so that whoever reads it reaches for the card, not the retry button."""
    lowered = err.message.lower()
    if any(w in lowered for w in _CREDIT_WORDS):
        return "credit balance"
    if err.code == "enforced_spend_limit_reached" or "spend limit" in lowered or "usage limits" in lowered:
        return "spend limit"
    if window := _window((err.quota or "").lower()) or _window(lowered):
        return f"{window} quota"
    if "insufficient_quota" in (err.code, err.type) or "billing" in lowered:
        return "billing quota"
    if err.http_status == 402:
        return "payment required"
    return "quota"


def _by_status(status: int) -> ErrorKind:
    if status in (401, 403, 498):
        return ErrorKind.AUTH
    if status == 402:
        return ErrorKind.QUOTA_EXHAUSTED
    if status == 404:
        return ErrorKind.MODEL_NOT_FOUND
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status == 529:
        return ErrorKind.OVERLOADED
    if status >= 500:
        return ErrorKind.SERVER_ERROR
    if 400 <= status < 500:  # 400, 413, 422, and any other refusal of the request (405, 409, Cohere's 499)
        return ErrorKind.BAD_REQUEST
    return ErrorKind.MALFORMED  # an unexpected 1xx/2xx/3xx where a stream belongs


def from_finish(finish: str | None) -> ErrorKind | None:
    """Kind implied by how a stream ended, or None when the ending is fine."""
    if finish == "filter":
        return ErrorKind.CONTENT_FILTERED
    if finish == "error":
        return ErrorKind.STREAM_ERROR
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
