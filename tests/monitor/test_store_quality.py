"""Eval runs in the store (`monitor.store.quality`), on SQLite and PostgreSQL: a run is resumed only by
an identical unfinished run, an answer is stored once, text is made storable, and the figures come from
each backend's latest run with the arithmetic the report and the risk model rely on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from monitor.quality.figures import CapacityFigure
from monitor.store.models import EvalAnswerRow, EvalRunRow
from monitor.store.quality import (
    ANSWER_STORED,
    REASON_STORED,
    capacity_figures,
    figure_of,
    finish_run,
    quality_figures,
    record_answers,
    record_capacity,
    run_answers,
    start_or_resume,
)
from tests.monitor.conftest import T0, fresh_engine


def _start(session, *, feature="chat", backends=("openai", "local"), cases_hash="h1", cases=3):
    return start_or_resume(session, feature=feature, cases_file="chat.jsonl", cases_hash=cases_hash,
                           backends=list(backends), cases=cases)


def _row(run_id: int, backend: str, case_id: str, *, feature="chat", passed=True, error_kind=None, **extra):
    extra.setdefault("ttft_ms", 100.0)
    extra.setdefault("total_ms", 400.0)
    return EvalAnswerRow(run_id=run_id, feature=feature, backend=backend, case_id=case_id, passed=passed,
                         error_kind=error_kind, answer=extra.pop("answer", "an answer"), **extra)


# -- resume --------------------------------------------------------------------------------------------

def test_an_unfinished_identical_run_is_resumed_with_what_it_answered(session):
    run_id, done = _start(session)
    assert done == set()
    assert record_answers(session, [_row(run_id, "openai", "c1"), _row(run_id, "local", "c2")]) == 2
    again, done = _start(session, backends=("local", "openai"))  # the order of backends does not matter
    assert again == run_id
    assert done == {("openai", "c1"), ("local", "c2")}


@pytest.mark.parametrize("change", [{"backends": ("openai",)}, {"cases_hash": "h2"}, {"cases": 2},
                                    {"feature": "search"}])
def test_a_different_run_starts_afresh(session, change):
    run_id, _ = _start(session)
    record_answers(session, [_row(run_id, "openai", "c1")])
    other, done = _start(session, **change)
    assert other != run_id and done == set()


def test_a_finished_run_is_never_resumed(session):
    run_id, _ = _start(session)
    record_answers(session, [_row(run_id, "openai", "c1")])
    finish_run(session, run_id)
    assert session.get(EvalRunRow, run_id).ended_at is not None
    fresh, done = _start(session)
    assert fresh != run_id and done == set()


def test_an_answer_already_stored_is_kept_as_it_was(session):
    run_id, _ = _start(session)
    assert record_answers(session, [_row(run_id, "openai", "c1", answer="first", passed=True)]) == 1
    assert record_answers(session, [_row(run_id, "openai", "c1", answer="second", passed=False),
                                    _row(run_id, "openai", "c2")]) == 1
    rows = run_answers(session, run_id)
    assert [(r.case_id, r.answer, r.passed) for r in rows] == [("c1", "first", True), ("c2", "an answer", True)]


# -- text the database takes ---------------------------------------------------------------------------

def test_answers_and_reasons_are_capped_and_cleaned_of_nul_and_lone_surrogates(session):
    run_id, _ = _start(session)
    long_answer = "a\x00b" + "x" * (ANSWER_STORED + 50)
    record_answers(session, [
        _row(run_id, "openai", "c1", answer=long_answer,
             checks=[{"type": "contains", "passed": False, "score": 0.0, "reason": "miss\x00ing " + "r" * 500}]),
        _row(run_id, "openai", "id\x00with\ud800odd", answer="half \ud83d a pair"),
    ])
    rows = {r.case_id: r for r in run_answers(session, run_id)}
    first = rows["c1"]
    assert first.answer.startswith("abxxx") and len(first.answer) == ANSWER_STORED
    assert first.checks == [{"type": "contains", "passed": False, "score": 0.0,
                             "reason": ("missing " + "r" * 500)[:REASON_STORED]}]
    odd = rows["idwith?odd"]  # NUL gone, the lone surrogate replaced: PostgreSQL and UTF-8 refuse both
    assert odd.answer == "half ? a pair"
    # the cleaned id is what a resumed run finds as answered
    assert ("openai", "idwith?odd") in _start(session)[1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=st.text(max_size=300), reason=st.text(max_size=300), case_id=st.text(min_size=1, max_size=40))
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_any_text_is_stored(kind, answer, reason, case_id):
    with fresh_engine(kind) as engine, Session(engine) as session:
        run_id, _ = _start(session)
        checks = [{"type": "regex", "passed": None, "score": 0.0, "reason": reason}]
        assert record_answers(session, [_row(run_id, "openai", case_id, answer=answer, checks=checks)]) == 1
        (row,) = run_answers(session, run_id)
        assert "\x00" not in row.answer and "\x00" not in row.case_id
        assert len(row.answer) <= ANSWER_STORED and len(row.checks[0]["reason"]) <= REASON_STORED
        if "\x00" not in answer and answer.encode("utf-8", "replace").decode() == answer:
            assert row.answer == answer  # storable text comes back as it went in


# -- the figures ---------------------------------------------------------------------------------------

def test_each_backend_figure_comes_from_its_latest_run_with_answers(session):
    first, _ = _start(session)
    record_answers(session, [_row(first, "openai", "c1", passed=False), _row(first, "local", "c1", passed=True)])
    finish_run(session, first)
    second, _ = _start(session, backends=("openai",))
    record_answers(session, [_row(second, "openai", "c1", passed=True), _row(second, "openai", "c2")])
    figures = quality_figures(session)
    assert set(figures) == {("chat", "openai"), ("chat", "local")}
    assert (figures[("chat", "openai")].run_id, figures[("chat", "openai")].passed) == (second, 2)
    assert (figures[("chat", "local")].run_id, figures[("chat", "local")].passed) == (first, 1)
    only_first = quality_figures(session, run_id=first)
    assert only_first[("chat", "openai")].run_id == first and only_first[("chat", "openai")].failed == 1
    assert quality_figures(session, feature="search") == {}
    run_row = session.get(EvalRunRow, second)
    later = quality_figures(session, since=run_row.started_at + timedelta(seconds=1))
    assert later == {}
    assert set(quality_figures(session, since=run_row.started_at)) == {("chat", "openai")}


def test_features_are_kept_apart(session):
    chat, _ = _start(session)
    search, _ = _start(session, feature="search")
    record_answers(session, [_row(chat, "openai", "c1", passed=True),
                             _row(search, "openai", "c1", feature="search", passed=False)])
    figures = quality_figures(session)
    assert figures[("chat", "openai")].passed == 1 and figures[("chat", "openai")].failed == 0
    assert figures[("search", "openai")].passed == 0 and figures[("search", "openai")].failed == 1


def test_figure_arithmetic():
    rows = [
        _row(1, "local", "c1", passed=True, ttft_ms=100.0, total_ms=1000.0, input_tokens=10, output_tokens=20,
             cost_usd=0.001, local=True),
        _row(1, "local", "c2", passed=True, ttft_ms=200.0, total_ms=2000.0, input_tokens=10, output_tokens=30,
             cost_usd=0.002, local=True),
        _row(1, "local", "c3", passed=False, ttft_ms=300.0, total_ms=3000.0, input_tokens=10, output_tokens=40,
             cost_usd=0.003, local=True),
        _row(1, "local", "c4", passed=None, ttft_ms=400.0, total_ms=4000.0, input_tokens=10, output_tokens=50,
             cost_usd=0.004, local=True),
        # errors: never judged, never timed into the percentiles, counted by kind
        _row(1, "local", "c5", passed=None, error_kind="overloaded", ttft_ms=None, total_ms=5.0, local=True),
        _row(1, "local", "c6", passed=None, error_kind="overloaded", ttft_ms=None, total_ms=9000.0, local=True),
        _row(1, "local", "c7", passed=None, error_kind="first_token_timeout", ttft_ms=None, total_ms=20.0),
    ]
    f = figure_of("chat", "local", 1, T0, rows)
    assert (f.cases, f.passed, f.failed, f.unjudged) == (7, 2, 1, 1)
    assert f.errors == {"overloaded": 2, "first_token_timeout": 1} and f.error_count == 3
    assert f.judged == 3 and f.pass_rate == pytest.approx(2 / 3)
    lo, hi = f.interval
    assert 0 < lo < 2 / 3 < hi < 1
    assert f.ttft_p50_ms == pytest.approx(250.0) and f.ttft_p95_ms == pytest.approx(385.0)
    assert f.total_p50_ms == pytest.approx(2500.0) and f.total_p95_ms == pytest.approx(3850.0)
    assert (f.input_tokens, f.output_tokens) == (40, 140)
    assert f.cost_usd == pytest.approx(0.010)
    assert f.cost_per_1000 == pytest.approx(1000 * 0.010 / 4)  # per answered request
    assert f.local is True and (f.feature, f.backend, f.run_id, f.at) == ("chat", "local", 1, T0)


def test_an_unpriced_run_has_no_cost_and_one_answer_is_its_own_percentile():
    f = figure_of("chat", "openai", 1, T0, [_row(1, "openai", "c1", ttft_ms=120.0, total_ms=800.0)])
    assert f.cost_usd is None and f.cost_per_1000 is None
    assert (f.ttft_p50_ms, f.ttft_p95_ms, f.total_p50_ms, f.total_p95_ms) == (120.0, 120.0, 800.0, 800.0)
    none = figure_of("chat", "openai", 1, T0, [_row(1, "openai", "c1", passed=None, error_kind="auth")])
    assert none.ttft_p50_ms is None and none.pass_rate is None and none.interval == (0.0, 1.0)


_outcome = st.sampled_from(["pass", "fail", "unjudged", "overloaded", "server_error"])


@given(outcomes=st.lists(_outcome, max_size=60))
def test_every_row_is_counted_once(outcomes):
    rows = [_row(1, "b", f"c{i}", passed={"pass": True, "fail": False}.get(o),
                 error_kind=o if o in ("overloaded", "server_error") else None) for i, o in enumerate(outcomes)]
    f = figure_of("chat", "b", 1, T0, rows)
    assert f.passed + f.failed + f.unjudged + f.error_count == f.cases == len(rows)
    assert f.passed == outcomes.count("pass") and f.failed == outcomes.count("fail")
    assert f.errors.get("overloaded", 0) == outcomes.count("overloaded")
    lo, hi = f.interval
    rate = f.pass_rate if f.pass_rate is not None else lo
    assert 0 <= lo <= rate <= hi <= 1


# -- capacity ------------------------------------------------------------------------------------------

def test_the_latest_capacity_search_per_backend_is_its_figure(session):
    steps = ({"rate": 1.0, "p95_ms": 500.0, "pass_rate": 0.9, "ok": True, "requests": 10, "errors": 0},)
    record_capacity(session, CapacityFigure("chat", "local", T0, 1.0, 500.0, 0.9, 2000.0, steps), duration_s=12.5)
    record_capacity(session, CapacityFigure("chat", "local", T0 + timedelta(hours=1), 2.5, 900.0, 0.8, 2000.0))
    record_capacity(session, CapacityFigure("chat", "openai", T0, 9.0))
    figures = capacity_figures(session)
    assert figures[("chat", "local")].rate_rps == 2.5 and figures[("chat", "local")].at == T0 + timedelta(hours=1)
    assert figures[("chat", "openai")].rate_rps == 9.0
    early = capacity_figures(session, since=T0 + timedelta(minutes=30))
    assert set(early) == {("chat", "local")}
    record_capacity(session, CapacityFigure("search", "local", T0, 1.0, 500.0, 0.9, 2000.0, steps))
    assert capacity_figures(session)[("search", "local")].steps == steps
