"""Each dialect against hand-written responses, through `probes.probe` and `httpx.MockTransport`.

Every body here is ours, shaped like the provider's documented format (the dialect
modules' docstrings cite the sources); recorded provider bytes are exercised by
``test_transcripts.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes import Canary, ErrorKind, ProbeResult, Status, Target, classify, probe
from probes.dialects import ProviderError, get_dialect
from probes.dialects.base import Chunk
from probes.framing import Event

CANARY = Canary(prompt="[probe c0ffee] What is 2 plus 2? Reply with the number only.", expected=4, nonce="c0ffee")
PROVIDERS = ["openai", "azure-openai", "anthropic", "gemini", "cohere", "ollama"]
KEY_ENV = "AIRISK_TEST_KEY"


# -- a mock provider ---------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    one_byte_reads: bool = False  # stream the body one byte per read


@dataclass
class Call:
    result: ProbeResult
    requests: list[httpx.Request]

    @property
    def request(self) -> httpx.Request:
        (request,) = self.requests
        return request


def target(provider: str, **overrides: Any) -> Target:
    return Target.from_provider(provider, **overrides)


async def call(provider: str | Target, reply: Reply, *, canary: Canary = CANARY) -> Call:
    t = provider if isinstance(provider, Target) else target(provider)
    seen: list[httpx.Request] = []

    async def trickle() -> AsyncIterator[bytes]:
        for i in range(len(reply.body)):
            yield reply.body[i:i + 1]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        content_type = "application/json"
        if reply.status == 200:
            content_type = "application/x-ndjson" if t.dialect == "ollama" else "text/event-stream"
        headers = {"content-type": content_type, **reply.headers}
        return httpx.Response(reply.status, headers=headers, content=trickle() if reply.one_byte_reads else reply.body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await probe(t, client=client, canary=canary)
    return Call(result, seen)


# -- streams in each provider's format, as lists of events (the last ones end the stream) -------


def _j(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data if isinstance(data, str) else _j(data)}\n\n".encode()


def openai_events(*texts: str, finish: str = "stop") -> tuple[list[bytes], list[bytes]]:
    def chunk(choices: list, **extra: Any) -> bytes:
        return sse({"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": choices, **extra})

    body = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    body += [chunk([{"index": 0, "delta": {"content": t}, "finish_reason": None}]) for t in texts]
    body.append(chunk([{"index": 0, "delta": {}, "finish_reason": finish}]))
    body.append(chunk([], usage={"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}))
    return body, [sse("[DONE]")]


def anthropic_events(*texts: str, stop: str = "end_turn") -> tuple[list[bytes], list[bytes]]:
    body = [
        sse({"type": "message_start", "message": {"id": "msg_t", "type": "message", "role": "assistant",
             "content": [], "model": "m", "stop_reason": None, "usage": {"input_tokens": 12, "output_tokens": 1}}},
            "message_start"),
        sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start"),
        sse('{"type": "ping"}', "ping"),
    ]
    body += [sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
                 "content_block_delta") for t in texts]
    body.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    body.append(sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                     "usage": {"output_tokens": 1}}, "message_delta"))
    return body, [sse({"type": "message_stop"}, "message_stop")]


def gemini_events(*texts: str, finish: str = "STOP") -> tuple[list[bytes], list[bytes]]:
    def chunk(text: str, **cand: Any) -> bytes:
        usage = {"promptTokenCount": 12, "totalTokenCount": 12}
        if cand:
            usage = {"promptTokenCount": 12, "candidatesTokenCount": 1, "totalTokenCount": 13}
        data = {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0, **cand}],
                "usageMetadata": usage, "modelVersion": "m"}
        return b"data: " + _j(data).encode() + b"\r\n\r\n"  # Google separates events with CRLF CRLF

    return [chunk(t) for t in texts], [chunk("", finishReason=finish)]


def cohere_events(*texts: str, finish: str = "COMPLETE") -> tuple[list[bytes], list[bytes]]:
    body = [
        sse({"type": "message-start", "id": "t", "delta": {"message": {"role": "assistant"}}}, "message-start"),
        sse({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
            "content-start"),
    ]
    body += [sse({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": t}}}},
                 "content-delta") for t in texts]
    body.append(sse({"type": "content-end", "index": 0}, "content-end"))
    usage = {"billed_units": {"input_tokens": 12, "output_tokens": 1},
             "tokens": {"input_tokens": 12, "output_tokens": 1}}
    return body, [sse({"type": "message-end", "delta": {"finish_reason": finish, "usage": usage}}, "message-end")]


def ollama_events(*texts: str, done_reason: str = "stop") -> tuple[list[bytes], list[bytes]]:
    def line(data: dict) -> bytes:
        return _j({"model": "m", "created_at": "2025-01-01T00:00:00Z", **data}).encode() + b"\n"

    body = [line({"message": {"role": "assistant", "content": t}, "done": False}) for t in texts]
    end = line({"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": done_reason,
                "total_duration": 5_000_000, "prompt_eval_count": 12, "eval_count": 1, "eval_duration": 1_000_000})
    return body, [end]


EVENTS: dict[str, Callable[..., tuple[list[bytes], list[bytes]]]] = {
    "openai": openai_events, "azure-openai": openai_events, "anthropic": anthropic_events,
    "gemini": gemini_events, "cohere": cohere_events, "ollama": ollama_events,
}


def stream(provider: str, *texts: str, end: bool = True) -> bytes:
    body, ending = EVENTS[provider](*texts)
    return b"".join(body + (ending if end else []))


# -- request building --------------------------------------------------------------------------


# provider -> (URL, header carrying the key, its value for key "sekret")
REQUESTS = {
    "openai": ("https://api.openai.com/v1/chat/completions", "authorization", "Bearer sekret"),
    "azure-openai": ("https://your-resource.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions"
                     "?api-version=2024-10-21", "api-key", "sekret"),
    "anthropic": ("https://api.anthropic.com/v1/messages", "x-api-key", "sekret"),
    "gemini": ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash-lite:streamGenerateContent"
               "?alt=sse", "x-goog-api-key", "sekret"),
    "cohere": ("https://api.cohere.com/v2/chat", "authorization", "Bearer sekret"),
    "ollama": ("http://127.0.0.1:11434/api/chat", "authorization", "Bearer sekret"),
}
KEY_HEADERS = {"authorization", "api-key", "x-api-key", "x-goog-api-key"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_request_goes_to_the_documented_endpoint_with_the_key_from_the_environment(provider, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sekret")
    url, key_header, key_value = REQUESTS[provider]
    done = await call(target(provider, key_env=KEY_ENV), Reply(body=stream(provider, "4")))

    request = done.request
    assert request.method == "POST"
    assert str(request.url) == url
    assert request.headers[key_header] == key_value
    assert KEY_HEADERS & set(request.headers) == {key_header}  # the key goes in one header only
    assert CANARY.prompt in request.content.decode()
    assert done.result.error_kind is ErrorKind.OK, done.result.message


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_no_key_header_when_the_key_variable_is_unset(provider, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    done = await call(target(provider, key_env=KEY_ENV), Reply(body=stream(provider, "4")))
    assert not KEY_HEADERS & set(done.request.headers)


async def test_request_bodies_ask_for_a_short_streamed_answer():
    bodies = {}
    for provider in ("openai", "anthropic", "gemini", "cohere", "ollama"):
        done = await call(provider, Reply(body=stream(provider, "4")))
        bodies[provider] = json.loads(done.request.content)
    assert bodies["openai"]["stream"] is True
    assert bodies["openai"]["stream_options"] == {"include_usage": True}  # else no usage chunk comes
    assert bodies["openai"]["max_tokens"] == 16
    assert bodies["anthropic"]["stream"] is True
    assert bodies["anthropic"]["max_tokens"] == 16
    assert bodies["gemini"]["generationConfig"]["maxOutputTokens"] == 16
    assert bodies["gemini"]["contents"][0]["parts"][0]["text"] == CANARY.prompt
    assert bodies["cohere"]["stream"] is True
    assert bodies["ollama"]["stream"] is True
    assert bodies["ollama"]["options"]["num_predict"] == 16


async def test_anthropic_sends_the_api_version_header():
    done = await call("anthropic", Reply(body=stream("anthropic", "4")))
    assert done.request.headers["anthropic-version"] == "2023-06-01"


async def test_azure_deployment_and_api_version_come_from_options(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sekret")
    t = target("azure-openai", key_env=KEY_ENV, base_url="https://contoso.openai.azure.com/",
               options={"deployment": "prod-mini", "api_version": "2025-01-01-preview"})
    done = await call(t, Reply(body=stream("azure-openai", "4")))
    assert done.request.url.path == "/openai/deployments/prod-mini/chat/completions"
    assert done.request.url.params["api-version"] == "2025-01-01-preview"
    assert "authorization" not in done.request.headers


ERROR_BODIES = {  # a non-echoing 401 in each provider's shape
    "openai": {"error": {"message": "Incorrect API key provided: se***et.", "type": "invalid_request_error",
                         "param": None, "code": "invalid_api_key"}},
    "azure-openai": {"error": {"code": "401", "message": "Access denied due to invalid subscription key."}},
    "anthropic": {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
    "gemini": {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                         "status": "UNAUTHENTICATED"}},
    "cohere": {"message": "invalid api token"},
    "ollama": {"error": "unauthorized"},
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [200, 401])
async def test_the_key_never_reaches_the_result(provider, status, monkeypatch):
    secret = "sk-test-5e3f9c0a7b"
    monkeypatch.setenv(KEY_ENV, secret)
    body = stream(provider, "4") if status == 200 else json.dumps(ERROR_BODIES[provider]).encode()
    done = await call(target(provider, key_env=KEY_ENV), Reply(status, body))
    assert any(secret in done.request.headers.get(name, "") for name in KEY_HEADERS)  # it was sent...
    assert secret not in str(done.request.url)  # ...in a header, never in the URL
    assert done.result.error_kind is (ErrorKind.OK if status == 200 else ErrorKind.AUTH)
    assert secret not in json.dumps(done.result.to_dict())
    assert secret not in done.result.message


# -- whole streams ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_right_answer_is_ok_with_its_usage(provider):
    result = (await call(provider, Reply(body=stream(provider, "4")))).result
    assert result.error_kind is ErrorKind.OK, result.message
    assert result.status is Status.UP
    assert result.canary_pass is True
    assert result.stream_complete
    assert result.answer == "4"
    assert (result.input_tokens, result.output_tokens) == (12, 1)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_one_byte_per_read_changes_nothing(provider):
    """Every event split at every byte boundary: CRLF pairs, UTF-8 sequences and JSON included."""
    body = stream(provider, "4", " — ", "four ✓")
    whole = (await call(provider, Reply(body=body))).result
    trickled = (await call(provider, Reply(body=body, one_byte_reads=True))).result
    assert trickled.error_kind is whole.error_kind is ErrorKind.OK
    assert trickled.answer == whole.answer == "4 — four ✓"
    assert trickled.stream_complete and (trickled.input_tokens, trickled.output_tokens) == (12, 1)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_wrong_answer_is_wrong_answer(provider):
    result = (await call(provider, Reply(body=stream(provider, "5")))).result
    assert result.error_kind is ErrorKind.WRONG_ANSWER
    assert result.status is Status.DEGRADED
    assert result.canary_pass is False
    assert result.message == "expected 4, got '5'"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_complete_stream_without_text_is_an_empty_answer(provider):
    result = (await call(provider, Reply(body=stream(provider)))).result
    assert result.error_kind is ErrorKind.EMPTY_ANSWER
    assert result.stream_complete
    assert result.canary_pass is None


def cut_stream(provider: str, *texts: str) -> bytes:
    """A stream that ends cleanly after its text events, before any finish reason or terminator."""
    head = {"openai": 1, "azure-openai": 1, "anthropic": 3, "gemini": 0, "cohere": 2, "ollama": 0}[provider]
    body, _ending = EVENTS[provider](*texts)
    return b"".join(body[:head + len(texts)])


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_that_ends_before_any_finish_reason_is_cut(provider):
    result = (await call(provider, Reply(body=cut_stream(provider, "4")))).result
    assert result.error_kind is ErrorKind.STREAM_CUT
    assert result.status is Status.DOWN
    assert not result.stream_complete
    assert result.answer == "4"  # what did arrive is kept
    assert result.message == "stream ended before any finish reason"


MALFORMED_EVENT = {
    "openai": b'data: {"id":"chatcmpl-t","choices":[{"delta":{"content":"\n\n',
    "azure-openai": b'data: {"id":"chatcmpl-t","choices":[{"delta":{"content":"\n\n',
    "anthropic": b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"te\n\n',
    "gemini": b'data: {"candidates": [{"content": {"parts": [{"text": \r\n\r\n',
    "cohere": b'event: content-delta\ndata: {"type":"content-delta","index":0,"delta":{"mess\n\n',
    "ollama": b'{"model":"m","message":{"role":"assis\n',
}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_chunk_that_is_not_json_is_malformed(provider):
    body, ending = EVENTS[provider]("4")
    result = (await call(provider, Reply(body=b"".join([*body, MALFORMED_EVENT[provider], *ending])))).result
    assert result.error_kind is ErrorKind.MALFORMED
    assert result.message.startswith("malformed JSON")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_json_of_the_wrong_shape_is_malformed_not_a_crash(provider):
    wrong = {  # valid JSON where the protocol wants an object
        "openai": sse({"id": "chatcmpl-t", "choices": [["4"]]}),
        "azure-openai": sse({"id": "chatcmpl-t", "choices": [{"delta": "4"}]}),
        "anthropic": sse({"type": "content_block_delta", "index": 0, "delta": ["4"]}, "content_block_delta"),
        "gemini": b'data: {"candidates": ["4"]}\r\n\r\n',
        "cohere": sse({"type": "content-delta", "index": 0, "delta": {"message": {"content": "4"}}}, "content-delta"),
        "ollama": b'{"model":"m","message":{"role":"assistant","content":["4"]},"done":false}\n',
    }[provider]
    body, ending = EVENTS[provider]()
    result = (await call(provider, Reply(body=b"".join([*body, wrong, *ending])))).result
    assert result.error_kind is ErrorKind.MALFORMED
    assert result.message.startswith("unexpected event shape")


# -- SSE framing seen through a dialect ------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "cohere"])
async def test_any_sse_line_ending_reads_the_same(provider, eol):
    body = stream(provider, "4", "!").replace(b"\r\n", b"\n").replace(b"\n", eol)
    for one_byte_reads in (False, True):
        result = (await call(provider, Reply(body=body, one_byte_reads=one_byte_reads))).result
        assert result.error_kind is ErrorKind.OK, result.message
        assert result.answer == "4!"
        assert result.stream_complete


async def test_sse_comments_and_keep_alive_pings_are_ignored():
    body, ending = openai_events("4", "!")
    pinged = b": ping\n\n" + b":\n".join(body) + b": keep-alive\n\n" + b"".join(ending)
    result = (await call("openai", Reply(body=pinged))).result
    assert result.error_kind is ErrorKind.OK, result.message
    assert result.answer == "4!"


async def test_multi_line_data_is_joined_with_a_newline():
    event = (b'data: {"id":"chatcmpl-t","choices":[{"index":0,\n'
             b'data: "delta":{"content":"4"},"finish_reason":null}]}\n\n')
    body, ending = openai_events()
    result = (await call("openai", Reply(body=b"".join([body[0], event, *body[1:], *ending])))).result
    assert result.error_kind is ErrorKind.OK, result.message
    assert result.answer == "4"


async def test_anthropic_pings_and_padded_json_are_read():
    """Live Anthropic data lines carry runs of spaces before the closing brace."""
    body = stream("anthropic", "4").replace(b"}\n", b"}            \n")
    assert body.count(b"event: ping") == 1
    result = (await call("anthropic", Reply(body=body))).result
    assert result.error_kind is ErrorKind.OK, result.message
    assert (result.answer, result.input_tokens, result.output_tokens) == ("4", 12, 1)


async def test_openai_usage_only_chunk_with_no_choices_gives_the_usage():
    body = stream("openai", "4")
    assert b'"choices":[],"usage"' in body
    result = (await call("openai", Reply(body=body))).result
    assert (result.input_tokens, result.output_tokens) == (12, 1)
    assert result.cost_usd == pytest.approx((12 * 0.15 + 1 * 0.60) / 1e6)


async def test_openai_refusal_is_content_filtered():
    """A refusal streams in delta.refusal with content null, then an ordinary finish_reason "stop"."""
    body, ending = openai_events()
    refusal = [sse({"id": "chatcmpl-t", "choices": [{"index": 0, "delta": {"content": None, "refusal": piece},
                                                       "finish_reason": None}]}) for piece in ("", "I can't", " help")]
    result = (await call("openai", Reply(body=b"".join([body[0], *refusal, *body[1:], *ending])))).result
    assert result.error_kind is ErrorKind.CONTENT_FILTERED
    assert result.status is Status.DEGRADED
    assert result.stream_complete
    assert "I can't" in result.message


async def test_openai_finish_reason_content_filter_is_content_filtered():
    body, ending = openai_events("4", finish="content_filter")
    result = (await call("openai", Reply(body=b"".join(body + ending)))).result
    assert result.error_kind is ErrorKind.CONTENT_FILTERED


async def test_openai_finish_reason_length_is_a_fine_end():
    body, ending = openai_events("4", finish="length")
    result = (await call("openai", Reply(body=b"".join(body + ending)))).result
    assert result.error_kind is ErrorKind.OK


async def test_gemini_needs_no_done_marker():
    body = stream("gemini", "4")
    assert b"[DONE]" not in body
    result = (await call("gemini", Reply(body=body))).result
    assert result.error_kind is ErrorKind.OK
    assert result.stream_complete


@pytest.mark.parametrize("reason", ["SAFETY", "PROHIBITED_CONTENT", "OTHER"])
async def test_gemini_blocked_prompt_is_content_filtered(reason):
    body = b"data: " + _j({"promptFeedback": {"blockReason": reason, "safetyRatings": [
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH"}]}, "modelVersion": "m"}).encode() + b"\r\n\r\n"
    result = (await call("gemini", Reply(body=body))).result
    assert result.error_kind is ErrorKind.CONTENT_FILTERED
    assert result.stream_complete
    assert result.answer == ""


@pytest.mark.parametrize(("finish", "kind"), [
    ("SAFETY", ErrorKind.CONTENT_FILTERED),
    ("RECITATION", ErrorKind.CONTENT_FILTERED),
    ("MAX_TOKENS", ErrorKind.OK),
])
async def test_gemini_finish_reason(finish, kind):
    body, ending = gemini_events("4", finish=finish)
    result = (await call("gemini", Reply(body=b"".join(body + ending)))).result
    assert result.error_kind is kind


async def test_anthropic_refusal_stop_reason_is_content_filtered():
    body, ending = anthropic_events("4", stop="refusal")
    result = (await call("anthropic", Reply(body=b"".join(body + ending)))).result
    assert result.error_kind is ErrorKind.CONTENT_FILTERED


async def test_cohere_message_end_carries_finish_and_usage():
    body, ending = cohere_events("4", finish="MAX_TOKENS")
    result = (await call("cohere", Reply(body=b"".join(body + ending)))).result
    assert result.error_kind is ErrorKind.OK  # a short answer cut by max_tokens is still an answer
    assert result.stream_complete
    assert (result.input_tokens, result.output_tokens) == (12, 1)


async def test_ollama_final_object_carries_the_token_counts():
    body, ending = ollama_events("4", "!")
    result = (await call("ollama", Reply(body=b"".join(body + ending)))).result
    assert result.error_kind is ErrorKind.OK
    assert result.stream_complete
    assert (result.input_tokens, result.output_tokens) == (12, 1)  # eval_count, not the two text lines


# provider, the error event, kind, fragment of the message
STREAM_ERRORS = [
    ("openai", sse({"error": {"message": "The server had an error while processing your request.",
                              "type": "server_error", "param": None, "code": None}}),
     ErrorKind.SERVER_ERROR, "in stream server_error"),
    ("openai", sse({"error": {"message": "That model is currently overloaded with other requests.",
                              "type": "server_error", "param": None, "code": None}}),
     ErrorKind.OVERLOADED, "overloaded"),
    ("openai", sse({"object": "error", "message": "vLLM engine died", "type": "InternalServerError", "code": 500}),
     ErrorKind.STREAM_ERROR, "vLLM engine died"),
    ("anthropic", sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error"),
     ErrorKind.OVERLOADED, "in stream overloaded_error: Overloaded"),
    ("anthropic", sse({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}, "error"),
     ErrorKind.SERVER_ERROR, "in stream api_error"),
    ("gemini", json.dumps({"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                                     "status": "UNAVAILABLE"}}, indent=2).encode() + b"\n",
     ErrorKind.OVERLOADED, "in stream UNAVAILABLE"),
    ("gemini", b"data: " + _j({"error": {"code": 500, "message": "An internal error has occurred.",
                                         "status": "INTERNAL"}}).encode() + b"\r\n\r\n",
     ErrorKind.SERVER_ERROR, "in stream INTERNAL"),
    ("cohere", sse({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "generation failed"}},
                   "message-end"),
     ErrorKind.STREAM_ERROR, "generation failed"),
    ("cohere", sse({"message": "internal server error, this has been reported to our developers"}),
     ErrorKind.STREAM_ERROR, "internal server error"),
    ("ollama", b'{"error":"an error was encountered while running the model"}\n',
     ErrorKind.STREAM_ERROR, "in stream error: an error was encountered while running the model"),
]


@pytest.mark.parametrize(("provider", "event", "kind", "fragment"), STREAM_ERRORS,
                         ids=[f"{e[0]}-{e[2]}" for e in STREAM_ERRORS])
async def test_error_inside_a_200_stream(provider, event, kind, fragment):
    body, _ending = EVENTS[provider]("4")
    result = (await call(provider, Reply(body=b"".join([*body, event])))).result
    assert result.error_kind is kind
    assert result.status is Status.DOWN
    assert result.http_status == 200
    assert fragment in result.message
    assert result.answer == "4"


# -- non-200 answers ---------------------------------------------------------------------------


def in_30s() -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)


def oa(message: str, type_: str | None, code: str | None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def an(type_: str, message: str, **error: Any) -> dict:
    return {"type": "error", "error": {"type": type_, "message": message, **error}, "request_id": "req_t"}


def gg(code: int, status: str, message: str, *details: dict) -> dict:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"}

# provider, status, headers, body, kind, retry_after_s
HTTP_ERRORS = [
    ("openai", 429, {"retry-after": "20"},
     oa("Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.",
        "requests", "rate_limit_exceeded"), ErrorKind.RATE_LIMITED, 20.0),
    ("openai", 429, {"retry-after-ms": "1500", "retry-after": "2"},
     oa("Rate limit reached for gpt-4o-mini on tokens per min (TPM).", "tokens", "rate_limit_exceeded"),
     ErrorKind.RATE_LIMITED, 1.5),
    ("openai", 429, {}, oa("You exceeded your current quota, please check your plan and billing details.",
                           "insufficient_quota", "insufficient_quota"), ErrorKind.QUOTA_EXHAUSTED, None),
    ("openai", 401, {}, oa("Incorrect API key provided: sk-***.", "invalid_request_error", "invalid_api_key"),
     ErrorKind.AUTH, None),
    ("openai", 404, {}, oa("The model `gpt-9` does not exist or you do not have access to it.",
                           "invalid_request_error", "model_not_found"), ErrorKind.MODEL_NOT_FOUND, None),
    ("openai", 400, {}, oa("This model's maximum context length is 128000 tokens.", "invalid_request_error",
                           "context_length_exceeded"), ErrorKind.CONTEXT_TOO_LONG, None),
    ("openai", 503, {}, oa("That model is currently overloaded with other requests.", "server_error", None),
     ErrorKind.OVERLOADED, None),
    ("openai", 503, {}, oa("The server had an error while processing your request.", "server_error", None),
     ErrorKind.SERVER_ERROR, None),
    ("openai", 502, {}, b"<html><body><h1>502 Bad Gateway</h1></body></html>", ErrorKind.SERVER_ERROR, None),
    ("azure-openai", 429, {"retry-after": "6"},
     {"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded token "
                                         "rate limit of your current pricing tier. Please retry after 6 seconds."}},
     ErrorKind.RATE_LIMITED, 6.0),
    ("azure-openai", 400, {}, {"error": {"message": "The response was filtered due to the prompt triggering Azure "
                                                    "OpenAI's content management policy.", "type": None,
                                         "param": "prompt", "code": "content_filter", "status": 400}},
     ErrorKind.CONTENT_FILTERED, None),
    ("anthropic", 529, {"x-should-retry": "true"}, an("overloaded_error", "Overloaded"), ErrorKind.OVERLOADED, None),
    ("anthropic", 429, {"retry-after": "12"},
     an("rate_limit_error", "This request would exceed your organization's rate limit."), ErrorKind.RATE_LIMITED, 12.0),
    ("anthropic", 429, {"retry-after": in_30s},  # an HTTP date, made when the test runs
     an("rate_limit_error", "This request would exceed your rate limit."), ErrorKind.RATE_LIMITED, 30.0),
    ("anthropic", 429, {"x-should-retry": "false"},
     an("rate_limit_error", "You have reached your API usage limits.",
        details={"error_code": "enforced_spend_limit_reached"}), ErrorKind.QUOTA_EXHAUSTED, None),
    ("anthropic", 401, {}, an("authentication_error", "invalid x-api-key"), ErrorKind.AUTH, None),
    ("anthropic", 403, {}, an("permission_error", "Your API key does not have permission."), ErrorKind.AUTH, None),
    ("anthropic", 404, {}, an("not_found_error", "model: claude-9"), ErrorKind.MODEL_NOT_FOUND, None),
    ("anthropic", 400, {}, an("invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum"),
     ErrorKind.CONTEXT_TOO_LONG, None),
    ("anthropic", 500, {}, an("api_error", "Internal server error"), ErrorKind.SERVER_ERROR, None),
    ("anthropic", 503, {}, b"upstream connect error or disconnect/reset before headers", ErrorKind.SERVER_ERROR, None),
    ("gemini", 429, {}, gg(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and "
                                                      "billing details.", RETRY_INFO), ErrorKind.RATE_LIMITED, 26.0),
    ("gemini", 429, {}, gg(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Generate Content API "
                                                      "requests per minute'.",
                           {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED"}),
     ErrorKind.RATE_LIMITED, None),
    ("gemini", 429, {}, gg(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and "
                                                      "billing details."), ErrorKind.QUOTA_EXHAUSTED, None),
    ("gemini", 503, {}, gg(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
     ErrorKind.OVERLOADED, None),
    ("gemini", 500, {}, gg(500, "INTERNAL", "An internal error has occurred."), ErrorKind.SERVER_ERROR, None),
    ("gemini", 400, {}, gg(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                           {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}),
     ErrorKind.AUTH, None),
    ("gemini", 403, {}, gg(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
     ErrorKind.AUTH, None),
    ("gemini", 404, {}, gg(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta."),
     ErrorKind.MODEL_NOT_FOUND, None),
    ("gemini", 400, {}, gg(400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number of "
                                                    "tokens allowed (1048576)."), ErrorKind.CONTEXT_TOO_LONG, None),
    ("cohere", 429, {"retry-after": "60"}, {"message": "You are using a Trial key, which is limited to 20 API calls "
                                                       "/ minute."}, ErrorKind.RATE_LIMITED, 60.0),
    ("cohere", 402, {}, {"message": "Please add or update your payment method to continue."},
     ErrorKind.QUOTA_EXHAUSTED, None),
    ("cohere", 401, {}, {"message": "invalid api token"}, ErrorKind.AUTH, None),
    ("cohere", 498, {}, {"message": "invalid api token"}, ErrorKind.AUTH, None),
    ("cohere", 404, {}, {"message": "model 'command-9' not found, make sure the correct model ID was used"},
     ErrorKind.MODEL_NOT_FOUND, None),
    ("cohere", 400, {}, {"message": "too many tokens: total number of tokens in the prompt cannot exceed 4081 - "
                                    "received 4482. Try using a shorter prompt."}, ErrorKind.CONTEXT_TOO_LONG, None),
    ("cohere", 503, {}, {"message": "service unavailable"}, ErrorKind.SERVER_ERROR, None),
    ("ollama", 404, {}, {"error": 'model "llama9" not found, try pulling it first'}, ErrorKind.MODEL_NOT_FOUND, None),
    ("ollama", 503, {}, {"error": "server busy, please try again.  maximum pending requests exceeded"},
     ErrorKind.OVERLOADED, None),
    ("ollama", 500, {}, {"error": "llama runner process has terminated: signal: killed"}, ErrorKind.SERVER_ERROR, None),
    ("ollama", 400, {}, {"error": "invalid options: num_predict"}, ErrorKind.BAD_REQUEST, None),
]


@pytest.mark.parametrize(("provider", "status", "headers", "body", "kind", "retry_after"), HTTP_ERRORS,
                         ids=[f"{e[0]}-{e[1]}-{e[4]}" for e in HTTP_ERRORS])
async def test_http_error(provider, status, headers, body, kind, retry_after):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {name: value() if callable(value) else value for name, value in headers.items()}
    result = (await call(provider, Reply(status, raw, headers))).result
    assert result.error_kind is kind, result.message
    assert result.http_status == status
    assert result.status is kind.status
    assert result.message.startswith(f"HTTP {status} ")
    if retry_after is None:
        assert result.retry_after_s is None
    else:
        assert result.retry_after_s == pytest.approx(retry_after, abs=2)


async def test_retry_after_date_without_a_zone_is_read_as_gmt_not_a_crash():
    result = (await call("openai", Reply(429, b"{}", {"retry-after": "Wed, 21 Oct 2015 07:28:00"}))).result
    assert result.error_kind is ErrorKind.RATE_LIMITED
    assert result.retry_after_s == 0.0  # long past: retry now


# -- any JSON at all: a chunk or a ValueError, an error that classifies -------------------------


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def mutated(draw: st.DrawFn, template: Any) -> Any:
    """``template`` with, now and then, a subtree swapped for arbitrary JSON."""
    if draw(st.integers(0, 5)) == 0:
        return draw(JSON_VALUES)
    if isinstance(template, dict):
        return {k: draw(mutated(v)) for k, v in template.items()}
    if isinstance(template, list):
        return [draw(mutated(v)) for v in template]
    return template


def _events(provider: str) -> list[tuple[str | None, Any]]:
    """(event name, data) pairs of a stream with text, an error and every field a dialect reads."""
    body, ending = EVENTS[provider]("4")
    out: list[tuple[str | None, Any]] = []
    for raw in body + ending:
        if provider == "ollama":
            out.append((None, json.loads(raw)))
            continue
        name = None
        for line in raw.replace(b"\r", b"").decode().splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and line[6:] != "[DONE]":
                out.append((name, json.loads(line[6:])))
    return out


EVENT_TEMPLATES = {
    "openai": [*_events("openai"), (None, {"choices": [{"index": 0, "delta": {"refusal": "no"}}]}),
               (None, {"error": {"message": "m", "type": "t", "code": "c"}})],
    "anthropic": [*_events("anthropic"), ("error", {"type": "error", "error": {"type": "api_error", "message": "m"}})],
    "gemini": [*_events("gemini"), (None, {"promptFeedback": {"blockReason": "SAFETY"}}),
               (None, {"error": {"code": 500, "status": "INTERNAL", "message": "m"}})],
    "cohere": [*_events("cohere"), (None, {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "e"}}),
               (None, {"message": "m"})],
    "ollama": [*_events("ollama"), (None, {"error": "m"})],
}
ERROR_TEMPLATES = {
    "openai": [oa("m", "requests", "rate_limit_exceeded"), {"object": "error", "message": "m", "code": 500}],
    "anthropic": [an("rate_limit_error", "m", details={"error_code": "enforced_spend_limit_reached"})],
    "gemini": [gg(429, "RESOURCE_EXHAUSTED", "m", RETRY_INFO, {"@type": "x", "reason": "RATE_LIMIT_EXCEEDED"})],
    "cohere": [{"id": "t", "message": "m"}],
    "ollama": [{"error": "m"}],
}
FINISHES = {None, "stop", "length", "filter", "error", "other"}


def _assert_classifiable(dialect: str, err: ProviderError) -> None:
    assert isinstance(err.type, str | None) and isinstance(err.code, str | None) and isinstance(err.message, str)
    assert isinstance(classify.from_provider_error(dialect, err), ErrorKind)


@pytest.mark.parametrize("dialect", sorted(EVENT_TEMPLATES))
@settings(max_examples=300)
@given(data=st.data())
def test_any_event_is_a_chunk_or_a_value_error(dialect, data):
    name, template = data.draw(st.sampled_from(EVENT_TEMPLATES[dialect]))
    value = data.draw(mutated(template))
    try:
        chunk = get_dialect(dialect).parse_event(Event(json.dumps(value), event=name))
    except ValueError:
        return  # the probe's MALFORMED
    assert isinstance(chunk, Chunk)
    assert isinstance(chunk.text, str)
    for count in (chunk.input_tokens, chunk.output_tokens):
        assert count is None or (isinstance(count, int | float) and not isinstance(count, bool))
    assert chunk.finish in FINISHES
    if chunk.error is not None:
        _assert_classifiable(dialect, chunk.error)


@pytest.mark.parametrize("dialect", sorted(ERROR_TEMPLATES))
@settings(max_examples=200)
@given(data=st.data())
def test_any_error_body_classifies(dialect, data):
    value = data.draw(mutated(data.draw(st.sampled_from(ERROR_TEMPLATES[dialect]))))
    body = data.draw(st.just(json.dumps(value).encode()) | st.binary(max_size=40))
    headers = httpx.Headers({"retry-after": data.draw(st.text(max_size=30).map(lambda s: s.encode("ascii", "ignore")
                                                                                  .decode().strip()))})
    err = get_dialect(dialect).parse_error(data.draw(st.sampled_from([400, 429, 500, 503, 529])), headers, body)
    _assert_classifiable(dialect, err)
    assert err.retry_after_s is None or isinstance(err.retry_after_s, float)


async def test_a_key_echoed_by_the_provider_never_reaches_the_result(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-echoed-secret-123")

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        return httpx.Response(401, text=f"<html>bad key {key} for this gateway</html>")

    target = Target.from_provider("openai")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await probe(target, client=client)
    assert result.error_kind is ErrorKind.AUTH
    assert "sk-echoed-secret-123" not in str(result.to_dict())
    assert "[redacted]" in result.message


def test_explicit_key_env_none_sends_no_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    assert Target.from_provider("openai").api_key() == "sk-real"
    assert Target.from_provider("openai", key_env=None).api_key() is None
