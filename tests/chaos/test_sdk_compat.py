"""The official `openai` and `anthropic` SDKs, unmodified, against the emulator, directly and
through the fault proxy.

Every test runs twice: with the fault injected by the emulator itself, and with a healthy
emulator behind `airisk proxy` injecting the fault (`point` fixture). Both must look the
same to the SDK: the proxy's claim is that it breaks a real provider exactly as the
emulated outage does, and passes a healthy one through untouched.

Only base_url, api_key, max_retries and timeout are set: if a user points their own
code at `airisk emulate`, it must work as against the real API, and each fault must
surface as the exception class the SDK raises for the real thing, so a drill exercises
the user's real ``except`` clauses.

Where an SDK silently accepts a broken stream (a cut stream, a missing terminator) or
raises something outside its own hierarchy (a malformed chunk, a stalled Anthropic
stream), the test pins that exact behaviour and says so: these are findings about the
SDKs, and the reason airisk's probe checks terminators itself.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from chaos.emulator import FILLER
from chaos.faults import Fault, FaultSet
from chaos.proxy import FaultProxy
from chaos.proxyserve import serve_proxy
from chaos.routes import catalog_routes
from probes.catalog import get_provider

pytestmark = pytest.mark.sdk

QUESTION = [{"role": "user", "content": "What is 2 plus 3? Reply with the number only."}]
# The emulator answers a canary like a good model: the sum, then its filler words, one token
# each, 8 tokens under the conftest profile (tokens=8), well inside max_tokens=64.
WORDS = ["5", *(" " + word for word in FILLER)]
ANSWER = "".join(WORDS[:8])
GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
DEPLOYMENT = "my-gpt-deployment"
# Per client; tests that wait on purpose (hang, stall) set their own, shorter one. Far above
# SHORT, so a timing bound can tell (with room for a slow machine) that the SDK honoured SHORT.
TIMEOUT = 10.0
SHORT = 0.2


class Clients:
    """The three SDK clients, each built on first use (building one takes ~20 ms) and closed after."""

    def __init__(self, urls: dict[str, str]) -> None:
        self._urls = urls  # the base URL per SDK
        self._made: list[Any] = []

    def _keep(self, client):
        self._made.append(client)
        return client

    @functools.cached_property
    def openai(self) -> openai.AsyncOpenAI:
        return self._keep(openai.AsyncOpenAI(base_url=self._urls["openai"], api_key="sk-test", max_retries=0,
                                             timeout=TIMEOUT))

    @functools.cached_property
    def azure(self) -> openai.AsyncAzureOpenAI:
        return self._keep(openai.AsyncAzureOpenAI(azure_endpoint=self._urls["azure-openai"], api_key="azure-test",
                                                  api_version="2024-10-21", max_retries=0, timeout=TIMEOUT))

    @functools.cached_property
    def anthropic(self) -> anthropic.AsyncAnthropic:
        return self._keep(anthropic.AsyncAnthropic(base_url=self._urls["anthropic"], api_key="sk-ant-test",
                                                   max_retries=0, timeout=TIMEOUT))

    async def close(self) -> None:
        for client in self._made:
            await client.close()


class Point:
    """Where faults are injected (the emulator or the fault proxy), and its request log."""

    def __init__(self, faults: FaultSet, urls: dict[str, str], log, path_of) -> None:
        self.faults = faults
        self.urls = urls
        self._log = log
        self._path_of = path_of

    @property
    def log(self) -> list[dict[str, Any]]:
        return list(self._log())

    def seen(self) -> list[tuple[str, int | None]]:
        """(path at the emulator, status the SDK got) per request, in order."""
        return [(self._path_of(entry), entry.get("status")) for entry in self.log]


@pytest.fixture(params=["emulator", "proxy", "proxy-asgi"])
async def point(request, emulator) -> AsyncIterator[Point]:
    if request.param == "emulator":
        yield Point(emulator.emu.faults, {"openai": emulator.url + "/openai/v1",
                                          "azure-openai": emulator.url + "/azure-openai",
                                          "anthropic": emulator.url + "/anthropic"},
                    lambda: emulator.emu.log, lambda entry: entry["path"])
        return
    proxy = FaultProxy(catalog_routes(emulator.url))
    running = await serve_proxy(proxy, port=0, fast=request.param == "proxy")  # (both of its courses)
    try:
        yield Point(proxy.faults, {name: f"{running.url}/{name}" for name in ("openai", "azure-openai", "anthropic")},
                    lambda: proxy.log.since(), lambda entry: entry["upstream"].removeprefix(emulator.url))
    finally:
        await running.stop()


@pytest.fixture
async def sdk(point) -> AsyncIterator[Clients]:
    clients = Clients(point.urls)
    try:
        yield clients
    finally:
        await clients.close()


def inject(point: Point, fault_type: str, **params: Any) -> None:
    point.faults.add(Fault.from_dict({"type": fault_type, "params": params}))


def requests_seen(point: Point) -> list[tuple[str, int | None]]:
    return point.seen()


def _with(client, opts: dict[str, Any]):
    return client.with_options(**opts) if opts else client


# -- one call per SDK surface, each returning the answer text -----------------------------------

async def openai_chat(c: Clients, **opts: Any) -> str:
    reply = await _with(c.openai, opts).chat.completions.create(model=GPT, messages=QUESTION)
    return reply.choices[0].message.content


async def openai_chat_stream(c: Clients, **opts: Any) -> str:
    stream = await _with(c.openai, opts).chat.completions.create(
        model=GPT, messages=QUESTION, stream=True, stream_options={"include_usage": True})
    return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])


async def openai_completions(c: Clients, **opts: Any) -> str:
    reply = await _with(c.openai, opts).completions.create(model=GPT, prompt=QUESTION[0]["content"], max_tokens=64)
    return reply.choices[0].text


async def azure_chat_stream(c: Clients, **opts: Any) -> str:
    stream = await _with(c.azure, opts).chat.completions.create(model=DEPLOYMENT, messages=QUESTION, stream=True)
    return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])


async def claude_create(c: Clients, **opts: Any) -> str:
    message = await _with(c.anthropic, opts).messages.create(model=CLAUDE, max_tokens=64, messages=QUESTION)
    return "".join(block.text for block in message.content)


async def claude_stream(c: Clients, **opts: Any) -> str:
    async with _with(c.anthropic, opts).messages.stream(model=CLAUDE, max_tokens=64, messages=QUESTION) as stream:
        return "".join([text async for text in stream.text_stream])


async def claude_raw_stream(c: Clients, **opts: Any) -> str:
    stream = await _with(c.anthropic, opts).messages.create(model=CLAUDE, max_tokens=64, messages=QUESTION,
                                                           stream=True)
    return "".join([e.delta.text async for e in stream if e.type == "content_block_delta"])


OPENAI_CALLS = [openai_chat, openai_chat_stream, openai_completions, azure_chat_stream]
CLAUDE_CALLS = [claude_create, claude_stream, claude_raw_stream]


# -- healthy: every surface works unmodified ----------------------------------------------------

async def test_openai_chat_completion(point, sdk):
    reply = await sdk.openai.chat.completions.create(model=GPT, messages=QUESTION)
    assert reply.choices[0].message.content == ANSWER
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == GPT
    assert reply.usage.completion_tokens == 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 8
    assert requests_seen(point) == [("/openai/v1/chat/completions", 200)]


async def test_openai_stream_ends_with_usage(sdk):
    stream = await sdk.openai.chat.completions.create(model=GPT, messages=QUESTION, stream=True,
                                                      stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    # include_usage: one last chunk with no choices that carries the usage
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 8
    assert all(c.usage is None for c in chunks[:-1])


async def test_openai_legacy_completions(point, sdk):
    reply = await sdk.openai.completions.create(model=GPT, prompt=QUESTION[0]["content"], max_tokens=64)
    assert reply.choices[0].text == ANSWER
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 8
    stream = await sdk.openai.completions.create(model=GPT, prompt=QUESTION[0]["content"], max_tokens=64,
                                                 stream=True)
    assert "".join([chunk.choices[0].text async for chunk in stream if chunk.choices]) == ANSWER
    assert requests_seen(point) == [("/openai/v1/completions", 200)] * 2


async def test_max_tokens_cuts_the_answer_with_the_providers_reason(sdk):
    gpt = await sdk.openai.chat.completions.create(model=GPT, messages=QUESTION, max_tokens=3)
    claude = await sdk.anthropic.messages.create(model=CLAUDE, max_tokens=3, messages=QUESTION)
    assert gpt.choices[0].message.content == claude.content[0].text == "".join(WORDS[:3])
    assert gpt.choices[0].finish_reason == "length"
    assert claude.stop_reason == "max_tokens"


async def test_model_listings(sdk):
    assert [m.id async for m in sdk.openai.models.list()] == [get_provider("openai").model]
    assert [m.id async for m in sdk.anthropic.models.list()] == [get_provider("anthropic").model]


async def test_azure_deployment_is_the_model(point, sdk):
    reply = await sdk.azure.chat.completions.create(model=DEPLOYMENT, messages=QUESTION)
    assert reply.choices[0].message.content == ANSWER
    assert reply.model == DEPLOYMENT
    assert await azure_chat_stream(sdk) == ANSWER
    assert requests_seen(point) == [(f"/azure-openai/openai/deployments/{DEPLOYMENT}/chat/completions", 200)] * 2


async def test_anthropic_message(point, sdk):
    # The SDK appends /v1/messages to base_url; the emulator serves exactly that path.
    message = await sdk.anthropic.messages.create(model=CLAUDE, max_tokens=64, messages=QUESTION)
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == ANSWER
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 8
    assert message.model == CLAUDE
    assert requests_seen(point) == [("/anthropic/v1/messages", 200)]


async def test_anthropic_stream_helper(sdk):
    async with sdk.anthropic.messages.stream(model=CLAUDE, max_tokens=64, messages=QUESTION) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == ANSWER
    assert final.content[0].text == ANSWER
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 8


async def test_anthropic_raw_events(sdk):
    stream = await sdk.anthropic.messages.create(model=CLAUDE, max_tokens=64, messages=QUESTION, stream=True)
    events = [event async for event in stream]
    # The SDK swallows `ping`; everything else arrives in the documented order.
    assert [e.type for e in events] == ["message_start", "content_block_start", *["content_block_delta"] * 8,
                                        "content_block_stop", "message_delta", "message_stop"]
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens == 8


# -- error responses: each SDK's own exception class ------------------------------------------

# fault -> (exception class, HTTP status, error code the user can branch on: openai `exc.code`)
OPENAI_ERRORS = {
    "server_error": (openai.InternalServerError, 500, None),
    "overloaded": (openai.InternalServerError, 503, None),
    "rate_limited": (openai.RateLimitError, 429, "rate_limit_exceeded"),
    "quota_exhausted": (openai.RateLimitError, 429, "insufficient_quota"),
    "auth": (openai.AuthenticationError, 401, "invalid_api_key"),
    "model_not_found": (openai.NotFoundError, 404, "model_not_found"),
    "context_too_long": (openai.BadRequestError, 400, "context_length_exceeded"),
}
# fault -> (exception class, HTTP status, anthropic `exc.type`, i.e. error.type of the body)
ANTHROPIC_ERRORS = {
    "server_error": (anthropic.InternalServerError, 500, "api_error"),
    "overloaded": (anthropic.OverloadedError, 529, "overloaded_error"),
    "rate_limited": (anthropic.RateLimitError, 429, "rate_limit_error"),
    # a RateLimitError subclass the SDK picks from error.details.error_code
    "quota_exhausted": (anthropic.EnforcedSpendLimitReachedError, 429, "rate_limit_error"),
    "auth": (anthropic.AuthenticationError, 401, "authentication_error"),
    "model_not_found": (anthropic.NotFoundError, 404, "not_found_error"),
    "context_too_long": (anthropic.BadRequestError, 400, "invalid_request_error"),
}


@pytest.mark.parametrize("fault", list(OPENAI_ERRORS))
async def test_openai_error_class(point, sdk, fault):
    inject(point, fault)
    cls, status, code = OPENAI_ERRORS[fault]
    for call in OPENAI_CALLS:  # the same class streamed or not, chat, legacy or Azure
        with pytest.raises(openai.APIStatusError) as caught:
            await call(sdk)
        assert type(caught.value) is cls, call.__name__
        assert caught.value.status_code == status, call.__name__
        assert caught.value.code == code, call.__name__
        assert caught.value.message.startswith(f"Error code: {status} - "), call.__name__


@pytest.mark.parametrize("fault", list(ANTHROPIC_ERRORS))
async def test_anthropic_error_class(point, sdk, fault):
    inject(point, fault)
    cls, status, etype = ANTHROPIC_ERRORS[fault]
    for call in CLAUDE_CALLS:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await call(sdk)
        assert type(caught.value) is cls, call.__name__
        assert caught.value.status_code == status, call.__name__
        assert caught.value.type == etype, call.__name__
        # the id a user quotes to support: header and body agree
        assert caught.value.request_id == caught.value.body["request_id"], call.__name__


async def test_quota_is_told_apart_from_rate_limit(point, sdk):
    inject(point, "quota_exhausted")
    with pytest.raises(openai.RateLimitError) as gpt:
        await openai_chat(sdk)
    with pytest.raises(anthropic.RateLimitError) as claude:
        await claude_create(sdk, max_retries=1)
    # Same 429 and same base class as a rate limit; only the body says waiting will not help.
    assert gpt.value.body["code"] == gpt.value.code == "insufficient_quota"
    assert gpt.value.type == "insufficient_quota"
    assert claude.value.error_code == "enforced_spend_limit_reached"
    # A finding: the SDK retries a spent quota like a burst limit (the docs say so too), so a
    # product waits out its retries before it can fall back. airisk classifies it at once.
    assert requests_seen(point) == [("/openai/v1/chat/completions", 429), ("/anthropic/v1/messages", 429),
                                       ("/anthropic/v1/messages", 429)]


@pytest.mark.parametrize("fault", ["auth", "model_not_found", "context_too_long"])
async def test_anthropic_does_not_retry_a_client_error(point, sdk, fault):
    # The API answers these with x-should-retry: false, and the SDK obeys that header over its
    # own status rules: a "true" here would make it resend a too-long prompt max_retries times.
    inject(point, fault)
    with pytest.raises(ANTHROPIC_ERRORS[fault][0]):
        await claude_create(sdk, max_retries=1)
    assert len(point.log) == 1


@pytest.mark.parametrize("call", [openai_chat, claude_create], ids=lambda f: f.__name__)
async def test_rate_limit_is_waited_out_and_retried(point, sdk, call):
    fault = point.faults.add(Fault.from_dict({"type": "rate_limited", "params": {"retry_after": SHORT}}))

    async def lift_after_first_429() -> None:
        # The injection point has no event to wait on; poll its request log.
        while not (point.log and point.log[0].get("status") == 429):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        point.faults.remove(fault.id)

    lifter = asyncio.create_task(lift_after_first_429())
    started = time.monotonic()
    try:
        answer = await call(sdk, max_retries=1)
    finally:
        lifter.cancel()
    elapsed = time.monotonic() - started
    assert answer == ANSWER  # the user never sees the 429
    assert [status for _, status in requests_seen(point)] == [429, 200]
    assert elapsed >= SHORT  # it waited as long as retry-after said


@pytest.mark.parametrize("call", [openai_chat, claude_create], ids=lambda f: f.__name__)
async def test_rate_limit_outlasting_the_retries_raises(point, sdk, call):
    inject(point, "rate_limited", retry_after=0.05)
    with pytest.raises((openai.RateLimitError, anthropic.RateLimitError)):
        await call(sdk, max_retries=1)
    assert [status for _, status in requests_seen(point)] == [429, 429]


# -- connection faults ----------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["connection_reset", "unreachable"])
@pytest.mark.parametrize(("calls", "cls"), [(OPENAI_CALLS, openai.APIConnectionError),
                                           (CLAUDE_CALLS, anthropic.APIConnectionError)], ids=["openai", "anthropic"])
async def test_connection_faults_are_a_connection_error(point, sdk, calls, cls, fault):
    inject(point, fault)
    for call in calls:
        with pytest.raises(cls) as caught:
            await call(sdk)
        assert type(caught.value) is cls, call.__name__  # not its APITimeoutError subclass
    assert [status for _, status in requests_seen(point)] == [None] * len(calls)  # no response at all


@pytest.mark.parametrize("call", [openai_chat_stream, claude_create], ids=lambda f: f.__name__)
async def test_hang_is_a_timeout(point, sdk, call):
    inject(point, "hang", seconds=5)
    _ = sdk.openai, sdk.anthropic  # build the clients off the clock
    started = time.monotonic()
    with pytest.raises((openai.APITimeoutError, anthropic.APITimeoutError)):
        await call(sdk, timeout=SHORT)
    # slack for a slow machine; the hang's own 5 s end (a connection error) or TIMEOUT take longer
    assert SHORT * 0.9 <= time.monotonic() - started < SHORT + 3


# -- faults inside a 200 stream -------------------------------------------------------------------

@pytest.mark.parametrize("error", ["overloaded", "server_error", "rate_limited"])
async def test_openai_stream_error_chunk_raises_api_error(point, sdk, error):
    inject(point, "stream_error", error=error)
    got: list[str] = []
    stream = await sdk.openai.chat.completions.create(model=GPT, messages=QUESTION, stream=True)
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    # The bare base class: no status (the HTTP status was 200), so no RateLimitError etc.
    assert type(caught.value) is openai.APIError
    assert caught.value.message == caught.value.body["message"]
    assert "".join(got) == WORDS[0]  # what arrived before the error


@pytest.mark.parametrize(("error", "etype"), [("overloaded", "overloaded_error"), ("server_error", "api_error"),
                                              ("rate_limited", "rate_limit_error")])
@pytest.mark.parametrize("call", [claude_stream, claude_raw_stream], ids=lambda f: f.__name__)
async def test_anthropic_stream_error_event_raises_status_error_200(point, sdk, call, error, etype):
    inject(point, "stream_error", error=error)
    with pytest.raises(anthropic.APIStatusError) as caught:
        await call(sdk)
    # Finding: an in-stream `event: error` is built from the 200 response, so the SDK raises the
    # bare APIStatusError with status_code 200 -- never OverloadedError or RateLimitError, even for
    # overloaded_error. `except anthropic.OverloadedError` misses a mid-stream overload; only
    # `exc.type` tells what happened.
    assert type(caught.value) is anthropic.APIStatusError
    assert caught.value.status_code == 200
    assert caught.value.type == etype


@pytest.mark.parametrize("call", [openai_chat_stream, azure_chat_stream, claude_stream, claude_raw_stream],
                         ids=lambda f: f.__name__)
async def test_malformed_chunk_escapes_the_sdk_hierarchy(point, sdk, call):
    inject(point, "malformed_chunk")
    with pytest.raises(json.JSONDecodeError) as caught:
        await call(sdk)
    # Finding: both SDKs let the bare JSONDecodeError out of the stream; `except openai.OpenAIError`
    # / `except anthropic.AnthropicError` does not catch a corrupt chunk.
    assert not isinstance(caught.value, openai.OpenAIError | anthropic.AnthropicError)


async def test_stream_stall_openai_times_out(point, sdk):
    inject(point, "stream_stall", seconds=5)
    with pytest.raises(openai.APITimeoutError):
        await openai_chat_stream(sdk, timeout=SHORT)


async def test_stream_stall_anthropic_leaks_the_transport_timeout(point, sdk):
    inject(point, "stream_stall", seconds=5)
    with pytest.raises(httpx2.ReadTimeout) as caught:
        await claude_stream(sdk, timeout=SHORT)
    # Finding: a read timeout after the headers (a stalled stream) is not wrapped in
    # anthropic.APITimeoutError -- openai's stream wraps it, anthropic's does not (its
    # AsyncStream reads the body unguarded; `stream=True` raw events leak it the same way).
    assert not isinstance(caught.value, anthropic.AnthropicError)


async def test_stream_cut_openai_returns_partial_text_silently(point, sdk):
    inject(point, "stream_cut", after_chunks=2)
    stream = await sdk.openai.chat.completions.create(model=GPT, messages=QUESTION, stream=True,
                                                      stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]  # no exception
    # Finding: the SDK cannot tell a cut stream from a finished one. The body ended cleanly
    # without [DONE]: the caller gets the first two words as if they were the whole answer, no
    # error. Only the absence of a finish_reason and of the usage chunk gives it away -- which is
    # why airisk's probe checks the terminator itself.
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(WORDS[:2])
    assert all(c.choices and c.choices[0].finish_reason is None for c in chunks)
    assert all(c.usage is None for c in chunks)


async def test_stream_cut_anthropic_returns_partial_message_silently(point, sdk):
    inject(point, "stream_cut", after_chunks=2)
    async with sdk.anthropic.messages.stream(model=CLAUDE, max_tokens=64, messages=QUESTION) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()  # no exception either
    # Finding: as with openai -- no message_stop, and the helper still hands back a "final"
    # message holding the partial text. Its stop_reason is None, the only hint.
    assert text == final.content[0].text == "".join(WORDS[:2])
    assert final.stop_reason is None
    raw = await sdk.anthropic.messages.create(model=CLAUDE, max_tokens=64, messages=QUESTION, stream=True)
    types = [event.type async for event in raw]
    assert types == ["message_start", "content_block_start", "content_block_delta", "content_block_delta"]


async def test_missing_terminator_is_invisible(point, sdk):
    inject(point, "missing_terminator")
    stream = await sdk.openai.chat.completions.create(model=GPT, messages=QUESTION, stream=True,
                                                      stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    async with sdk.anthropic.messages.stream(model=CLAUDE, max_tokens=64, messages=QUESTION) as claude:
        final = await claude.get_final_message()
    raw = await sdk.anthropic.messages.create(model=CLAUDE, max_tokens=64, messages=QUESTION, stream=True)
    types = [event.type async for event in raw]
    # Finding: neither SDK notices the missing [DONE] / message_stop; the answer looks complete.
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[-1].usage.completion_tokens == 8
    assert final.content[0].text == ANSWER
    assert final.stop_reason == "end_turn"
    assert types[-1] == "message_delta"  # only a raw-event reader could see message_stop never came


async def test_content_filter(point, sdk):
    inject(point, "content_filtered")
    gpt = await sdk.openai.chat.completions.create(model=GPT, messages=QUESTION)
    stream = await sdk.openai.chat.completions.create(model=GPT, messages=QUESTION, stream=True)
    reasons = [c.choices[0].finish_reason async for c in stream if c.choices and c.choices[0].finish_reason]
    claude = await sdk.anthropic.messages.create(model=CLAUDE, max_tokens=64, messages=QUESTION)
    async with sdk.anthropic.messages.stream(model=CLAUDE, max_tokens=64, messages=QUESTION) as s:
        streamed = await s.get_final_message()
    # Not an exception in either SDK: a normal reply whose stop reason says it was filtered.
    assert gpt.choices[0].finish_reason == "content_filter"
    assert gpt.choices[0].message.content == ""
    assert reasons == ["content_filter"]
    assert claude.stop_reason == streamed.stop_reason == "refusal"
    assert claude.content == []


async def test_empty_answer_is_a_normal_reply(point, sdk):
    inject(point, "empty_answer")
    # Neither SDK objects to an empty answer: it is well-formed; only checking the text catches it.
    assert await openai_chat(sdk) == ""
    assert await openai_chat_stream(sdk) == ""
    assert await claude_create(sdk) == ""
    assert await claude_stream(sdk) == ""
    gpt = await sdk.openai.chat.completions.create(model=GPT, messages=QUESTION)
    assert gpt.choices[0].finish_reason == "stop"
    assert gpt.usage.completion_tokens == 0


async def test_wrong_answer_is_a_normal_reply_with_other_text(point, sdk):
    inject(point, "wrong_answer")
    # Well-formed and confident: no SDK can tell; only checking the answer (airisk's canary) does.
    for call in (openai_chat, openai_chat_stream, claude_create, claude_stream):
        text = await call(sdk)
        assert text and not text.startswith("5"), call.__name__


async def test_flapping_fails_then_recovers(point, sdk):
    _ = sdk.openai, sdk.anthropic  # build the clients before the down phase starts
    # down long enough for two calls on a slow machine; up long enough to be seen
    fault = point.faults.add(Fault.from_dict({"type": "flapping", "params": {"down_s": 3, "up_s": 60}}))
    with pytest.raises(openai.InternalServerError) as gpt:
        await openai_chat(sdk)
    with pytest.raises(anthropic.APIStatusError) as claude:
        await claude_create(sdk)
    assert gpt.value.status_code == claude.value.status_code == 503
    deadline = time.monotonic() + 15
    while True:  # the up half of the period
        try:
            answer = await openai_chat(sdk)
            break
        except openai.InternalServerError:
            assert time.monotonic() < deadline, "still down 15 s into a 3 s down phase"
            await asyncio.sleep(0.1)
    assert answer == ANSWER
    assert time.time() >= fault.created_at + 3  # up again only once the down phase was over


@pytest.mark.parametrize("call", [openai_chat_stream, claude_stream], ids=lambda f: f.__name__)
async def test_timing_faults_slow_the_answer_but_keep_it(point, sdk, call):
    inject(point, "first_token_delay", delay_ms=300)
    started = time.monotonic()
    assert await call(sdk) == ANSWER
    delayed = time.monotonic() - started
    point.faults.clear()
    inject(point, "slow_tokens", gap_ms=60)
    started = time.monotonic()
    assert await call(sdk) == ANSWER
    slowed = time.monotonic() - started
    assert delayed >= 0.3  # once, before the first token
    assert slowed >= 7 * 0.06  # between each of the 8 tokens
