"""`chaos.transport.ChaosTransport` under the official SDKs, through their own ``http_client=``.

The emulator stands in for the provider and is healthy throughout: every fault lives in
the transport, in the product's own process. Each must reach the SDK as the exception or
answer the proxy (and the real outage) gives, with ``httpx`` clients and ``httpx2`` ones
alike; `test_sdk_compat` pins what each SDK does with each fault.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from chaos.emulator import FILLER
from chaos.faults import Fault
from chaos.transport import ChaosTransport, resolve
from tests.chaos.test_sdk_compat import ANTHROPIC_ERRORS as SDK_ANTHROPIC_ERRORS
from tests.chaos.test_sdk_compat import OPENAI_ERRORS as SDK_OPENAI_ERRORS

pytestmark = pytest.mark.sdk

QUESTION = [{"role": "user", "content": "What is 2 plus 3? Reply with the number only."}]
WORDS = ["5", *(" " + word for word in FILLER)]
ANSWER = "".join(WORDS[:8])  # the conftest profile answers 8 tokens
GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
# The clients' own read timeout: far above SHORT, so a test that sets timeout=SHORT can tell
# (with room for a slow machine) that the SDK honoured it rather than waiting for this one.
TIMEOUT = 10.0
SHORT = 0.2
MODULES = {"httpx": httpx, "httpx2": httpx2}


class Rig:
    """A ChaosTransport in front of the emulator, and SDK clients built on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.chaos = ChaosTransport()
        self.done: list[dict[str, Any]] = []
        self.chaos.log.sink = self.done.append
        self._clients: list[Any] = []

    def openai(self, module: str = "httpx2", **opts: Any) -> openai.AsyncOpenAI:
        http = MODULES[module].AsyncClient(transport=self.chaos)
        client = openai.AsyncOpenAI(base_url=self.url + "/openai/v1", api_key="sk-test", http_client=http,
                                    **{"max_retries": 0, "timeout": TIMEOUT, **opts})
        self._clients.append(client)
        return client

    def anthropic(self, **opts: Any) -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(base_url=self.url + "/anthropic", api_key="sk-ant-test",
                                          http_client=httpx2.AsyncClient(transport=self.chaos),
                                          **{"max_retries": 0, "timeout": TIMEOUT, **opts})
        self._clients.append(client)
        return client

    def inject(self, fault_type: str, **params: Any) -> Fault:
        return self.chaos.faults.add(Fault.from_dict({"type": fault_type, "params": params}))

    def statuses(self) -> list[int | None]:
        return [entry["status"] for entry in self.chaos.log.since()]

    async def close(self) -> None:
        for client in self._clients:
            await client.close()


@pytest.fixture
async def rig(emulator) -> AsyncIterator[Rig]:
    made = Rig(emulator.url)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture(params=list(MODULES))
def module(request) -> str:
    return request.param


# -- one call per SDK surface -----------------------------------------------------------------------

async def gpt(client: openai.AsyncOpenAI, **kw: Any) -> str:
    reply = await client.chat.completions.create(model=GPT, messages=QUESTION, **kw)
    return reply.choices[0].message.content


async def gpt_stream(client: openai.AsyncOpenAI, **kw: Any) -> str:
    stream = await client.chat.completions.create(model=GPT, messages=QUESTION, stream=True,
                                                  stream_options={"include_usage": True}, **kw)
    return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])


async def claude(client: anthropic.AsyncAnthropic, **kw: Any) -> str:
    message = await client.messages.create(model=CLAUDE, max_tokens=64, messages=QUESTION, **kw)
    return "".join(block.text for block in message.content)


async def claude_stream(client: anthropic.AsyncAnthropic, **kw: Any) -> str:
    async with client.messages.stream(model=CLAUDE, max_tokens=64, messages=QUESTION, **kw) as stream:
        return "".join([text async for text in stream.text_stream])


async def claude_events(client: anthropic.AsyncAnthropic) -> list[str]:
    stream = await client.messages.create(model=CLAUDE, max_tokens=64, messages=QUESTION, stream=True)
    return [event.type async for event in stream]


# -- healthy: a transparent pass-through ------------------------------------------------------------

async def test_no_fault_passes_through_and_logs_each_request(emulator, rig, module):
    chat = rig.openai(module)
    assert await gpt(chat) == ANSWER
    assert await gpt_stream(chat) == ANSWER
    entries = rig.chaos.log.since()
    assert [(e["route"], e["method"], e["path"], e["model"], e["stream"], e["status"], e["faults"])
            for e in entries] == [("openai", "POST", "/chat/completions", GPT, False, 200, []),
                                  ("openai", "POST", "/chat/completions", GPT, True, 200, [])]
    assert entries[0]["upstream"] == emulator.url + "/openai/v1/chat/completions"
    assert all(0 < e["ttfb_ms"] <= e["total_ms"] for e in entries)
    assert not any("error" in e or "broken" in e for e in entries)
    assert rig.done == entries  # each entry done once its body was read and closed
    assert [e["path"] for e in emulator.emu.log] == ["/openai/v1/chat/completions"] * 2


async def test_anthropic_passes_through(emulator, rig):
    client = rig.anthropic()
    assert await claude(client) == ANSWER
    assert await claude_stream(client) == ANSWER
    assert [(e["route"], e["path"], e["stream"], e["status"]) for e in rig.chaos.log.since()] == [
        ("anthropic", "/v1/messages", False, 200), ("anthropic", "/v1/messages", True, 200)]
    assert len(rig.done) == 2 and not any("error" in e for e in rig.done)


async def test_anthropic_refuses_an_httpx_client(rig):
    # SDK finding: anthropic 2.x takes only an httpx2 client; openai 3.x takes either.
    with pytest.raises(TypeError, match="httpx2"):
        anthropic.AsyncAnthropic(api_key="x", http_client=httpx.AsyncClient(transport=rig.chaos))


@pytest.mark.parametrize("module", list(MODULES))
async def test_sync_clients(emulator, module):
    chaos = ChaosTransport()
    done: list[dict[str, Any]] = []
    chaos.log.sink = done.append

    def run() -> tuple[str, str, type]:
        with openai.OpenAI(base_url=emulator.url + "/openai/v1", api_key="sk-test", max_retries=0, timeout=TIMEOUT,
                           http_client=MODULES[module].Client(transport=chaos)) as client:
            whole = client.chat.completions.create(model=GPT, messages=QUESTION).choices[0].message.content
            chaos.faults.add(Fault.from_dict({"type": "stream_cut", "params": {"after_chunks": 3}}))
            stream = client.chat.completions.create(model=GPT, messages=QUESTION, stream=True)
            cut = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            chaos.faults.clear()
            chaos.faults.add(Fault.from_dict({"type": "hang", "params": {"seconds": 5}}))
            try:
                client.chat.completions.create(model=GPT, messages=QUESTION, timeout=SHORT)
            except openai.APIError as exc:
                return whole, cut, type(exc)
            return whole, cut, type(None)

    # the emulator serves on this loop: the blocking client runs in a thread
    whole, cut, raised = await asyncio.to_thread(run)
    assert whole == ANSWER
    assert cut == "".join(WORDS[:3])
    assert raised is openai.APITimeoutError
    assert [e["faults"] for e in chaos.log.since()] == [[], ["stream_cut"], ["hang"]]
    assert [(e["status"], e.get("broken")) for e in done] == [(200, None), (200, "stream_cut"), (None, None)]
    assert len(emulator.emu.log) == 2  # the hang never reached the provider


# -- error responses, in the provider's own format, without calling the upstream -----------------------

# The same classes as with the emulator and the proxy (test_sdk_compat), plus flapping.
OPENAI_ERRORS = {**SDK_OPENAI_ERRORS, "flapping": (openai.InternalServerError, 503, None)}  # created: down phase
ANTHROPIC_ERRORS = {**SDK_ANTHROPIC_ERRORS, "flapping": (anthropic.ServiceUnavailableError, 503, "api_error")}


@pytest.mark.parametrize("fault", list(OPENAI_ERRORS))
async def test_openai_error_class(emulator, rig, module, fault):
    rig.inject(fault)
    cls, status, code = OPENAI_ERRORS[fault]
    client = rig.openai(module)
    for call in (gpt, gpt_stream):
        with pytest.raises(openai.APIStatusError) as caught:
            await call(client)
        assert type(caught.value) is cls, call.__name__
        assert (caught.value.status_code, caught.value.code) == (status, code), call.__name__
    assert rig.statuses() == [status, status]
    assert [e["faults"] for e in rig.done] == [[fault], [fault]]
    assert len(emulator.emu.log) == 0  # answered at the "edge": the provider never saw it


@pytest.mark.parametrize("fault", list(ANTHROPIC_ERRORS))
async def test_anthropic_error_class(emulator, rig, fault):
    rig.inject(fault)
    cls, status, etype = ANTHROPIC_ERRORS[fault]
    client = rig.anthropic()
    for call in (claude, claude_stream):
        with pytest.raises(anthropic.APIStatusError) as caught:
            await call(client)
        assert type(caught.value) is cls, call.__name__
        assert (caught.value.status_code, caught.value.type) == (status, etype), call.__name__
        assert caught.value.request_id == caught.value.body["request_id"], call.__name__
    assert rig.statuses() == [status, status]
    assert len(emulator.emu.log) == 0


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
async def test_rate_limit_is_retried_by_the_sdk(emulator, rig, sdk):
    fault = rig.inject("rate_limited", retry_after=SHORT)
    # lift the fault once the 429 has been read: the retry then goes through
    rig.chaos.log.sink = lambda entry: rig.chaos.faults.remove(fault.id)
    started = time.monotonic()
    answer = await (gpt(rig.openai(max_retries=1)) if sdk == "openai" else claude(rig.anthropic(max_retries=1)))
    assert answer == ANSWER  # the product never sees the 429
    assert time.monotonic() - started >= SHORT  # the SDK waited as retry-after said
    assert [(e["status"], e["faults"]) for e in rig.chaos.log.since()] == [(429, ["rate_limited"]), (200, [])]
    assert len(emulator.emu.log) == 1


# -- connection faults ------------------------------------------------------------------------------

async def test_connection_reset_is_a_connection_error(emulator, rig, module):
    rig.inject("connection_reset")
    with pytest.raises(openai.APIConnectionError) as caught:
        await gpt_stream(rig.openai(module))
    assert type(caught.value) is openai.APIConnectionError  # not its APITimeoutError subclass
    cause = caught.value.__cause__
    assert type(cause) is MODULES[module].ReadError
    assert "Connection reset by peer" in str(cause)
    assert isinstance(cause.__cause__, ConnectionResetError)
    with pytest.raises(anthropic.APIConnectionError) as claude_caught:
        await claude(rig.anthropic())
    assert type(claude_caught.value) is anthropic.APIConnectionError
    assert rig.statuses() == [None, None]
    assert len(rig.done) == 2 and len(emulator.emu.log) == 0


async def test_unreachable_is_a_connect_error(emulator, rig, module):
    rig.inject("unreachable")
    with pytest.raises(openai.APIConnectionError) as caught:
        await gpt(rig.openai(module))
    assert type(caught.value) is openai.APIConnectionError
    cause = caught.value.__cause__
    assert type(cause) is MODULES[module].ConnectError
    assert cause.__cause__.errno == errno.ENETUNREACH
    with pytest.raises(anthropic.APIConnectionError):
        await claude_stream(rig.anthropic())
    assert len(emulator.emu.log) == 0


async def test_hang_times_out_at_the_clients_read_timeout(emulator, rig, module):
    rig.inject("hang", seconds=30)
    chat, claude_client = rig.openai(module, timeout=SHORT), rig.anthropic(timeout=SHORT)  # built off the clock
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError) as caught:
        await gpt_stream(chat)
    # slack for a slow machine; the client default (TIMEOUT) or the hang itself would take >= 10 s
    assert SHORT * 0.9 <= time.monotonic() - started < SHORT + 4
    assert type(caught.value.__cause__) is MODULES[module].ReadTimeout
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        await claude(claude_client)
    assert SHORT * 0.9 <= time.monotonic() - started < SHORT + 4
    assert rig.statuses() == [None, None] and len(rig.done) == 2
    assert len(emulator.emu.log) == 0


async def test_hang_shorter_than_the_timeout_ends_with_no_response(rig):
    # as through the proxy: after `seconds` the connection closes, nothing sent
    rig.inject("hang", seconds=0.1)
    client = rig.openai()  # built off the clock
    started = time.monotonic()
    with pytest.raises(openai.APIConnectionError) as caught:
        await gpt(client)
    assert type(caught.value) is openai.APIConnectionError
    assert type(caught.value.__cause__) is httpx2.RemoteProtocolError
    # ends at the fault's 0.1 s; waiting out the client's read timeout (TIMEOUT) would take 10 s
    assert 0.09 <= time.monotonic() - started < 4


# -- faults inside a 200 stream: the real upstream stream, edited --------------------------------------

async def test_stream_cut_returns_partial_text_silently(rig, module):
    rig.inject("stream_cut", after_chunks=2)
    assert await gpt_stream(rig.openai(module)) == "".join(WORDS[:2])
    claude_client = rig.anthropic()
    assert await claude_stream(claude_client) == "".join(WORDS[:2])
    assert await claude_events(claude_client) == ["message_start", "content_block_start", "content_block_delta",
                                                  "content_block_delta"]
    assert [e["broken"] for e in rig.done] == ["stream_cut"] * 3
    assert not any("error" in e for e in rig.done)


async def test_malformed_chunk_escapes_the_sdk(rig, module):
    rig.inject("malformed_chunk")
    with pytest.raises(json.JSONDecodeError):
        await gpt_stream(rig.openai(module))
    with pytest.raises(json.JSONDecodeError):
        await claude_stream(rig.anthropic())
    assert [e["broken"] for e in rig.chaos.log.since()] == ["malformed_chunk"] * 2


async def test_stream_error_is_raised_from_a_200(rig, module):
    rig.inject("stream_error", error="overloaded")
    got: list[str] = []
    stream = await rig.openai(module).chat.completions.create(model=GPT, messages=QUESTION, stream=True)
    with pytest.raises(openai.APIError) as gpt_caught:
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert type(gpt_caught.value) is openai.APIError
    assert "".join(got) == WORDS[0]
    with pytest.raises(anthropic.APIStatusError) as claude_caught:
        await claude_stream(rig.anthropic())
    assert type(claude_caught.value) is anthropic.APIStatusError
    assert (claude_caught.value.status_code, claude_caught.value.type) == (200, "overloaded_error")
    assert rig.statuses() == [200, 200]


async def test_stream_stall(rig, module):
    rig.inject("stream_stall", seconds=30)
    client = rig.openai(module, timeout=SHORT)  # built off the clock
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await gpt_stream(client)
    # slack for a slow machine; the client default (TIMEOUT) or the stall itself would take >= 10 s
    assert time.monotonic() - started < SHORT + 4
    # as against the emulator: anthropic's stream lets the transport's own timeout out
    with pytest.raises(httpx2.ReadTimeout):
        await claude_stream(rig.anthropic(timeout=SHORT))
    assert [e["broken"] for e in rig.chaos.log.since()] == ["stream_stall"] * 2


async def test_missing_terminator_is_invisible(rig, module):
    rig.inject("missing_terminator")
    assert await gpt_stream(rig.openai(module)) == ANSWER
    claude_client = rig.anthropic()
    async with claude_client.messages.stream(model=CLAUDE, max_tokens=64, messages=QUESTION) as stream:
        final = await stream.get_final_message()
    assert (final.content[0].text, final.stop_reason) == (ANSWER, "end_turn")
    assert (await claude_events(claude_client))[-1] == "message_delta"  # message_stop never came


# -- answers replaced: synthesized in the provider's format, the upstream not asked ----------------------

async def test_content_filtered(emulator, rig, module):
    rig.inject("content_filtered")
    client = rig.openai(module)
    reply = await client.chat.completions.create(model=GPT, messages=QUESTION)
    stream = await client.chat.completions.create(model=GPT, messages=QUESTION, stream=True)
    reasons = [c.choices[0].finish_reason async for c in stream if c.choices and c.choices[0].finish_reason]
    assert (reply.choices[0].finish_reason, reply.choices[0].message.content) == ("content_filter", "")
    assert reasons == ["content_filter"]
    message = await rig.anthropic().messages.create(model=CLAUDE, max_tokens=64, messages=QUESTION)
    assert (message.stop_reason, message.content) == ("refusal", [])
    assert len(emulator.emu.log) == 0
    assert [e["faults"] for e in rig.done] == [["content_filtered"]] * 3


async def test_empty_and_wrong_answers(rig, module):
    empty = rig.inject("empty_answer")
    client, claude_client = rig.openai(module), rig.anthropic()
    assert (await gpt(client), await gpt_stream(client), await claude_stream(claude_client)) == ("", "", "")
    rig.chaos.faults.remove(empty.id)
    rig.inject("wrong_answer")
    # 2 plus 3 is 5; the wrong model says 12
    assert (await gpt(client), await gpt_stream(client), await claude(claude_client)) == ("12", "12", "12")


# -- timing -------------------------------------------------------------------------------------------

async def _timed_stream(client: openai.AsyncOpenAI) -> tuple[float, list[float]]:
    """Seconds to the first text chunk, and each text chunk's arrival."""
    started = time.monotonic()
    stream = await client.chat.completions.create(model=GPT, messages=QUESTION, stream=True)
    arrivals = [time.monotonic() - started async for c in stream if c.choices and c.choices[0].delta.content]
    return arrivals[0], arrivals


async def test_first_token_delay_is_added_once(rig, module):
    client = rig.openai(module)
    _, healthy = await _timed_stream(client)
    rig.inject("first_token_delay", delay_ms=300)
    first, delayed = await _timed_stream(client)
    assert first >= 0.3
    assert len(delayed) == 8
    # once, before the headers: the rest of the answer keeps its pace. The 1 s margins are for a
    # slow machine: a per-chunk delay would add >= 7 * 0.3 = 2.1 s between the first and last
    # chunk, and 8 * 0.3 = 2.4 s to the last one.
    assert delayed[-1] - delayed[0] < healthy[-1] - healthy[0] + 1.0
    assert delayed[-1] < healthy[-1] + 0.3 + 1.0
    assert rig.chaos.log.since()[-1]["ttfb_ms"] >= 300


async def test_slow_tokens_space_the_chunks(rig, module):
    rig.inject("slow_tokens", gap_ms=60)
    _, arrivals = await _timed_stream(rig.openai(module))
    assert len(arrivals) == 8
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # The transport spaces each chunk from when it sent the one before, so a chunk the client
    # read late is followed by a short gap: no single gap is bounded, the span is. Chunks 1..7
    # each wait 60 ms after the previous one went out, and chunk 1 goes out only after chunk 0
    # was read: >= 6 * 0.06 = 0.36 s. Unpaced, the emulator's 2 ms gaps make it ~0.015 s.
    assert arrivals[-1] - arrivals[0] >= 0.34, gaps
    assert rig.done[-1]["faults"] == ["slow_tokens"]


# -- which requests a fault hits -------------------------------------------------------------------------

async def test_a_lapsed_lease_does_nothing(emulator, rig):
    rig.chaos.faults.add(Fault(type="server_error", params={"status": 500}, expires_at=time.time() - 1))
    assert await gpt(rig.openai()) == ANSWER
    assert rig.chaos.log.since()[0]["faults"] == []
    assert rig.chaos.faults.active() == []


async def test_scope_by_feature_header(emulator, rig, module):
    rig.chaos.faults.add(Fault.from_dict({"type": "overloaded", "feature": "checkout"}))
    client = rig.openai(module)
    with pytest.raises(openai.InternalServerError):
        await gpt(client, extra_headers={"X-AIRisk-Feature": "checkout"})
    assert await gpt(client, extra_headers={"X-AIRisk-Feature": "search"}) == ANSWER
    assert await gpt(client) == ANSWER
    assert [(e["feature"], e["status"]) for e in rig.chaos.log.since()] == [
        ("checkout", 503), ("search", 200), (None, 200)]
    assert [e["feature"] for e in emulator.emu.log] == [None, None]  # the header never left the process


async def test_scope_by_route_and_path(emulator, rig):
    rig.chaos.faults.add(Fault.from_dict({"type": "auth", "route": "anthropic"}))
    rig.chaos.faults.add(Fault.from_dict({"type": "model_not_found", "route": "openai", "path": "/completions"}))
    client = rig.openai()
    assert await gpt(client) == ANSWER  # /chat/completions: not under /completions
    with pytest.raises(openai.NotFoundError):
        await client.completions.create(model=GPT, prompt="What is 2 plus 3?", max_tokens=8)
    with pytest.raises(anthropic.AuthenticationError):
        await claude(rig.anthropic())


async def test_explicit_route_wins(emulator):
    chaos = ChaosTransport(route="mistral")
    chaos.faults.add(Fault.from_dict({"type": "server_error", "route": "openai"}))
    async with openai.AsyncOpenAI(base_url=emulator.url + "/openai/v1", api_key="x", max_retries=0,
                                  http_client=httpx2.AsyncClient(transport=chaos)) as client:
        assert await gpt(client) == ANSWER
        chaos.faults.add(Fault.from_dict({"type": "server_error", "route": "mistral"}))
        with pytest.raises(openai.InternalServerError):
            await gpt(client)
    assert [(e["route"], e["path"]) for e in chaos.log.since()] == [("mistral", "/chat/completions")] * 2


# -- route resolution against real hostnames (MockTransport stands in for the provider) ---------------------

@pytest.mark.parametrize(("url", "route", "path"), [
    ("https://api.openai.com/v1/chat/completions", "openai", "/chat/completions"),
    ("https://api.anthropic.com/v1/messages", "anthropic", "/v1/messages"),
    ("https://generativelanguage.googleapis.com/v1beta/models/g:streamGenerateContent?alt=sse", "gemini",
     "/v1beta/models/g:streamGenerateContent"),
    ("https://api.groq.com/openai/v1/chat/completions", "groq", "/chat/completions"),
    ("https://api.cohere.com/v2/chat", "cohere", "/v2/chat"),
    ("https://acme.openai.azure.com/openai/deployments/d/chat/completions", "azure-openai",
     "/openai/deployments/d/chat/completions"),
    ("http://127.0.0.1:11434/api/chat", "ollama", "/api/chat"),
    ("http://localhost:8000/v1/chat/completions", "vllm", "/chat/completions"),
    ("http://127.0.0.1:8470/openai/v1/chat/completions", "openai", "/chat/completions"),
    ("http://127.0.0.1:11434/anthropic/v1/messages", "anthropic", "/v1/messages"),
    ("http://localhost:8470/azure-openai/openai/deployments/d/chat/completions", "azure-openai",
     "/openai/deployments/d/chat/completions"),
    ("https://api.openai.com.evil.example/v1/chat/completions", None, "/v1/chat/completions"),
    ("https://example.com/openai/v1/chat/completions", None, "/openai/v1/chat/completions"),  # prefix: loopback only
    ("http://127.0.0.1:9999/v1/chat/completions", None, "/v1/chat/completions"),
])
def test_resolve(url, route, path):
    got = resolve(url)
    assert (got.route, got.path) == (route, path)


async def test_real_hostnames_through_a_mock_provider():
    seen: list[Any] = []

    def provider(request):
        seen.append(request)
        if request.url.host == "api.anthropic.com":
            return httpx2.Response(200, json={
                "id": "msg_1", "type": "message", "role": "assistant", "model": CLAUDE, "stop_reason": "end_turn",
                "content": [{"type": "text", "text": "5"}], "usage": {"input_tokens": 1, "output_tokens": 1}})
        return httpx.Response(200, json={
            "id": "c1", "object": "chat.completion", "created": 1, "model": GPT,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "5"}, "finish_reason": "stop"}]})

    chaos = ChaosTransport(httpx.MockTransport(provider))
    chaos.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
    async with openai.AsyncOpenAI(api_key="x", max_retries=0,
                                  http_client=httpx.AsyncClient(transport=chaos)) as client:
        assert await gpt(client, extra_headers={"X-AIRisk-Feature": "chat"}) == "5"
        chaos.faults.add(Fault.from_dict({"type": "stream_cut", "route": "openai"}))
        assert await gpt(client) == "5"  # not a stream: nothing to cut, passed on untouched
    claude_chaos = ChaosTransport(httpx2.MockTransport(provider), faults=chaos.faults)
    async with anthropic.AsyncAnthropic(api_key="x", max_retries=0,
                                        http_client=httpx2.AsyncClient(transport=claude_chaos)) as client:
        with pytest.raises(anthropic.OverloadedError):
            await claude(client)
    entry = chaos.log.since()[0]
    assert (entry["route"], entry["path"], entry["upstream"], entry["feature"]) == (
        "openai", "/chat/completions", "https://api.openai.com/v1/chat/completions", "chat")
    assert [(e["route"], e["path"]) for e in claude_chaos.log.since()] == [("anthropic", "/v1/messages")]
    assert len(seen) == 2  # the overloaded answer never reached the provider
    assert "x-airisk-feature" not in seen[0].headers
    # a stream fault in the plan: the request asks for an unencoded body the editor can read
    assert seen[0].headers["accept-encoding"] != "identity"
    assert seen[1].headers["accept-encoding"] == "identity"


async def test_unknown_host_passes_through_untouched():
    seen: list[httpx.Request] = []

    def provider(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    chaos = ChaosTransport(httpx.MockTransport(provider))
    chaos.faults.add(Fault.from_dict({"type": "server_error"}))  # no scope: would hit any route
    async with httpx.AsyncClient(transport=chaos) as client:
        response = await client.post("https://llm.internal.example/v1/chat/completions",
                                     json={"model": GPT, "messages": QUESTION})
    assert response.json() == {"ok": True}
    assert len(seen) == 1
    entry = chaos.log.since()[0]
    assert (entry["route"], entry["path"], entry["status"], entry["faults"]) == (
        None, "/v1/chat/completions", 200, [])


def test_sync_hang_without_a_read_timeout_waits_the_faults_seconds():
    chaos = ChaosTransport(httpx.MockTransport(lambda request: httpx.Response(200)))
    chaos.faults.add(Fault.from_dict({"type": "hang", "params": {"seconds": 0.1}}))
    with httpx.Client(transport=chaos, timeout=None) as client:
        started = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("https://api.openai.com/v1/chat/completions", json={"model": GPT, "messages": QUESTION})
        # the fault's 0.1 s, with slack for a slow machine; with no read timeout, not ending there never ends
        assert 0.09 <= time.monotonic() - started < 4
    with httpx.Client(transport=chaos, timeout=0.05) as client, pytest.raises(httpx.ReadTimeout):
        client.post("https://api.openai.com/v1/chat/completions", json={"model": GPT, "messages": QUESTION})
    assert [e["faults"] for e in chaos.log.since()] == [["hang"], ["hang"]]


def test_a_closing_read_over_the_parsers_line_cap_is_judged_not_raised():
    # The probes' parsers cap a line at 1 MiB (ValueError past it); the close check reads the last chunk
    # the product saw, which a wrapped transport may hand over whole.
    from chaos.transport import _ends_stream

    assert _ends_stream("openai", b"data: " + b"x" * (2 << 20)) is False
    assert _ends_stream("openai", b'data: {"choices": []}\n\ndata: [DONE]\n\n') is True


def test_a_stream_event_over_the_editors_cap_is_passed_on_and_logged_as_the_proxy_does(monkeypatch):
    import chaos.rewrite

    monkeypatch.setattr(chaos.rewrite, "MAX_EVENT", 64 * 1024)
    body = b'data: {"x": "' + b"y" * 100_000 + b'"}\n\n' + b"data: [DONE]\n\n"
    upstream = httpx.MockTransport(lambda request: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=httpx.ByteStream(body)))
    transport = ChaosTransport(upstream, route="openai")
    transport.faults.add(Fault.from_dict({"type": "stream_cut", "params": {"after_chunks": 0}}))
    with httpx.Client(transport=transport, base_url="https://api.openai.com") as client:
        response = client.post("/v1/chat/completions", json={"model": "m", "stream": True, "messages": []})
    assert response.content == body
    entry = transport.log.since()[-1]
    assert entry["broken"] is None and "passed on unedited" in entry["error"]
