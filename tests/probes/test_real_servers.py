"""What servers nobody here wrote really send, read as what it is.

- A 200 ``application/json`` answer to a streaming request (gateways and test servers that
  ignore ``stream``) is the non-streaming answer it is, per dialect.
- A stream that ends cleanly after its finish reason but without the protocol's terminator
  is complete (the official SDKs read it so); STREAM_CUT is a body that ends before any finish.
- A 400 naming OpenAI's safety system is CONTENT_FILTERED, not BAD_REQUEST.

Bodies are ours, written from each provider's documentation of its non-streaming answer
(cited in the dialect modules); most cases run over a loopback server through the real
client, so chunked transfer and the end of the body are the ones a user's probe sees.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from probes import ErrorKind, Status, make_client, probe
from tests.probes.loopback import Canned, serving
from tests.probes.strategies import CANARY, probe_bytes, target_for
from tests.probes.test_dialects import stream

PROVIDERS = ["openai", "azure-openai", "openai-completions", "anthropic", "gemini", "cohere", "ollama"]


def answer(provider: str, text: str = "4", **extra: Any) -> dict | list:
    """A whole non-streaming answer carrying ``text``, in the provider's documented shape."""
    if provider in ("openai", "azure-openai"):  # "The chat completion object"
        return {"id": "chatcmpl-t", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                             "logprobs": None, "finish_reason": extra.get("finish", "stop")}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}}
    if provider == "openai-completions":  # "The completion object"
        return {"id": "cmpl-t", "object": "text_completion", "created": 1, "model": "m",
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}}
    if provider == "anthropic":  # Messages API: the Message object
        return {"id": "msg_t", "type": "message", "role": "assistant", "model": "m",
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 1}}
    if provider == "gemini":  # generateContent: one GenerateContentResponse
        return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP",
                                "index": 0}],
                "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1, "totalTokenCount": 13},
                "modelVersion": "m"}
    if provider == "cohere":  # Chat v2, non-streaming
        return {"id": "t", "finish_reason": "COMPLETE",
                "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
                "usage": {"billed_units": {"input_tokens": 12, "output_tokens": 1},
                          "tokens": {"input_tokens": 12, "output_tokens": 1}}}
    assert provider == "ollama"  # /api/chat with stream: false
    return {"model": "m", "created_at": "2025-01-01T00:00:00Z", "message": {"role": "assistant", "content": text},
            "done_reason": "stop", "done": True, "total_duration": 5_000_000, "prompt_eval_count": 12,
            "eval_count": 1, "eval_duration": 1_000_000}


async def over_loopback(provider: str, chunks: list[bytes], *, status: int = 200, content_type: str):
    """`probe` through `make_client` (the timed backend) against a loopback server sending ``chunks``."""
    canned = Canned(status=status, content_type=content_type, chunks=chunks)
    async with serving(canned) as url, make_client() as client:
        target = target_for(provider)
        target = type(target).from_provider(target.provider, name=target.name, base_url=url, key_env=None,
                                            deadlines=target.deadlines, options=target.options)
        result = await probe(target, client=client, canary=CANARY)
    assert canned.requests, "the probe never reached the loopback server"
    return result


# -- a whole JSON body answering a streaming request ---------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_json_answer_to_a_streaming_request_is_read_as_the_answer(provider):
    body = json.dumps(answer(provider)).encode()
    result = await over_loopback(provider, [body[:20], body[20:]], content_type="application/json")
    assert result.error_kind is ErrorKind.OK, result.message
    assert result.status is Status.UP
    assert result.message == "answered without streaming"
    assert (result.answer, result.canary_pass) == ("4", True)
    assert (result.input_tokens, result.output_tokens) == (12, 1)
    assert result.stream_complete  # a whole document is its own end
    # Time to first token is the time to the whole body: the answer is usable only then.
    assert result.ttft_ms is not None and result.ttft_ms == result.total_ms


async def test_gemini_stream_generate_content_without_sse_is_a_json_array_of_responses():
    """``streamGenerateContent`` without ``alt=sse`` answers a JSON array of GenerateContentResponse."""
    first = {"candidates": [{"content": {"parts": [{"text": "4"}], "role": "model"}, "index": 0}]}
    last = answer("gemini", "")
    result = await probe_bytes("gemini", [json.dumps([first, last]).encode()], content_type="application/json")
    assert result.error_kind is ErrorKind.OK, result.message
    assert (result.answer, result.output_tokens, result.message) == ("4", 1, "answered without streaming")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_json_answer_with_the_wrong_number_is_a_wrong_answer(provider):
    body = json.dumps(answer(provider, "5")).encode()
    result = await probe_bytes(provider, [body], content_type="application/json; charset=utf-8")
    assert result.error_kind is ErrorKind.WRONG_ANSWER
    assert result.message == "expected 4, got '5'; answered without streaming"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_json_answer_without_text_is_an_empty_answer(provider):
    result = await probe_bytes(provider, [json.dumps(answer(provider, "")).encode()], content_type="application/json")
    assert result.error_kind is ErrorKind.EMPTY_ANSWER
    assert result.message.endswith("answered without streaming")


MISSING_FIELDS = {  # valid JSON, not an answer: the field that holds the text is absent
    "openai": {"id": "chatcmpl-t", "object": "chat.completion"},
    "azure-openai": {"id": "chatcmpl-t", "choices": "4"},
    "openai-completions": {"id": "cmpl-t", "object": "text_completion"},
    "anthropic": {"id": "msg_t", "type": "message", "role": "assistant"},
    "gemini": {"modelVersion": "m"},
    "cohere": {"id": "t", "finish_reason": "COMPLETE"},
    "ollama": {"model": "m", "created_at": "2025-01-01T00:00:00Z"},
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("how", ["truncated", "missing fields", "empty", "not an object"])
async def test_a_json_answer_that_is_not_one_is_malformed(provider, how):
    whole = json.dumps(answer(provider)).encode()
    body = {"truncated": whole[:len(whole) // 2], "missing fields": json.dumps(MISSING_FIELDS[provider]).encode(),
            "empty": b"", "not an object": b'"4"'}[how]
    result = await probe_bytes(provider, [body] if body else [], content_type="application/json")
    assert result.error_kind is ErrorKind.MALFORMED, result.message
    assert result.status is Status.DOWN


async def test_an_error_object_in_a_200_json_answer_is_classified():
    body = json.dumps({"error": {"message": "The server had an error while processing your request.",
                                 "type": "server_error", "param": None, "code": None}}).encode()
    result = await over_loopback("openai", [body], content_type="application/json")
    assert result.error_kind is ErrorKind.SERVER_ERROR
    assert result.message.startswith("in the answer server_error: The server had an error")
    assert result.message.endswith("; answered without streaming")


async def test_a_long_error_in_a_json_answer_keeps_the_message_within_its_cap_and_the_note():
    # Found by bench/fuzz.py: {"error": "<70 KB>"} gave a 328-character message.
    body = json.dumps({"error": "x" * 70_000}).encode()
    result = await probe_bytes("openai", [body], content_type="application/json")
    assert len(result.message) <= 300
    assert result.message.endswith("; answered without streaming")


@pytest.mark.parametrize("provider", ["openai", "anthropic", "cohere"])
async def test_a_stream_mislabelled_as_json_is_still_read_as_a_stream(provider):
    result = await over_loopback(provider, [stream(provider, "4")], content_type="application/json")
    assert result.error_kind is ErrorKind.OK, result.message
    assert result.message == ""  # it did stream


# -- the end of a stream -----------------------------------------------------------------------------


def _sse(data: Any, event: str | None = None) -> bytes:
    return (f"event: {event}\n" if event else "").encode() + b"data: " + json.dumps(data).encode() + b"\n\n"


def _openai_chunk(delta: dict, finish: str | None) -> bytes:
    return _sse({"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


NO_TERMINATOR = {  # a whole answer whose last event carries the finish reason; no [DONE] / message_stop
    "openai": [_openai_chunk({"role": "assistant", "content": "4"}, None), _openai_chunk({}, "stop"),
               _sse({"id": "chatcmpl-t", "object": "chat.completion.chunk", "choices": [],
                     "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}})],
    "anthropic": [
        _sse({"type": "message_start", "message": {"id": "msg_t", "type": "message", "role": "assistant",
                                                   "content": [], "usage": {"input_tokens": 12}}}, "message_start"),
        _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
             "content_block_start"),
        _sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "4"}},
             "content_block_delta"),
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
             "message_delta"),
    ],
}


@pytest.mark.parametrize("provider", ["openai", "azure-openai", "anthropic"])
async def test_a_finish_reason_and_a_clean_end_make_a_complete_answer_without_the_terminator(provider):
    result = await over_loopback(provider, NO_TERMINATOR[provider.removeprefix("azure-")],
                                 content_type="text/event-stream")
    assert result.error_kind is ErrorKind.OK, result.message
    assert result.status is Status.UP
    assert (result.answer, result.input_tokens, result.output_tokens) == ("4", 12, 1)
    assert not result.stream_complete  # the terminator itself did not come, and the result says so
    assert result.message == "no end-of-stream marker after the finish reason"


@pytest.mark.parametrize(("finish", "kind"), [("length", ErrorKind.OK), ("content_filter", ErrorKind.CONTENT_FILTERED)])
async def test_the_finish_reason_still_decides_without_the_terminator(finish, kind):
    body = [_openai_chunk({"content": "4"}, None), _openai_chunk({}, finish)]
    for reads in (body, [bytes([b]) for b in b"".join(body)]):
        assert (await probe_bytes("openai", reads)).error_kind is kind


async def test_a_body_that_ends_before_the_finish_reason_is_cut_even_over_loopback():
    result = await over_loopback("openai", [_openai_chunk({"content": "4"}, None)], content_type="text/event-stream")
    assert result.error_kind is ErrorKind.STREAM_CUT
    assert result.message == "stream ended before any finish reason"
    assert result.answer == "4"


# -- a refusal by the safety system ------------------------------------------------------------------


SAFETY_400 = [  # OpenAI 400 bodies (images, moderated prompts), as its error documentation and SDK show them
    {"error": {"code": "content_policy_violation", "type": "invalid_request_error", "param": None,
               "message": "Your request was rejected as a result of our safety system. Your prompt may contain "
                          "text that is not allowed by our safety system."}},
    {"error": {"code": None, "type": "invalid_request_error", "param": None,
               "message": "Your request was rejected as a result of our safety system."}},
    {"error": {"code": "invalid_prompt", "type": "invalid_request_error", "param": None,
               "message": "Invalid prompt: your prompt was flagged as potentially violating our usage policy."}},
]


@pytest.mark.parametrize("body", SAFETY_400, ids=["code", "message", "usage-policy"])
async def test_a_400_from_the_safety_system_is_content_filtered(body):
    result = await over_loopback("openai", [json.dumps(body).encode()], status=400, content_type="application/json")
    assert result.error_kind is ErrorKind.CONTENT_FILTERED, result.message
    assert result.status is Status.DEGRADED
    assert result.http_status == 400


async def test_an_ordinary_400_stays_a_bad_request():
    body = {"error": {"code": None, "type": "invalid_request_error", "param": "temperature",
                      "message": "Invalid value for 'temperature': must be between 0 and 2."}}
    result = await probe_bytes("openai", [json.dumps(body).encode()], status=400, content_type="application/json")
    assert result.error_kind is ErrorKind.BAD_REQUEST
