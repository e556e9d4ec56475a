"""Captured traffic in the store (redacted on the way in, read back, counted, pruned) and as eval cases:
each provider's request format becomes a case that loads; any body becomes one or a reason, never an
error; ``airisk eval export`` writes only lines that load."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from airisk.capturecli import export
from monitor.quality.capture import DEFAULT_CHECKS, NotACase, case_of, cases_of, dialect_of
from monitor.quality.cases import load_cases, parse_cases
from monitor.quality.redact import Redactor
from monitor.store import make_engine, migrate, prune
from monitor.store.capture import MAX_ANSWER, Capture, captured, counts, record_captures
from probes import Conversation
from tests.monitor.conftest import T0

KEY = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789"


def cap(feature: str = "support", *, at=T0, request: dict | None = None, answer: str = "Sure.", route: str = "openai",
        path: str = "/chat/completions", model: str | None = "gpt-4o-mini") -> Capture:
    request = request or {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    return Capture(at=at, feature=feature, route=route, path=path, model=model, request=request, answer=answer)


def test_captures_are_stored_redacted_and_cleaned(session):
    hostile = cap(request={"model": "m", "messages": [{"role": "user", "content": f"key {KEY}\x00 ok"}],
                           "metadata": {"owner@example.com": "x"}},
                  answer="Mail owner@example.com" + "\x00" + "a" * (MAX_ANSWER + 10), path=f"/chat/{KEY}",
                  model="\ud800m")
    assert record_captures(session=session, captures=[hostile], redactor=Redactor()) == 1
    session.commit()
    [row] = captured(session=session, feature="support")
    assert row.request == {"model": "m", "messages": [{"role": "user", "content": "key [REDACTED:anthropic_key] ok"}],
                           "metadata": {"[REDACTED:email]": "x"}}
    assert row.answer.startswith("Mail [REDACTED:email]aaa") and len(row.answer) == MAX_ANSWER
    assert row.path == "/chat/[REDACTED:anthropic_key]"
    assert row.model == "?m"  # a lone surrogate, which no database encoding takes


def test_a_body_too_large_or_too_deep_is_not_stored(session):
    deep: dict = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]
    big = {"messages": [{"role": "user", "content": "word " * 40_000}]}
    assert record_captures(session=session, captures=[cap(request=deep), cap(request=big), cap()],
                           redactor=Redactor()) == 1
    session.commit()
    assert counts(session=session) == {"support": 1}


def test_read_back_oldest_first_latest_n_and_counted(session):
    rows = [cap("support", at=T0 + timedelta(minutes=i), answer=f"a{i}") for i in range(5)] + [cap("search")]
    record_captures(session=session, captures=rows, redactor=Redactor())
    session.commit()
    assert [r.answer for r in captured(session=session, feature="support")] == ["a0", "a1", "a2", "a3", "a4"]
    assert [r.answer for r in captured(session=session, feature="support", limit=2)] == ["a3", "a4"]
    assert [r.answer for r in captured(session=session, feature="support", since=T0 + timedelta(minutes=3))] == \
        ["a3", "a4"]
    assert counts(session=session) == {"support": 5, "search": 1}
    assert counts(session=session, features=["search", "tags"]) == {"search": 1}


def test_captures_are_pruned_after_capture_days(session):
    record_captures(session=session, captures=[cap(at=T0 - timedelta(days=8)), cap(at=T0 - timedelta(days=2))],
                    redactor=Redactor())
    session.commit()
    deleted = prune(session=session, now=T0, capture_days=7)
    session.commit()
    assert deleted["captured_case"] == 1
    assert counts(session=session) == {"support": 1}


# -- as eval cases ------------------------------------------------------------------------------

def row(request: dict, *, route: str, path: str, answer: str = "The reference.", id: int = 1):
    return SimpleNamespace(id=id, route=route, path=path, request=request, answer=answer)


TURNS = [{"role": "user", "content": "Where is my order?"}, {"role": "assistant", "content": "Which one?"},
         {"role": "user", "content": "The shoes."}]
EXPECTED = [{"role": "user", "content": "Where is my order?"}, {"role": "assistant", "content": "Which one?"},
            {"role": "user", "content": "The shoes."}]
SYSTEM = "You are the shop's support assistant."
PARAMS = {"max_tokens": 120, "temperature": 0.3, "top_p": 0.9, "stop": ["\n\n"]}
FORMATS = {
    "openai": (row({"model": "gpt-4o-mini", "messages": [{"role": "system", "content": SYSTEM}, *TURNS],
                    "max_completion_tokens": 120, "temperature": 0.3, "top_p": 0.9, "stop": "\n\n", "stream": True},
                   route="openai", path="/chat/completions")),
    "anthropic": row({"model": "claude-haiku-4-5", "system": [{"type": "text", "text": SYSTEM}],
                      "messages": [{**t, "content": [{"type": "text", "text": t["content"]}]} for t in TURNS],
                      "max_tokens": 120, "temperature": 0.3, "top_p": 0.9, "stop_sequences": ["\n\n"]},
                     route="anthropic", path="/v1/messages"),
    "gemini": row({"systemInstruction": {"parts": [{"text": SYSTEM}]},
                   "contents": [{"role": "model" if t["role"] == "assistant" else "user",
                                 "parts": [{"text": t["content"]}]} for t in TURNS],
                   "generationConfig": {"maxOutputTokens": 120, "temperature": 0.3, "topP": 0.9,
                                        "stopSequences": ["\n\n"]}},
                  route="gemini", path="/v1beta/models/gemini-2.5-flash-lite:streamGenerateContent"),
    "cohere": row({"model": "command-r7b-12-2024", "messages": [{"role": "system", "content": SYSTEM}, *TURNS],
                   "max_tokens": 120, "temperature": 0.3, "p": 0.9, "stop_sequences": ["\n\n"], "stream": True},
                  route="cohere", path="/v2/chat"),
    "cohere_v1": row({"preamble": SYSTEM, "chat_history": [{"role": "USER", "message": "Where is my order?"},
                                                           {"role": "CHATBOT", "message": "Which one?"}],
                      "message": "The shoes.", "max_tokens": 120, "temperature": 0.3, "p": 0.9,
                      "stop_sequences": ["\n\n"]}, route="mine", path="/v1/chat"),
    "ollama": row({"model": "llama3.2:1b", "messages": [{"role": "system", "content": SYSTEM}, *TURNS],
                   "options": {"num_predict": 120, "temperature": 0.3, "top_p": 0.9, "stop": ["\n\n"]}},
                  route="ollama", path="/api/chat"),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_provider_format_becomes_a_case_that_loads(name):
    case = case_of(FORMATS[name])
    assert case == {"id": "captured-1", "system": SYSTEM, "messages": EXPECTED, "params": PARAMS,
                    "checks": list(DEFAULT_CHECKS), "reference": "The reference.",
                    "tags": ["captured", f"route:{FORMATS[name].route}"]}
    [loaded] = parse_cases(json.dumps(case))
    conversation = Conversation.from_case(loaded)
    assert conversation.system == SYSTEM and conversation.messages[-1] == ("user", "The shoes.")
    assert [c.name for c in loaded.checks] == ["similar", "no_refusal"]


def test_single_prompt_endpoints_become_one_user_turn():
    completions = case_of(row({"model": "m", "prompt": "Say hi", "max_tokens": 40000}, route="local",
                              path="/v1/completions"))
    assert completions["messages"] == [{"role": "user", "content": "Say hi"}]
    assert completions["params"] == {"max_tokens": 32_768}  # the most a case takes
    generate = case_of(row({"model": "m", "system": SYSTEM, "prompt": "Say hi"}, route="ollama", path="/api/generate"))
    assert (generate["system"], generate["messages"]) == (SYSTEM, [{"role": "user", "content": "Say hi"}])


@pytest.mark.parametrize(("request_body", "path", "answer", "reason"), [
    ({"messages": [{"role": "user", "content": "hi"}]}, "/chat/completions", "  ", "no answer"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "/chat/completions", "ok", "non-text content"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"id": "1"}]}]},
     "/chat/completions", "ok", "tool call"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "42"}]}, "/chat/completions", "ok",
     "tool use"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "pre"}]}, "/chat/completions",
     "ok", "does not end with the user's turn"),
    ({"messages": "hi"}, "/chat/completions", "ok", "no 'messages' list"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "/unknown", "ok", "unknown wire format"),
])
def test_requests_a_case_cannot_hold_are_skipped_with_a_reason(request_body, path, answer, reason):
    with pytest.raises(NotACase, match=reason):
        case_of(row(request_body, route="mine", path=path, answer=answer))
    cases, skipped = cases_of([row(request_body, route="mine", path=path, answer=answer)])
    assert cases == [] and sum(skipped.values()) == 1


def test_the_dialect_is_read_from_the_path_then_the_route():
    assert dialect_of("anything", "/v1/messages") == "anthropic"
    assert dialect_of("x", "/v1beta/models/g:generateContent") == "gemini"
    assert dialect_of("groq", "/weird") == "openai"
    assert dialect_of("mine", "/weird") is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25)
_MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", "model", 3]),
                                  "content": st.text(max_size=20) | _JSON})
_BODY = st.fixed_dictionaries({}, optional={
    "messages": st.lists(_MESSAGE, max_size=4) | _JSON, "contents": st.lists(st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "model"]), "parts": st.lists(st.fixed_dictionaries(
            {"text": st.text(max_size=10)}), max_size=2) | _JSON}), max_size=3),
    "system": _JSON, "prompt": _JSON, "max_tokens": _JSON, "temperature": _JSON, "top_p": _JSON, "stop": _JSON,
    "options": _JSON, "generationConfig": _JSON, "p": _JSON, "message": _JSON, "chat_history": _JSON})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_BODY, path=st.sampled_from(["/chat/completions", "/completions", "/v1/messages", "/v2/chat", "/v1/chat",
                                         "/api/chat", "/api/generate", "/v1beta/models/m:generateContent"]),
       answer=st.text(max_size=30))
def test_any_captured_body_is_a_case_that_loads_or_a_reason(body, path, answer):
    try:
        case = case_of(row(body, route="mine", path=path, answer=answer))
    except NotACase:
        return
    [loaded] = parse_cases(json.dumps(case))  # raises CaseError if a case that does not load was made
    assert loaded.reference == answer and loaded.messages[-1].role == "user"


# -- airisk eval export ---------------------------------------------------------------------------

@pytest.fixture
def database(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'airisk.db'}"
    monkeypatch.setenv("AIRISK_DATABASE_URL", url)
    engine = make_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_export_writes_cases_that_load_and_counts_what_it_skips(database, tmp_path):
    good = [cap(request={"model": "m", "messages": [{"role": "user", "content": f"question {i}"}], "max_tokens": 50},
                answer=f"answer {i}", at=T0 + timedelta(seconds=i)) for i in range(4)]
    tool = cap(request={"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "y"}]})
    with Session(database) as session:
        record_captures(session=session, captures=[*good, tool], redactor=Redactor())
        record_captures(session=session, captures=[cap("search")], redactor=Redactor())
        session.commit()
    out = tmp_path / "support.jsonl"
    result = CliRunner().invoke(export, ["--feature", "support", "--out", str(out), "--limit", "4"])
    assert result.exit_code == 0, result.output
    cases = load_cases(out)
    # The latest 4: three good ones and the tool conversation, which is skipped.
    assert [c.prompt for c in cases] == ["question 1", "question 2", "question 3"]
    assert [c.reference for c in cases] == ["answer 1", "answer 2", "answer 3"]
    assert cases[0].params.max_tokens == 50
    assert "3 case(s) of 'support'" in result.stderr and "1 a 'tool' turn" in result.stderr
    stdout = CliRunner().invoke(export, ["--feature", "search"])
    assert stdout.exit_code == 0
    assert [c.prompt for c in parse_cases(stdout.stdout)] == ["hi"]


def test_export_with_nothing_to_write_says_so(database, tmp_path):
    result = CliRunner().invoke(export, ["--feature", "support", "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1
    assert "no captures of feature 'support'; capture some with `airisk proxy --capture support`" in result.stderr
    assert not (tmp_path / "x.jsonl").exists()
    result = CliRunner().invoke(export, ["--feature", "support", "--out", str(tmp_path / "no" / "x.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
