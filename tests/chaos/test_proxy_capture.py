"""``airisk proxy --capture``: a product's real requests and the answers they got, kept as eval material,
through the real proxy in front of the emulator, in SQLite: only the features named, at most N each,
redacted before anything is stored (the database file's bytes are searched too)."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from chaos.faults import Fault
from chaos.proxy import FaultProxy
from chaos.proxycapture import Capture, Tap, answer_text, parse_capture, read_capture
from chaos.proxyserve import RunningProxy, serve_proxy
from chaos.proxystore import LogStore, capture_writer, stored_captures
from chaos.routes import catalog_routes
from monitor.quality.redact import Redactor
from monitor.store import make_engine, migrate
from monitor.store.models import CapturedCaseRow

KEY = "sk-proj-T3stKey0000aaaaBBBBccccDDDDeeee1234"
EMAIL = "jane.doe@example.com"
CUSTOMER = "CUST-884213"
PRODUCT = f"Trail shoes sold by {EMAIL}"
DESCRIBE = f"Write a two-sentence description for this product: {PRODUCT}"
SUPPORT_SYSTEM = "You are the shop's support assistant."
SUPPORT_ASK = f"Where is my order? I am {CUSTOMER}, my key is {KEY}, write to {EMAIL}."


def openai_body(prompt: str, *, stream: bool, system: str | None = None) -> dict:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 120, "temperature": 0.2, "stream": stream}


def anthropic_body(prompt: str, *, stream: bool, system: str | None = None) -> dict:
    body = {"model": "claude-haiku-4-5", "max_tokens": 120, "stream": stream,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]}
    return {**body, "system": system} if system else body


async def send(c: httpx.AsyncClient, url: str, route: str, body: dict, feature: str | None) -> str:
    """Sends as a product would and returns the answer text the product read (its own small reader,
    independent of the proxy's)."""
    path = {"openai": "/openai/chat/completions", "anthropic": "/anthropic/v1/messages"}[route]
    headers = {"authorization": f"Bearer {KEY}", "x-api-key": KEY}
    if feature is not None:
        headers["x-airisk-feature"] = feature
    r = await c.post(url + path, json=body, headers=headers)
    assert r.status_code == 200, r.text
    if not body["stream"]:
        doc = r.json()
        return doc["choices"][0]["message"]["content"] if route == "openai" else doc["content"][0]["text"]
    text = []
    for line in r.text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        if route == "openai" and event.get("choices"):
            text.append(event["choices"][0]["delta"].get("content") or "")
        elif route == "anthropic" and event.get("type") == "content_block_delta":
            text.append(event["delta"]["text"])
    return "".join(text)


def database_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "airisk.db"
        self.engine = make_engine(f"sqlite:///{self.db}")
        migrate(self.engine)

    def rows(self) -> list[CapturedCaseRow]:
        with Session(self.engine) as session:
            return list(session.exec(select(CapturedCaseRow).order_by(CapturedCaseRow.id)).all())

    async def start(self, emulator, limits: dict[str, int] | None, *, capture_kw: dict | None = None,
                    **proxy_kw) -> tuple[FaultProxy, RunningProxy]:
        capture = None
        if limits is not None:
            capture = Capture(limits, write=capture_writer(self.engine, Redactor([r"CUST-\d+"])),
                              stored=stored_captures(self.engine, limits), **(capture_kw or {}))
        proxy = FaultProxy(catalog_routes(emulator.url), capture=capture, **proxy_kw)
        return proxy, await serve_proxy(proxy, port=0)


@pytest.fixture
async def setup(tmp_path) -> AsyncIterator[Setup]:
    s = Setup(tmp_path)
    try:
        yield s
    finally:
        s.engine.dispose()


async def test_captures_bodies_and_reassembled_answers_of_named_features_only_redacted(emulator, setup):
    _, running = await setup.start(emulator, {"description": 200, "support": 200})
    sent: list[tuple[str, str, dict, str]] = []  # feature, route, body, answer the product read
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            for route, make in (("openai", openai_body), ("anthropic", anthropic_body)):
                for stream in (True, False):
                    body = make(DESCRIBE, stream=stream)
                    sent.append(("description", route, body, await send(c, running.url, route, body, "description")))
                    body = make(SUPPORT_ASK, stream=stream, system=SUPPORT_SYSTEM)
                    sent.append(("support", route, body, await send(c, running.url, route, body, "support")))
            # Not named, no header: passed on as ever, never captured.
            await send(c, running.url, "openai", openai_body(DESCRIBE, stream=True), "billing")
            await send(c, running.url, "anthropic", anthropic_body(DESCRIBE, stream=False), None)
            health = (await c.get(running.url + "/_airisk/capture")).json()
        assert health["features"]["support"] == {"limit": 200, "taken": 4}
    finally:
        await running.stop()  # the proxy's stop writes what is still pending
    rows = setup.rows()
    assert len(rows) == len(sent) == 8
    assert {r.feature for r in rows} == {"description", "support"}
    redactor = Redactor([r"CUST-\d+"])
    for row, (feature, route, body, answer) in zip(rows, sent, strict=True):
        assert (row.feature, row.route, row.status) == (feature, route, 200)
        assert row.path == ("/chat/completions" if route == "openai" else "/v1/messages")
        assert row.model == body["model"]
        assert row.request == redactor.json(body)  # the whole body, each text redacted
        assert row.answer == redactor.text(answer)  # the answer the product got, reassembled from the stream
        assert answer.strip() and "[REDACTED" not in answer
    # The description's answer repeats the product name, email and all: redacted there too.
    description = rows[0]
    assert EMAIL in sent[0][3] and "[REDACTED:email]" in description.answer
    support = next(r for r in rows if r.feature == "support" and r.route == "anthropic")
    assert support.request["system"] == SUPPORT_SYSTEM
    text = support.request["messages"][0]["content"][0]["text"]
    assert text == ("Where is my order? I am [REDACTED:custom], my key is [REDACTED:openai_key], "
                    "write to [REDACTED:email].")
    setup.engine.dispose()
    stored = database_bytes(setup.db)
    assert b"Trail shoes" in stored  # the file holds the captures (so the search below means something)
    for secret in (KEY, EMAIL, CUSTOMER, "T3stKey0000", "jane.doe"):
        assert secret.encode() not in stored


async def test_captured_traffic_exports_as_cases_that_load(emulator, setup, tmp_path, monkeypatch):
    from airisk.capturecli import export
    from monitor.quality.cases import load_cases

    _, running = await setup.start(emulator, {"support": 10})
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            first = openai_body(SUPPORT_ASK, stream=True, system=SUPPORT_SYSTEM)
            second = anthropic_body("How long does shipping take?", stream=False, system=SUPPORT_SYSTEM)
            answers = [await send(c, running.url, "openai", first, "support"),
                       await send(c, running.url, "anthropic", second, "support")]
    finally:
        await running.stop()
    monkeypatch.setenv("AIRISK_DATABASE_URL", f"sqlite:///{setup.db}")
    out = tmp_path / "support.jsonl"
    result = CliRunner().invoke(export, ["--feature", "support", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    cases = load_cases(out)
    assert [(c.system, c.prompt, c.reference) for c in cases] == [
        (SUPPORT_SYSTEM, Redactor([r"CUST-\d+"]).text(SUPPORT_ASK), answers[0]),
        (SUPPORT_SYSTEM, "How long does shipping take?", answers[1])]
    assert cases[0].params.max_tokens == 120 and cases[0].params.temperature == 0.2
    assert KEY not in out.read_text() and EMAIL not in out.read_text()


async def test_at_most_n_captures_a_feature_counting_those_already_stored(emulator, setup):
    proxy, running = await setup.start(emulator, {"support": 3})
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            for i in range(6):
                await send(c, running.url, "openai", openai_body(f"question {i}", stream=i % 2 == 0), "support")
    finally:
        await running.stop()
    assert [r.request["messages"][0]["content"] for r in setup.rows()] == ["question 0", "question 1", "question 2"]
    # A new proxy with a higher N captures only up to it, counting the three already stored.
    proxy, running = await setup.start(emulator, {"support": 5})
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            for i in range(6, 10):
                await send(c, running.url, "openai", openai_body(f"question {i}", stream=False), "support")
    finally:
        await running.stop()
    assert len(setup.rows()) == 5
    assert proxy.capture.summary()["features"]["support"] == {"limit": 5, "taken": 5}


async def test_answers_a_fault_was_applied_to_are_not_captured(emulator, setup):
    proxy, running = await setup.start(emulator, {"support": 10})
    try:
        proxy.faults.add(Fault.from_dict({"type": "server_error", "feature": "support"}, routes=proxy.routes))
        proxy.faults.add(Fault.from_dict({"type": "wrong_answer", "route": "anthropic"}, routes=proxy.routes))
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.post(running.url + "/openai/chat/completions", json=openai_body("hi", stream=False),
                             headers={"x-airisk-feature": "support"})
            assert r.status_code == 500
            proxy.faults.clear()
            proxy.faults.add(Fault.from_dict({"type": "wrong_answer", "route": "anthropic"}, routes=proxy.routes))
            await send(c, running.url, "anthropic", anthropic_body("where is it", stream=True), "support")
            await send(c, running.url, "openai", openai_body("the real one", stream=True), "support")
    finally:
        await running.stop()
    rows = setup.rows()
    assert [(r.route, r.request["messages"][0]["content"]) for r in rows] == [("openai", "the real one")]
    assert proxy.capture.summary()["features"]["support"]["taken"] == 1


async def test_without_capture_nothing_is_captured_even_with_the_request_log_stored(emulator, setup):
    store = LogStore(setup.engine, source="test")
    _, running = await setup.start(emulator, None, sink=store.sink)
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            for stream in (True, False):
                await send(c, running.url, "openai", openai_body(DESCRIBE, stream=stream), "description")
                await send(c, running.url, "anthropic", anthropic_body(SUPPORT_ASK, stream=stream), "support")
            assert (await c.get(running.url + "/_airisk/capture")).json() == {"features": {}}
    finally:
        await running.stop()
    await store.flush()
    with setup.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM proxy_request")).scalar_one() == 4  # the database was used
        assert conn.execute(sa.text("SELECT count(*) FROM captured_case")).scalar_one() == 0
    setup.engine.dispose()
    assert b"Trail shoes" not in database_bytes(setup.db)  # no body reached the file


async def test_a_capture_beyond_the_buffer_is_dropped_and_counted_not_waited_for(emulator, setup):
    # One byte of room: the first capture fills it; no write until the proxy stops.
    proxy, running = await setup.start(emulator, {"support": 50}, capture_kw={"max_pending_bytes": 1, "every": 3600})
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            for i in range(3):
                await send(c, running.url, "openai", openai_body(f"q{i}", stream=True), "support")
        assert proxy.capture.pending == 1
        assert proxy.capture.stats["dropped"] == 2
        assert proxy.capture.taken["support"] == 1  # the dropped ones' slots are free again
    finally:
        await running.stop()
    assert len(setup.rows()) == 1


def test_captures_are_rate_limited_per_feature_before_anything_is_buffered():
    capture = Capture({"support": 100, "search": 100}, rate=0.001)  # one now, the next in 1,000 s
    def open_(feature):
        return capture.open(feature, route="openai", dialect="openai", path="/chat/completions", model=None,
                            body=b"{}")
    assert open_("support") is not None
    assert open_("support") is None and open_("support") is None
    assert open_("search") is not None  # each feature has its own allowance
    assert capture.stats["over_rate"] == 2 and capture.taken == {"support": 1, "search": 1}
    unlimited = Capture({"support": 100}, rate=None)
    assert all(unlimited.open("support", route="openai", dialect="openai", path="/", model=None, body=b"{}")
               for _ in range(50))


def test_the_answer_reader_takes_each_dialect_and_refuses_errors():
    sse = (b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\ndata: {"choices":[{"delta":{"content":"lo"},'
           b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    assert answer_text("openai", b"text/event-stream", b"", sse) == "Hello"
    ndjson = b'{"message":{"content":"Hi"},"done":false}\n{"message":{"content":" there"},"done":true}\n'
    assert answer_text("ollama", b"application/x-ndjson", b"", ndjson) == "Hi there"
    gemini = json.dumps([{"candidates": [{"content": {"parts": [{"text": "A"}]}}]},
                         {"candidates": [{"content": {"parts": [{"text": "B"}]}, "finishReason": "STOP"}]}]).encode()
    assert answer_text("gemini", b"application/json", b"", gemini) == "AB"
    whole = json.dumps({"choices": [{"message": {"content": "zipped"}, "finish_reason": "stop"}]}).encode()
    assert answer_text("openai", b"application/json", b"gzip", gzip.compress(whole)) == "zipped"
    error = b'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    assert answer_text("anthropic", b"text/event-stream", b"", error) is None
    assert answer_text("openai", b"application/json", b"br", whole) is None  # cannot be read: not captured


@settings(max_examples=300, deadline=None)
@given(dialect=st.sampled_from(["openai", "anthropic", "gemini", "cohere", "ollama"]),
       content_type=st.sampled_from([b"text/event-stream", b"application/json", b"application/x-ndjson", b""]),
       encoding=st.sampled_from([b"", b"gzip", b"deflate", b"identity", b"br"]),
       raw=st.binary(max_size=2000) | st.text(max_size=500).map(lambda t: ("data: " + t + "\n\n").encode()))
def test_any_answer_bytes_are_read_or_refused_never_raised(dialect, content_type, encoding, raw):
    out = answer_text(dialect, content_type, encoding, raw)
    assert out is None or isinstance(out, str)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=500) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20).map(lambda doc: json.dumps(doc).encode()))
def test_any_request_body_is_captured_as_an_object_or_not_at_all(body):
    tap = Tap(feature="f", route="openai", dialect="openai", path="/chat/completions", model=None, body=body)
    tap.status, tap.content_type, tap.complete = 200, b"application/json", True
    tap.add(json.dumps({"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}).encode())
    capture = read_capture(tap)
    assert capture is None or (isinstance(capture.request, dict) and capture.answer == "ok")


@pytest.mark.parametrize(("spec", "parsed"), [("support", ("support", 200)), ("support:5", ("support", 5)),
                                              ("ns:chat:7", ("ns:chat", 7)), ("chat:x", ("chat:x", 200))])
def test_capture_specs(spec, parsed):
    assert parse_capture(spec) == parsed


@pytest.mark.parametrize(("spec", "message"), [(":5", "expected FEATURE or FEATURE:N"),
                                               ("chat:0", "N must be 1 to 100000")])
def test_bad_capture_specs_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_capture(spec)


@pytest.mark.parametrize(("args", "message"), [
    (["--redact", "x"], "--redact and --redact-file apply to captures"),
    (["--capture", "chat", "--redact", "a("], "redaction pattern 'a(': not a regular expression"),
    (["--capture", "chat:0"], "N must be 1 to"),
])
def test_the_proxy_command_refuses_bad_capture_options_before_starting(args, message, tmp_path, monkeypatch):
    from airisk.faultcli import proxy

    monkeypatch.setenv("AIRISK_HOME", str(tmp_path))
    monkeypatch.delenv("AIRISK_DATABASE_URL", raising=False)
    result = CliRunner().invoke(proxy, ["--port", "0", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "airisk.db").exists()  # refused before any database was opened
