"""Run one probe (`probe`) or one generation (`generate`) against one target, and say what happened.

A probe asks a canary question and checks its answer; a generation sends a feature's
`Conversation` and keeps the whole answer (`Generation`). Both take one path: the same request
building, reading, deadlines and classification, so an eval's timings and error kinds are the
monitor's. A generation has no canary, so no WRONG_ANSWER: a complete, non-empty answer is OK.

Timing: every instant comes from the network layer when it can (`probes.netbackend`
stamps each read with the kernel's arrival time, so a busy event loop does not inflate
time to first token), and from ``perf_counter_ns`` otherwise. The request's start is
when its first byte went on the wire (or when its connection began, for a new one),
so time spent queued inside our own client is not charged to the provider.

Deadlines: one asyncio timeout is moved from phase to phase (first token, then the
stall budget after each chunk, always capped by the total), so which deadline fired
says which failure it was: a hang, a stalled stream, or a slow one.

Never raising: `probe` (and `generate`) turns every failure into a result. A request the target's
configuration cannot express is BAD_CONFIG; bytes that cannot be read are MALFORMED; and
anything else unexpected is INTERNAL_ERROR, logged with its traceback the first time its
kind is seen. Only cancellation (and KeyboardInterrupt/SystemExit) pass through.

What real servers send besides a clean stream:
- a 200 ``application/json`` body to a streaming request (a gateway that ignored ``stream``)
  is read as the non-streaming answer it is (`Dialect.parse_body`); time to first token is
  the time to the whole body, and the message says "answered without streaming";
- a stream whose body ends cleanly after a finish reason but without the protocol's own
  terminator (``data: [DONE]``, ``message_stop``) is complete, as the providers' SDKs take
  it; STREAM_CUT is a body that ends before any finish reason.

Bounds: the framing parsers cap a line and an event (1 MiB), a non-streamed body is capped
alike, and the answer text kept (for the canary, the result's 200 characters, a generation's
whole text) is capped at `ANSWER_LIMIT`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime

import httpx

from probes import classify
from probes.canary import CANARIES, Canary
from probes.client import stream_timing
from probes.conversation import Conversation, Generation
from probes.dialects import Chunk, ProviderError, get_dialect
from probes.reading import now as _now
from probes.reading import read_answer, read_capped
from probes.result import ErrorKind, ProbeResult, Status
from probes.target import Target

log = logging.getLogger(__name__)

ANSWER_LIMIT = 64 * 1024  # characters of answer text kept: a generation's whole text; the canary reads its start
UNSTREAMED = "answered without streaming"
# RFC 9110 field-name token; a value is printable ASCII, space and tab (httpx encodes values
# as ASCII, and h11 refuses control characters; both would raise inside the request).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*\Z")
_BUILD_ERRORS = (LookupError, ValueError, TypeError, httpx.InvalidURL)
_seen_defects: set[tuple[str, str, int]] = set()  # unexpected exceptions already logged with a traceback


class _Run:
    """Mutable state of one probe (or one generation: ``conversation`` sent, no canary) while it runs."""

    __slots__ = (
        "canary", "conversation", "done", "error", "finish", "first_ns", "generation", "headers_ns", "http_status",
        "input_tokens", "last_ns", "last_token_ns", "output_tokens", "retry_after", "start_ns", "text", "text_chunks",
        "text_len", "timing", "unstreamed",
    )

    def __init__(self, canary: Canary | None, start_ns: int, conversation: Conversation | None = None,
                 generation: bool = False) -> None:
        self.canary = canary
        self.generation = generation  # a generation sends `conversation`; a probe asks `canary`
        self.conversation = conversation
        self.start_ns = start_ns
        self.first_ns: int | None = None
        self.headers_ns: int | None = None
        self.last_ns: int | None = None
        self.last_token_ns: int | None = None
        self.text: list[str] = []  # at most ANSWER_LIMIT characters in all
        self.text_len = 0
        self.text_chunks = 0
        self.unstreamed = False  # a whole JSON body answered the streaming request
        self.done = False
        self.finish: str | None = None
        self.error: ProviderError | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.http_status: int | None = None
        self.retry_after: float | None = None
        self.timing = None

    def take(self, chunk: Chunk, at_ns: int) -> None:
        if chunk.text:
            if self.first_ns is None:
                self.first_ns = at_ns
            self.last_token_ns = at_ns
            if self.text_len < ANSWER_LIMIT:
                piece = chunk.text[:ANSWER_LIMIT - self.text_len]
                self.text.append(piece)
                self.text_len += len(piece)
            self.text_chunks += 1
        if chunk.finish:
            self.finish = chunk.finish
        if chunk.input_tokens is not None:
            self.input_tokens = chunk.input_tokens
        if chunk.output_tokens is not None:
            self.output_tokens = chunk.output_tokens
        if chunk.error is not None and self.error is None:
            self.error = chunk.error
        if chunk.done:
            self.done = True


async def probe(target: Target, *, client: httpx.AsyncClient, canary: Canary | None = None,
                first_token: asyncio.Event | None = None) -> ProbeResult:
    """Probe ``target`` once. Never raises (cancellation aside): every failure is a result.

    ``first_token`` is set when the first answer text arrives, for a watcher that acts on a probe
    still waiting (the monitor's scheduler sends confirmations alongside one that waits too long).
    """
    return await _call(target, client, _Run(canary, time.perf_counter_ns()), first_token)


async def generate(target: Target, conversation: Conversation, *, client: httpx.AsyncClient) -> Generation:
    """Send ``conversation`` to ``target`` once and read the whole answer. Never raises (cancellation aside).

    Measured and classified as a probe is (`Generation.result`), without a canary: an answered,
    complete, non-empty answer is OK. ``Generation.text`` is the answer as read, up to
    `ANSWER_LIMIT` characters, also when the call failed part way.
    """
    run = _Run(None, time.perf_counter_ns(), conversation, generation=True)
    result = await _call(target, client, run, None)
    try:
        text = _redact("".join(run.text), target.api_key())
    except Exception:  # the result already says what broke; the text is then what is safe to give: none
        text = ""
    return Generation(result=result, text=text)


async def _call(target: Target, client: httpx.AsyncClient, run: _Run,
                first_token: asyncio.Event | None) -> ProbeResult:
    at = datetime.now(UTC)
    try:
        kind, message = await _attempt(target, client, run, first_token)
        return _result(target, at, run, kind, message)
    except Exception as exc:  # the last resort: a defect must still give a result, never silence
        return _defect(target, at, run, exc)


async def _attempt(target: Target, client: httpx.AsyncClient, run: _Run,
                   first_token: asyncio.Event | None) -> tuple[ErrorKind | None, str]:
    """Send the request and read the answer into ``run``; the kind when a failure decided it."""
    try:
        dialect = get_dialect(target.dialect)
        if run.generation:
            if not isinstance(run.conversation, Conversation):
                raise TypeError(f"a generation needs a Conversation, got a {type(run.conversation).__name__}")
            prompt, extra = run.conversation.prompt, {"conversation": run.conversation}
        else:
            if run.canary is None:
                run.canary = pick_canary(target)
            prompt, extra = run.canary.prompt, {}
        spec = dialect.build_request(target, prompt, api_key=target.api_key(), **extra)
        _check_headers(spec.headers)
        dl = target.deadlines
        request = client.build_request(
            spec.method, spec.url, headers=spec.headers, json=spec.json, params=spec.params or None,
            timeout=httpx.Timeout(connect=dl.connect, read=None, write=dl.connect, pool=dl.connect),
        )
        if request.url.scheme not in ("http", "https") or not request.url.host:
            raise ValueError(f"the target's URL cannot be requested: {spec.url[:100]!r} is not http(s)://host/...")
    except _BUILD_ERRORS as exc:
        return ErrorKind.BAD_CONFIG, f"request could not be built: {_describe(exc)}"
    loop = asyncio.get_running_loop()
    begin = loop.time()
    total_deadline = begin + dl.total
    try:
        async with asyncio.timeout_at(min(total_deadline, begin + dl.first_token)) as deadline:
            response = await client.send(request, stream=True)
            try:
                run.timing = stream_timing(response)
                run.start_ns = _request_start(run.timing, run.start_ns)
                run.headers_ns = _now(run.timing)
                run.http_status = response.status_code
                if response.status_code != 200:
                    body = await read_capped(response)
                    run.last_ns = _now(run.timing)
                    run.error = dialect.parse_error(response.status_code, response.headers, body)
                else:
                    await read_answer(dialect, response, run, deadline, loop, total_deadline, dl.stall,
                                      first_token)
            finally:
                await response.aclose()
    except TimeoutError:
        if loop.time() >= total_deadline - 0.001:
            return ErrorKind.TOTAL_TIMEOUT, f"no complete answer within {dl.total:g}s"
        if run.first_ns is None:
            return ErrorKind.FIRST_TOKEN_TIMEOUT, f"no first token within {dl.first_token:g}s"
        return ErrorKind.STREAM_STALLED, f"stream silent for {dl.stall:g}s mid-answer"
    except httpx.HTTPError as exc:
        return classify.from_exception(exc, answer_started=run.first_ns is not None)
    except ValueError as exc:  # bytes a dialect or the framing could not read
        return ErrorKind.MALFORMED, str(exc)[:200] or type(exc).__name__
    except OSError as exc:
        return classify.from_exception(exc, answer_started=run.first_ns is not None)
    return None, ""


def _check_headers(headers: dict) -> None:
    """Refuse a header httpx or h11 would choke on, naming it but never showing its value (it may be a key)."""
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ValueError(f"header name {str(name)[:40]!r} is not an HTTP token")
        if not isinstance(value, str):
            raise ValueError(f"header {name!r}: the value is a {type(value).__name__}, not text")
        if not _HEADER_VALUE.match(value):
            where = next(i for i, c in enumerate(value) if not (c == "\t" or " " <= c <= "~"))
            raise ValueError(f"header {name!r}: the value has a character that is not printable ASCII "
                             f"(at position {where})")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])[:200]
    if isinstance(exc, UnicodeError):  # its text quotes the offending string, which may be a secret
        return f"{type(exc).__name__} (text that is not ASCII where HTTP needs it)"
    return _short(exc)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _defect(target: Target, at: datetime, run: _Run, exc: Exception) -> ProbeResult:
    """The result of a probe that met an unexpected exception: INTERNAL_ERROR, naming it.

    Logged with its traceback the first time its kind (type and place) is seen, then only at
    debug level: a defect that hits every probe must not flood the log, and each result
    still names it.
    """
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = (frame.tb_frame.f_code.co_filename, frame.tb_lineno) if frame is not None else ("?", 0)
    signature = (type(exc).__name__, *where)
    if signature not in _seen_defects and len(_seen_defects) < 1000:
        _seen_defects.add(signature)
        log.error("probe of %s failed unexpectedly; recorded as internal_error", target.name, exc_info=exc)
    else:
        log.debug("probe of %s failed unexpectedly again: %s", target.name, type(exc).__name__)
    message = f"internal error: {type(exc).__name__}: {_short(exc)}"[:300]
    try:
        return _result(target, at, run, ErrorKind.INTERNAL_ERROR, message)
    except Exception:  # the run's own state is what broke: a result from the target alone
        return ProbeResult(
            target=target.name, provider=target.provider, model=target.model, at=at, status=Status.DOWN,
            error_kind=ErrorKind.INTERNAL_ERROR, region=target.region, local=target.local,
            message=_redact(message, target.api_key()),
        )


def pick_canary(target: Target) -> Canary:
    """The target's canary set: ``options.canary``, else by the request mode (chat or completions)."""
    default = "completion" if target.options.get("mode") == "completions" else "arithmetic"
    name = target.options.get("canary", default)
    if name not in CANARIES:
        raise KeyError(f"unknown canary {name!r} (known: {', '.join(sorted(CANARIES))})")
    return CANARIES[name]()


def _request_start(timing, fallback_ns: int) -> int:
    """When this request began on the wire: its connection's start if it opened one."""
    if timing is None:
        return fallback_ns
    if timing.requests <= 1:
        return timing.dns_started_ns or timing.connect_started_ns or fallback_ns
    return timing.request_started_ns or fallback_ns


def _ms(ns: int) -> float:
    return round(ns / 1e6, 3)


def _redact(text: str, secret: str | None) -> str:
    """A provider may echo the key back in an error body; it must not reach logs or storage."""
    if secret and len(secret) >= 4 and secret in text:
        return text.replace(secret, "[redacted]")
    return text


def _result(target: Target, at: datetime, run: _Run, kind: ErrorKind | None, message: str) -> ProbeResult:
    answer = "".join(run.text)
    canary_pass = run.canary.check(answer) if answer and run.canary is not None else None
    if kind is None:
        kind, message = _verdict(target, run, answer, canary_pass)
    end_ns = run.last_ns or time.perf_counter_ns()
    timing = run.timing
    connect_ms = None
    if timing is not None and timing.requests <= 1 and timing.connected_ns:
        began = timing.dns_started_ns or timing.connect_started_ns
        connect_ms = _ms((timing.tls_done_ns or timing.connected_ns) - began)
    output_tokens = run.output_tokens if run.output_tokens is not None else (run.text_chunks or None)
    tokens_per_s = None
    if output_tokens and output_tokens > 1 and run.first_ns and run.last_token_ns and run.last_token_ns > run.first_ns:
        tokens_per_s = round((output_tokens - 1) / ((run.last_token_ns - run.first_ns) / 1e9), 2)
    status = kind.status
    return ProbeResult(
        target=target.name,
        provider=target.provider,
        model=target.model,
        at=at,
        status=status if kind is not ErrorKind.OK else Status.UP,
        error_kind=kind,
        http_status=run.http_status,
        connect_ms=connect_ms,
        ttfb_ms=_ms(run.headers_ns - run.start_ns) if run.headers_ns else None,
        ttft_ms=_ms(run.first_ns - run.start_ns) if run.first_ns else None,
        total_ms=_ms(end_ns - run.start_ns),
        output_tokens=output_tokens,
        input_tokens=run.input_tokens,
        tokens_per_s=tokens_per_s,
        stream_complete=run.done,
        canary_pass=canary_pass,
        cost_usd=target.cost(run.input_tokens, run.output_tokens),
        region=target.region,
        retry_after_s=run.retry_after,
        local=target.local,
        message=_redact(message, target.api_key()),
        answer=_redact(answer[:200], target.api_key()),
        started_mono_ns=run.start_ns,
        nonce=run.canary.nonce if run.canary is not None else None,
    )


def _verdict(target: Target, run: _Run, answer: str, canary_pass: bool | None) -> tuple[ErrorKind, str]:
    """The kind of an answer read to its end (no exception, no deadline): the body ended cleanly."""
    kind, message = _answer_verdict(target, run, answer, canary_pass)
    if run.unstreamed:  # the note survives the 300-character cap; the provider's words give way
        message = f"{message[:300 - len(UNSTREAMED) - 2]}; {UNSTREAMED}" if message else UNSTREAMED
    return kind, message


def _answer_verdict(target: Target, run: _Run, answer: str, canary_pass: bool | None) -> tuple[ErrorKind, str]:
    if run.error is not None:
        run.retry_after = run.error.retry_after_s
        kind = classify.from_provider_error(target.dialect, run.error)
        where = f"HTTP {run.error.http_status}" if run.error.http_status else "in stream"
        if run.unstreamed and not run.error.http_status:
            where = "in the answer"
        label = run.error.type or run.error.code or "error"
        if kind is ErrorKind.QUOTA_EXHAUSTED:  # what ran out: the page's runbook line names it
            label = f"{label}, {classify.quota_detail(run.error)}"
        return kind, f"{where} {label}: {run.error.message}"[:300]
    if (kind := classify.from_finish(run.finish)) is not None:
        return kind, f"stream ended: {run.finish}"
    if not run.done and run.finish is None:
        return ErrorKind.STREAM_CUT, "stream ended before any finish reason"
    # A finish reason and a clean end make a complete answer, terminator or not (the SDKs agree).
    note = "" if run.done else "no end-of-stream marker after the finish reason"
    if not answer.strip():
        return ErrorKind.EMPTY_ANSWER, "stream completed with no answer text"
    if run.canary is not None and not canary_pass:  # a generation has no canary: its checks come later
        return ErrorKind.WRONG_ANSWER, f"expected {run.canary.expected}, got {answer[:60]!r}"
    return ErrorKind.OK, note
