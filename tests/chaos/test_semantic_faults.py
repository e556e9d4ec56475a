"""The four semantic faults (a 200 with a bad answer) in every protocol, through every injection point.

A provider that answers 200 with a truncated, unparseable, refused or foreign-language answer is
the outage no status code shows. Each fault is sent three ways, and must look the same each way:
by the emulator itself, by the fault proxy in front of a healthy emulator, and by `ChaosTransport`
inside the client. Two readers check it: airisk's own probe (every protocol: its dialect parsers
read the answer, and its canary judges it), and the official `openai` and `anthropic` SDKs, which
must parse every answer without complaint (a bad answer is well-formed: only the product's own
checks can catch it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.faults import FAULT_TYPES, Fault, FaultError, FaultSet
from chaos.faults.catalogue import stream_effect
from chaos.faults.types.invalid_json import FORMS
from chaos.faults.types.refusal import PHRASES
from chaos.faults.types.truncated_answer import CUT
from chaos.faults.types.wrong_language import LANGUAGES
from chaos.proxy import FaultProxy
from chaos.proxyserve import serve_proxy
from chaos.rewrite import synthesize
from chaos.routes import catalog_routes, sdk_base
from chaos.speakers import SPEAKERS, Ask
from chaos.transport import ChaosTransport
from probes import ErrorKind, probe
from probes.catalog import get_provider
from probes.dialects import get_dialect
from probes.dialects.base import merge
from probes.framing import NDJSONParser, SSEParser
from probes.target import Target
from tests.conftest import SHORT

pytestmark = pytest.mark.sdk

SEMANTIC = ["truncated_answer", "invalid_json", "refusal", "wrong_language"]
PROVIDERS = ["openai", "azure-openai", "anthropic", "gemini", "cohere", "ollama"]
REFUSAL_FIELD = {"openai", "azure-openai", "anthropic"}  # a refusal field of their own (see refusal.py)
QUESTION = [{"role": "user", "content": "What is 2 plus 3? Reply with the number only."}]
GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"


def kind_for(fault_type: str, provider: str) -> ErrorKind:
    """What the probe makes of each: a refusal field reads as filtered, a declining text fails the
    canary, and a right fact in the wrong language passes it (only a language check sees that)."""
    if fault_type == "refusal":
        return ErrorKind.CONTENT_FILTERED if provider in REFUSAL_FIELD else ErrorKind.WRONG_ANSWER
    if fault_type == "wrong_language":
        return ErrorKind.OK
    return ErrorKind.WRONG_ANSWER


def test_each_is_in_the_catalogue_with_its_chosen_expectation():
    # expect is what a probe gets on EVERY protocol (the fault matrix checks it); None where that
    # differs by protocol (refusal) or where the probe cannot see the fault at all (wrong_language).
    assert {n: FAULT_TYPES[n].expect for n in SEMANTIC} == {
        "truncated_answer": ErrorKind.WRONG_ANSWER, "invalid_json": ErrorKind.WRONG_ANSWER,
        "refusal": None, "wrong_language": None}
    assert all(FAULT_TYPES[n].category == "stream" and not FAULT_TYPES[n].edits for n in SEMANTIC)


@pytest.mark.parametrize(("fault_type", "params", "problem"), [
    ("invalid_json", {"form": "yaml"}, "fault.params.form: one of ['schema', 'unparseable'], got 'yaml'"),
    ("wrong_language", {"language": "tlh"}, "fault.params.language: one of ['de', 'es', 'fr', 'ja'], got 'tlh'"),
    ("wrong_language", {"language": 3}, "fault.params.language: must be a string, got 3"),
    ("refusal", {"text": "no"}, "fault.params.text: refusal takes no such parameter (takes: none)"),
])
def test_a_bad_parameter_is_refused_by_name(fault_type, params, problem):
    with pytest.raises(FaultError) as err:
        Fault.from_dict({"type": fault_type, "params": params})
    assert str(err.value) == problem


# -- the probe, every protocol, three injection points -------------------------------------------------

@dataclass
class Point:
    faults: FaultSet
    client: httpx.AsyncClient
    base: Any  # provider name -> Target

    def target(self, provider: str) -> Target:
        return self.base(provider)


@pytest.fixture(params=["emulator", "proxy", "transport"])
async def point(request, emulator, client) -> AsyncIterator[Point]:
    if request.param == "emulator":
        yield Point(emulator.emu.faults, client, emulator.target)
        return
    if request.param == "transport":
        chaos = ChaosTransport()
        async with httpx.AsyncClient(transport=chaos) as inside:
            yield Point(chaos.faults, inside, emulator.target)
        return
    proxy = FaultProxy(catalog_routes(emulator.url))
    running = await serve_proxy(proxy, port=0)

    def through(provider: str) -> Target:
        p = get_provider(provider)
        suffix = p.emulator_prefix[len(sdk_base(p.dialect, p.emulator_prefix)):]  # what the route's base leaves out
        return Target.from_provider(p, base_url=f"{running.url}/{provider}{suffix}", key_env=None, deadlines=SHORT)

    try:
        yield Point(proxy.faults, client, through)
    finally:
        await running.stop()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fault_type", SEMANTIC)
async def test_the_probe_reads_each_answer_in_each_protocol(point, provider, fault_type):
    point.faults.add(Fault.from_dict({"type": fault_type, "route": provider}))
    result = await probe(point.target(provider), client=point.client)
    assert result.error_kind is kind_for(fault_type, provider), result.message
    assert result.http_status == 200  # no status code shows any of them
    assert result.stream_complete is True  # and every stream is well-formed to its end


# -- the official SDKs, through the three injection points ----------------------------------------------

@dataclass
class Sdks:
    gpt: openai.AsyncOpenAI
    claude: anthropic.AsyncAnthropic
    faults: FaultSet

    def inject(self, fault_type: str, **params: Any) -> None:
        self.faults.add(Fault.from_dict({"type": fault_type, "params": params}))


@pytest.fixture(params=["emulator", "proxy", "transport"])
async def sdks(request, emulator) -> AsyncIterator[Sdks]:
    opts: dict[str, Any] = {"max_retries": 0, "timeout": 10.0}
    running = None
    if request.param == "emulator":
        faults, gpt_base, claude_base, http = emulator.emu.faults, emulator.url + "/openai/v1", \
            emulator.url + "/anthropic", None
    elif request.param == "proxy":
        proxy = FaultProxy(catalog_routes(emulator.url))
        running = await serve_proxy(proxy, port=0)
        faults, gpt_base, claude_base, http = proxy.faults, running.url + "/openai", running.url + "/anthropic", None
    else:
        chaos = ChaosTransport()
        faults, gpt_base, claude_base, http = chaos.faults, emulator.url + "/openai/v1", \
            emulator.url + "/anthropic", chaos
    gpt = openai.AsyncOpenAI(base_url=gpt_base, api_key="sk-test", **opts,
                             **({"http_client": httpx.AsyncClient(transport=http)} if http else {}))
    claude = anthropic.AsyncAnthropic(base_url=claude_base, api_key="sk-ant-test", **opts,
                                      **({"http_client": httpx2.AsyncClient(transport=http)} if http else {}))
    try:
        yield Sdks(gpt, claude, faults)
    finally:
        await gpt.close()
        await claude.close()
        if running is not None:
            await running.stop()


async def gpt_both(s: Sdks) -> tuple[Any, list[Any]]:
    """A whole answer, and the chunks of a streamed one."""
    reply = await s.gpt.chat.completions.create(model=GPT, messages=QUESTION)
    stream = await s.gpt.chat.completions.create(model=GPT, messages=QUESTION, stream=True)
    return reply, [c async for c in stream if c.choices]


async def claude_both(s: Sdks) -> tuple[Any, Any]:
    """A whole answer, and a streamed one's final message as the SDK assembles it."""
    message = await s.claude.messages.create(model=CLAUDE, max_tokens=64, messages=QUESTION)
    async with s.claude.messages.stream(model=CLAUDE, max_tokens=64, messages=QUESTION) as stream:
        streamed = await stream.get_final_message()
    return message, streamed


def gpt_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks)


def claude_text(message: Any) -> str:
    return "".join(block.text for block in message.content)


async def test_truncated_answer_stops_mid_sentence_with_the_length_finish(sdks):
    sdks.inject("truncated_answer")
    reply, chunks = await gpt_both(sdks)
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == (CUT, "length")
    assert (gpt_text(chunks), [c.choices[0].finish_reason for c in chunks][-1]) == (CUT, "length")
    message, streamed = await claude_both(sdks)
    assert claude_text(message) == claude_text(streamed) == CUT
    assert message.stop_reason == streamed.stop_reason == "max_tokens"
    assert not CUT.endswith((".", "!", "?"))  # mid-sentence


@pytest.mark.parametrize("form", sorted(FORMS))
async def test_invalid_json_does_not_parse_or_breaks_its_schema(sdks, form):
    sdks.inject("invalid_json", form=form)
    reply, chunks = await gpt_both(sdks)
    message, streamed = await claude_both(sdks)
    texts = [reply.choices[0].message.content, gpt_text(chunks), claude_text(message), claude_text(streamed)]
    assert texts == [FORMS[form]] * 4
    assert reply.choices[0].finish_reason == "stop" and message.stop_reason == "end_turn"
    if form == "unparseable":
        with pytest.raises(json.JSONDecodeError):
            json.loads(texts[0])
    else:
        parsed = json.loads(texts[0])
        assert isinstance(parsed, dict) and parsed["answer"] is None  # parses; the fields asked for are not there


async def test_refusal_fills_each_providers_own_refusal_field(sdks):
    sdks.inject("refusal")
    reply, chunks = await gpt_both(sdks)
    message = reply.choices[0].message
    assert (message.refusal, message.content, reply.choices[0].finish_reason) == (PHRASES["openai"], None, "stop")
    assert "".join(c.choices[0].delta.refusal or "" for c in chunks) == PHRASES["openai"]
    assert gpt_text(chunks) == ""
    claude, streamed = await claude_both(sdks)
    assert claude.stop_reason == streamed.stop_reason == "refusal"
    assert claude_text(claude) == claude_text(streamed) == PHRASES["anthropic"]


@pytest.mark.parametrize("language", sorted(LANGUAGES))
async def test_wrong_language_keeps_the_fact_and_changes_the_language(sdks, language):
    sdks.inject("wrong_language", language=language)
    reply, chunks = await gpt_both(sdks)
    message, streamed = await claude_both(sdks)
    want = f"5 {LANGUAGES[language][0]}"
    assert [reply.choices[0].message.content, gpt_text(chunks), claude_text(message), claude_text(streamed)] == \
        [want] * 4
    assert reply.choices[0].finish_reason == "stop" and message.stop_reason == "end_turn"


# -- any request: the answer is well-formed in its protocol -----------------------------------------------

semantic_faults = st.sampled_from([
    {"type": "truncated_answer"}, {"type": "refusal"},
    *({"type": "invalid_json", "params": {"form": f}} for f in sorted(FORMS)),
    *({"type": "wrong_language", "params": {"language": lang}} for lang in sorted(LANGUAGES))])


@settings(max_examples=200, deadline=None)
@given(dialect=st.sampled_from(sorted(SPEAKERS)), spec=semantic_faults, prompt=st.text(max_size=200),
       model=st.text(max_size=40), max_tokens=st.integers(1, 300), stream=st.booleans(), completions=st.booleans())
def test_whatever_the_request_the_answer_reads_back_in_its_own_protocol(dialect, spec, prompt, model, max_tokens,
                                                                        stream, completions):
    """The product's prompt and model are outside input: whatever they are, the synthesized answer
    parses with the probe's own reader for the protocol, with the fault's words and finish."""
    ask = Ask(model=model, prompt=prompt, max_tokens=max_tokens, stream=stream,
              completions=completions and dialect == "openai")
    fault = Fault.from_dict(spec)
    effect = stream_effect(fault, SPEAKERS[dialect], ask)
    synth = synthesize(dialect, fault, ask)
    assert synth is not None and effect is not None and synth.status == 200
    reader = get_dialect(dialect)
    body = b"".join(synth.frames)
    if stream:
        parser = NDJSONParser() if reader.framing == "ndjson" else SSEParser()
        got = merge([reader.parse_event(e) for e in [*parser.feed(body), *parser.close()]])
    else:
        got = reader.parse_body(body)
    words = "".join(effect.words)
    assert 1 <= len(effect.words) <= max_tokens
    if spec["type"] == "refusal" and dialect == "openai" and not ask.completions:
        # the probe keeps the first error a stream states: the refusal's first piece when streamed
        assert (got.text, got.error.type) == ("", "refusal")
        assert got.error.message == (effect.words[0] if stream else words)
    else:
        assert (got.text, got.error) == (words, None)
    finish = {"truncated_answer": "length"}.get(spec["type"], "stop")
    if spec["type"] == "refusal" and dialect == "anthropic":
        finish = "filter"  # stop_reason "refusal"
    assert got.finish == finish
    assert got.done or (dialect in ("openai", "anthropic") and not stream)
