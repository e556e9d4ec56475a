"""Drills judge answers, not status codes: eval sets in drill files, the bounded and spread sample of
answers, their checks, the verdict and its outputs, and the verified-fallbacks rule in the store.
(Unit level; the same against the real storefront, proxy and emulator is in test_drill_e2e.py.)"""

from __future__ import annotations

import asyncio
import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import ClassVar, Literal

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from chaos.drill import output
from chaos.drill.judging import Judged, answer_text, judge_answers, judge_one, judge_sample, quality_stats
from chaos.drill.loadconfig import load_inputs
from chaos.drill.report import PhaseRun, analyse
from chaos.drill.responses import Keeper, dig, judge_response
from chaos.drill.runner import DrillError, Options, run_drill
from chaos.drill.sampling import AnswerSample, slot_seconds
from chaos.drill.spec import ConfigError, DrillSpec, load_drill
from monitor.config.loader import parse_model
from monitor.quality.cases import Case, HttpCall
from monitor.quality.checks import Check, Context, Verdict
from monitor.store.drills import quality_short, verified_fallbacks

CHAT_CASES = [
    {"id": "order", "http": {"path": "/api/chat", "json": {"message": "Where is my order?"}},
     "checks": [{"type": "contains", "value": ["order", "tracking"], "mode": "any"},
                {"type": "regex", "pattern": r"\b(we will|we'll)\s+(issue|give|send)\b.*\brefund", "ignore_case": True,
                 "must_match": False}]},
    {"id": "returns", "http": {"path": "/api/chat", "json": {"message": "How do I return a lamp?"}},
     "checks": [{"type": "contains", "value": ["return"]}, {"type": "length", "max_words": 80}]},
    {"id": "model-only", "messages": [{"role": "user", "content": "hi"}],
     "checks": [{"type": "length", "max_words": 9}]},
]
DRILL = """\
name: q
product: {base_url: "http://127.0.0.1:8600"}
features:
  chat:
    cases: evals/chat.jsonl
    outcome: survives
  tags: {request: {path: /api/tags, json: {review: late}}, outcome: may_fail}
phases:
  - {name: base, duration: 10s}
  - {name: down, duration: 10s, faults: [{route: anthropic, type: overloaded}]}
  - {name: after, duration: 10s}
"""
PHASES = [PhaseRun("base", 0, 10), PhaseRun("down", 10, 20, [{"route": "anthropic", "type": "overloaded"}]),
          PhaseRun("after", 20, 30)]


def write_cases(folder: Path, cases: list[dict], name: str = "chat.jsonl") -> Path:
    path = folder / "evals" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(c) + "\n" for c in cases))
    return path


@pytest.fixture
def drill_file(tmp_path) -> Path:
    write_cases(tmp_path, CHAT_CASES)
    path = tmp_path / "drill.yaml"
    path.write_text(DRILL)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_drill(path)
    return str(caught.value).splitlines()


# -- the drill file ----------------------------------------------------------------------------

def test_cases_are_read_relative_to_the_drill_file_and_only_those_with_http_are_sent(drill_file, monkeypatch):
    monkeypatch.chdir("/")
    spec = load_drill(drill_file)
    sets = spec.eval_sets()
    assert [c.id for c in sets["chat"].cases] == ["order", "returns"] and sets["chat"].skipped == 1
    assert set(sets) == {"chat"}  # tags has no eval set
    chat = spec.features["chat"]
    assert chat.request is None and (chat.judging.sample, chat.judging.min_pass) == (20, 0.8)
    assert spec.features["tags"].judging is None
    # What the load generator gets: each case's own request, its index, and the field holding its answer.
    assert load_inputs(spec, "chat", sets["chat"]) == [
        {"method": "POST", "path": "/api/chat", "json": {"message": "Where is my order?"}, "headers": {},
         "answer": "text", "case": 0},
        {"method": "POST", "path": "/api/chat", "json": {"message": "How do I return a lamp?"}, "headers": {},
         "answer": "text", "case": 1}]
    assert load_inputs(spec, "tags", None) == [{"method": "POST", "path": "/api/tags", "json": {"review": "late"},
                                                "headers": {}, "answer": None, "case": None}]


def test_a_fixed_request_beside_cases_is_one_more_input_never_judged(drill_file):
    drill_file.write_text(DRILL.replace("cases: evals/chat.jsonl", "cases: evals/chat.jsonl\n    request: {path: /x}"))
    spec = load_drill(drill_file)
    inputs = load_inputs(spec, "chat", spec.eval_sets()["chat"])
    assert [(i["path"], i["case"]) for i in inputs] == [("/x", None), ("/api/chat", 0), ("/api/chat", 1)]


@pytest.mark.parametrize(("change", "problem"), [
    (("evals/chat.jsonl", "evals/gone.jsonl"),
     "drill.yaml:5: features.chat.cases: {dir}/evals/gone.jsonl: cannot be read: No such file or directory"),
    (("evals/chat.jsonl", "evals/model-only.jsonl"),
     "drill.yaml:5: features.chat.cases: {dir}/evals/model-only.jsonl: none of its 1 cases has 'http' (the "
     "product's own request), which is what a drill sends"),
    (("evals/chat.jsonl", "evals/bad.jsonl"),
     "drill.yaml:5: features.chat.cases: {dir}/evals/bad.jsonl:2: checks.0: unknown check type 'sounds_nice'"),
    (("    outcome: survives", "    quality: {sample: 0}"),
     "drill.yaml:6: features.chat.quality.sample: Input should be greater than or equal to 1"),
    (("    outcome: survives", "    quality: {min_pass: 1.5}"),
     "drill.yaml:6: features.chat.quality.min_pass: Input should be less than or equal to 1"),
    (("    outcome: survives", "    quality: {sampel: 5}"),
     "drill.yaml:6: features.chat.quality.sampel: unknown field 'sampel' (did you mean 'sample'?)"),
    (("{request: {path: /api/tags, json: {review: late}}, ", "{request: {path: /t}, quality: {sample: 3}, "),
     "drill.yaml:7: features.tags: quality: judging answers needs 'cases' (the checks come from the eval set)"),
    (("{request: {path: /api/tags, json: {review: late}}, ", "{"),
     "drill.yaml:7: features.tags: give 'request' (one fixed request), 'cases' (an eval set to draw requests "
     "from), or both"),
])
def test_every_problem_is_one_line_naming_the_file_and_field(drill_file, change, problem):
    write_cases(drill_file.parent, [CHAT_CASES[2]], "model-only.jsonl")
    write_cases(drill_file.parent, [CHAT_CASES[0], {**CHAT_CASES[1], "checks": [{"type": "sounds_nice"}]}], "bad.jsonl")
    drill_file.write_text(DRILL.replace(*change))
    problems = _problems(drill_file)
    expected = f"{drill_file.parent}/" + problem.format(dir=drill_file.parent)
    assert any(p.startswith(expected) for p in problems), problems


def test_a_badly_broken_eval_set_is_quoted_ten_lines_and_counted(drill_file):
    (drill_file.parent / "evals" / "chat.jsonl").write_text("not json\n" * 25)
    problems = _problems(drill_file)
    assert len(problems) == 11 and problems[0].endswith("evals/chat.jsonl:1: not JSON: Expecting value: line 1 "
                                                         "column 1 (char 0)")
    assert problems[-1].endswith("evals/chat.jsonl: 15 more problems")


def test_a_spec_built_in_code_reads_its_eval_sets_when_run(tmp_path):
    write_cases(tmp_path, CHAT_CASES)
    spec = parse_model(DRILL.replace("evals/chat.jsonl", "evals/none.jsonl"), DrillSpec, source="drill.yaml")
    with pytest.raises(DrillError, match=r"features\.chat\.cases: .*evals/none\.jsonl: cannot be read"):
        run_drill(spec, Options(base_dir=tmp_path))  # before anything is started: no product at :8600 needed
    good = parse_model(DRILL, DrillSpec, source="drill.yaml")
    assert [c.id for c in good.eval_sets(tmp_path)["chat"].cases] == ["order", "returns"]


QUALITY_VALUE = st.one_of(st.integers(-5, 2000), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
                          st.booleans(), st.none(), st.lists(st.integers(), max_size=2))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sample=st.one_of(st.integers(1, 1000), QUALITY_VALUE), min_pass=st.one_of(st.floats(0, 1), QUALITY_VALUE),
       cases=st.one_of(st.just("evals/chat.jsonl"), st.just("evals/chat.jsonl"), st.text(max_size=30), st.integers(),
                       st.none()))
def test_any_quality_settings_are_taken_exactly_or_refused_in_one_line(drill_file, sample, min_pass, cases):
    data = yaml.safe_load(DRILL)
    data["features"]["chat"]["quality"] = {"sample": sample, "min_pass": min_pass}
    data["features"]["chat"]["cases"] = cases
    drill_file.write_text(yaml.safe_dump(data))
    try:
        spec = load_drill(drill_file)
    except ConfigError as exc:
        for problem in exc.problems:
            assert problem.file == str(drill_file) and problem.line is not None
            assert problem.path.startswith("features.chat"), str(problem)
            assert "\n" not in problem.message
        return
    judging = spec.features["chat"].judging
    assert 1 <= judging.sample <= 1000 and judging.sample == float(sample)
    assert 0 <= judging.min_pass <= 1 and judging.min_pass == float(min_pass)
    assert spec.eval_sets()["chat"].cases  # only a readable set with http cases gets here


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)
LINE = st.one_of(st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")),
                 JSON.map(lambda v: json.dumps(v).encode()),
                 st.fixed_dictionaries({"http": st.fixed_dictionaries({"path": st.sampled_from(["/a", "b", ""])}),
                                        "checks": st.lists(st.fixed_dictionaries(
                                            {"type": st.sampled_from(["contains", "length", "nope"]),
                                             "value": st.text(max_size=5)}), max_size=2)})
                 .map(lambda v: json.dumps(v).encode()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, max_size=6))
def test_any_eval_file_gives_a_drill_or_problems_naming_the_drill_field(drill_file, lines):
    (drill_file.parent / "evals" / "chat.jsonl").write_bytes(b"\n".join(lines))
    try:
        spec = load_drill(drill_file)
    except ConfigError as exc:
        assert exc.problems and all(p.file == str(drill_file) and p.line == 5 and p.path == "features.chat.cases"
                                    for p in exc.problems), str(exc)
        return
    assert all(c.http is not None for c in spec.eval_sets()["chat"].cases) and spec.eval_sets()["chat"].cases


@given(body=st.one_of(st.binary(max_size=200), JSON.map(lambda v: json.dumps(v).encode())),
       status=st.sampled_from([200, 503, 0]), field=st.sampled_from(["text", "a.b", "backend"]))
def test_any_product_answer_is_read_without_raising(body, status, field):
    for degraded_when in (None, {"field": "degraded", "equals": True}):
        feature = {"expect": {"status": 200, "field": None}, "degraded_when": degraded_when}
        ok, deg, kind, backend, data = judge_response(feature, field, status, body)
        assert not (ok and deg) and (kind is None) == (ok or deg)
        assert backend is None or isinstance(backend, str)
        if ok:
            assert isinstance(data, dict) and isinstance(answer_text(data, field), str)


# -- reading a response, and which answers carry their body ---------------------------------------

def test_the_answer_field_may_be_nested_and_must_hold_something():
    feature = {"expect": {"status": 200, "field": None}, "degraded_when": None}
    body = json.dumps({"backend": "local", "answer": {"text": "hi"}, "empty": ""}).encode()
    assert judge_response(feature, "answer.text", 200, body)[:4] == (True, False, None, "local")
    assert judge_response(feature, "empty", 200, body)[:4] == (False, False, "bad_answer", "local")
    assert judge_response(feature, "answer.text", 503, body)[:3] == (False, False, "http_503")
    assert judge_response(feature, "answer.text", 200, b"<html>")[:3] == (False, False, "bad_json")
    assert dig({"a": [1]}, "a.b") is None and dig({"a": {"b": 0}}, "a.b") == 0


def test_the_keeper_takes_the_first_answer_to_end_in_each_slot():
    keeper = Keeper({"chat": 0.5, "tags": None}, max_body=100)
    ends = [10.0, 10.1, 10.49, 10.5, 10.7, 12.2, 12.3]
    assert [keeper.take("chat", t, 10) for t in ends] == [True, False, False, True, False, True, False]
    assert not keeper.take("tags", 10.0, 10)  # not judged
    assert not keeper.take("chat", 20.0, 101) and keeper.take("chat", 20.1, 100)  # too big: the next one


# -- the sample: bounded, spread over each phase --------------------------------------------------

def test_slots_give_each_stratum_of_the_shortest_phase_two_candidates(drill_file):
    spec = load_drill(drill_file)
    assert slot_seconds(spec, "chat") == 10 / 40 and slot_seconds(spec, "tags") is None
    spec.features["chat"].quality = spec.features["chat"].judging.model_copy(update={"sample": 1000})
    assert slot_seconds(spec, "chat") == 0.05  # at most 20 bodies a second, however large the sample


@pytest.mark.parametrize("order", ["in time", "shuffled"])
def test_the_sample_is_bounded_and_spread_over_the_phase(order):
    sample = AnswerSample({"chat": 20}, {"down": 10.0})
    records = [{"t": 10 + i / 1000, "ms": 5.0, "f": "chat"} for i in range(9990)]
    if order == "shuffled":
        random.Random(3).shuffle(records)
    for r in records:
        sample.offer("chat", "down", 10.0, r)
    kept = [r["t"] + r["ms"] / 1000 - 10 for _, _, r in sample.items()]
    assert len(sample) == 20 and sample.offered[("chat", "down")] == 9990
    # one in each half second of the phase: the whole phase is covered, not its first N answers
    assert [int(t / 0.5) for t in kept] == list(range(20))
    assert AnswerSample({}, {"down": 10.0}).offer("chat", "down", 10.0, records[0]) is False


def _rec(t, f="chat", ok=True, deg=False, ms=10.0, b="local", case=None, text=None):
    r = {"t": t, "f": f, "ms": ms, "ok": ok, "deg": deg, "s": 200 if ok or deg else 503, "k": None if ok or deg
         else "http_503", "b": b}
    if case is not None:
        r.update(c=case, a={"text": text, "backend": b})
    return r


def test_the_tally_samples_only_full_answers_wholly_inside_a_phase(drill_file):
    spec = load_drill(drill_file)
    spec.features["chat"].quality = spec.features["chat"].judging.model_copy(update={"sample": 5})
    records = [_rec(10 + i / 10, case=0, text="x") for i in range(100)]  # 100 in the faults' 10 s
    records += [_rec(9.995, case=0, text="straddles"), _rec(15, ok=False, deg=True, case=0, text="degraded"),
                _rec(16, ok=False, case=0, text="failed"), _rec(25, case=1, text="after")]
    seen = []
    analyse(spec, records, PHASES, [], started_at=0, ended_at=30, judge=lambda items: seen.extend(items) or [])
    texts = [(phase, r["a"]["text"]) for _, phase, r in seen]
    assert texts == [("down", "x")] * 5 + [("after", "after")]


# -- checking answers -----------------------------------------------------------------------------

def _case(*checks: Check, answer: str = "text", reference: str | None = None) -> Case:
    return Case(id="c1", source="t:1", checks=checks, http=HttpCall(path="/api/chat", answer=answer),
                reference=reference)


class Boom(Check):
    name = "boom"
    type: Literal["boom"] = "boom"

    def run(self, answer: str, ctx: Context) -> Verdict:
        raise RuntimeError("a bug")


class Slow(Check):
    name = "slow"
    type: Literal["slow"] = "slow"

    async def evaluate(self, answer: str, ctx: Context) -> Verdict:
        await asyncio.sleep(30)
        return Verdict.ok("late")


class Seen(Check):
    """Passes, noting what it was given (the answer text, and the product's whole JSON answer)."""

    name = "seen"
    type: Literal["seen"] = "seen"
    log: ClassVar[list] = []

    def run(self, answer: str, ctx: Context) -> Verdict:
        self.log.append((answer, ctx.extra, ctx.reference, ctx.judge))
        return Verdict.ok("seen")


def test_an_answer_passes_fails_or_is_unjudged_by_its_checks():
    from monitor.quality.checks import parse_check

    contains = parse_check({"type": "contains", "value": "order"})
    judge = parse_check({"type": "judge", "rubric": "Answers the question asked."})
    record = {"b": "local", "a": {"text": "Your order ships today", "ranked": ["a", "b"]}}
    seen = Seen()
    ok = asyncio.run(judge_one("chat", "down", record, _case(contains, seen, judge, reference="ref")))
    assert (ok.passed, ok.backend, ok.case) == (True, "local", "c1")
    assert seen.log[-1] == ("Your order ships today", record["a"], "ref", None)  # no judge in a drill
    bad = asyncio.run(judge_one("chat", "down", {"b": "local", "a": {"text": "Atlantis is the answer"}},
                                _case(seen, contains, judge)))
    assert (bad.passed, bad.reason) == (False, "c1: contains: missing 'order'")
    unjudged = asyncio.run(judge_one("chat", "down", record, _case(judge)))
    assert unjudged.passed is None and "judge" in unjudged.reason.lower()
    # a check that raises or hangs does not take the drill's report down with it: unjudged, saying why
    broken = asyncio.run(judge_one("chat", "down", record, _case(Boom(), Slow()), check_timeout=0.05))
    assert broken.passed is None
    assert broken.reason == "c1: boom: could not run (RuntimeError); slow: no verdict within 0.05s"


def test_the_answer_text_is_the_cases_field_of_the_products_answer():
    assert answer_text({"text": "hi"}, "text") == "hi"
    assert answer_text({"tags": ["late", "damaged"]}, "tags") == "late, damaged"
    assert answer_text({"r": {"x": [1, {"y": 2}]}}, "r") == '{"x": [1, {"y": 2}]}'
    assert answer_text({"text": None}, "text") == answer_text("not a dict", "text") == ""


def test_samples_are_checked_against_the_case_they_name(drill_file):
    spec = load_drill(drill_file)
    sets = spec.eval_sets()
    items = [("chat", "down", _rec(11, case=0, text="Your order is on its way")),
             ("chat", "down", _rec(12, case=1, text="Atlantis")),
             ("chat", "down", _rec(13, case=7, text="no such case")), ("tags", "down", _rec(14, case=0, text="x"))]
    judged = judge_sample(items, sets)
    assert [(j.case, j.passed) for j in judged] == [("order", True), ("returns", False)]
    assert judge_sample([], sets) == []
    # at most `concurrency` answers are checked at once
    running, peak = [0], [0]

    class Gauge(Check):
        name = "gauge"
        type: Literal["gauge"] = "gauge"

        async def evaluate(self, answer, ctx):
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            await asyncio.sleep(0.01)
            running[0] -= 1
            return Verdict.ok("ok")

    from chaos.drill.spec import EvalSet

    gauged = {"chat": EvalSet("x", (_case(Gauge()),), 0)}
    many = [("chat", "down", _rec(10 + i / 100, case=0, text="t")) for i in range(30)]
    assert len(asyncio.run(judge_answers(many, gauged, concurrency=3))) == 30 and peak[0] == 3


def test_quality_stats_count_judged_answers_only():
    judged = [Judged("chat", "down", "a", "local", True, ""), Judged("chat", "down", "b", "local", False, "b: x: y"),
              Judged("chat", "down", "c", "anthropic", True, ""),
              Judged("chat", "down", "d", None, None, "d: no judge")]
    q = quality_stats(judged, min_pass=0.8, faulted=True)
    assert (q.sampled, q.passed, q.failed, q.unjudged, q.judged) == (4, 2, 1, 1, 3)
    assert q.pass_rate == pytest.approx(2 / 3) and q.below and q.failing == "b: x: y"
    assert q.by_backend == {"local": [2, 1], "anthropic": [1, 1]} and q.unjudged_reason == "d: no judge"
    none = quality_stats(judged[3:], min_pass=0.8, faulted=True)
    assert none.pass_rate is None and not none.below


# -- the verdict, its outputs and the store -------------------------------------------------------

def _drill_records(fallback_text: str, n: int = 300) -> list[dict]:
    """Chat answered in full all along: by anthropic, then (the faults) by local, then anthropic again."""
    records = []
    for i in range(n):
        t = i * 30 / n
        down = 10 <= t < 20
        b = "local" if down else "anthropic"
        records.append(_rec(t, b=b, case=i % 2, text=fallback_text if down else "Your order: see the return page"))
        records.append(_rec(t, f="tags", ok=not down, deg=down, b="heuristic" if down else "openai"))
    return records


ENTRIES = [{"at": 15, "feature": "chat", "route": "local", "status": 200},
           {"at": 5, "feature": "chat", "route": "anthropic", "status": 200}]


def _analyse(drill_file: Path, fallback_text: str):
    spec = load_drill(drill_file)
    return analyse(spec, _drill_records(fallback_text), PHASES, ENTRIES, started_at=0, ended_at=30,
                   judge=lambda items: judge_sample(items, spec.eval_sets()))


def test_answered_with_garbage_is_broken_with_the_quality_as_the_reason(drill_file):
    result = _analyse(drill_file, "Atlantis is the answer, as far as this model can tell")
    chat = next(f for f in result.features if f.feature == "chat")
    assert chat.during_faults.ok_rate == 1.0  # every request answered 200 with a full answer...
    assert (chat.verdict, chat.meets) == ("broken", False)  # ...and none was any good
    q = chat.during_faults.quality
    assert (q.judged, q.passed, q.pass_rate) == (20, 0, 0.0) and q.by_backend == {"local": [20, 0]}
    assert chat.reason.startswith("answered 100% of requests, but 0 of 20 checked answers passed (0%, below "
                                  "min_pass 80%); e.g. ")
    assert q.failing in ("order: contains: missing 'order', 'tracking'", "returns: contains: missing 'return'")
    assert chat.phases["base"].quality.pass_rate == 1.0 and chat.phases["base"].quality.judged == 20
    assert result.notes == ["answer quality from a sample of the full answers, spread over each phase (during the "
                            "faults: chat 20 of 100 checked)"]
    assert not chat.phases["base"].quality.faulted and chat.phases["down"].quality.faulted
    assert output.failures(result) == [f"chat: expected to survives, was broken (full answers 100%, any answer 100% "
                                       f"while the faults were in force; {chat.reason})"]
    # tags has no eval set: judged by status as before, and no quality anywhere
    tags = next(f for f in result.features if f.feature == "tags")
    assert tags.verdict == "degraded" and tags.during_faults.quality is None and tags.reason is None


def test_a_good_fallback_stays_resilient(drill_file):
    result = _analyse(drill_file, "You can return it: your order page has a return button")
    chat = next(f for f in result.features if f.feature == "chat")
    assert (chat.verdict, chat.meets, chat.reason) == ("resilient", True, None)
    assert chat.during_faults.quality.pass_rate == 1.0 and chat.during_faults.quality.judged == 20


def test_a_pass_rate_at_min_pass_is_enough_and_below_it_is_not(drill_file):
    spec = load_drill(drill_file)
    # ten strata of a second; the first answer to arrive in each is checked: 8 pass, 2 fail
    records = [_rec(10 + i / 10, case=0, text="order" if i < 80 else "nope") for i in range(100)]
    for rate, verdict in ((0.8, "resilient"), (0.85, "broken")):
        judging = spec.features["chat"].judging
        spec.features["chat"].quality = judging.model_copy(update={"min_pass": rate, "sample": 10})
        result = analyse(spec, records, PHASES, [], started_at=0, ended_at=30,
                         judge=lambda items: judge_sample(items, spec.eval_sets()))
        chat = next(f for f in result.features if f.feature == "chat")
        assert chat.during_faults.quality.pass_rate == 0.8 and chat.verdict == verdict


def test_unjudged_answers_never_break_a_feature_but_say_so(drill_file):
    (drill_file.parent / "evals" / "chat.jsonl").write_text(json.dumps(
        {"id": "j", "http": {"path": "/api/chat", "json": {"message": "hi"}},
         "checks": [{"type": "judge", "rubric": "Helpful."}]}) + "\n")
    spec = load_drill(drill_file)
    records = [_rec(10 + i / 10, case=0, text="Atlantis") for i in range(100)]
    result = analyse(spec, records, PHASES, [], started_at=0, ended_at=30,
                     judge=lambda items: judge_sample(items, spec.eval_sets()))
    chat = next(f for f in result.features if f.feature == "chat")
    assert chat.verdict == "resilient" and chat.during_faults.quality.unjudged == 20
    assert chat.reason.startswith("quality not judged: none of 20 sampled answers could be judged (j: ")


def test_the_tables_and_junit_show_quality_per_phase(drill_file, tmp_path):
    result = _analyse(drill_file, "Atlantis is the answer, as far as this model can tell")
    console = Console(width=250, record=True, color_system=None)
    console.print(output.summary_table(result))
    console.print(output.quality_table(result))
    text = console.export_text()
    assert "quality" in text and "0% of 20" in text and "100% of 20" in text
    assert "contains: missing" in text and "chat: answered 100% of requests, but 0 of 20" in text
    output.write_junit(result, tmp_path / "j.xml")
    case = next(c for c in ET.parse(tmp_path / "j.xml").getroot().iter("testcase") if c.get("name") == "chat")
    assert "0 of 20 checked answers passed" in case.find("failure").get("message")
    out = json.loads(case.find("system-out").text)
    assert out["quality"]["down"]["pass_rate"] == 0.0 and out["quality"]["down"]["n"] == 20
    assert out["quality"]["base"]["pass_rate"] == 1.0 and out["quality"]["during_faults"]["min_pass"] == 0.8
    # a drill without eval sets shows no quality column and no quality table
    drill_file.write_text(DRILL.replace("cases: evals/chat.jsonl", "request: {path: /api/chat}"))
    plain = analyse(load_drill(drill_file), _drill_records("x"), PHASES, [], started_at=0, ended_at=30)
    assert output.quality_table(plain) is None
    console = Console(width=250, record=True, color_system=None)
    console.print(output.summary_table(plain))
    assert "quality" not in console.export_text()


@pytest.fixture
def engine():
    engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
    yield engine
    engine.dispose()


@pytest.mark.parametrize(("fallback", "verified"), [
    ("Atlantis is the answer, as far as this model can tell", []),
    ("You can return it: your order page has a return button", [("chat", "local")]),
])
def test_a_fallback_answering_garbage_is_not_verified(drill_file, engine, fallback, verified):
    result = _analyse(drill_file, fallback)
    run_id = output.store(result, [], engine)
    with Session(engine) as session:
        from monitor.store.drills import drill_features

        stored = {f.feature: f for f in drill_features(session=session, run_id=run_id)}
        assert stored["chat"].answered_by == ["local"] and stored["chat"].faulted_routes == ["anthropic"]
        down = stored["chat"].phases["down"]["quality"]
        assert down["faulted"] and down["min_pass"] == 0.8 and down["passed"] + down["failed"] == 20
        assert [(v.feature, v.route) for v in verified_fallbacks(session=session)] == verified


def test_quality_short_reads_the_routes_own_answers_where_judged():
    def phases(**by_backend):
        return {"base": {"quality": {"faulted": False, "passed": 0, "failed": 20, "min_pass": 0.8}},
                "down": {"quality": {"faulted": True, "passed": sum(p for _, p in by_backend.values()),
                                     "failed": sum(n - p for n, p in by_backend.values()), "min_pass": 0.8,
                                     "by_backend": {k: list(v) for k, v in by_backend.items()}}}}

    # a good primary answering part of the time does not hide a garbage fallback, nor the reverse
    mixed = phases(local=(16, 0), anthropic=(4, 4))
    assert quality_short(mixed, "local") and not quality_short(mixed, "anthropic")
    # a route the product never named (its backends are not the proxy's routes): the feature's whole sample
    assert quality_short(mixed, "groq")
    assert not quality_short(phases(local=(20, 17)), "local")  # 85%
    assert not quality_short({"down": {"requests": 5}}, "local")  # no quality checked: as before
    assert not quality_short({"down": {"quality": {"faulted": True, "passed": 0, "failed": 0, "min_pass": 0.8}}},
                             "local")  # nothing judged: neither verifies nor refutes
    assert not quality_short(None, "local") and not quality_short({"down": "junk"}, "local")
