"""The eval runner against the emulator, stored in a real database: every case answered and checked once,
errors counted apart from quality failures, an interrupted run resumed without duplicates."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from chaos.faults import Fault
from monitor.config import parse_config
from monitor.quality.cases import CaseError, parse_cases
from monitor.quality.checks import Verdict
from monitor.quality.checks.contains import Contains
from monitor.quality.runner import (
    EvalError,
    Progress,
    answer_row,
    case_passed,
    feature_backends,
    plan_feature,
    resolve_backend,
    run_plan,
    run_plans,
)
from monitor.store import make_engine, migrate
from monitor.store.quality import run_answers
from probes import Generation, make_client
from probes.result import ErrorKind, ProbeResult
from tests.conftest import until

# The emulator answers "What is A plus B?" with the sum, then filler: "5 is my answer, as far as ..."
# (8 words with the test profile). So "contains the sum" passes, "Atlantis" and "one word" fail.
CASES = [
    {"id": "sum-1", "messages": [{"role": "user", "content": "What is 2 plus 3? Reply with the number only."}],
     "checks": [{"type": "contains", "value": "5"}]},
    {"id": "sum-2", "system": "You add numbers.",
     "messages": [{"role": "user", "content": "What is 10 plus 20?"}], "params": {"max_tokens": 64},
     "checks": [{"type": "contains", "value": "30"}, {"type": "length", "max_words": 40}]},
    {"id": "atlantis", "messages": [{"role": "user", "content": "What is 4 plus 4?"}],
     "checks": [{"type": "contains", "value": "Atlantis"}]},
    {"id": "one-word", "messages": [{"role": "user", "content": "What is 1 plus 1?"}],
     "checks": [{"type": "contains", "value": "2"}, {"type": "length", "max_words": 1}]},
    {"id": "judged", "messages": [{"role": "user", "content": "What is 7 plus 7?"}],
     "checks": [{"type": "judge", "rubric": "gives the sum"}]},
    {"id": "http-only", "http": {"path": "/api/description", "json": {"product": "shoes"}},
     "checks": [{"type": "contains", "value": "shoes"}]},
]
PASSED, FAILED, UNJUDGED = {"sum-1", "sum-2"}, {"atlantis", "one-word"}, {"judged"}


def write_setup(folder: Path, url: str, *, cases: list[dict] | None = None, extra: str = "",
                min_quality: float | None = None) -> Path:
    """An airisk.yaml whose targets are the emulator's OpenAI and Anthropic, and a chat eval set beside it."""
    cases = CASES if cases is None else cases
    (folder / "evals").mkdir(exist_ok=True)
    (folder / "evals" / "chat.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    quality = f"\n    min_quality: {min_quality}" if min_quality is not None else ""
    (folder / "airisk.yaml").write_text(f"""
defaults:
  deadlines: {{connect: 2s, first_token: 2s, total: 10s, stall: 2s}}
targets:
  - {{name: gpt, provider: openai, base_url: "{url}/openai/v1", key_env: NONE_SET}}
  - {{name: claude, provider: anthropic, base_url: "{url}/anthropic/v1", key_env: NONE_SET}}
  - {{name: gemini, provider: gemini, base_url: "{url}/gemini/v1beta", key_env: NONE_SET}}
features:
  chat:
    latency_budget: {{first_token: 5s, total: 10s}}
    chain: [{{backend: gpt}}, {{backend: claude}}, {{degraded: canned}}]
    candidates: [gemini, gpt]
    eval: evals/chat.jsonl{quality}
{extra}""")
    return folder / "airisk.yaml"


def _config(path: Path):
    return parse_config(path.read_text(), source=str(path))


def _count(engine, table: str = "eval_answer") -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


@pytest.fixture
def setup(tmp_path, emulator):
    path = write_setup(tmp_path, emulator.url)
    return _config(path), tmp_path


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


# -- the plan ------------------------------------------------------------------------------------------

def test_backends_are_the_chains_ai_backends_then_the_candidates_each_once(setup):
    config, _ = setup
    assert feature_backends(config, "chat") == ["gpt", "claude", "gemini"]


def test_plan_reads_the_eval_file_from_the_configs_folder_and_skips_http_cases(setup):
    config, folder = setup
    plan = plan_feature(config, "chat", base_dir=folder)
    assert [c.id for c in plan.cases] == ["sum-1", "sum-2", "atlantis", "one-word", "judged"]
    assert plan.skipped == 1
    assert [t.name for t in plan.targets] == ["gpt", "claude", "gemini"]
    assert plan.conversations[1].system == "You add numbers." and plan.conversations[1].max_tokens == 64
    assert plan.cases_file == str(folder / "evals" / "chat.jsonl") and len(plan.cases_hash) == 64
    first_two = plan_feature(config, "chat", base_dir=folder, backends=["claude"], limit=2)
    assert [c.id for c in first_two.cases] == ["sum-1", "sum-2"] and [t.name for t in first_two.targets] == ["claude"]


def test_unknown_names_list_the_known_ones(setup):
    config, folder = setup
    with pytest.raises(EvalError, match=r"unknown feature 'search' \(known: chat\)"):
        plan_feature(config, "search", base_dir=folder)
    with pytest.raises(EvalError, match=r"unknown backend 'gtp' \(known: .*claude.*gpt"):
        plan_feature(config, "chat", base_dir=folder, backends=["gtp"])


def test_a_bad_eval_file_is_every_bad_line(setup):
    config, folder = setup
    (folder / "evals" / "chat.jsonl").write_text(
        json.dumps(CASES[0]) + "\n" + "{not json\n" + json.dumps({"id": "x", "messages": [], "checks": []}) + "\n")
    with pytest.raises(CaseError) as caught:
        plan_feature(config, "chat", base_dir=folder)
    where = str(folder / "evals" / "chat.jsonl")
    assert caught.value.problems[0].startswith(f"{where}:2: not JSON")
    assert any(p.startswith(f"{where}:3: messages: ") for p in caught.value.problems)


_line = st.one_of(
    st.binary(max_size=80),
    st.builds(lambda c, content, role: json.dumps({**c, "messages": [{"role": role, "content": content}]}).encode(),
              st.sampled_from(CASES[:5]), st.text(max_size=20), st.sampled_from(["user", "assistant", "system"])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_line, max_size=5))
def test_any_eval_file_is_a_plan_or_its_problems(tmp_path, lines):
    config = _config(write_setup(tmp_path, "http://127.0.0.1:9"))
    (tmp_path / "evals" / "chat.jsonl").write_bytes(b"\n".join(lines))
    try:
        plan = plan_feature(config, "chat", base_dir=tmp_path)
    except CaseError as exc:
        assert exc.problems and all(p.startswith(str(tmp_path / "evals" / "chat.jsonl")) for p in exc.problems)
        return
    assert len(plan.cases) == len(plan.conversations) and all(c.messages for c in plan.cases)
    assert all(conv.messages[-1][0] == "user" for conv in plan.conversations)


def test_backend_names_resolve_as_the_monitor_resolves_them(tmp_path):
    config = parse_config("""
defaults: {region: eu, max_tokens: 20}
targets: [{name: gpt, provider: openai, model: gpt-x, key_env: MY_KEY}]
local_model: {port: 9999, alias: tiny}
features: {chat: {chain: [{backend: gpt}], candidates: [local, mistral]}}
""")
    gpt = resolve_backend(config, "gpt")
    assert (gpt.provider, gpt.model, gpt.key_env, gpt.region) == ("openai", "gpt-x", "MY_KEY", "eu")
    local = resolve_backend(config, "local")
    assert (local.base_url, local.model, local.local) == ("http://127.0.0.1:9999/v1", "tiny", True)
    mistral = resolve_backend(config, "mistral")  # a catalog provider that is not a target
    assert (mistral.provider, mistral.region, mistral.max_tokens) == ("mistral", "eu", 20)


# -- one answer (unit: a made-up generation) -------------------------------------------------------------

def _generation(text: str, kind: ErrorKind = ErrorKind.OK) -> Generation:
    result = ProbeResult(target="gpt", provider="openai", model="m", at=datetime.now(UTC), status=kind.status,
                         error_kind=kind, ttft_ms=10.0, total_ms=20.0, input_tokens=5, output_tokens=7,
                         cost_usd=0.5)
    return Generation(result=result, text=text)


@pytest.mark.parametrize(("verdicts", "passed"), [([True, True], True), ([True, None], True), ([None, None], None),
                                                  ([True, False], False), ([None, False], False), ([], None)])
def test_a_case_passes_when_every_judged_check_passes(verdicts, passed):
    assert case_passed(verdicts) is passed


async def test_an_answer_that_did_not_come_is_its_error_kind_and_is_never_checked(setup):
    config, folder = setup
    plan = plan_feature(config, "chat", base_dir=folder)
    target = plan.targets[0]
    row = await answer_row("chat", target, plan.cases[0], _generation("", ErrorKind.OVERLOADED), run_id=1)
    assert (row.error_kind, row.passed, row.checks) == ("overloaded", None, [])
    good = await answer_row("chat", target, plan.cases[0], _generation("5"), run_id=1)
    assert (good.error_kind, good.passed, good.total_ms, good.output_tokens) == (None, True, 20.0, 7)
    assert good.cost_usd == 0.5
    assert good.checks == [{"type": "contains", "passed": True, "score": 1.0, "reason": "contains '5'"}]


async def test_a_check_that_raises_leaves_the_case_unjudged_by_it(setup, monkeypatch):
    config, folder = setup
    plan = plan_feature(config, "chat", base_dir=folder)

    def broken(self, answer, ctx) -> Verdict:
        raise RuntimeError("a defect")

    monkeypatch.setattr(Contains, "run", broken)
    row = await answer_row("chat", plan.targets[0], plan.cases[0], _generation("5"), run_id=1)
    assert row.passed is None and row.error_kind is None
    assert row.checks[0]["passed"] is None and "RuntimeError: a defect" in row.checks[0]["reason"]


# -- end to end: the emulator, a real database -------------------------------------------------------------

async def test_a_run_answers_checks_and_stores_every_case_once_per_backend(setup, sqlite_engine):
    config, folder = setup
    seen: list[tuple[str, str]] = []

    class Watch(Progress):
        def answered(self, feature, row):
            seen.append((row.backend, row.case_id))

    plan = plan_feature(config, "chat", base_dir=folder)
    (outcome,) = await run_plans(config, [plan], engine=sqlite_engine, progress=Watch())
    assert sorted(seen) == sorted((b, c.id) for b in ("gpt", "claude", "gemini") for c in plan.cases)
    assert (outcome.resumed, outcome.answered) == (0, 15)
    for backend in ("gpt", "claude", "gemini"):
        f = outcome.figures[backend]
        assert (f.cases, f.passed, f.failed, f.unjudged, f.errors) == (5, 2, 2, 1, {}), backend
        assert f.total_p95_ms is not None and f.ttft_p50_ms is not None and f.output_tokens > 0
        assert [case for case, _ in outcome.failures[backend]] == ["atlantis", "one-word"]
    assert "missing 'Atlantis'" in outcome.failures["gpt"][0][1]
    with Session(sqlite_engine) as session:
        rows = run_answers(session, outcome.run_id)
    assert len(rows) == 15 and all("my answer" in r.answer for r in rows)
    judged = next(r for r in rows if r.case_id == "judged")
    assert judged.passed is None and "no judge backend configured" in judged.checks[0]["reason"]
    with sqlite_engine.connect() as conn:
        ended = conn.execute(sa.text("SELECT ended_at FROM eval_run WHERE id = :i"), {"i": outcome.run_id}).scalar()
    assert ended is not None  # finished: the next run is a new measurement, not a resumption


async def test_a_backend_that_is_overloaded_gives_errors_never_quality_failures(setup, emulator, sqlite_engine):
    config, folder = setup
    emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
    plan = plan_feature(config, "chat", base_dir=folder, backends=["gpt", "claude"])
    (outcome,) = await run_plans(config, [plan], engine=sqlite_engine)
    claude = outcome.figures["claude"]
    assert claude.errors == {"overloaded": 5}
    assert (claude.passed, claude.failed, claude.unjudged, claude.judged) == (0, 0, 0, 0)
    assert "claude" not in outcome.failures
    assert outcome.figures["gpt"].errors == {} and outcome.figures["gpt"].passed == 2


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_an_interrupted_run_resumes_without_asking_again(tmp_path, emulator, kind):
    from tests.monitor.conftest import fresh_engine

    cases = [{"id": f"c{i:02d}", "messages": [{"role": "user", "content": f"What is {i} plus {i}?"}],
              "checks": [{"type": "contains", "value": str(2 * i)}]} for i in range(1, 25)]
    config = _config(write_setup(tmp_path, emulator.url, cases=cases))
    emulator.emu.default_profile.ttft_ms = 60  # slow enough that the run is cut with most cases still to ask
    with fresh_engine(kind) as engine:
        plan = plan_feature(config, "chat", base_dir=tmp_path, backends=["gpt"])
        answered: list[str] = []

        class Watch(Progress):
            def answered(self, feature, row):
                answered.append(row.case_id)

        async with make_client() as client:
            task = asyncio.create_task(run_plan(plan, engine=engine, client=client, concurrency=2, progress=Watch()))
            await until(lambda: len(answered) >= 5, what="five answers")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        stored_first = _count(engine)
        assert 5 <= stored_first < 24  # what was answered is kept; the rest was never asked
        emulator.emu.log.clear()

        class Said(Progress):
            def start(self, feature, pending, resumed):
                self.said = (pending, resumed)

        said = Said()
        (outcome,) = await run_plans(config, [plan], engine=engine, progress=said)
        assert said.said == ({"gpt": 24 - stored_first}, stored_first)
        assert outcome.resumed == stored_first and outcome.answered == 24 - stored_first
        assert len([e for e in emulator.emu.log if e.get("status") == 200]) == 24 - stored_first  # none asked twice
        assert _count(engine) == 24 and _count(engine, "eval_run") == 1
        with Session(engine) as session:
            ids = sorted(r.case_id for r in run_answers(session, outcome.run_id))
        assert ids == [c["id"] for c in cases]
        assert outcome.figures["gpt"].passed == 24 and outcome.figures["gpt"].cases == 24


async def test_a_judge_backend_that_is_down_leaves_judge_checks_unjudged_never_failed(tmp_path, emulator,
                                                                                       sqlite_engine):
    path = write_setup(tmp_path, emulator.url, extra="quality: {judge: {backend: claude, max_tokens: 64}}\n")
    config = _config(path)
    emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
    plan = plan_feature(config, "chat", base_dir=tmp_path, backends=["gpt"])
    (outcome,) = await run_plans(config, [plan], engine=sqlite_engine)
    gpt = outcome.figures["gpt"]
    assert (gpt.passed, gpt.failed, gpt.unjudged, gpt.errors) == (2, 2, 1, {})
    with Session(sqlite_engine) as session:
        judged = next(r for r in run_answers(session, outcome.run_id) if r.case_id == "judged")
    assert judged.passed is None and judged.checks[0]["passed"] is None
    assert "overloaded" in judged.checks[0]["reason"]
    asked = [e["route"] for e in emulator.emu.log]
    assert asked.count("anthropic") >= 1  # the judge was asked (and was down)


async def test_a_changed_eval_file_is_a_new_run_not_a_resumption(setup, sqlite_engine):
    config, folder = setup
    plan = plan_feature(config, "chat", base_dir=folder, backends=["gpt"], limit=1)
    (first,) = await run_plans(config, [plan], engine=sqlite_engine)
    (folder / "evals" / "chat.jsonl").write_text(
        (folder / "evals" / "chat.jsonl").read_text() + json.dumps({**CASES[0], "id": "new"}) + "\n")
    changed = plan_feature(config, "chat", base_dir=folder, backends=["gpt"], limit=1)
    (second,) = await run_plans(config, [changed], engine=sqlite_engine)
    assert second.run_id != first.run_id and second.resumed == 0


def test_cases_without_messages_only_are_never_planned(setup):
    config, folder = setup
    only_http = [CASES[-1]]
    (folder / "evals" / "chat.jsonl").write_text(json.dumps(only_http[0]) + "\n")
    plan = plan_feature(config, "chat", base_dir=folder)
    assert plan.cases == () and plan.skipped == 1
    assert parse_cases(json.dumps(only_http[0]))[0].messages == ()


def test_a_backend_is_never_judged_by_itself(caplog):
    """quality.judge naming a backend that is also being evaluated: its own answers get no judge (its judge
    checks come out unjudged), the others keep it; the log says why."""
    from types import SimpleNamespace

    from monitor.quality.runner import _judge_for
    from probes.target import Target

    local = Target.from_provider("local", name="local", key_env=None)
    hosted = Target.from_provider("openai", name="openai", key_env=None)
    judge = SimpleNamespace(target=local)
    assert _judge_for(judge, local) is None
    assert _judge_for(judge, hosted) is judge
    assert _judge_for(None, local) is None
    assert "local is also the judge backend" in caplog.text
