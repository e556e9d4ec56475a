"""The LLM judge over a real loopback HTTP server that speaks the OpenAI chat-completions stream.

The server is the judge model's stand-in on the wire, scripted per test: a fair judge, a
position-biased one (always "A"), one that answers 503 or garbage. It is the test's peer, friendly or
hostile; the product code under test (`monitor.quality.judge.Judge`, the ``judge`` check) talks to it
exactly as to a real provider, through `probes.generate`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.quality.cases import parse_cases
from monitor.quality.checks import Context, parse_check
from monitor.quality.judge import GRADE_SYSTEM, PAIRWISE_SYSTEM, Judge, read_verdict
from probes import Target
from tests.conftest import SHORT

ANSWER_A = re.compile(r"\[The Start of Assistant A's Answer\]\n(.*)\n\[The End of Assistant A's Answer\]", re.S)
ANSWER_B = re.compile(r"\[The Start of Assistant B's Answer\]\n(.*)\n\[The End of Assistant B's Answer\]", re.S)
ANSWER = re.compile(r"\[The Start of the Assistant's Answer\]\n(.*)\n\[The End of the Assistant's Answer\]", re.S)


@dataclass
class Reply:
    status: int = 200
    text: str = ""  # streamed as OpenAI chat.completion.chunk events
    raw: bytes | None = None  # sent as the body instead, as it is
    content_type: str = "text/event-stream"


@dataclass
class JudgeServer:
    """Answers each chat-completions request with ``script(request body)``; keeps every body it got."""

    script: Callable[[dict], Reply]
    bodies: list[dict] = field(default_factory=list)
    heads: list[bytes] = field(default_factory=list)
    url: str = ""

    def prompts(self) -> list[str]:
        return [b["messages"][-1]["content"] for b in self.bodies]

    def pairs(self) -> list[tuple[str, str]]:
        """(answer shown as A, answer shown as B) of each pairwise request."""
        return [(ANSWER_A.search(p).group(1), ANSWER_B.search(p).group(1)) for p in self.prompts()]


def sse(text: str) -> list[bytes]:
    def event(payload: dict) -> bytes:
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    base = {"id": "chatcmpl-judge", "object": "chat.completion.chunk", "created": 1, "model": "judge-model"}
    words = re.findall(r"\S+\s*|\s+", text) or [""]
    chunks = [event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                          "finish_reason": None}]})]
    chunks += [event({**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
               for w in words]
    chunks.append(event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    chunks.append(event({**base, "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": len(words),
                                                          "total_tokens": 50 + len(words)}}))
    chunks.append(b"data: [DONE]\n\n")
    return chunks


async def _handle(server: JudgeServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = json.loads(await reader.readexactly(length))
        server.heads.append(head)
        server.bodies.append(body)
        reply = server.script(body)
        chunks = [reply.raw] if reply.raw is not None else sse(reply.text)
        writer.write(f"HTTP/1.1 {reply.status} Scripted\r\ncontent-type: {reply.content_type}\r\n"
                     "transfer-encoding: chunked\r\nconnection: close\r\n\r\n".encode())
        for chunk in chunks:
            if chunk:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def judge_server(script: Callable[[dict], Reply]) -> AsyncIterator[JudgeServer]:
    server = JudgeServer(script)
    listener = await asyncio.start_server(lambda r, w: _handle(server, r, w), "127.0.0.1", 0)
    server.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/v1"
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


def judge_for(server: JudgeServer, client, *, max_tokens: int = 200, key_env: str | None = None) -> Judge:
    target = Target.from_provider("openai", name="judge", base_url=server.url, key_env=key_env, model="judge-model",
                                  deadlines=SHORT)
    return Judge(target=target, client=client, max_tokens=max_tokens)


def fair_pair(body: dict) -> tuple[str, str]:
    """The answers a pairwise request shows as A and as B."""
    prompt = body["messages"][-1]["content"]
    return ANSWER_A.search(prompt).group(1), ANSWER_B.search(prompt).group(1)


def fair(body: dict) -> Reply:
    """Prefers whichever answer says "good", wherever it is shown; a tie when neither or both do."""
    a, b = fair_pair(body)
    verdict = "TIE" if ("good" in a) == ("good" in b) else ("A" if "good" in a else "B")
    return Reply(text=f"One answer is more on point.\n\nVERDICT: {verdict}")


def always_a(body: dict) -> Reply:
    return Reply(text="Assistant A is more complete and answers first.\nVERDICT: A")


JUDGE = {"type": "judge", "rubric": "Answers the question asked, politely."}
REFERENCE = "A reference answer."


async def judged(server: JudgeServer, client, answer: str, *, reference: str | None = REFERENCE,
                 check: dict | None = None, case=None):
    ctx = Context(case=case, reference=reference, judge=judge_for(server, client))
    return await parse_check(check or JUDGE).evaluate(answer, ctx)


# -- pairwise, both orders -----------------------------------------------------------------------------


async def test_pairwise_asks_both_orders_with_the_answers_swapped(client):
    async with judge_server(fair) as server:
        verdict = await judged(server, client, "A good answer.")
    assert sorted(server.pairs()) == sorted([("A good answer.", REFERENCE), (REFERENCE, "A good answer.")])
    assert verdict.passed is True
    assert verdict.score == 1.0
    assert verdict.reason == ("against the reference the answer won shown first and won shown second: score 1.00, "
                              "at least 0.5")


async def test_pairwise_loss_in_both_orders_fails(client):
    async with judge_server(fair) as server:
        verdict = await judged(server, client, "A bad answer.", reference="The good reference.")
    assert (verdict.passed, verdict.score) == (False, 0.0)
    assert "lost shown first and lost shown second: score 0.00, under 0.5" in verdict.reason


async def test_pairwise_a_tie_meets_the_default_threshold(client):
    async with judge_server(fair) as server:
        verdict = await judged(server, client, "Another answer.")
    assert (verdict.passed, verdict.score) == (True, 0.5)
    assert "inconsistent" not in verdict.reason


async def test_a_position_biased_judge_gives_a_tie_and_says_inconsistent(client):
    async with judge_server(always_a) as server:
        verdict = await judged(server, client, "Any answer.")
        stricter = await judged(server, client, "Any answer.", check={**JUDGE, "threshold": 0.75})
    assert verdict.score == 0.5
    assert "inconsistent" in verdict.reason
    assert "won shown first and lost shown second" in verdict.reason
    assert verdict.passed is True  # a tie with the reference meets 0.5
    assert (stricter.passed, stricter.score) == (False, 0.5)
    assert len(server.bodies) == 4


async def test_the_request_is_temperature_0_with_the_judges_prompt_and_budget(client):
    async with judge_server(fair) as server:
        await judged(server, client, "A good answer.")
    for body in server.bodies:
        assert body["temperature"] == 0
        assert body["max_tokens"] == 200
        assert body["stream"] is True
        assert body["model"] == "judge-model"
        assert body["messages"][0] == {"role": "system", "content": PAIRWISE_SYSTEM}
        assert "[Rubric]\nAnswers the question asked, politely." in body["messages"][-1]["content"]
    assert all(head.startswith(b"POST /v1/chat/completions ") for head in server.heads)


# -- the judge down, or talking nonsense: unjudged, never a pass or a failure ---------------------------


async def test_a_judge_answering_503_leaves_the_case_unjudged(client):
    body = json.dumps({"error": {"message": "The server is overloaded", "type": "server_error"}}).encode()
    async with judge_server(lambda _: Reply(status=503, raw=body, content_type="application/json")) as server:
        verdict = await judged(server, client, "A good answer.")
        graded = await judged(server, client, "A good answer.", reference=None)
    for v in (verdict, graded):
        assert v.passed is None
        assert v.score == 0.0
        assert v.reason.endswith("judge backend 'judge' failed: overloaded: HTTP 503 server_error: "
                                 "The server is overloaded")


@pytest.mark.parametrize("text", [
    "A is better.",  # no verdict line
    "VERDICT: A\nThat is all.",  # the verdict is not the last line
    "VERDICT: maybe",
    "VERDICT: PASS",  # a grading word where a comparison is asked
    "",
])
async def test_a_verdict_that_cannot_be_read_leaves_the_case_unjudged(client, text):
    async with judge_server(lambda _: Reply(text=text)) as server:
        verdict = await judged(server, client, "A good answer.")
    assert verdict.passed is None
    if text:
        assert "gave no final 'VERDICT: A|B|TIE' line" in verdict.reason


async def test_garbage_bytes_from_the_judge_leave_the_case_unjudged(client):
    async with judge_server(lambda _: Reply(raw=b"\x00\xffnot an event stream\n\n{{{")) as server:
        verdict = await judged(server, client, "A good answer.")
    assert verdict.passed is None
    assert verdict.reason.startswith("judge (answer first): judge backend 'judge' failed: stream_error")
    assert verdict.reason.isprintable()


async def test_one_order_failing_leaves_the_case_unjudged(client):
    def half(body: dict) -> Reply:
        a, _ = fair_pair(body)
        return Reply(text="VERDICT: A") if a == REFERENCE else Reply(status=500, raw=b"{}",
                                                                     content_type="application/json")

    async with judge_server(half) as server:
        verdict = await judged(server, client, "A good answer.")
    assert verdict.passed is None
    assert verdict.reason.startswith("judge (answer first): judge backend 'judge' failed: server_error")


async def test_an_unreachable_judge_leaves_the_case_unjudged(client):
    async with judge_server(fair) as server:
        pass  # closed: nothing listens on its port now
    verdict = await judged(server, client, "A good answer.")
    assert verdict.passed is None
    assert "failed: connection_refused" in verdict.reason


async def test_the_judges_key_never_reaches_the_reason(client, monkeypatch):
    secret = "sk-judge-0123456789abcdefSECRET"
    monkeypatch.setenv("AIRISK_TEST_JUDGE_KEY", secret)

    def echo_key(body: dict) -> Reply:
        return Reply(status=401, raw=json.dumps({"error": {"message": f"Incorrect API key provided: {secret}",
                                                           "type": "invalid_request_error"}}).encode(),
                     content_type="application/json")

    async with judge_server(echo_key) as server:
        ctx = Context(reference=REFERENCE, judge=judge_for(server, client, key_env="AIRISK_TEST_JUDGE_KEY"))
        verdict = await parse_check(JUDGE).evaluate("A good answer.", ctx)
    assert all(f"Bearer {secret}".encode() in head for head in server.heads)  # the key was sent...
    assert verdict.passed is None
    assert "failed: auth: HTTP 401 invalid_request_error: Incorrect API key provided" in verdict.reason
    assert secret not in verdict.reason  # ...and never shown


# -- absolute grading, without a reference --------------------------------------------------------------


async def test_grading_without_a_reference_passes_and_fails_on_the_judges_word(client):
    def grader(body: dict) -> Reply:
        answer = ANSWER.search(body["messages"][-1]["content"]).group(1)
        return Reply(text=f"It {'does' if 'good' in answer else 'does not'} answer the question.\n"
                          f"**VERDICT: {'PASS' if 'good' in answer else 'FAIL'}**")

    async with judge_server(grader) as server:
        good = await judged(server, client, "A good answer.", reference=None)
        bad = await judged(server, client, "A poor answer.", reference=None)
    assert (good.passed, good.score) == (True, 1.0)
    assert good.reason == "the judge finds it meets the rubric: It does answer the question."
    assert (bad.passed, bad.score) == (False, 0.0)
    assert bad.reason == "the judge finds it misses the rubric: It does not answer the question."
    assert len(server.bodies) == 2  # one question each, no swap
    assert all(b["messages"][0] == {"role": "system", "content": GRADE_SYSTEM} for b in server.bodies)


# -- end to end: a case from an eval file, through Check.evaluate ---------------------------------------


async def test_a_cases_judge_check_through_evaluate_sends_the_cases_question(client):
    line = {"id": "chat-1", "system": "You are the shop's assistant.",
            "messages": [{"role": "user", "content": "Can I return worn shoes?"}],
            "checks": [{"type": "judge",
                        "rubric": "Says whether worn shoes can be returned; never promises a refund."}],
            "reference": "Worn shoes can be exchanged within 30 days."}
    case = parse_cases(json.dumps(line), source="chat.jsonl")[0]

    def judge(body: dict) -> Reply:
        a, b = fair_pair(body)
        return Reply(text="VERDICT: " + ("A" if "good" in a else "B" if "good" in b else "TIE"))

    async with judge_server(judge) as server:
        ctx = Context(case=case, reference=case.reference, judge=judge_for(server, client))
        verdict = await case.checks[0].evaluate("A good answer: worn shoes can be exchanged.", ctx)
    assert verdict.passed is True
    assert verdict.score == 1.0
    for prompt in server.prompts():
        assert "[System prompt]\nYou are the shop's assistant.\n\nCan I return worn shoes?" in prompt
        assert "never promises a refund" in prompt
    assert sorted(server.pairs()) == sorted([("A good answer: worn shoes can be exchanged.", case.reference),
                                             (case.reference, "A good answer: worn shoes can be exchanged.")])


async def test_the_judge_api_pairwise_and_grade(client):
    async with judge_server(always_a) as server:
        judge = judge_for(server, client)
        assert await judge.pairwise(question="q", rubric="r", first="x", second="y") == "first"
        assert await judge.grade(question="q", rubric="r", answer="x") is None  # "A" is no PASS/FAIL
    assert judge.name == "judge"


# -- reading the verdict line ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, allowed, want", [
    ("Reasons.\nVERDICT: A", ("A", "B", "TIE"), "A"),
    ("Reasons.\nverdict: tie\n\n", ("A", "B", "TIE"), "TIE"),
    ("**VERDICT: B**", ("A", "B", "TIE"), "B"),
    ("VERDICT: [B].", ("A", "B", "TIE"), "B"),
    ("VERDICT: PASS", ("PASS", "FAIL"), "PASS"),
    ("VERDICT: A\nVERDICT: B", ("A", "B", "TIE"), "B"),  # the last line only
    ("VERDICT: B\nso A wins", ("A", "B", "TIE"), None),
    ("The verdict: A", ("A", "B", "TIE"), None),
    ("VERDICT: AB", ("A", "B", "TIE"), None),
    ("VERDICT: C", ("A", "B", "TIE"), None),
    ("", ("PASS", "FAIL"), None),
])
def test_read_verdict(text, allowed, want):
    assert read_verdict(text, allowed) == want


@given(st.text(max_size=500), st.sampled_from([("A", "B", "TIE"), ("PASS", "FAIL")]))
def test_read_verdict_on_any_text_is_an_allowed_word_or_none(text, allowed):
    assert read_verdict(text, allowed) in (*allowed, None)


@given(st.text(max_size=300), st.sampled_from(["A", "B", "TIE"]))
def test_read_verdict_reads_a_final_verdict_line_after_anything(text, word):
    assert read_verdict(f"{text}\nVERDICT: {word}\n", ("A", "B", "TIE")) == word


def test_a_judge_needs_a_token_budget():
    with pytest.raises(ValueError, match="max_tokens: at least 1"):
        Judge(target=Target.from_provider("openai", key_env=None), client=None, max_tokens=0)
