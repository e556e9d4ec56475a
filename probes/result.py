"""What one probe found: `ProbeResult`, its `Status` and its `ErrorKind`.

An outage is a result, never an exception: every way a backend can fail maps
to one `ErrorKind` (see `probes.classify`, the only place that mapping lives),
and every `ErrorKind` has one default `Status`.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


class Status(enum.StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


class ErrorKind(enum.StrEnum):
    """Why a probe did not get a good answer (``OK`` when it did).

    The tree of causes, outermost first::

        network     DNS, CONNECT_TIMEOUT, CONNECTION_REFUSED, UNREACHABLE, TLS, CONNECTION_RESET
        deadlines   FIRST_TOKEN_TIMEOUT (a hang), TOTAL_TIMEOUT, STREAM_STALLED
        HTTP        SERVER_ERROR (5xx), OVERLOADED (529, overloaded 503, UNAVAILABLE),
                    RATE_LIMITED (429, retry_after kept), QUOTA_EXHAUSTED (429 quota/spend cap),
                    AUTH (401/403), BAD_REQUEST, CONTEXT_TOO_LONG, MODEL_NOT_FOUND
        stream      STREAM_CUT (no terminator), MALFORMED (unparseable body or chunk),
                    STREAM_ERROR (an error event inside a 200 stream that names no better kind)
        answer      EMPTY_ANSWER, WRONG_ANSWER (canary failed), CONTENT_FILTERED
        airisk      BAD_CONFIG (the target's configuration makes a request that cannot be sent:
                    a header that is not printable ASCII, an unknown dialect, a URL without
                    http(s)://), INTERNAL_ERROR (a defect in airisk, logged with its traceback)

    The last two are airisk's side, not the provider's, and are kept apart from every
    provider kind so nobody blames a provider for them. They are DOWN all the same: a target
    that cannot be probed must never look healthy, nor go quiet.
    """

    OK = "ok"
    DNS = "dns"
    CONNECT_TIMEOUT = "connect_timeout"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    UNREACHABLE = "unreachable"
    TLS = "tls"
    FIRST_TOKEN_TIMEOUT = "first_token_timeout"
    TOTAL_TIMEOUT = "total_timeout"
    STREAM_STALLED = "stream_stalled"
    SERVER_ERROR = "server_error"
    OVERLOADED = "overloaded"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    CONTEXT_TOO_LONG = "context_too_long"
    MODEL_NOT_FOUND = "model_not_found"
    STREAM_CUT = "stream_cut"
    MALFORMED = "malformed"
    STREAM_ERROR = "stream_error"
    EMPTY_ANSWER = "empty_answer"
    WRONG_ANSWER = "wrong_answer"
    CONTENT_FILTERED = "content_filtered"
    BAD_CONFIG = "bad_config"
    INTERNAL_ERROR = "internal_error"

    @property
    def status(self) -> Status:
        """The status a probe with this outcome reports, before latency thresholds."""
        return _STATUS.get(self, Status.DOWN)


# The service answered, but not as the product needs: a feature built on it is
# impaired rather than gone. Everything not listed is DOWN.
_STATUS = {
    ErrorKind.OK: Status.UP,
    ErrorKind.WRONG_ANSWER: Status.DEGRADED,
    ErrorKind.CONTENT_FILTERED: Status.DEGRADED,
}


@dataclass(slots=True)
class ProbeResult:
    """One measured call to one target. Times are milliseconds, ``None`` when never reached."""

    target: str
    provider: str
    model: str
    at: datetime  # UTC, when the probe started
    status: Status
    error_kind: ErrorKind
    http_status: int | None = None
    connect_ms: float | None = None  # DNS + TCP + TLS; None on a reused keep-alive connection
    ttfb_ms: float | None = None  # request start to the response headers (some servers send them early)
    ttft_ms: float | None = None  # request start to the first byte of answer text
    total_ms: float | None = None  # request start to the end of the stream (or the failure)
    output_tokens: int | None = None
    input_tokens: int | None = None
    tokens_per_s: float | None = None  # output tokens after the first, over the time after it
    stream_complete: bool = False  # the protocol's own terminator arrived
    canary_pass: bool | None = None  # None when no answer came to check
    cost_usd: float | None = None
    region: str | None = None
    retry_after_s: float | None = None
    local: bool = False
    message: str = ""
    answer: str = field(default="", repr=False)
    # CLOCK_MONOTONIC ns of the request's start: lines this probe up with another process's
    # stamps on the same host (the emulator's log, the fault proxy's), nothing more.
    started_mono_ns: int | None = field(default=None, repr=False)
    nonce: str | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error_kind is ErrorKind.OK

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["status"] = str(self.status)
        data["error_kind"] = str(self.error_kind)
        return data
