"""`sniff_ask` is total: whatever a product sends, the proxy and `ChaosTransport` read what they can
and pass the request on; the Ask they get is well typed (the fault plan and the speakers use it)."""

from __future__ import annotations

import json

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.asks import READERS, sniff_ask
from chaos.transport import ChaosTransport

PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
         "gemini": "/v1beta/models/gemini-2.0-flash:streamGenerateContent", "cohere": "/v2/chat",
         "ollama": "/api/chat"}
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                      max_size=4), max_leaves=20)
# Bodies shaped like requests, with any value where a field belongs.
shaped = st.fixed_dictionaries({}, optional={
    "model": json_values, "max_tokens": json_values, "stream": json_values, "messages": json_values,
    "contents": json_values, "generationConfig": json_values, "options": json_values, "prompt": json_values})


def nested(depth: int) -> bytes:
    return b'{"model": ' + b"[" * depth + b"]" * depth + b', "messages": []}'


@settings(max_examples=150, deadline=None)
@given(dialect=st.sampled_from(sorted(READERS)), body=shaped | st.dictionaries(st.text(), json_values))
def test_any_json_body_gives_a_well_typed_ask_or_none(dialect, body):
    ask = sniff_ask(dialect, PATHS[dialect], json.dumps(body).encode())
    if ask is not None:
        assert isinstance(ask.model, str) and isinstance(ask.prompt, str)
        assert type(ask.max_tokens) is int and ask.max_tokens > 0


@settings(max_examples=100, deadline=None)
@given(dialect=st.sampled_from(sorted(READERS)), body=st.binary(max_size=300))
def test_any_bytes_give_an_ask_or_none(dialect, body):
    ask = sniff_ask(dialect, PATHS[dialect], body)
    assert ask is None or isinstance(ask.model, str)


def test_a_body_nested_past_the_recursion_limit_is_passed_on_by_the_transport():
    # json.loads raises RecursionError on it; the transport used to let it escape into the product's call.
    assert sniff_ask("openai", PATHS["openai"], nested(100_000)) is None
    seen = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(len(request.content))
        return httpx.Response(200, json={"ok": True})

    transport = ChaosTransport(httpx.MockTransport(upstream), route="openai")
    with httpx.Client(transport=transport, base_url="https://api.openai.com") as client:
        response = client.post("/v1/chat/completions", content=nested(100_000),
                               headers={"content-type": "application/json"})
    assert response.status_code == 200 and seen == [len(nested(100_000))]
