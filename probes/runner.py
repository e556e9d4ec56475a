"""Run one probe against one target and return what happened as a `ProbeResult`.

Timing: every instant comes from the network layer when it can (`probes.netbackend`
stamps each read with the kernel's arrival time, so a busy event loop does not inflate
time to first token), and from ``perf_counter_ns`` otherwise. The request's start is
when its first byte went on the wire (or when its connection began, for a new one),
so time spent queued inside our own client is not charged to the provider.

Deadlines: one asyncio timeout is moved from phase to phase (first token, then the
stall budget after each chunk, always capped by the total), so which deadline fired
says which failure it was: a hang, a stalled stream, or a slow one.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx

from probes import classify
from probes.canary import CANARIES, Canary
from probes.client import stream_timing
from probes.dialects import Chunk, ProviderError, get_dialect
from probes.framing import NDJSONParser, SSEParser
from probes.result import ErrorKind, ProbeResult, Status
from probes.target import Target

_ERROR_BODY_LIMIT = 64 * 1024


class _Run:
    """Mutable state of one probe while it runs."""

    __slots__ = (
        "canary", "done", "error", "finish", "first_ns", "headers_ns", "http_status", "input_tokens", "last_ns",
        "last_token_ns", "output_tokens", "retry_after", "start_ns", "text", "text_chunks", "timing",
    )

    def __init__(self, canary: Canary, start_ns: int) -> None:
        self.canary = canary
        self.start_ns = start_ns
        self.first_ns: int | None = None
        self.headers_ns: int | None = None
        self.last_ns: int | None = None
        self.last_token_ns: int | None = None
        self.text: list[str] = []
        self.text_chunks = 0
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
            self.text.append(chunk.text)
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
    """Probe ``target`` once. Never raises for an outage: every failure is a result.

    ``first_token`` is set when the first answer text arrives, for a watcher that acts on a probe
    still waiting (the monitor's scheduler sends confirmations alongside one that waits too long).
    """
    dialect = get_dialect(target.dialect)
    canary = canary or pick_canary(target)
    spec = dialect.build_request(target, canary.prompt, api_key=target.api_key())
    dl = target.deadlines
    at = datetime.now(UTC)
    loop = asyncio.get_running_loop()
    begin = loop.time()
    total_deadline = begin + dl.total
    run = _Run(canary, time.perf_counter_ns())
    kind: ErrorKind | None = None
    message = ""
    request = client.build_request(
        spec.method, spec.url, headers=spec.headers, json=spec.json, params=spec.params or None,
        timeout=httpx.Timeout(connect=dl.connect, read=None, write=dl.connect, pool=dl.connect),
    )
    try:
        async with asyncio.timeout_at(min(total_deadline, begin + dl.first_token)) as deadline:
            response = await client.send(request, stream=True)
            try:
                run.timing = stream_timing(response)
                run.start_ns = _request_start(run.timing, run.start_ns)
                run.headers_ns = _now(run.timing)
                run.http_status = response.status_code
                if response.status_code != 200:
                    body = await _read_capped(response)
                    run.last_ns = _now(run.timing)
                    run.error = dialect.parse_error(response.status_code, response.headers, body)
                else:
                    await _read_stream(dialect, response, run, deadline, loop, total_deadline, dl.stall,
                                       first_token)
            finally:
                await response.aclose()
    except TimeoutError:
        if loop.time() >= total_deadline - 0.001:
            kind, message = ErrorKind.TOTAL_TIMEOUT, f"no complete answer within {dl.total:g}s"
        elif run.first_ns is None:
            kind, message = ErrorKind.FIRST_TOKEN_TIMEOUT, f"no first token within {dl.first_token:g}s"
        else:
            kind, message = ErrorKind.STREAM_STALLED, f"stream silent for {dl.stall:g}s mid-answer"
    except httpx.HTTPError as exc:
        kind, message = classify.from_exception(exc, answer_started=run.first_ns is not None)
    except ValueError as exc:  # a dialect could not read a chunk
        kind, message = ErrorKind.MALFORMED, str(exc)[:200]
    except OSError as exc:
        kind, message = classify.from_exception(exc, answer_started=run.first_ns is not None)
    return _result(target, at, run, kind, message)


def pick_canary(target: Target) -> Canary:
    """The target's canary set: ``options.canary``, else by the request mode (chat or completions)."""
    default = "completion" if target.options.get("mode") == "completions" else "arithmetic"
    return CANARIES[target.options.get("canary", default)]()


async def _read_stream(dialect, response, run: _Run, deadline, loop, total_deadline: float, stall: float,
                       first_token: asyncio.Event | None) -> None:
    parser = NDJSONParser() if dialect.framing == "ndjson" else SSEParser()
    timing = run.timing
    async for data in response.aiter_bytes():
        at_ns = timing.last_rx_ns if timing is not None else time.perf_counter_ns()
        run.last_ns = at_ns
        for event in parser.feed(data):
            run.take(dialect.parse_event(event), at_ns)
        if run.first_ns is not None:
            deadline.reschedule(min(total_deadline, loop.time() + stall))
            if first_token is not None and not first_token.is_set():
                first_token.set()
    for event in parser.close():
        run.take(dialect.parse_event(event), run.last_ns or time.perf_counter_ns())


async def _read_capped(response: httpx.Response) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for data in response.aiter_bytes():
        parts.append(data)
        size += len(data)
        if size >= _ERROR_BODY_LIMIT:
            break
    return b"".join(parts)


def _request_start(timing, fallback_ns: int) -> int:
    """When this request began on the wire: its connection's start if it opened one."""
    if timing is None:
        return fallback_ns
    if timing.requests <= 1:
        return timing.dns_started_ns or timing.connect_started_ns or fallback_ns
    return timing.request_started_ns or fallback_ns


def _now(timing) -> int:
    return timing.last_rx_ns if timing is not None and timing.last_rx_ns else time.perf_counter_ns()


def _ms(ns: int) -> float:
    return round(ns / 1e6, 3)


def _redact(text: str, secret: str | None) -> str:
    """A provider may echo the key back in an error body; it must not reach logs or storage."""
    if secret and len(secret) >= 4 and secret in text:
        return text.replace(secret, "[redacted]")
    return text


def _result(target: Target, at: datetime, run: _Run, kind: ErrorKind | None, message: str) -> ProbeResult:
    answer = "".join(run.text)
    canary_pass = run.canary.check(answer) if answer else None
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
        nonce=run.canary.nonce,
    )


def _verdict(target: Target, run: _Run, answer: str, canary_pass: bool | None) -> tuple[ErrorKind, str]:
    if run.error is not None:
        run.retry_after = run.error.retry_after_s
        kind = classify.from_provider_error(target.dialect, run.error)
        where = f"HTTP {run.error.http_status}" if run.error.http_status else "in stream"
        label = run.error.type or run.error.code or "error"
        return kind, f"{where} {label}: {run.error.message}"[:300]
    if (kind := classify.from_finish(run.finish)) is not None:
        return kind, f"stream ended: {run.finish}"
    if not run.done:
        return ErrorKind.STREAM_CUT, "stream ended without its terminator"
    if not answer.strip():
        return ErrorKind.EMPTY_ANSWER, "stream completed with no answer text"
    if not canary_pass:
        return ErrorKind.WRONG_ANSWER, f"expected {run.canary.expected}, got {answer[:60]!r}"
    return ErrorKind.OK, ""
