"""The storefront example against the in-process emulator: each feature's strategy, healthy and under faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from chaos.answers import support
from chaos.faults import Fault
from examples.storefront import Settings, create_app, heuristic_tags, rank_items
from examples.storefront.app import CATALOGUE

REQUESTS = {
    "description": {"product": "a stainless steel coffee grinder"},
    "chat": {"message": "Where is my order?"},
    "tags": {"review": "Arrived late and the lid was broken, I want a refund."},
    "search": {"query": "something to grind coffee beans"},
}


def settings_for(url: str, **overrides) -> Settings:
    return Settings(openai_base_url=url + "/openai/v1", anthropic_base_url=url + "/anthropic",
                    local_base_url=url + "/local/v1", **overrides)


@contextlib.asynccontextmanager
async def running(settings: Settings, transport: httpx.AsyncBaseTransport | None = None,
                  ) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, transport=transport)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://storefront", timeout=10) as client:
        yield client


@pytest.fixture
async def shop(emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with running(settings_for(emulator.url, ai_timeout=2.0)) as client:
        yield client


def fault(emulator, **data) -> None:
    emulator.emu.faults.add(Fault.from_dict(data))


async def ask(shop: httpx.AsyncClient, feature: str, body: dict | None = None) -> tuple[int, dict]:
    resp = await shop.post(f"/api/{feature}", json=REQUESTS[feature] if body is None else body)
    return resp.status_code, resp.json()


def assert_ok(status: int, data: dict, feature: str, backend: str, degraded: bool = False) -> None:
    assert status == 200, data
    assert data["feature"] == feature
    assert data["backend"] == backend
    assert data["degraded"] is degraded
    assert isinstance(data["text"], str) and data["text"]
    assert isinstance(data["latency_ms"], float) and data["latency_ms"] >= 0


def assert_503(status: int, data: dict, feature: str, *mentions: str) -> None:
    assert status == 503, data
    assert data["feature"] == feature
    assert data["backend"] is None
    assert "\n" not in data["error"]
    for word in mentions:
        assert word in data["error"], data["error"]


# -- healthy --------------------------------------------------------------------------------

async def test_healthz(shop) -> None:
    resp = await shop.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"ok": True}


async def test_healthy_each_feature_answers_from_its_primary_with_its_header(shop, emulator) -> None:
    results = await asyncio.gather(*(ask(shop, f) for f in REQUESTS))
    got = dict(zip(REQUESTS, results, strict=True))
    assert_ok(*got["description"], "description", "openai")
    assert_ok(*got["chat"], "chat", "anthropic")
    assert_ok(*got["tags"], "tags", "openai")
    assert_ok(*got["search"], "search", "local")
    assert got["chat"][1]["text"] == support("Where is my order?")  # the streamed deltas, joined
    assert got["tags"][1]["tags"] and all(t == t.lower() for t in got["tags"][1]["tags"])
    assert sorted(got["search"][1]["ranked"]) == sorted(CATALOGUE)
    for _, data in results:
        assert data["primary_error"] is None
    calls = sorted((e["route"], e["feature"], e["path"]) for e in emulator.emu.log)
    assert calls == [
        ("anthropic", "chat", "/anthropic/v1/messages"),
        ("local", "search", "/local/v1/chat/completions"),
        ("openai", "description", "/openai/v1/chat/completions"),
        ("openai", "tags", "/openai/v1/chat/completions"),
    ]
    assert all(e["status"] == 200 for e in emulator.emu.log)


async def test_features_endpoint_states_each_strategy(shop, emulator) -> None:
    data = (await shop.get("/api/features")).json()
    assert data["chat"]["primary"] == "anthropic" and data["chat"]["fallback"] == "local"
    assert data["tags"]["fallback"] == "heuristic"
    assert data["description"]["fallback"] is None and data["search"]["fallback"] is None
    assert data["search"]["primary_base_url"] == emulator.url + "/local/v1"


# -- faults -----------------------------------------------------------------------------------

async def test_openai_overloaded_description_503_and_tags_degrade_to_heuristic(shop, emulator) -> None:
    fault(emulator, type="overloaded", route="openai")
    assert_503(*await ask(shop, "description"), "description", "openai", "503")
    status, data = await ask(shop, "tags")
    assert_ok(status, data, "tags", "heuristic", degraded=True)
    assert data["tags"] == ["damaged", "shipping", "refund"]
    assert data["primary_error"].startswith("openai: HTTP 503")
    # Chat and search do not use OpenAI, so they are untouched.
    assert_ok(*await ask(shop, "chat"), "chat", "anthropic")
    assert_ok(*await ask(shop, "search"), "search", "local")


@pytest.mark.parametrize("spec", [
    {"type": "overloaded", "route": "anthropic"},
    {"type": "stream_cut", "route": "anthropic"},
    {"type": "stream_error", "route": "anthropic"},
    {"type": "malformed_chunk", "route": "anthropic"},
    {"type": "empty_answer", "route": "anthropic"},
])
async def test_anthropic_failure_chat_answered_by_local(shop, emulator, spec) -> None:
    fault(emulator, **spec)
    status, data = await ask(shop, "chat")
    assert_ok(status, data, "chat", "local", degraded=False)
    assert data["primary_error"].startswith("anthropic: ")
    routes = [(e["route"], e["feature"]) for e in emulator.emu.log]
    assert routes == [("anthropic", "chat"), ("local", "chat")]


async def test_stream_cut_is_named(shop, emulator) -> None:
    fault(emulator, type="stream_cut", route="anthropic")
    _, data = await ask(shop, "chat")
    assert "without message_stop" in data["primary_error"]


async def test_local_down_search_503_and_chat_503_when_anthropic_down_too(shop, emulator) -> None:
    fault(emulator, type="unreachable", route="local")
    assert_503(*await ask(shop, "search"), "search", "local")
    assert_ok(*await ask(shop, "chat"), "chat", "anthropic")  # the fallback is not needed yet
    fault(emulator, type="overloaded", route="anthropic")
    assert_503(*await ask(shop, "chat"), "chat", "anthropic", "529", "local")
    # OpenAI features do not care.
    assert_ok(*await ask(shop, "description"), "description", "openai")
    assert_ok(*await ask(shop, "tags"), "tags", "openai")


async def test_hang_hits_the_products_own_timeout(emulator, monkeypatch) -> None:
    monkeypatch.setenv("STOREFRONT_AI_TIMEOUT", "0.3")
    monkeypatch.setenv("STOREFRONT_OPENAI_BASE_URL", emulator.url + "/openai/v1")
    settings = Settings.from_env()
    assert settings.ai_timeout == 0.3
    fault(emulator, type="hang", route="openai", params={"seconds": 5})
    async with running(settings) as shop:
        started = time.perf_counter()
        status, data = await ask(shop, "description")
        elapsed = time.perf_counter() - started
        assert_503(status, data, "description", "openai", "timed out after 0.3s")
        # Its own 0.3 s timeout, not the 5 s hang (slack for a slow machine).
        assert 0.29 <= elapsed < 3.0
        assert 290 <= data["latency_ms"] < 3000
        # Tags wait out the same timeout, then degrade.
        status, data = await ask(shop, "tags")
        assert_ok(status, data, "tags", "heuristic", degraded=True)
        assert 290 <= data["latency_ms"] < 3000


async def test_feature_scoped_fault_hits_only_that_feature(shop, emulator) -> None:
    fault(emulator, type="server_error", route="openai", feature="tags")
    assert_ok(*await ask(shop, "description"), "description", "openai")
    status, data = await ask(shop, "tags")
    assert_ok(status, data, "tags", "heuristic", degraded=True)
    assert "HTTP 500" in data["primary_error"]


# -- the wire, exactly ------------------------------------------------------------------------

class Recorder:
    """A MockTransport that records each request and answers with ``answer(request)``."""

    def __init__(self, answer) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def _openai_answer(text):
    return httpx.Response(200, json={"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})


async def test_keys_and_headers_on_the_wire() -> None:
    sse = (b'event: message_start\ndata: {"type":"message_start"}\n\n'
           b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
           b'"delta":{"type":"text_delta","text":"Hi"}}\n\n'
           b'event: message_stop\ndata: {"type":"message_stop"}\n\n')

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/messages"):
            return httpx.Response(200, content=sse, headers={"content-type": "text/event-stream"})
        return _openai_answer("2")

    rec = Recorder(answer)
    settings = Settings(openai_base_url="http://oa.test/v1/", anthropic_base_url="http://an.test",
                        local_base_url="http://lo.test/v1", openai_api_key="sk-o", anthropic_api_key="sk-a",
                        openai_model="m-o", anthropic_model="m-a", local_model="m-l")
    async with running(settings, rec.transport) as shop:
        for feature in REQUESTS:
            assert (await shop.post(f"/api/{feature}", json=REQUESTS[feature])).status_code == 200
        _, data = await ask(shop, "search")
    assert data["ranked"][0] == CATALOGUE[1]  # the model said "2"
    by_feature = {r.headers["x-airisk-feature"]: r for r in rec.requests}
    assert set(by_feature) == set(REQUESTS)
    chat = by_feature["chat"]
    assert str(chat.url) == "http://an.test/v1/messages"
    assert chat.headers["x-api-key"] == "sk-a" and chat.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in chat.headers
    body = json.loads(chat.content)
    assert body["stream"] is True and body["model"] == "m-a" and body["messages"][-1]["role"] == "user"
    desc = by_feature["description"]
    assert str(desc.url) == "http://oa.test/v1/chat/completions"
    assert desc.headers["authorization"] == "Bearer sk-o"
    assert json.loads(desc.content)["model"] == "m-o"
    search = by_feature["search"]
    assert str(search.url) == "http://lo.test/v1/chat/completions"
    assert "authorization" not in search.headers  # no key is sent to the local model
    assert json.loads(search.content)["model"] == "m-l"


@pytest.mark.parametrize(("feature", "response", "mention"), [
    ("description", httpx.Response(200, json={"choices": []}), "IndexError"),
    ("description", _openai_answer(None), "no answer text"),
    ("description", _openai_answer("   "), "no answer text"),
    ("description", httpx.Response(200, text="<html>gateway</html>"), "JSONDecodeError"),
    ("description", httpx.Response(401, json={"error": {"message": "Incorrect API key"}}), "HTTP 401"),
    ("search", httpx.Response(502, text="Bad Gateway\n\nnginx"), "HTTP 502: Bad Gateway nginx"),
])
async def test_odd_answers_are_failures_not_500s(feature, response, mention) -> None:
    rec = Recorder(lambda request: response)
    async with running(settings_for("http://x.test"), rec.transport) as shop:
        assert_503(*await ask(shop, feature), feature, mention)


async def test_anthropic_sse_with_event_error_and_no_stop() -> None:
    streams = iter([
        b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}'
        b'\n\nevent: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}'
        b'\n\n',
    ])

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/messages"):
            return httpx.Response(200, content=next(streams), headers={"content-type": "text/event-stream"})
        return httpx.Response(503, json={"error": {"message": "local is down"}})

    async with running(settings_for("http://x.test"), Recorder(answer).transport) as shop:
        assert_503(*await ask(shop, "chat"), "chat", "error event in stream: Overloaded", "local is down")
        assert_503(*await ask(shop, "chat"), "chat", "without message_stop after 1 text deltas")


async def test_bad_requests_are_400(shop) -> None:
    resp = await shop.post("/api/chat", content=b"not json")
    assert resp.status_code == 400 and resp.json()["backend"] is None
    assert (await shop.post("/api/description", json={})).status_code == 400
    assert (await shop.post("/api/tags", json={"review": 5})).status_code == 400
    status, data = await ask(shop, "search", {"query": "x", "items": ["ok", 3]})
    assert status == 400 and data["error"].startswith("items:")


# -- pure parts -------------------------------------------------------------------------------

def test_heuristic_tags() -> None:
    assert heuristic_tags("GREAT value, loved it") == ["positive", "price"]
    assert heuristic_tags("Delivery was delayed and the box was damaged") == ["damaged", "shipping"]
    assert heuristic_tags("It is a thing") == ["general"]


def test_rank_items() -> None:
    items = ["red shoes", "blue hat", "green scarf"]
    assert rank_items("3", "anything", items) == ["green scarf", "red shoes", "blue hat"]
    assert rank_items("Blue hat, then 1.", "x", items) == ["blue hat", "red shoes", "green scarf"]
    assert rank_items("no idea", "warm scarf", items) == ["green scarf", "red shoes", "blue hat"]
    assert rank_items("99", "x", items) == items


def test_settings_from_env() -> None:
    s = Settings.from_env({})
    assert (s.openai_base_url, s.anthropic_base_url, s.local_base_url) == (
        "https://api.openai.com/v1", "https://api.anthropic.com", "http://127.0.0.1:8011/v1")
    assert (s.openai_model, s.anthropic_model, s.local_model, s.ai_timeout) == (
        "gpt-4o-mini", "claude-haiku-4-5", "gemma-3-270m", 5.0)
    assert s.openai_api_key is None and s.anthropic_api_key is None
    s = Settings.from_env({"STOREFRONT_OPENAI_BASE_URL": "http://127.0.0.1:8480/openai/", "OPENAI_API_KEY": "k",
                           "STOREFRONT_AI_TIMEOUT": "1.5", "ANTHROPIC_API_KEY": ""})
    assert s.openai_base_url == "http://127.0.0.1:8480/openai" and s.openai_api_key == "k"
    assert s.ai_timeout == 1.5 and s.anthropic_api_key is None
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ValueError, match="STOREFRONT_AI_TIMEOUT"):
            Settings.from_env({"STOREFRONT_AI_TIMEOUT": bad})
    with pytest.raises(ValueError, match="local_base_url"):
        Settings.from_env({"STOREFRONT_LOCAL_BASE_URL": "127.0.0.1:8011"})
