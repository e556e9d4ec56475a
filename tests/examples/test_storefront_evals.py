"""The storefront's eval sets (examples/storefront/evals): what they hold, and what they measure.

- Each file loads: at least 30 cases, each with the model request (messages), the product's own request
  (http) and a hand-written reference.
- Each case's messages are what the storefront sends its model for that input, byte for byte: recorded
  on the wire between the running storefront and the emulator.
- The references pass their own cases' checks; the emulated providers' answers (`chaos.answers`) pass at
  least 90% per feature, through the model API and through the product; a wrong_answer fault fails
  most; without a judge backend the judge check is unjudged, never a pass or a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import examples.storefront
from chaos.answers import TAG_LABELS
from chaos.faults import Fault
from examples.storefront import Settings, create_app
from examples.storefront.app import CATALOGUE, KEYWORD_TAGS
from monitor.quality.cases import Case, load_cases
from monitor.quality.checks import Context
from probes import Conversation, Deadlines, generate

EVALS = Path(examples.storefront.__file__).parent / "evals"
FEATURES = ("description", "chat", "tags", "search")
# The backend each feature's model request goes to first (app.FEATURES), as an emulator route.
PRIMARY = {"description": "openai", "chat": "anthropic", "tags": "openai", "search": "local"}
CHECKS = {
    "description": {"length", "contains", "similar", "no_refusal", "judge"},
    "chat": {"contains", "regex", "length", "no_refusal", "judge"},
    "tags": {"one_of", "judge"},
    "search": {"rank", "judge"},
}
GOOD = 0.9  # the least share of cases a good answer passes, per feature
WRONG = 0.1  # the most share of cases a wrong answer passes
# Generous: these tests judge answers, not speed, on a machine that may be busy.
PATIENT = Deadlines(connect=10.0, first_token=20.0, total=60.0, stall=20.0)


def cases(feature: str) -> list[Case]:
    return load_cases(EVALS / f"{feature}.jsonl")


async def passes(case: Case, answer: str, extra: dict | None = None) -> bool:
    """Every check but the judge passes (the judge, with no backend configured, must say unjudged)."""
    ctx = Context(case=case, reference=case.reference, extra=extra or {})
    verdicts = {c.name: await c.evaluate(answer, ctx) for c in case.checks}
    assert verdicts["judge"].passed is None and "no judge backend" in verdicts["judge"].reason
    return all(v.passed for name, v in verdicts.items() if name != "judge")


async def gather(calls, limit: int = 4):
    gate = asyncio.Semaphore(limit)

    async def one(call):
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


# -- the files -----------------------------------------------------------------------------------

@pytest.mark.parametrize("feature", FEATURES)
def test_each_eval_file_holds_30_full_cases(feature):
    loaded = cases(feature)
    assert len(loaded) >= 30
    assert len({c.id for c in loaded}) == len(loaded)
    assert len({c.prompt for c in loaded}) == len(loaded)  # no two cases ask the same
    for case in loaded:
        assert case.messages and case.system and case.http is not None and case.reference, case.id
        assert case.http.path == f"/api/{feature}" and case.http.answer == "text"
        assert {c.name for c in case.checks} == CHECKS[feature], case.id


def test_tags_labels_are_the_heuristics_tags():
    assert set(TAG_LABELS) == {*KEYWORD_TAGS.values(), "general"}  # what the emulated providers answer from
    for case in cases("tags"):
        one_of, = (c for c in case.checks if c.name == "one_of")
        assert set(one_of.labels) == {*KEYWORD_TAGS.values(), "general"}
        assert (one_of.multi, one_of.max_items) == (True, 5)


def test_search_expects_an_item_of_the_case():
    for case in cases("search"):
        rank, = (c for c in case.checks if c.name == "rank")
        items = case.http.json_body.get("items", list(CATALOGUE))
        assert sum(rank.expected.casefold() in item.casefold() for item in items) == 1, case.id


@pytest.mark.parametrize("feature", FEATURES)
async def test_references_pass_their_own_checks(feature):
    failed = [c.id for c in cases(feature) if not await passes(c, c.reference)]
    assert failed == []


# -- the cases are what the storefront sends ----------------------------------------------------

class Recording(httpx.AsyncBaseTransport):
    """The storefront's outbound client over the real network, keeping each request's JSON body."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.bodies: list[dict] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(await request.aread()))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.asynccontextmanager
async def storefront(url: str, transport: httpx.AsyncBaseTransport | None = None) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(openai_base_url=url + "/openai/v1", anthropic_base_url=url + "/anthropic",
                        local_base_url=url + "/local/v1", ai_timeout=30.0)
    app = create_app(settings, transport=transport)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://storefront", timeout=60) as client:
        yield client


def sent(case: Case) -> list[dict]:
    return [{"role": "system", "content": case.system},
            *({"role": m.role, "content": m.content} for m in case.messages)]


@pytest.mark.parametrize("feature", FEATURES)
async def test_cases_are_what_the_storefront_sends(emulator, feature):
    if feature == "chat":  # the case is the local fallback's request: make the primary fail
        emulator.emu.faults.add(Fault.from_dict({"type": "server_error", "route": "anthropic"}))
    recording = Recording()
    async with storefront(emulator.url, recording) as shop:
        for case in cases(feature):
            recording.bodies.clear()
            resp = await shop.post(case.http.path, json=case.http.json_body)
            assert resp.status_code == 200, resp.text
            model_call = recording.bodies[-1]
            assert model_call["messages"] == sent(case), case.id
            assert model_call["max_tokens"] == case.params.max_tokens, case.id
            assert {"temperature", "top_p", "stop"}.isdisjoint(model_call), case.id
            if feature == "chat":  # the primary was asked the same, with more room (300 tokens)
                primary = recording.bodies[0]
                assert primary["system"] == case.system and primary["messages"] == sent(case)[1:]


# -- what the emulated providers' answers score ---------------------------------------------------

async def model_answers(emulator, client, feature: str) -> list[tuple[Case, str]]:
    target = emulator.target(PRIMARY[feature], deadlines=PATIENT)
    loaded = cases(feature)
    got = await gather(generate(target, Conversation.from_case(c), client=client) for c in loaded)
    assert all(g.ok for g in got), [g.result for g in got if not g.ok][:1]
    return list(zip(loaded, (g.text for g in got), strict=True))


@pytest.mark.parametrize("feature", FEATURES)
async def test_emulated_answers_pass_most_cases(emulator, client, feature):
    answered = await model_answers(emulator, client, feature)
    passed = [await passes(case, text) for case, text in answered]
    assert sum(passed) / len(passed) >= GOOD, [c.id for (c, _), ok in zip(answered, passed, strict=True) if not ok]


@pytest.mark.parametrize("feature", FEATURES)
async def test_wrong_answers_fail_most_cases(emulator, client, feature):
    emulator.emu.faults.add(Fault.from_dict({"type": "wrong_answer", "route": PRIMARY[feature]}))
    answered = await model_answers(emulator, client, feature)
    passed = [await passes(case, text) for case, text in answered]
    assert sum(passed) / len(passed) <= WRONG


@pytest.mark.parametrize("feature", FEATURES)
async def test_product_answers_pass_most_cases(emulator, feature):
    """End to end, as a drill checks the product: its JSON answer's field, with the whole answer as extra
    (search's ``ranked``)."""
    async with storefront(emulator.url) as shop:
        loaded = cases(feature)
        answers = await gather(shop.post(c.http.path, json=c.http.json_body) for c in loaded)
    assert all(a.status_code == 200 for a in answers)
    passed = [await passes(c, a.json()[c.http.answer], a.json()) for c, a in zip(loaded, answers, strict=True)]
    assert sum(passed) / len(passed) >= GOOD
