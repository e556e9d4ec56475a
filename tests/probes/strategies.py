"""Hypothesis strategies for hostile provider bytes, and `probe_bytes`, which serves bytes to the real `probe`.

Shared by the fuzz tests (``test_fuzz.py``, modest example counts) and ``bench/fuzz.py``
(a fixed budget of 10,000 inputs per entry point)::

    from hypothesis import given, settings
    from tests.probes.strategies import ProbeInput, check, probe_inputs, run_probe_bytes

    @settings(max_examples=10_000, deadline=None)
    @given(probe_inputs())
    def fuzz(case: ProbeInput) -> None:
        check(run_probe_bytes(case))

`probe_inputs()` mixes arbitrary bytes (`raw_inputs`) with valid-looking streams and bodies
whose values are odd (`structured_inputs`: nesting deeper than Python recurses, negative,
NaN and absurd numbers, strings past the framing caps, wrong types); each is split into
reads at arbitrary points and served with a drawn status and content type. `check` states
what must hold for any input: a `ProbeResult` comes back, its kind is an `ErrorKind` and
never INTERNAL_ERROR (the last-resort handler, which would hide an escaped exception), and
what leaves `probes` is sane (token counts, retry hint, message).

The templates below are ours, shaped like each provider's documented stream events and
answers (the dialect modules' docstrings cite the documents).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import strategies as st

from probes import Canary, Deadlines, ErrorKind, ProbeResult, Target, probe
from probes.dialects.base import MAX_RETRY_AFTER_S, MAX_TOKENS_REPORTED
from probes.framing import MAX_LINE

CANARY = Canary(prompt="[probe f0f0] What is 2 plus 2? Reply with the number only.", expected=4, nonce="f0f0")
# provider -> its dialect; azure-openai and openai-completions are the openai dialect's other two shapes
PROVIDERS: dict[str, str] = {
    "openai": "openai", "azure-openai": "openai", "openai-completions": "openai", "anthropic": "anthropic",
    "gemini": "gemini", "cohere": "cohere", "ollama": "ollama",
}
STREAM_TYPES = {"openai": "text/event-stream", "anthropic": "text/event-stream", "gemini": "text/event-stream",
                "cohere": "text/event-stream", "ollama": "application/x-ndjson"}
# Generous: a mock transport answers at once, and a slow CI machine must not turn a case into a timeout.
DEADLINES = Deadlines(connect=5.0, first_token=30.0, total=60.0, stall=30.0)


@dataclass(frozen=True)
class ProbeInput:
    """One response for `probe_bytes`: who is probed, and what it answers, read by read."""

    provider: str
    chunks: tuple[bytes, ...]
    status: int = 200
    content_type: str | None = None  # None: the provider's own streaming type
    headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # hypothesis prints failing cases; keep multi-MiB bodies readable
        body = b"".join(self.chunks)
        shown = body if len(body) <= 300 else body[:200] + b"...(%d bytes)..." % len(body) + body[-60:]
        return (f"ProbeInput({self.provider!r}, status={self.status}, content_type={self.content_type!r}, "
                f"headers={dict(self.headers)!r}, reads={len(self.chunks)}, body={shown!r})")


def target_for(provider: str) -> Target:
    """A keyless target for ``provider``; ``openai-completions`` is OpenAI in ``/v1/completions`` mode."""
    if provider == "openai-completions":
        return Target.from_provider("openai", name=provider, key_env=None, deadlines=DEADLINES,
                                    options={"mode": "completions"})
    return Target.from_provider(provider, key_env=None, deadlines=DEADLINES)


async def probe_bytes(provider: str, chunks: Sequence[bytes], *, status: int = 200, content_type: str | None = None,
                      headers: Mapping[str, str] | None = None, canary: Canary = CANARY) -> ProbeResult:
    """`probes.probe` of ``provider`` against an `httpx.MockTransport` whose response body arrives
    as exactly ``chunks`` (empty reads included), with ``status`` and ``content_type``."""
    target = target_for(provider)
    ctype = content_type if content_type is not None else STREAM_TYPES[target.dialect]

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"content-type": ctype, **(headers or {})}, content=body())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await probe(target, client=client, canary=canary)


def run_probe_bytes(case: ProbeInput) -> ProbeResult:
    """`probe_bytes` for one `ProbeInput`, from synchronous code (a hypothesis test, a bench loop)."""
    return asyncio.run(probe_bytes(case.provider, case.chunks, status=case.status, content_type=case.content_type,
                                   headers=case.headers))


def check(result: ProbeResult) -> None:
    """What must hold for any provider bytes at all. Raises AssertionError naming what did not."""
    assert isinstance(result, ProbeResult), type(result)
    assert isinstance(result.error_kind, ErrorKind), result.error_kind
    assert result.error_kind is not ErrorKind.INTERNAL_ERROR, f"an exception escaped the readers: {result.message}"
    assert result.error_kind is not ErrorKind.BAD_CONFIG, result.message  # the config here is fine
    for count in (result.input_tokens, result.output_tokens):
        assert count is None or (type(count) is int and 0 <= count <= MAX_TOKENS_REPORTED), count
    if result.retry_after_s is not None:
        assert math.isfinite(result.retry_after_s) and 0 <= result.retry_after_s <= MAX_RETRY_AFTER_S
    if result.tokens_per_s is not None:
        assert math.isfinite(result.tokens_per_s) and result.tokens_per_s >= 0
    assert isinstance(result.message, str) and len(result.message) <= 300
    assert len(result.answer) <= 200
    assert result.ok == (result.error_kind is ErrorKind.OK)


# -- how bytes arrive ---------------------------------------------------------------------------------


def draw_reads(draw: st.DrawFn, body: bytes) -> tuple[bytes, ...]:
    """``body`` as reads: cut at arbitrary points (inside a CRLF, a UTF-8 character, a JSON token),
    with now and then an empty read. Long bodies are cut at a few drawn points, not per byte.
    (A plain function taking ``draw``, not a strategy of ``body``: a strategy's repr holds its
    arguments, and hypothesis would print megabytes.)"""
    if not body:
        return (b"",) if draw(st.booleans()) else ()
    cuts = sorted(set(draw(st.lists(st.integers(0, len(body)), max_size=12))))
    reads, start = [], 0
    for cut in [*cuts, len(body)]:
        reads.append(body[start:cut])
        start = cut
    return tuple(read for read in reads if read or draw(st.integers(0, 3)) == 0)


STATUSES = st.sampled_from([200] * 6 + [400, 401, 403, 404, 429, 500, 502, 503, 529]) | st.integers(100, 599)
CONTENT_TYPES = st.sampled_from([
    None, None, None, "text/event-stream", "application/x-ndjson", "application/json",
    "application/json; charset=utf-8", "application/problem+json", "text/plain", "text/html", "",
])


@st.composite
def raw_inputs(draw: st.DrawFn, providers: Sequence[str] = tuple(PROVIDERS)) -> ProbeInput:
    """Arbitrary bytes (plus the pieces providers' framing is made of), any status and content type."""
    pieces = st.binary(max_size=64) | st.sampled_from([
        b"data: ", b"event: error\n", b"\n", b"\r\n", b"\n\n", b"\r", b"{", b"}", b"[", b"]", b'"', b":", b"[DONE]",
        b'{"error":', b'{"choices":[', b'"usage":', b"-1", b"1e999", b"NaN", "é✓".encode(), b"\xff\xfe",
    ])
    body = b"".join(draw(st.lists(pieces, max_size=40)))
    return ProbeInput(draw(st.sampled_from(providers)), draw_reads(draw, body), draw(STATUSES), draw(CONTENT_TYPES))


# -- valid-looking events with odd values ---------------------------------------------------------------


class Deep:
    """A JSON value nested ``depth`` arrays (or objects) deep, past what a recursive reader survives."""

    def __init__(self, depth: int, objects: bool) -> None:
        self.depth, self.objects = depth, objects

    def __repr__(self) -> str:
        return f"Deep({self.depth}, objects={self.objects})"

    def text(self) -> str:
        if self.objects:
            return '{"a":' * self.depth + "1" + "}" * self.depth
        return "[" * self.depth + "]" * self.depth


class Long:
    """A JSON string of ``length`` characters; made only when serialised (hypothesis need not print it)."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __repr__(self) -> str:
        return f"Long({self.length})"

    def text(self) -> str:
        return '"' + "x" * self.length + '"'


ODD_VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([-1, -(2**63), 2**63, 10**30, 0, 1.5, -0.0, 1e308, 12.0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    st.builds(Deep, st.sampled_from([50, 900, 1100, 5000, 100_000]), st.booleans()),
    st.builds(Long, st.sampled_from([100, 70_000, MAX_LINE + 10])),
)


def _oa(choices: list, **extra: Any) -> dict:
    return {"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices,
            **extra}


# Per dialect: the events of one healthy answer "4" as (SSE event name, data), and whole
# non-streaming answers. Written from each provider's documentation, not copied from recordings.
EVENTS: dict[str, list[tuple[str | None, Any]]] = {
    "openai": [
        (None, _oa([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])),
        (None, _oa([{"index": 0, "delta": {"content": "4"}, "finish_reason": None}])),
        (None, _oa([{"index": 0, "delta": {}, "finish_reason": "stop"}])),
        (None, _oa([], usage={"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13})),
        (None, {"error": {"message": "m", "type": "server_error", "param": None, "code": None}}),
        (None, "[DONE]"),
    ],
    "anthropic": [
        ("message_start", {"type": "message_start", "message": {"id": "msg_f", "type": "message", "role": "assistant",
                                                               "content": [], "usage": {"input_tokens": 12}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "4"}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 1}}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ("message_stop", {"type": "message_stop"}),
    ],
    "gemini": [
        (None, {"candidates": [{"content": {"parts": [{"text": "4"}], "role": "model"}, "index": 0}]}),
        (None, {"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1, "totalTokenCount": 13}}),
        (None, {"promptFeedback": {"blockReason": "SAFETY"}}),
        (None, {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE",
                          "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"}]}}),
    ],
    "cohere": [
        ("content-delta", {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "4"}}}}),
        ("message-end", {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {
            "tokens": {"input_tokens": 12, "output_tokens": 1}}}}),
        (None, {"message": "internal server error"}),
    ],
    "ollama": [
        (None, {"model": "m", "message": {"role": "assistant", "content": "4"}, "done": False}),
        (None, {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                "prompt_eval_count": 12, "eval_count": 1}),
        (None, {"error": "model runner crashed"}),
    ],
}
ANSWERS: dict[str, list[Any]] = {
    "openai": [
        {"id": "chatcmpl-f", "object": "chat.completion", "created": 1, "model": "m", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "4", "refusal": None}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}},
        {"id": "cmpl-f", "object": "text_completion", "choices": [{"text": "4", "index": 0, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 12, "completion_tokens": 1}},
        {"error": {"message": "Your request was rejected as a result of our safety system.",
                   "type": "invalid_request_error", "param": None, "code": "content_policy_violation"}},
    ],
    "anthropic": [
        {"id": "msg_f", "type": "message", "role": "assistant", "model": "m",
         "content": [{"type": "text", "text": "4"}], "stop_reason": "end_turn", "stop_sequence": None,
         "usage": {"input_tokens": 12, "output_tokens": 1}},
        {"type": "error", "error": {"type": "rate_limit_error", "message": "m"}},
    ],
    "gemini": [
        {"candidates": [{"content": {"parts": [{"text": "4"}], "role": "model"}, "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1}},
        [{"candidates": [{"content": {"parts": [{"text": "4"}]}}]},
         {"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS"}]}],
    ],
    "cohere": [
        {"id": "f", "finish_reason": "COMPLETE", "message": {"role": "assistant", "content": [
            {"type": "text", "text": "4"}]}, "usage": {"tokens": {"input_tokens": 12, "output_tokens": 1}}},
    ],
    "ollama": [
        {"model": "m", "message": {"role": "assistant", "content": "4"}, "done": True, "done_reason": "stop",
         "prompt_eval_count": 12, "eval_count": 1},
    ],
}


@st.composite
def odd(draw: st.DrawFn, template: Any) -> Any:
    """``template`` with, now and then, a value or a whole subtree swapped for an odd one."""
    if draw(st.integers(0, 6)) == 0:
        return draw(ODD_VALUES)
    if isinstance(template, dict):
        return {k: draw(odd(v)) for k, v in template.items()}
    if isinstance(template, list):
        return [draw(odd(v)) for v in template]
    return template


def to_json(value: Any) -> str:
    """JSON text of ``value``, `Deep` and `Long` values spliced in as text (``json.dumps`` could not
    recurse into the first)."""
    deep: list[Deep | Long] = []

    def mark(v: Any) -> Any:
        if isinstance(v, Deep | Long):
            deep.append(v)
            return f"\x00deep{len(deep) - 1}\x00"
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    text = json.dumps(mark(value))  # NaN and Infinity come out as the bare words Python's json reads back
    for i, d in enumerate(deep):
        text = text.replace(json.dumps(f"\x00deep{i}\x00"), d.text())
    return text


def frame(dialect: str, events: Sequence[tuple[str | None, str]], eol: bytes = b"\n") -> bytes:
    """Events (name, JSON text) in the dialect's framing: SSE ``event:``/``data:`` blocks, or NDJSON lines."""
    if dialect == "ollama":
        return b"".join(data.encode() + b"\n" for _, data in events)
    out = b""
    for name, data in events:
        if name is not None:
            out += b"event: " + name.encode() + eol
        out += b"data: " + data.encode() + eol + eol
    return out


@st.composite
def structured_inputs(draw: st.DrawFn, providers: Sequence[str] = tuple(PROVIDERS)) -> ProbeInput:
    """A valid-looking stream (or, now and then, a whole JSON answer) with odd values, split anywhere."""
    provider = draw(st.sampled_from(providers))
    dialect = PROVIDERS[provider]
    if draw(st.integers(0, 3)) == 0:
        answer = draw(odd(draw(st.sampled_from(ANSWERS[dialect]))))
        body = to_json(answer).encode()
        content_type = draw(st.sampled_from(["application/json", "application/json; charset=utf-8"]))
    else:
        templates = draw(st.lists(st.sampled_from(EVENTS[dialect]), min_size=1, max_size=8))
        events = [(name, data if isinstance(data, str) else to_json(draw(odd(data)))) for name, data in templates]
        body = frame(dialect, events, draw(st.sampled_from([b"\n", b"\r\n", b"\r"])))
        content_type = None
    status = draw(st.sampled_from([200] * 8 + [400, 429, 500, 503]))
    return ProbeInput(provider, draw_reads(draw, body), status, content_type)


def probe_inputs(providers: Sequence[str] = tuple(PROVIDERS)) -> st.SearchStrategy[ProbeInput]:
    """Arbitrary bytes or odd-valued, valid-looking provider answers: the whole input space of `probe`."""
    return raw_inputs(providers) | structured_inputs(providers)
