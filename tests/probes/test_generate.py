"""`probes.generate`: a feature's conversation over each wire protocol, measured as a probe, the whole answer kept.

- Each dialect writes the conversation in its provider's documented shape (the bodies below are
  written from the references each dialect module cites).
- End to end against the emulator, for every emulated protocol and an OpenAI-compatible one: the
  whole answer to the last question comes back, with the probe's timings.
- A fault on the route is the error kind a probe gets; a wrong answer is no error here (no canary).
- Any conversation makes a request whose JSON round-trips and that the emulator's strict reader
  takes; any bytes back give a `Generation`, never an exception.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.asks import BadRequest, read_ask
from chaos.faults import FAULT_TYPES, Fault
from probes import Conversation, ErrorKind, Generation, Status, Target, generate, make_client
from probes.dialects import get_dialect
from probes.runner import ANSWER_LIMIT
from tests.probes.strategies import STREAM_TYPES, ProbeInput, check, probe_inputs, target_for
from tests.probes.test_dialects import stream

CHAT = Conversation(
    messages=(("user", "Can you add two numbers?"), ("assistant", "Yes."), ("user", "What is 19 plus 23?")),
    system="Answer with the number first.", max_tokens=40, temperature=0.3, top_p=0.9, stop=("###", "\n\n"),
)
TURNS = [{"role": "user", "content": "Can you add two numbers?"}, {"role": "assistant", "content": "Yes."},
         {"role": "user", "content": "What is 19 plus 23?"}]


def body_for(provider: str, conversation: Conversation = CHAT, **target: object) -> tuple[str, dict]:
    t = target_for(provider)
    if target:
        t = Target.from_provider(t.provider, key_env=None, options=t.options, **target)
    spec = get_dialect(t.dialect).build_request(t, "not read", api_key=None, conversation=conversation)
    url = httpx.URL(spec.url, params=spec.params or None)
    return str(url), spec.json


# -- each provider's own shape ---------------------------------------------------------------------------------


def test_openai_chat_puts_the_system_prompt_first_and_the_parameters_under_their_names():
    url, body = body_for("openai")
    assert url == "https://api.openai.com/v1/chat/completions"
    assert body == {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
                    "messages": [{"role": "system", "content": "Answer with the number first."}, *TURNS],
                    "max_tokens": 40, "temperature": 0.3, "top_p": 0.9, "stop": ["###", "\n\n"]}


def test_openai_reasoning_models_get_max_completion_tokens():
    t = Target.from_provider("openai", key_env=None, options={"max_tokens_field": "max_completion_tokens"})
    body = get_dialect("openai").build_request(t, "", api_key=None, conversation=CHAT).json
    assert body["max_completion_tokens"] == 40 and "max_tokens" not in body


def test_azure_sends_the_same_body_to_the_deployment_with_the_api_version():
    url, body = body_for("azure-openai")
    assert url == ("https://your-resource.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions"
                   "?api-version=2024-10-21")
    assert body["messages"] == [{"role": "system", "content": "Answer with the number first."}, *TURNS]
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["stop"]) == (40, 0.3, 0.9, ["###", "\n\n"])


def test_openai_legacy_completions_get_the_conversation_as_one_prompt():
    url, body = body_for("openai-completions")
    assert url == "https://api.openai.com/v1/completions"
    assert body == {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
                    "prompt": "Answer with the number first.\n\nUser: Can you add two numbers?\n\nAssistant: Yes.\n\n"
                              "User: What is 19 plus 23?\n\nAssistant:",
                    "max_tokens": 40, "temperature": 0.3, "top_p": 0.9, "stop": ["###", "\n\n"]}


def test_anthropic_puts_the_system_prompt_at_the_top_level():
    url, body = body_for("anthropic")
    assert url == "https://api.anthropic.com/v1/messages"
    assert body == {"model": "claude-haiku-4-5", "max_tokens": 40, "stream": True,
                    "system": "Answer with the number first.", "messages": TURNS,
                    "temperature": 0.3, "top_p": 0.9, "stop_sequences": ["###", "\n\n"]}


def test_anthropic_takes_a_temperature_of_at_most_1():
    _, body = body_for("anthropic", Conversation(messages=(("user", "hi"),), temperature=1.7))
    assert body["temperature"] == 1.0


def test_gemini_uses_system_instruction_model_turns_and_generation_config():
    url, body = body_for("gemini")
    assert url == ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash-lite"
                   ":streamGenerateContent?alt=sse")
    assert body == {
        "systemInstruction": {"parts": [{"text": "Answer with the number first."}]},
        "contents": [{"role": "user", "parts": [{"text": "Can you add two numbers?"}]},
                     {"role": "model", "parts": [{"text": "Yes."}]},
                     {"role": "user", "parts": [{"text": "What is 19 plus 23?"}]}],
        "generationConfig": {"maxOutputTokens": 40, "temperature": 0.3, "topP": 0.9,
                             "stopSequences": ["###", "\n\n"]},
    }


def test_cohere_v2_puts_the_system_prompt_first_and_calls_top_p_p():
    url, body = body_for("cohere")
    assert url == "https://api.cohere.com/v2/chat"
    assert body == {"model": "command-r7b-12-2024", "stream": True, "max_tokens": 40, "temperature": 0.3, "p": 0.9,
                    "stop_sequences": ["###", "\n\n"],
                    "messages": [{"role": "system", "content": "Answer with the number first."}, *TURNS]}


@pytest.mark.parametrize(("top_p", "p"), [(1.0, 0.99), (0.001, 0.01), (0.5, 0.5)])
def test_cohere_p_is_kept_in_the_range_the_api_takes(top_p, p):
    _, body = body_for("cohere", Conversation(messages=(("user", "hi"),), top_p=top_p))
    assert body["p"] == p


def test_ollama_puts_the_parameters_in_options_under_the_model_file_names():
    url, body = body_for("ollama")
    assert url == "http://127.0.0.1:11434/api/chat"
    assert body == {"model": "llama3.2:1b", "stream": True,
                    "messages": [{"role": "system", "content": "Answer with the number first."}, *TURNS],
                    "options": {"num_predict": 40, "temperature": 0.3, "top_p": 0.9, "stop": ["###", "\n\n"]}}


PROVIDERS = ["openai", "azure-openai", "openai-completions", "anthropic", "gemini", "cohere", "ollama"]
UNSET = {"temperature", "top_p", "stop", "p", "stop_sequences", "topP", "stopSequences", "system",
         "systemInstruction"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_parameters_left_unset_are_the_providers_defaults_and_max_tokens_the_targets(provider):
    _, body = body_for(provider, Conversation(messages=(("user", "hi"),)), max_tokens=21)
    sent = {**body, **body.get("generationConfig", {}), **body.get("options", {})}
    assert not UNSET & set(sent), sorted(UNSET & set(sent))
    assert 21 in (sent.get("max_tokens"), sent.get("maxOutputTokens"), sent.get("num_predict"))
    assert "system" not in json.dumps(body)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_without_a_conversation_the_probe_request_is_unchanged(provider):
    t = target_for(provider)
    dialect = get_dialect(t.dialect)
    plain = dialect.build_request(t, "[probe 1] What is 2 plus 2?", api_key="k")
    explicit = dialect.build_request(t, "[probe 1] What is 2 plus 2?", api_key="k", conversation=None)
    assert plain == explicit
    assert "[probe 1] What is 2 plus 2?" in json.dumps(plain.json)


# -- through generate, over a mock transport ---------------------------------------------------------------------


async def generate_over(provider: str, chunks: list[bytes], conversation: Conversation = CHAT, *,
                        status: int = 200, content_type: str | None = None) -> tuple[Generation, list[httpx.Request]]:
    target = target_for(provider)
    seen: list[httpx.Request] = []

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        ctype = content_type or STREAM_TYPES[target.dialect]
        return httpx.Response(status, headers={"content-type": ctype}, content=body())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await generate(target, conversation, client=client), seen


@pytest.mark.parametrize("provider", ["openai", "azure-openai", "anthropic", "gemini", "cohere", "ollama"])
async def test_the_whole_answer_comes_back_not_the_probes_200_characters(provider):
    pieces = [f"Line {i}: a longer answer, with \"quotes\", ünïcode and a newline.\n" for i in range(60)]
    g, seen = await generate_over(provider, [stream(provider, *pieces)])
    assert g.ok and g.result.error_kind is ErrorKind.OK, g.result.message
    assert g.text == "".join(pieces) and len(g.text) > 3000
    assert g.result.answer == g.text[:200]
    assert g.result.canary_pass is None and g.result.nonce is None
    sent = json.loads(seen[0].content)
    assert "What is 19 plus 23?" in json.dumps(sent, ensure_ascii=False)


async def test_the_text_kept_is_capped_at_answer_limit():
    pieces = ["x" * 1000] * (ANSWER_LIMIT // 1000 + 5)
    g, _ = await generate_over("openai", [stream("openai", *pieces)])
    assert g.ok and len(g.text) == ANSWER_LIMIT


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "cohere", "ollama"])
async def test_any_answer_text_is_ok_as_there_is_no_canary(provider):
    g, _ = await generate_over(provider, [stream(provider, "Paris, of course.")])
    assert (g.ok, g.text, g.result.status) == (True, "Paris, of course.", Status.UP)


async def test_an_answer_without_text_is_an_empty_answer():
    g, _ = await generate_over("anthropic", [stream("anthropic")])
    assert g.result.error_kind is ErrorKind.EMPTY_ANSWER and not g.ok and g.text == ""


async def test_a_provider_error_is_classified_as_for_a_probe():
    body = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).encode()
    g, _ = await generate_over("anthropic", [body], status=529, content_type="application/json")
    assert g.result.error_kind is ErrorKind.OVERLOADED and g.result.http_status == 529 and g.text == ""


async def test_a_conversation_that_is_not_one_is_bad_config_and_nothing_is_sent():
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(500))
    async with httpx.AsyncClient(transport=transport) as client:
        g = await generate(target_for("openai"), None, client=client)  # type: ignore[arg-type]
    assert g.result.error_kind is ErrorKind.BAD_CONFIG and g.text == "" and seen == []
    assert g.result.message == "request could not be built: a generation needs a Conversation, got a NoneType"


# -- end to end against the emulator --------------------------------------------------------------------------

EMULATED = ["openai", "azure-openai", "anthropic", "gemini", "cohere", "ollama", "groq", "local"]


@pytest.mark.parametrize("provider", EMULATED)
async def test_generate_against_the_emulator_answers_the_last_question_in_full(emulator, client, provider):
    g = await generate(emulator.target(provider), CHAT, client=client)
    assert g.ok, g.result.message
    # The emulated model answers the last user question, then its filler, 8 tokens (the fixture's profile).
    assert g.text == "42 is my answer, as far as this"
    r = g.result
    assert (r.error_kind, r.status, r.canary_pass, r.output_tokens, r.stream_complete) == \
        (ErrorKind.OK, Status.UP, None, 8, True)
    assert r.ttft_ms is not None and r.total_ms is not None and r.total_ms >= r.ttft_ms > 0
    assert r.ttfb_ms is not None and r.http_status == 200
    assert emulator.emu.log[-1]["status"] == 200 and emulator.emu.log[-1]["model"] == emulator.target(provider).model


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "cohere", "ollama"])
async def test_the_conversations_max_tokens_reaches_the_emulator(emulator, client, provider):
    short = Conversation(messages=(("user", "What is 19 plus 23?"),), max_tokens=3)
    g = await generate(emulator.target(provider), short, client=client)
    assert (g.ok, g.text, g.result.output_tokens) == (True, "42 is my", 3), g.result.message


@pytest.mark.parametrize(("provider", "fault", "kind"), [
    ("openai", "overloaded", ErrorKind.OVERLOADED),
    ("anthropic", "overloaded", ErrorKind.OVERLOADED),
    ("gemini", "rate_limited", ErrorKind.RATE_LIMITED),
    ("cohere", "server_error", ErrorKind.SERVER_ERROR),
    ("ollama", "stream_cut", ErrorKind.STREAM_CUT),
    ("gemini", "stream_cut", ErrorKind.STREAM_CUT),
    ("anthropic", "stream_error", ErrorKind.OVERLOADED),
    ("openai", "empty_answer", ErrorKind.EMPTY_ANSWER),
    ("azure-openai", "malformed_chunk", ErrorKind.MALFORMED),
    ("groq", "connection_reset", ErrorKind.CONNECTION_RESET),
    ("cohere", "hang", ErrorKind.FIRST_TOKEN_TIMEOUT),
])
async def test_a_fault_on_the_route_is_the_kind_a_probe_gets(emulator, client, provider, fault, kind):
    assert FAULT_TYPES[fault].expect is kind  # the catalogue's own expectation
    emulator.emu.faults.add(Fault.from_dict({"type": fault, "route": provider}))
    g = await generate(emulator.target(provider), CHAT, client=client)
    assert g.result.error_kind is kind, g.result.message
    assert not g.ok and g.result.status is not Status.UP
    assert "42 is my answer, as far as this".startswith(g.text)  # what came before the fault, if anything


async def test_a_stream_cut_keeps_the_text_that_came(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "stream_cut", "route": "openai", "params": {"after_chunks": 3}}))
    g = await generate(emulator.target("openai"), CHAT, client=client)
    assert (g.result.error_kind, g.text) == (ErrorKind.STREAM_CUT, "42 is my")


async def test_a_wrong_answer_fault_is_no_error_for_a_generation(emulator, client):
    """The canary's check is the probe's; an eval's checks judge a generation's answer later."""
    emulator.emu.faults.add(Fault.from_dict({"type": "wrong_answer", "route": "anthropic"}))
    g = await generate(emulator.target("anthropic"), CHAT, client=client)
    assert g.ok and g.text.startswith("49 ")


# -- what the emulator's strict reader takes, as the real APIs do --------------------------------------------------

def test_anthropic_takes_turns_of_one_role_in_a_row_and_an_assistant_prefill_last():
    body = {"model": "m", "max_tokens": 9, "system": [{"type": "text", "text": "Be brief."}],
            "messages": [{"role": "user", "content": "Hi."}, {"role": "user", "content": "What is 2 plus 3?"},
                         {"role": "assistant", "content": "The answer is"}]}
    ask = read_ask("anthropic", "/v1/messages", json.dumps(body).encode())
    assert (ask.prompt, ask.max_tokens) == ("What is 2 plus 3?", 9)


def test_anthropic_takes_a_system_turn_mid_conversation():
    body = {"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is 2 plus 3?"}]},
        {"role": "system", "content": "Answer in French."}]}
    assert read_ask("anthropic", "/v1/messages", body).prompt == "What is 2 plus 3?"


def test_openai_takes_a_developer_message_and_refuses_a_role_it_does_not_know():
    ok = {"model": "m", "messages": [{"role": "developer", "content": "Be brief."}, *TURNS]}
    assert read_ask("openai", "/v1/chat/completions", ok).prompt == "What is 19 plus 23?"
    with pytest.raises(BadRequest, match=r"Invalid value: 'robot'. Supported values are: 'system', 'developer'"):
        read_ask("openai", "/v1/chat/completions", {"model": "m", "messages": [{"role": "robot", "content": "x"}]})


def test_gemini_takes_a_system_instruction_and_refuses_a_role_other_than_user_or_model():
    _, body = body_for("gemini")
    path = "/v1beta/models/m:streamGenerateContent"
    assert read_ask("gemini", path, body).prompt == "What is 19 plus 23?"
    body["contents"][1]["role"] = "assistant"  # OpenAI's name for it is not Gemini's
    with pytest.raises(BadRequest, match=r"Please use a valid role: user, model\."):
        read_ask("gemini", path, body)


def test_azure_legacy_completions_name_the_deployment_and_need_the_api_version():
    path = "/openai/deployments/dep-1/completions"
    ask = read_ask("openai", path, {"prompt": "Once upon", "max_tokens": 5}, {"api-version": "2024-10-21"})
    assert (ask.model, ask.prompt, ask.completions) == ("dep-1", "Once upon", True)
    with pytest.raises(BadRequest, match="api-version"):
        read_ask("openai", path, {"prompt": "Once upon"})


# -- any conversation, any bytes ----------------------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40) | st.sampled_from(
    ['"quoted"', "line\nbreak", "back\\slash", "</s>", "{\"json\": 1}", "emoji 🚀", "\u2028", "nul\x00"])


@st.composite
def conversations(draw: st.DrawFn) -> Conversation:
    earlier = draw(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), text), max_size=4))
    return Conversation(
        messages=(*earlier, ("user", draw(text))), system=draw(st.none() | text),
        max_tokens=draw(st.none() | st.integers(1, 32_768)),
        temperature=draw(st.none() | st.floats(0, 2)), top_p=draw(st.none() | st.floats(0, 1, exclude_min=True)),
        stop=tuple(draw(st.lists(text, max_size=4))),
    )


@settings(max_examples=200, deadline=None)
@given(provider=st.sampled_from([*PROVIDERS, "local", "groq"]), conversation=conversations())
def test_any_conversation_makes_a_request_that_round_trips_and_the_emulator_reads(provider, conversation):
    t = target_for(provider) if provider in PROVIDERS else Target.from_provider(provider, key_env=None)
    spec = get_dialect(t.dialect).build_request(t, "ignored", api_key=None, conversation=conversation)
    request = httpx.Request(spec.method, spec.url, params=spec.params or None, json=spec.json)
    assert json.loads(request.content) == spec.json
    sent = json.dumps(spec.json, ensure_ascii=False)
    completions = t.options.get("mode") == "completions"
    texts = [conversation.as_text()] if completions else [c for _, c in conversation.messages]
    for content in [*texts, *conversation.stop]:
        assert json.dumps(content, ensure_ascii=False) in sent
    # The emulator's strict reader takes it, and answers the last question (the whole text, for completions).
    ask = read_ask(t.dialect, request.url.path, request.content, dict(request.url.params))
    assert ask.prompt == (conversation.as_text() if completions else conversation.prompt)
    assert ask.max_tokens == conversation.max_tokens_for(t) and ask.stream


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=probe_inputs(), conversation=conversations())
def test_generate_never_raises_whatever_comes_back(case: ProbeInput, conversation):
    async def run() -> Generation:
        target = target_for(case.provider)

        async def body() -> AsyncIterator[bytes]:
            for chunk in case.chunks:
                yield chunk

        def handler(request: httpx.Request) -> httpx.Response:
            ctype = case.content_type if case.content_type is not None else STREAM_TYPES[target.dialect]
            return httpx.Response(case.status, headers={"content-type": ctype, **case.headers}, content=body())

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await generate(target, conversation, client=client)

    g = asyncio.run(run())
    assert isinstance(g, Generation)
    check(g.result)
    assert g.result.error_kind is not ErrorKind.WRONG_ANSWER and g.result.canary_pass is None
    assert isinstance(g.text, str) and len(g.text) <= ANSWER_LIMIT
    assert g.result.answer == g.text[:200]
    assert g.ok == (g.result.error_kind is ErrorKind.OK)


async def test_make_client_is_what_generate_runs_on(emulator):
    async with make_client() as client:
        g = await generate(emulator.target("gemini"), CHAT, client=client)
    assert g.ok and g.result.connect_ms is not None  # a fresh connection through the timed backend


def test_probes_exports_the_generation_api_in_a_sorted_all():
    import probes

    assert probes.__all__ == sorted(probes.__all__)
    assert {"Conversation", "Generation", "generate"} <= set(probes.__all__)
    assert all(hasattr(probes, name) for name in probes.__all__)
